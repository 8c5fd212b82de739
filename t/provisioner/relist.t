# A sandbox that a gateway holds and keeps invoking is never listed again
# behind its back, even though a scan rarely sees it listed (under load,
# returned entries are popped at once or handed over inside the gateway):
# its CPU time says it is in use. Once nobody runs it for the grace period,
# it is listed again, once.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $redis = start_redis();
my $r = redis_client($redis);
my $p = start_provisioner($redis, name => 'p1', grace_ms => 1000);
my ($key, $sha) = put_code($p, 'busy', 1,
    make_zip('handler.py' => "def handler(e, c):\n    return 'ok'\n"));
my $rid = 'busy@1';
my $idle = "faas:idle:{$rid}";

push_request($r, $p, rid => $rid, code_key => $key, code_sha256 => $sha,
             memory_mb => 32);
ok(wait_until(sub { $r->llen($idle) == 1 }, 60), 'one sandbox listed');
my $entry = $r->lpop($idle);
my ($id) = split /\|/, $entry;
ok($id, "a gateway holds $id");

# Invoke it for four grace periods, frozen between calls, never returned.
my ($calls, $ok) = (0, 0);
my $until = time + 4;
while (time < $until) {
    my $res = prov_sbx_invoke($p, $id);
    $calls++;
    $ok++ if $res && $res->{ok};
    is($r->llen($idle), 0, 'not listed while in use') or last
        if $calls % 5 == 0;
}
ok($calls > 3 && $ok == $calls, "$ok of $calls calls answered");
is($r->llen($idle), 0, 'still not listed after four grace periods of use');
unlike(read_file($p->{log}) // '', qr/re-listed \Q$id\E/, 'never re-listed meanwhile');

# Nobody runs it any more: listed again after the grace period, once.
ok(wait_until(sub { $r->llen($idle) == 1 }, 20), 'idle for the grace period: listed again');
sleep 1.5;
my @listed = $r->lrange($idle, 0, -1);
ok(@listed == 1 && $listed[0] =~ /^\Q$id\E\|/, 'listed exactly once')
    or diag(join(', ', @listed));

prov_cleanup($p);
faas_finish();
