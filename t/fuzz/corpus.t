# The fuzz targets (fuzz/*.c) replay their committed seed corpus
# (fuzz/corpus/<target>/, regression inputs included) and then run a few
# thousand new inputs each, bounded in time: any crash, sanitizer report,
# leak or failed check fails the test. ./build.sh fuzz runs them for longer.
use lib 't/lib';
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;

my $root = "$FindBin::Bin/../..";
chdir $root or die "chdir $root: $!";
my $new_runs = $ENV{FUZZ_CI_RUNS} // 3000;
my $new_secs = $ENV{FUZZ_CI_SECONDS} // 5;

# Builds the targets (incremental; FUZZ_SECONDS=0 only builds).
my $out = `FUZZ_SECONDS=0 ./build.sh fuzz 2>&1`;
is($?, 0, 'the fuzz targets build') or diag($out), done_testing(), exit;

my @targets = map { m{fuzz/(\w+)\.c$} ? $1 : () } glob('fuzz/*.c');
ok(@targets >= 7, scalar(@targets) . ' fuzz targets');

# Runs a target; returns its exit status and what it printed.
sub fuzz {
    my ($t, @args) = @_;
    my $log = `objs/fuzz/fuzz/$t @args 2>&1`;
    return ($?, $log);
}

# The last lines of libFuzzer's output: the report of a crash.
sub tail_of {
    my @l = split /\n/, $_[0];
    return join("\n", @l > 40 ? @l[-40 .. -1] : @l);
}

$ENV{FUZZ_TMPDIR} = tempdir(CLEANUP => 1);
for my $t (@targets) {
    my $corpus = "fuzz/corpus/$t";
    my @seeds = glob("$corpus/*");
    ok(@seeds >= 5, "$t: a seed corpus (" . scalar(@seeds) . ' files)');

    my $crashes = "fuzz/crashes/$t";
    system('mkdir', '-p', $crashes);
    my ($rc, $log) = fuzz($t, '-runs=0', "-artifact_prefix=$crashes/",
                          $corpus);
    is($rc, 0, "$t: every corpus input passes") or diag(tail_of($log));

    my $new = tempdir(CLEANUP => 1);
    ($rc, $log) = fuzz($t, "-runs=$new_runs", "-max_total_time=$new_secs",
                       "-artifact_prefix=$crashes/", $new, $corpus);
    is($rc, 0, "$t: $new_runs new inputs pass") or diag(tail_of($log));
    my ($done) = $log =~ /^(#\d+\s+DONE.*)$/m;
    note("$t: $done") if $done;
}

done_testing();
