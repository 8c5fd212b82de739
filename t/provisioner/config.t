# faas-provisioner refuses bad configuration with a one-line reason (exit 1),
# and survives garbage on its queues.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $w = work_dir();
my $redis = start_redis();
my $good = prov_config($redis, name => 'c');

sub run_with {
    my ($cfg) = @_;
    my $f = "$w/bad.json";
    if (ref $cfg) { write_json($f, $cfg) } else { write_file($f, $cfg) }
    my $out = `timeout 10 ${\ objs_dir()}/faas-provisioner -c $f 2>&1`;
    return ($? >> 8, $out);
}

my @cases = (
    [ sub { delete $_[0]{host_id} }, qr/config: host_id is required/, 'missing host_id' ],
    [ sub { $_[0]{host_id} = 'a b' }, qr/host_id must be a non-empty word/, 'host_id with a space' ],
    [ sub { $_[0]{agent_endpoint} = 'http://x' }, qr/agent_endpoint must be unix:\/path or tcp:host:port/, 'bad endpoint' ],
    [ sub { delete $_[0]{cache_dir} }, qr/config: cache_dir is required/, 'missing cache_dir' ],
    [ sub { delete $_[0]{store_url} }, qr/config: store_url is required/, 'missing store_url' ],
    [ sub { $_[0]{store_url} = 'ftp://x' }, qr/store/, 'unknown store scheme' ],
    [ sub { $_[0]{shards} = 0 }, qr/config: shards must be in \[1, 16384\]/, 'zero shards' ],
    [ sub { $_[0]{lease_ms} = 'long' }, qr/config: lease_ms must be/, 'lease_ms not an integer' ],
    [ sub { $_[0]{freezer} = 'v3' }, qr/config: freezer must be v1 or v2/, 'bad freezer' ],
    [ sub { $_[0]{create_concurrency} = 1000 }, qr/create_concurrency must be in/, 'concurrency too high' ],
    [ sub { $_[0]{zygote} = 'per-user' }, qr/zygote must be "off", "shared", "function" or a boolean/, 'unknown zygote mode' ],
    [ sub { $_[0]{zygote_idle_s} = 0 }, qr/zygote_idle_s must be 1\.\.86400/, 'zygote_idle_s 0' ],
);
for my $c (@cases) {
    my %cfg = %$good;
    $c->[0]->(\%cfg);
    my ($rc, $out) = run_with(\%cfg);
    is($rc, 1, "$c->[2]: exit 1");
    like($out, $c->[1], "$c->[2]: reason") or diag($out);
}
my ($rc, $out) = run_with('{"host_id": ');
is($rc, 1, 'invalid JSON: exit 1');
like($out, qr/config .*bad\.json/, 'invalid JSON: reason names the file');
$rc = system(objs_dir() . '/faas-provisioner >/dev/null 2>&1') >> 8;
is($rc, 1, 'no -c: usage, exit 1');

# Garbage and bad requests on a queue: dropped (or answered), the daemon lives on.
my $r = redis_client($redis);
my $p = start_provisioner($redis, name => 'p1', shards => 2);
$r->rpush('faas:prov:q:0', "\xff\xff\xff garbage");
my $id = push_request($r, $p, rid => 'x@1', function => 'x', version => 2,
                      code_key => 'code/x/1/a.zip', code_sha256 => 'a' x 64);
my ($k, $reason) = @{ $r->blpop("faas:err:{x\@1}:$id", 15) || [] };
like($reason // '', qr/bad request: rid does not match/, 'a request whose rid and version disagree is refused');
ok(wait_until(sub { prov_log_count($p, qr/dropped an undecodable ProvisionRequest/) }, 10),
   'an undecodable request is logged and dropped');
$r->rpush('faas:prov:q:1', pb_provision_request(rid => 'Bad Name@1', function => 'Bad Name', version => 1));
ok(wait_until(sub { prov_log_count($p, qr/dropped a request: bad request/) }, 10),
   'a request with an invalid name is dropped');
ok(proc_alive($p), 'the provisioner is still running');
is($r->llen('faas:prov:q:0') + $r->llen('faas:prov:q:1'), 0, 'queues drained');

stop_proc($p);
is($p->{status} >> 8, 0, 'SIGTERM: clean exit 0');
ok(!defined $r->zscore('faas:prov:hosts', 'p1'), 'and it left faas:prov:hosts');
is(scalar(prov_held_shards($r, 'p1', 2)), 0, 'and released its leases');
prov_cleanup($p);
faas_finish();
