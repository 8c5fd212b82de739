# More simultaneous cold starts than a worker has BLPOP connections
# (faas_redis_blpop_connections): the calls that find every connection
# taken wait in the worker's queue of the revision instead of failing, and
# every call is served by the sandboxes the cold starts made.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner', 'faas-agent');

my $SHARDS = 4;
my $N = 8;
my $redis = start_redis();
my $r = redis_client($redis);
my $prov = start_provisioner($redis, name => 'p1', shards => $SHARDS);
my $agent = start_agent_for($prov);
my ($key, $sha) = put_code($prov, 'busy', 1, make_zip('handler.py' => <<'PY'));
import time
def handler(event, context):
    time.sleep(0.3)
    return {"statusCode": 200, "body": "ok"}
PY
fn_mirror($r, 'busy', code_key => $key, code_sha256 => $sha, memory_mb => 64,
          timeout_ms => 10000, max_concurrency => 20, keep_alive_s => 600);

# one worker with two BLPOP connections for eight simultaneous cold starts
my $ng = start_nginx(workers => 1,
    http_config => "faas_redis $redis->{addr}; faas_shards $SHARDS; "
                   . 'faas_redis_blpop_connections 2;',
    config => 'location /fn/ { faas_function on; faas_cold_start_timeout 30s; }');
my @res = http_parallel($ng->{port}, map { ['GET', "/fn/busy/$_", timeout => 60] } 1 .. $N);
my @bad = grep { $_->{status} != 200 } @res;
is(scalar @bad, 0, "$N simultaneous first calls, 2 BLPOP connections: all 200")
    or diag explain [ map { { status => $_->{status}, body => $_->{body} } } @bad ];
my $log = error_log_since(0);
like($log, qr/all 2 BLPOP connections are busy/, '... some found every connection taken');
my $count = $r->get('faas:count:{busy@1}') // 0;
ok($count >= 1 && $count <= $N, "... at most one sandbox per call ($count)");
ok(wait_until(sub { $r->llen('faas:idle:{busy@1}') == ($r->get('faas:count:{busy@1}') // -1) }, 30),
   '... every sandbox back on the idle list');

stop_nginx();
stop_proc($agent);
prov_cleanup($prov);
faas_finish();
