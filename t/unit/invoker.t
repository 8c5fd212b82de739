use lib 't/lib';
use Faas::Unit;
run_unit('invoker_test');
