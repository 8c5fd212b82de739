# The provisioner reconnects to Redis forever, with capped backoff: started
# while Redis is down, it serves requests once Redis is up; after a kill -9
# of Redis and an empty restart, it serves again and lists its idle sandbox
# again. Each outage is logged once as lost and once as reconnected per
# connection, not once per attempt.
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $redis = redis_handle_at(free_port());
my $p = launch_provisioner($redis, name => 'p1', shards => 2, lease_ms => 1500,
                           grace_ms => 1000);
sleep 2;
$redis = redis_start_at($redis);
my $r = redis_client($redis);

my ($key, $sha) = put_code($p, 'rr', 1,
    make_zip('handler.py' => "def handler(e, c):\n    return 'ok'\n"));
my $rid = 'rr@1';

# Waits $limit s for the outcome of one request; its entry or undef.
sub served_within {
    my ($limit) = @_;
    my $t0 = time;
    my $id = push_request($r, $p, rid => $rid, code_key => $key,
                          code_sha256 => $sha, memory_mb => 32);
    my $entry;
    wait_until(sub {
        ($entry) = grep { (split /\|/)[2] eq $id } idle_entries($r, $rid);
        return $entry || $r->lpop("faas:err:{$rid}:$id");
    }, $limit);
    diag(sprintf 'served in %.1f s', time - $t0) if $entry;
    return $entry;
}

# --- started while Redis was down ------------------------------------------
ok(served_within(5), 'Redis started 2 s after the provisioner: request served within 5 s')
    or diag(read_file($p->{log}));
is(prov_log_count($p, qr/redis cmd: lost \(/), 1, 'cmd: the loss logged once');
is(prov_log_count($p, qr/redis cmd: reconnected/), 1, 'cmd: the recovery logged once');

# --- kill -9, restarted empty ----------------------------------------------
my @before = idle_entries($r, $rid);
is(scalar @before, 1, 'one idle sandbox listed');
my ($sbx) = split /\|/, $before[0];
my $lost_before = prov_log_count($p, qr/redis \w+: lost \(/);
kill_proc($redis);
sleep 1.5;   # several attempts fail meanwhile
$redis = redis_start_at($redis);
$r = redis_client($redis);
put_revision($r, rid => $rid, code_key => $key, code_sha256 => $sha,
             memory_mb => 32);

ok(wait_until(sub { grep { /^\Q$sbx\E\|/ } idle_entries($r, $rid) }, 5),
   'Redis back empty: the idle sandbox is listed again within 5 s');
ok(served_within(5), 'Redis back empty: a request is served within 5 s');

is(prov_log_count($p, qr/redis cmd: lost \(/), 2, 'cmd: the second outage logged once as lost')
    or diag(join '', grep { /redis / } split /^/m, read_file($p->{log}));
is(prov_log_count($p, qr/redis cmd: reconnected/), 2, 'cmd: and once as reconnected');
my %lost = map { $_ => 1 } read_file($p->{log}) =~ /redis (q\d+): lost \(/g;
for my $q (sort keys %lost) {
    my $n_lost = prov_log_count($p, qr/redis $q: lost \(/);
    my $n_back = prov_log_count($p, qr/redis $q: reconnected/);
    ok($n_lost <= 1 && $n_back == $n_lost, "$q: lost $n_lost, reconnected $n_back");
}
ok(prov_log_count($p, qr/redis \w+: lost \(/) > $lost_before, 'the blocking links lost too');

prov_cleanup($p);
faas_finish();
