# Overload is back-pressure, never a 502 (docs/DESIGN.md section 10): on a
# host with room for N sandboxes, 3N concurrent calls of a sleeping function
# are all answered 200 (the calls whose cold start the host refused wait for
# a returned sandbox); at a function's max concurrency a call waits for the
# sandbox in use, and one that cannot get it within faas_cold_start_timeout
# answers 429 with a JSON error and Retry-After.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner', 'faas-agent');

my $N = 3;
my $MB = 64;
my $redis = start_redis();
my $r = redis_client($redis);
# room for N sandboxes: a margin that covers any use counts each as its limit
my $prov = start_provisioner($redis, name => 'p1', shards => 4,
                             memory_budget_mb => $N * $MB,
                             cfg => { memory_margin_pct => 100000 });
my $agent = start_agent_for($prov);

my $zip = make_zip('handler.py' => <<'PY');
import time
def handler(event, context):
    s = float((event.get("queryStringParameters") or {}).get("s", "0"))
    time.sleep(s)
    return {"statusCode": 200, "body": event["rawPath"]}
PY
sub fn_meta {
    my ($name, %o) = @_;
    my ($key, $sha) = put_code($prov, $name, 1, $zip);
    fn_mirror($r, $name, code_key => $key, code_sha256 => $sha, memory_mb => $MB,
              timeout_ms => 10000, keep_alive_s => 600, %o);
}
fn_meta('sleepy', max_concurrency => 100);
fn_meta('single', max_concurrency => 1);

my $ng = start_nginx(
    http_config => "faas_redis $redis->{addr}; faas_shards 4;",
    config => <<'C');
location /fn/ { faas_function on; faas_cold_start_timeout 20s; }
location /short/ { faas_function on; faas_cold_start_timeout 500ms; }
C
my $port = $ng->{port};

# 1. 3N concurrent calls on a host with room for N sandboxes
my @calls = map { http_start($port, 'GET', "/fn/sleepy/c$_?s=0.4") } 1 .. 3 * $N;
my @res = map { http_collect($_) } @calls;
is_deeply([map { $_->{status} } @res], [(200) x (3 * $N)],
          "$N sandboxes of room, ${\ (3 * $N)} concurrent calls: every one answered 200")
    or diag explain [map { "$_->{status} $_->{body}" } @res];
is_deeply([map { $_->{body} } @res], [map { "/c$_" } 1 .. 3 * $N], '... each with its own answer');
ok(!grep({ $_->{status} == 502 } @res), '... none 502');
ok(scalar(prov_sandboxes($prov)) <= $N, "... on at most $N sandboxes");
ok(scalar(grep { ($_->{headers}{'x-faas-start'} // '') eq 'stolen' } @res) >= 1,
   '... some on a sandbox another call returned (stolen)');

# 2. max concurrency 1: the second call waits for the sandbox in use; a
# third that cannot get it within its timeout answers 429
my $res = http_request($port, 'GET', '/fn/single/warmup');
is($res->{status}, 200, 'max_concurrency 1: a first call makes its sandbox');
my $long = http_start($port, 'GET', '/fn/single/long?s=1.5');
ok(wait_until(sub { $r->llen('faas:idle:{single@1}') == 0 }, 10), 'a slow call holds it');
my $second = http_start($port, 'GET', '/fn/single/second');
$res = http_request($port, 'GET', '/short/single/third');
is($res->{status}, 429, 'a call that waited beyond faas_cold_start_timeout at max concurrency: 429');
like($res->{body}, qr/^\{"error":"function at its concurrency limit \(1\): no sandbox within 500 ms","request_id":"[0-9a-f]+"\}$/,
     '... with a JSON error');
is($res->{headers}{'retry-after'}, '1', '... and Retry-After');
is(http_collect($long)->{status}, 200, 'the slow call: 200');
my $sres = http_collect($second);
is($sres->{status}, 200, 'the second call waited for the sandbox: 200');
is($sres->{headers}{'x-faas-start'}, 'stolen', '... on the sandbox the slow one gave back');
is($r->get('faas:count:{single@1}'), 1, 'still one sandbox of it');

stop_nginx();
prov_cleanup($prov);
stop_proc($agent);
faas_finish();
