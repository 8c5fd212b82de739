# The C API (t/unit/sandbox_test.c, AddressSanitizer build) against real
# sandboxes; its TAP lines are replayed here so that faas_finish() can check
# that nothing is left behind.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Sandbox;

my $bin = objs_dir() . '/asan/t/sandbox_test';
$bin = objs_dir() . '/t/sandbox_test' unless -x $bin;
plan skip_all => 'sandbox_test is not built (./build.sh build)' unless -x $bin;

my $cfg = sandbox_config();
my $code = write_handler(work_dir() . '/code', "def handler(e, c):\n    return e\n");
local $ENV{ASAN_OPTIONS} = 'detect_leaks=1:abort_on_error=0:exitcode=23';
my @out = `$bin $cfg->{file} $code 2>&1`;
my $rc = $? >> 8;
my $n = 0;
for (@out) {
    if (/^(not )?ok \d+ - (.*)$/) {
        ok(!$1, $2);
        $n++;
    } elsif (/^#/) {
        note($_);
    } elsif (!/^1\.\.\d+$/) {
        diag($_);
    }
}
cmp_ok($n, '>', 30, 'the C test ran');
is($rc, 0, 'the C test exited cleanly (no ASan report)');

faas_finish();
