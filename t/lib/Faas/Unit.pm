package Faas::Unit;
# Runs one C unit test program (its AddressSanitizer build) so prove sees
# its TAP: t/unit/<name>.t is just `use Faas::Unit; run_unit('<name>_test');`
use strict;
use warnings;
use Exporter 'import';
use FindBin;
our @EXPORT = qw(run_unit);
our @EXPORT_OK = qw(unit_tap);

sub run_unit {
    my ($name) = @_;
    my $root = "$FindBin::Bin/../..";
    $root = "$FindBin::Bin/.." unless -d "$root/objs";
    my $bin = "$root/objs/asan/t/$name";
    if (!-x $bin) {
        print "1..1\nnot ok 1 - $bin is not built (run ./build.sh build)\n";
        exit 1;
    }
    $ENV{ASAN_OPTIONS} //= 'detect_leaks=1:abort_on_error=0:exitcode=23';
    $ENV{UBSAN_OPTIONS} //= 'print_stacktrace=1:halt_on_error=1';
    exec $bin, @_[1 .. $#_] or die "exec $bin: $!";
}

# For a .t file that starts servers first (so it cannot exec): runs the
# AddressSanitizer build of <name> with extra environment and arguments,
# and replays its TAP through Test::More (one ok() per line, comments as
# notes), then checks that the program exited 0 and ran all it planned.
#   use Faas::Unit qw(unit_tap);
#   unit_tap('blob_s3_test', env => {FAAS_S3_ENDPOINT => ...}, args => []);
sub unit_tap {
    my ($name, %o) = @_;
    require Test::More;
    my $root = "$FindBin::Bin/../..";
    $root = "$FindBin::Bin/.." unless -d "$root/objs";
    my $bin = $o{bin} // "$root/objs/asan/t/$name";
    if (!-x $bin) {
        Test::More::fail("$bin is not built (run ./build.sh build)");
        return;
    }
    local %ENV = (%ENV,
        ASAN_OPTIONS => 'detect_leaks=1:abort_on_error=0:exitcode=23',
        UBSAN_OPTIONS => 'print_stacktrace=1:halt_on_error=1',
        %{ $o{env} || {} });
    my ($n, $plan, $skip, $failed) = (0, undef, undef, 0);
    open(my $fh, '-|', $bin, @{ $o{args} || [] }) or die "run $bin: $!";
    while (my $line = <$fh>) {
        chomp $line;
        if ($line =~ /^(not )?ok \d+(?: - (.*))?$/) {
            $n++;
            $failed = !!$1;
            Test::More::ok(!$1, "$name: " . ($2 // ''));
        } elsif ($line =~ /^1\.\.(\d+)(?:\s*#\s*SKIP\s*(.*))?/) {
            ($plan, $skip) = ($1, $2);
        } elsif ($line =~ /^#\s?(.*)/) {
            # The lines after a failure say why: show them.
            $failed ? Test::More::diag("$name: $1")
                    : Test::More::note("$name: $1");
        } else {
            Test::More::diag("$name: $line");
        }
    }
    close $fh;
    my $status = $?;
    Test::More::is($status, 0, "$name exited 0")
        or Test::More::diag("wait status $status: exit " . ($status >> 8)
                            . ', signal ' . ($status & 127)
                            . ' (ASan/UBSan errors exit 23)');
    if (defined $skip && $plan == 0) {
        Test::More::note("$name skipped: $skip");
    } else {
        Test::More::is($n, $plan // -1, "$name ran all $n planned tests");
    }
    return $status == 0;
}

1;
