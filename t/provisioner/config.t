# faas-provisioner refuses bad configuration with a one-line reason naming
# the key (exit 1): unknown keys too,
# and survives garbage on its queues. Each block changes a good
# configuration (set: a JSON object of keys, delete: key names) and gives
# the reason the provisioner must print (error_like).
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;
use Faas::Blocks;

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

for my $b (data_blocks()) {
    my ($rc, $out) = run_with(edit_config($good, $b));
    is($rc, 1, $b->name . ': exit 1');
    my $re = $b->error_like =~ s/\n\z//r;
    like($out, qr/$re/, $b->name . ': reason') or diag($out);
    is(scalar(() = $out =~ /\n/g), 1, $b->name . ': one line');
}
my ($rc, $out) = run_with('{"host_id": ');
is($rc, 1, 'invalid JSON: exit 1');
like($out, qr/config .*bad\.json/, 'invalid JSON: reason names the file');
$out = `timeout 10 ${\ objs_dir()}/faas-provisioner -c $w/none.json 2>&1`;
is($? >> 8, 1, 'missing file: exit 1');
like($out, qr/\Afaas-provisioner: config .*none\.json: unable to open .*No such file[^\n]*\n\z/,
     'missing file: one line that says so');
$rc = system(objs_dir() . '/faas-provisioner >/dev/null 2>&1') >> 8;
is($rc, 1, 'no -c: usage, exit 1');

# Garbage and bad requests on a queue: dropped (or answered), the daemon lives on.
my $r = redis_client($redis);
my $p = start_provisioner($redis, name => 'p1', shards => 2);
$r->rpush('faas:prov:q:0', "\xff\xff\xff garbage");
my $id = push_request($r, $p, rid => 'x@1', no_rev => 1);
my ($k, $reason) = @{ $r->blpop("faas:err:{x\@1}:$id", 15) || [] };
is($reason, 'function revision x@1 is unknown', 'a request for a revision without faas:rev is answered');
ok(wait_until(sub { prov_log_count($p, qr/dropped an undecodable ProvisionRequest/) }, 10),
   'an undecodable request is logged and dropped');
$r->rpush('faas:prov:q:1', pb_provision_request(rid => 'Bad Name@1'));
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

__DATA__

=== TEST 1: missing host_id
--- delete: host_id
--- error_like
config: host_id is required

=== TEST 2: host_id with a space
--- set
{"host_id": "a b"}
--- error_like
host_id must be a non-empty word

=== TEST 3: bad endpoint
--- set
{"agent_endpoint": "http://x"}
--- error_like
agent_endpoint must be unix:\/path or tcp:host:port

=== TEST 4: missing cache_dir
--- delete: cache_dir
--- error_like
config: cache_dir is required

=== TEST 5: missing store_url
--- delete: store_url
--- error_like
config: store_url is required

=== TEST 6: unknown store scheme
--- set
{"store_url": "ftp://x"}
--- error_like
store

=== TEST 7: zero shards
--- set
{"shards": 0}
--- error_like
config: shards must be in \[1, 16384\]

=== TEST 8: lease_ms not an integer
--- set
{"lease_ms": "long"}
--- error_like
config: lease_ms must be

=== TEST 9: bad freezer
--- set
{"freezer": "v3"}
--- error_like
config: freezer must be v1 or v2

=== TEST 10: concurrency too high
--- set
{"create_concurrency": 1000}
--- error_like
create_concurrency must be in

=== TEST 11: unknown zygote mode
--- set
{"zygote": "per-user"}
--- error_like
zygote must be "off", "shared", "function" or a boolean

=== TEST 12: zygote_idle_s 0
--- set
{"zygote_idle_s": 0}
--- error_like
zygote_idle_s must be 1\.\.86400

=== TEST 13: unknown key (a typo)
--- set
{"memory_budget": 1024}
--- error_like
config: unknown key "memory_budget"

=== TEST 14: bad S3 option type
--- set
{"store_url": "s3://b", "s3_path_style": "yes"}
--- error_like
s3_path_style must be a boolean

=== TEST 15: bad swap accounting type
--- set
{"require_swap_accounting": "no"}
--- error_like
config: require_swap_accounting must be a boolean

=== TEST 16: metrics_listen not host:port
--- set
{"metrics_listen": "nonsense"}
--- error_like
metrics_listen "nonsense": not host:port

=== TEST 17: metrics_listen on a port that cannot be bound
--- set
{"metrics_listen": "192.0.2.1:9100"}
--- error_like
metrics_listen "192\.0\.2\.1:9100": Cannot assign requested address
