use lib 't/lib';
use Faas::Unit;
run_unit('blob_file_test');
