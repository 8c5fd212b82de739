use lib 't/lib';
use Faas::Unit;
run_unit('registry_test');
