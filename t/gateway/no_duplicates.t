# A sandbox is never handed to two calls at once (the agent would answer
# SANDBOX_BUSY "sandbox is busy with another call"): under overload, with the
# real provisioner and agent, a tiny max concurrency, many concurrent
# clients, some that go away and some calls that run past the function's
# timeout (their sandboxes destroyed and replaced), no call is answered
# "busy", and at the end every live sandbox is on the idle list exactly once.
# Then: an entry listed twice (as the provisioner's reconciliation can do
# while a call holds the sandbox) is not made permanent by the gateway: the
# call that pops the extra entry gets SANDBOX_BUSY from the agent,
# must not push it back, and takes another sandbox instead of failing.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner', 'faas-agent');

my $SHARDS = 4;
my $redis = start_redis();
my $r = redis_client($redis);

# A long grace: this test is about the gateway; reconciliation must not
# re-list sandboxes that calls hold (see the report on reconcile.c).
my $prov = start_provisioner($redis, name => 'p1', shards => $SHARDS,
                             grace_ms => 600000, log_level => 'info');
my $agent = start_agent_for($prov, log_level => 'info');
my $zip = make_zip('handler.py' => <<'PY');
import time
def handler(event, context):
    q = event.get("queryStringParameters") or {}
    time.sleep(float(q.get("s", "0")))
    return {"statusCode": 200, "body": event["rawPath"]}
PY

sub fn_meta {
    my ($name, %o) = @_;
    my ($key, $sha) = put_code($prov, $name, 1, $zip);
    fn_mirror($r, $name, code_key => $key, code_sha256 => $sha, memory_mb => 64,
              timeout_ms => 1000, max_concurrency => 3, keep_alive_s => 600, %o);
}

sub records_of {
    my ($name) = @_;
    return grep { ($_->{2}[0] // '') eq $name } exec_records($r);
}

sub busy_lines {
    return scalar grep { /busy with another call/ }
                  split /\n/, (read_file($agent->{log}) // '');
}

# every live sandbox of $rid listed once, nothing else listed
sub listed_once {
    my ($rid) = @_;
    my @l = map { (split /\|/)[0] } $r->lrange("faas:idle:{$rid}", 0, -1);
    my %n;
    $n{$_}++ for @l;
    my @live = prov_sandboxes($prov);
    return 0 if grep { $_ > 1 } values %n;
    return 0 unless @l == @live;
    return !grep { !$n{$_} } @live;
}

my $ng = start_nginx(workers => 2,
    http_config => "faas_redis $redis->{addr}; faas_shards $SHARDS;",
    config => 'location /fn/ { faas_function on; faas_cold_start_timeout 30s; }');
my $port = $ng->{port};

# --- 1. overload ----------------------------------------------------------
fn_meta('dup');
my $res = http_request($port, 'GET', '/fn/dup/warmup');
is($res->{status}, 200, 'the first call (cold) is served') or diag explain $res;

# 150 clients at once: most are short calls, 10 run past the 1 s timeout
# (TIMEOUT: the sandbox is destroyed, its entry dropped, a new one made),
# 30 go away while they wait or run
my @reqs;
for my $i (1 .. 150) {
    if ($i % 15 == 0) {
        push @reqs, ['GET', "/fn/dup/slow$i?s=3", timeout => 50];
    } elsif ($i % 5 == 0) {
        push @reqs, ['GET', "/fn/dup/gone$i?s=0.1", abort_after => 0.05 * ($i % 7)];
    } else {
        push @reqs, ['GET', "/fn/dup/fast$i?s=0.02", timeout => 50];
    }
}
my @res = http_parallel($port, @reqs);
my (%by, @busy, @bad);
for my $i (0 .. $#reqs) {
    my $x = $res[$i];
    next if $reqs[$i][1] =~ m{/gone};
    push @busy, $x if ($x->{body} // '') =~ /busy/;
    my $kind = $reqs[$i][1] =~ m{/slow} ? 'slow' : 'fast';
    $by{$kind}{$x->{status}}++;
    push @bad, $x if $kind eq 'fast' && $x->{status} != 200;
}
is(scalar @busy, 0, 'no call answered "sandbox is busy"') or diag explain $busy[0];
# (A call that asked for a cold start and whose new sandbox another call
# took, while every sandbox is then destroyed by a timeout, asks again after
# an empty slice of its wait instead of waiting out faas_cold_start_timeout.)
is(scalar @bad, 0, 'every short call served (200)')
    or diag explain { counts => \%by, first => $bad[0] };
is_deeply($by{slow}, { 504 => 10 }, 'calls past the timeout: 504');

ok(wait_until(sub { listed_once('dup@1') }, 30),
   'every live sandbox listed exactly once at the end')
    or diag explain { listed => [$r->lrange('faas:idle:{dup@1}', 0, -1)],
                      live => [prov_sandboxes($prov)] };
ok(wait_until(sub { ($r->get('faas:count:{dup@1}') // 0) == prov_sandboxes($prov) }, 30),
   'the count matches the live sandboxes');
ok(prov_sandboxes($prov) <= 3, 'no more sandboxes than max_concurrency');
my @over = grep { my $s = $_->{6}[0] // 0; $s == 5 || $s == 9 } records_of('dup');
is(scalar @over, 0, 'no OVERLOADED or SANDBOX_BUSY execution record');
is(busy_lines(), 0, 'the agent never saw a second call for a busy sandbox');

# and the function still works
$res = http_request($port, 'GET', '/fn/dup/after');
is($res->{status}, 200, 'a later call: 200');

# --- 2. an entry listed twice while a call holds the sandbox --------------
fn_meta('twice', max_concurrency => 1, timeout_ms => 5000);
my $idle = 'faas:idle:{twice@1}';
$res = http_request($port, 'GET', '/fn/twice/cold');
is($res->{status}, 200, 'cold call of "twice": 200');
ok(wait_until(sub { $r->llen($idle) == 1 }, 10), 'its sandbox listed');
my $entry = $r->lindex($idle, 0);
my $long = http_start($port, 'GET', '/fn/twice/long?s=2');
ok(wait_until(sub { $r->llen($idle) == 0 }, 10), 'a long call holds the sandbox');
$r->rpush($idle, $entry);     # the same sandbox listed while held
my $b0 = busy_lines();
my $extra = http_start($port, 'GET', '/fn/twice/extra');
ok(wait_until(sub { busy_lines() == $b0 + 1 }, 10),
   'the call that popped the extra entry got SANDBOX_BUSY from the agent');
# it dropped that entry (no push back) and waits for the sandbox, which the
# long call gives back; a call started now finds no extra entry either
my $next = http_start($port, 'GET', '/fn/twice/next');
is(http_collect($long)->{status}, 200, 'the long call: 200');
$res = http_collect($extra);
is($res->{status}, 200, '... the call that hit the busy sandbox is served anyway')
    or diag explain $res;
is($res->{body}, '/extra', '... with its own answer');
$res = http_collect($next);
is($res->{status}, 200, 'the next call is served') or diag explain $res;
is(busy_lines(), $b0 + 1, 'no second "busy" answer: the extra entry was not listed again');
ok(error_log_since(0) =~ /sandbox \S+ is busy with another call \(listed twice\), entry dropped/,
   'the gateway logged the dropped entry');
ok(wait_until(sub { $r->llen($idle) == 1 }, 10), 'the sandbox is listed');
is_deeply([$r->lrange($idle, 0, -1)], [$entry =~ s/\|[^|]*$/|-/r],
          '... exactly once');

stop_nginx();
stop_proc($agent);
prov_cleanup($prov);
faas_finish();
