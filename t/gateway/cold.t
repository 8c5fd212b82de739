# Cold starts with the real provisioner and agent: COLD, WARM and STOLEN
# starts, power of two choices between the two candidate shard queues, max
# concurrency, a failed cold start reaching the request that caused it.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;
use Faas::Protobuf qw(pb_decode);
use Time::HiRes qw(sleep);
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);

need_programs('faas-provisioner', 'faas-agent');

my $SHARDS = 4;
my $redis = start_redis();
my $r = redis_client($redis);
my $w = work_dir();

sub fn_meta {
    my ($name, %o) = @_;
    fn_mirror($r, $name, code_key => '', code_sha256 => '', memory_mb => 64,
              timeout_ms => 10000, max_concurrency => 10, keep_alive_s => 600,
              env => '{"GREETING":"hi"}', %o);
}
sub queue_lengths { map { $r->llen("faas:prov:q:$_") } 0 .. $SHARDS - 1 }
sub shard2 {
    my ($rid) = @_;
    my $p = crc16("$rid:secondary") % 16384;
    return int($p * $SHARDS / 16384);
}

write_file("$w/hs.key", "hs-secret-0123456789");
sub jwt_hs {
    my ($claims) = @_;
    my $in = encode_base64url(json_encode({ alg => 'HS256' })) . '.'
             . encode_base64url(json_encode($claims));
    return "$in." . encode_base64url(hmac_sha256($in, 'hs-secret-0123456789'));
}

my $ng = start_nginx(
    http_config => "faas_redis $redis->{addr}; faas_shards $SHARDS;",
    config => <<"C");
location /fn/ {
    faas_function on;
    faas_cold_start_timeout 20s;
    faas_jwt_alg HS256;
    faas_jwt_key $w/hs.key;
}
location /short/ { faas_function on; faas_cold_start_timeout 300ms; }
C
my $port = $ng->{port};

# --- power of two choices (no provisioner consumes the queues yet) --------
my $fname;
for my $i (1 .. 100) {
    my $rid = "ptwo$i\@1";
    if (shard_of($rid, $SHARDS) != shard2($rid)) { $fname = "ptwo$i"; last }
}
my $prid = "$fname\@1";
my ($q1, $q2) = (shard_of($prid, $SHARDS), shard2($prid));
fn_meta($fname, code_key => 'code/none.zip');
$r->rpush("faas:prov:q:$q1", 'filler') for 1 .. 3;
my $res = http_request($port, 'GET', "/short/$fname");
is($res->{status}, 503, 'P2C: no provisioner, the cold start times out: 503');
like($res->{body}, qr/no sandbox within 300 ms/, '... with a clear body');
is($r->llen("faas:prov:q:$q2"), 1, "P2C: pushed to the shorter queue (shard $q2)");
is($r->llen("faas:prov:q:$q1"), 3, '... not to the longer one');
my $pr = pb_decode(($r->lrange("faas:prov:q:$q2", 0, -1))[0]);
is($pr->{1}[0], $prid, 'ProvisionRequest: rid');
is($pr->{4}[0], $res->{headers}{'x-faas-request-id'}, 'ProvisionRequest: origin request id');
is_deeply([sort { $a <=> $b } keys %$pr], [1, 4, 13],
          'ProvisionRequest: only rid, origin and enqueued_ms (the rest is in faas:rev)');
ok(abs(($pr->{13}[0] // 0) / 1000 - time) < 60, 'ProvisionRequest: enqueued_ms');
is($r->get("faas:count:{$prid}"), 1, 'the count was incremented');
$r->rpush("faas:prov:q:$q2", 'filler') for 1 .. 4;
$res = http_request($port, 'GET', "/short/$fname");
is($r->llen("faas:prov:q:$q1"), 4, 'P2C: now the first queue is the shorter one');
$r->del(map { "faas:prov:q:$_" } 0 .. $SHARDS - 1);
$r->del("faas:count:{$prid}");

# --- the provisioner and the agent ----------------------------------------
my $prov = start_provisioner($redis, name => 'p1', shards => $SHARDS);
my $agent = start_agent_for($prov);
my $sock = $agent->{socket};
my $zip = make_zip('handler.py' => <<'PY');
import os, time
def handler(event, context):
    if event["rawPath"] == "/sleep":
        time.sleep(float((event.get("queryStringParameters") or {}).get("s", "1")))
    return {"statusCode": 200, "body": os.environ.get("GREETING", "") + " " + event["rawPath"]}
PY
my ($key, $sha) = put_code($prov, 'hello', 1, $zip);
fn_meta('hello', code_key => $key, code_sha256 => $sha);
my $idle = 'faas:idle:{hello@1}';

# COLD
$res = http_request($port, 'GET', '/fn/hello/a');
is($res->{status}, 200, 'cold call: 200') or diag explain $res;
is($res->{body}, 'hi /a', '... the function answered (env from the metadata)');
is($res->{headers}{'x-faas-start'}, 'cold', '... X-Faas-Start: cold');
my $cold_rid = $res->{headers}{'x-faas-request-id'};
ok(wait_until(sub { $r->llen($idle) == 1 }, 10), 'the new sandbox is returned to the idle list');
like(($r->lrange($idle, 0, -1))[0], qr/^s-[0-9a-f]{16}\|unix:\Q$sock\E\|-$/,
     '... as <id>|<endpoint>|-');
is($r->get('faas:count:{hello@1}'), 1, 'count: one sandbox');
ok(wait_until(sub { $r->llen('faas:records') >= 1 }, 5), 'a record');
my $rec = last_record($r);
is($rec->{1}[0], $cold_rid, 'record of the cold call');
is($rec->{5}[0], 1, 'record: start type COLD');
ok(($rec->{10}[0] // 0) > 0, 'record: cold_start_us');

# WARM
$res = http_request($port, 'GET', '/fn/hello/b');
is($res->{headers}{'x-faas-start'}, 'warm', 'second call: warm');
is($res->{body}, 'hi /b', '... answered');

# STOLEN: the provisioner is paused; a long call holds the only sandbox;
# two more calls ask for sandboxes and wait; the long call returns its
# sandbox, the waiting calls take it in turn before the provisioner
# finishes, and the late sandboxes stay listed as spares.
kill('STOP', $prov->{pid});
my $long = http_start($port, 'GET', '/fn/hello/sleep?s=1.5');
ok(wait_until(sub { $r->llen($idle) == 0 }, 5), 'the long call took the sandbox');
my @waiting = map { http_start($port, 'GET', "/fn/hello/w$_") } 1 .. 2;
# (the paused provisioner may already hold a queued request in its BLPOP,
# so the count shows that both calls asked for a sandbox)
ok(wait_until(sub { ($r->get('faas:count:{hello@1}') // 0) == 3 }, 10),
   'two sandboxes asked for while the provisioner is paused');
my $lres = http_collect($long);
is($lres->{status}, 200, 'the long call ends');
my @wres = map { http_collect($_) } @waiting;
is_deeply([map { $_->{status} } @wres], [200, 200], 'both waiting calls served');
is_deeply([map { $_->{headers}{'x-faas-start'} } @wres], ['stolen', 'stolen'],
          '... by the returned sandbox: X-Faas-Start: stolen');
is($r->llen($idle), 1, 'one sandbox listed while the provisioner is paused');
kill('CONT', $prov->{pid});
ok(wait_until(sub { $r->llen($idle) == 3 }, 30), 'the late sandboxes are listed as spares');
my %origins = map { (split /\|/)[2] => 1 } $r->lrange($idle, 0, -1);
ok($origins{ $wres[0]{headers}{'x-faas-request-id'} }
   && $origins{ $wres[1]{headers}{'x-faas-request-id'} },
   '... with the waiting calls as origins');
is($r->get('faas:count:{hello@1}'), 3, 'count: three sandboxes');
my @recs = exec_records($r);
my @stolen = grep { ($_->{5}[0] // 0) == 3 } @recs;
is(scalar @stolen, 2, 'two STOLEN records');

# max concurrency: at most 2 sandboxes for 5 concurrent calls
($key, $sha) = put_code($prov, 'limited', 1, $zip);
fn_meta('limited', code_key => $key, code_sha256 => $sha, max_concurrency => 2);
my @lim = map { http_start($port, 'GET', '/fn/limited/sleep?s=0.3') } 1 .. 5;
my @lres = map { http_collect($_) } @lim;
is_deeply([map { $_->{status} } @lres], [(200) x 5], 'max concurrency 2: all 5 calls served');
ok($r->get('faas:count:{limited@1}') <= 2, 'count never above 2');
ok(wait_until(sub { $r->llen('faas:idle:{limited@1}') == $r->get('faas:count:{limited@1}') }, 10),
   'every sandbox back on the idle list');
my %sbx = map { $_->{15}[0] => 1 } grep { ($_->{2}[0] // '') eq 'limited' }
          exec_records($r);
ok(keys %sbx >= 1 && keys %sbx <= 2, 'served by at most 2 sandboxes (' . scalar(keys %sbx) . ')');
ok(scalar(prov_sandboxes($prov)) <= 3 + 2, 'no more sandboxes than allowed exist');

# A cold start whose new sandbox another consumer takes (a call of another
# gateway, here a BLPOP of the test that came first), and which then dies:
# the revision has no sandbox left, so the waiting call asks again after an
# empty slice of its wait instead of waiting out faas_cold_start_timeout.
($key, $sha) = put_code($prov, 'orphan', 1, $zip);
fn_meta('orphan', code_key => $key, code_sha256 => $sha);
my $thief = fork() // die;
if ($thief == 0) {
    my $rr = redis_client($redis);
    my $got = $rr->blpop('faas:idle:{orphan@1}', 30);
    write_file("$w/thief", $got ? $got->[1] : '');
    POSIX::_exit(0);
}
ok(wait_until(sub { grep { /cmd=blpop/ } $r->client_list }, 10), 'another consumer waits first');
my $orphan = http_start($port, 'GET', '/fn/orphan/a');
ok(wait_until(sub { -s "$w/thief" }, 20), '... and takes the new sandbox');
waitpid($thief, 0);
my ($stolen_id) = (read_file("$w/thief") // '') =~ /^(s-[0-9a-f]+)\|/;
ok($stolen_id, '... an idle entry') or diag read_file("$w/thief");
# (killed while frozen, it dies when thawed, as an OOM kill would end it)
kill('KILL', sandbox_procs($stolen_id));
write_file('/sys/fs/cgroup/freezer/' . cgroup_root() . "/$stolen_id/freezer.state", 'THAWED');
$res = http_collect($orphan);
is($res->{status}, 200, 'the sandbox dies: the waiting call asks again and is served')
    or diag explain $res;
is($res->{headers}{'x-faas-start'}, 'cold', '... cold, by a sandbox made for it');
ok(wait_until(sub { ($r->get('faas:count:{orphan@1}') // 0) == 1 }, 10),
   '... count 1: the dead sandbox was taken off, the new one counted');

# a failed cold start: the reason (which may carry the function's startup
# output) reaches its owner and the log; anyone else gets a generic 502
fn_meta('broken', code_key => 'code/broken/1/missing.zip', code_sha256 => 'ab' x 32);
my $off = error_log_size();
$res = http_request($port, 'GET', '/fn/broken');
is($res->{status}, 502, 'failed cold start: 502');
like($res->{body}, qr/^\{"error":"cold start failed","request_id":"[0-9a-f]{32}"\}$/,
     '... an anonymous caller gets no reason, but the request id');
my ($rid) = $res->{body} =~ /"request_id":"([0-9a-f]{32})"/;
like(error_log_since($off), qr/$rid: cold start of broken\@1 failed: \S/,
     '... the reason is logged with the request id');
ok(wait_until(sub { ($r->get('faas:count:{broken@1}') // 0) == 0 }, 5),
   '... and the count taken back by the provisioner');
$res = http_request($port, 'GET', '/fn/broken', headers => {
    Authorization => 'Bearer ' . jwt_hs({ sub => 'alice', exp => time + 600 }) });
is($res->{status}, 502, 'failed cold start, the owner calling: 502');
like($res->{body}, qr/"error":"cold start failed: [^"]+"/, '... with the reason');
$res = http_request($port, 'GET', '/fn/broken', headers => {
    Authorization => 'Bearer ' . jwt_hs({ sub => 'bob', exp => time + 600 }) });
like($res->{body}, qr/"error":"cold start failed"/, 'another user: no reason');
ok(wait_until(sub { ($r->get('faas:count:{broken@1}') // 0) == 0 }, 5),
   '... the counts taken back');

stop_nginx();
stop_proc($agent);
prov_cleanup($prov);
faas_finish();
