use lib 't/lib';
use Faas::Unit;
run_unit('frame_test');
