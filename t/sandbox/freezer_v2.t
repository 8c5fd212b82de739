# freezer "v2": idle sandboxes are frozen through cgroup.freeze.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Sandbox;

my $cfg = sandbox_config(freezer => 'v2');
my $code = write_handler(work_dir() . '/code', "import os\ndef handler(e, c):\n    return {'n': e['n'] + 1}\n");
my ($rc, $id, $err) = sbx_create($cfg, code => $code);
is($rc, 0, 'create with the v2 freezer') or diag($err);
my $v2 = "/sys/fs/cgroup/unified/$cfg->{cgroup_root}/$id";
is(read_file("$v2/cgroup.freeze"), "1\n", 'cgroup.freeze is 1 after create');
like(read_file("$v2/cgroup.events"), qr/^frozen 1$/m, 'cgroup.events says frozen');
my (undef, $state) = sbx($cfg, 'state', $id);
is($state, "frozen\n", 'state says frozen');
is(read_file(cg_file($cfg, 'freezer', $id, 'freezer.state')), "THAWED\n",
   'the v1 freezer is not used');
for my $n (1 .. 3) {
    my ($a, $e) = sbx_invoke($cfg, $id, { n => $n });
    ok($a && $a->{ok}, "invoke $n answers") or diag($e);
    my $r = $a->{response};
    $r = json_decode($r->{body}) if ref $r eq 'HASH' && exists $r->{statusCode};
    is($r->{n}, $n + 1, "invoke $n: the handler ran");
    is(read_file("$v2/cgroup.freeze"), "1\n", "cgroup.freeze is 1 again after invoke $n");
}
($rc, $err) = sbx_destroy($cfg, $id);
is($rc, 0, 'a v2-frozen sandbox is destroyed') or diag($err);
ok(!-d $v2, 'v2 cgroup removed');

faas_finish();
