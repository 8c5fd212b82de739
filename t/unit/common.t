use lib 't/lib';
use Faas::Unit;
run_unit('common_test');
