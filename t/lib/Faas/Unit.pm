package Faas::Unit;
# Runs one C unit test program (its AddressSanitizer build) so prove sees
# its TAP: t/unit/<name>.t is just `use Faas::Unit; run_unit('<name>_test');`
use strict;
use warnings;
use Exporter 'import';
use FindBin;
our @EXPORT = qw(run_unit);

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

1;
