use lib 't/lib';
use Faas::Unit;
run_unit('proto_test');
