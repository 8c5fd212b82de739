# The gateway suite once more with every nginx under valgrind (one process,
# master_process off): each file must pass and valgrind must report no
# error (Faas::Nginx asserts "ERROR SUMMARY: 0 errors" when it stops nginx).
use lib 't/lib';
use Test::More;
use Faas::Test;

plan skip_all => 'valgrind is not installed' unless -x '/usr/bin/valgrind';

for my $t (qw(auth warm answers cold faults redis waitq agent_restart no_duplicates)) {
    my $out = `FAAS_NGINX_VALGRIND=1 $^X t/gateway/$t.t 2>&1`;
    my $rc = $? >> 8;
    is($rc, 0, "t/gateway/$t.t passes under valgrind")
        or diag(join "\n", grep { /^not ok|^#/ } split /\n/, $out);
    my @vg = $out =~ /^(ok \d+ - valgrind: no error.*)$/mg;
    ok(@vg >= 1, "... and valgrind checked its nginx (" . scalar(@vg) . " runs)");
}
faas_finish();
