# Gateway metrics (docs/DESIGN.md section 8): faas_metrics_zone, the
# Prometheus text at a faas_metrics location, the JSON view and the page of
# faas_status_page. Two workers add to one zone, a reload keeps the
# figures, functions beyond faas_metrics_max_functions go to "_other", an
# unknown function takes no series.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Setup;

need_programs('faas-agent');

# --- configuration errors ---------------------------------------------------
my ($ok, $out) = nginx_t(http_config => 'faas_redis 127.0.0.1:1;',
                         config => 'location /metrics { faas_metrics; }');
ok(!$ok, 'faas_metrics without a zone: refused');
like($out, qr/need "faas_metrics_zone"/, '... with a clear message');
($ok, $out) = nginx_t(http_config => 'faas_metrics_zone m 1k;');
ok(!$ok, 'a zone too small: refused');
like($out, qr/invalid zone size "1k"/, '... with a clear message');
($ok, $out) = nginx_t(http_config => 'faas_metrics_zone m 1m; faas_metrics_max_functions 0;');
ok(!$ok, 'faas_metrics_max_functions 0: refused');
($ok, $out) = nginx_t(http_config => 'faas_metrics_zone m 64k; faas_metrics_max_functions 100000;',
                      config => 'location /metrics { faas_metrics; }');
ok(!$ok, 'a zone too small for the functions: refused');
like($out, qr/too small for 100000 functions/, '... with a clear message');

# --- the platform -------------------------------------------------------------
my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent(store => "file://" . work_dir() . "/store");

my $code = write_handler('hello', 'handler.py' => <<'PY');
def handler(event, context):
    if event.get("rawPath") == "/fail":
        raise ValueError("boom")
    return {"statusCode": 200, "body": "ok"}
PY
my @sids = warm_sandboxes($agent, $r, 'hello', $code, 2);
my ($t1) = warm_sandboxes($agent, $r, 'two', $code, 1);
my ($t3) = warm_sandboxes($agent, $r, 'three', $code, 1);
fn_mirror($r, $_) for qw(hello two three nosbx);
my $idle = idle_key('hello');

my $ng = start_nginx(workers => 2,
    http_config => "faas_redis $redis->{addr}; faas_metrics_zone faas 1m;"
                   . " faas_metrics_max_functions 3;",
    config => <<'C');
location /fn/ { faas_function on; faas_cold_start_timeout 300ms; }
location = /metrics { faas_metrics; }
location = /status { faas_status_page; }
C
my $port = $ng->{port};

sub scrape {
    my $res = http_request($port, 'GET', '/metrics');
    my %m;
    for (split /\n/, $res->{body} // '') {
        next if /^#/;
        $m{$1} = $2 if /^(\S+) (\S+)$/;
    }
    return ($res, \%m);
}

my ($res, $m) = scrape();
is($res->{status}, 200, 'metrics: 200 before any call');
like($res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, '... Prometheus text');
like($res->{body}, qr/^# TYPE faas_invocations_total counter$/m, '... TYPE lines');
is($m->{faas_redis_errors_total}, 0, '... no Redis error');

# 5 answers, 2 function errors, each on one of two workers (new connections)
my @st;
push @st, http_request($port, 'GET', '/fn/hello/x')->{status} for 1 .. 5;
push @st, http_request($port, 'GET', '/fn/hello/fail')->{status} for 1 .. 2;
is_deeply(\@st, [(200) x 5, (502) x 2], 'the calls made');
is(http_request($port, 'GET', '/fn/unknown')->{status}, 404, 'an unknown function: 404');
is(http_request($port, 'GET', '/fn/nosbx')->{status}, 503, 'no sandbox in time: 503');
is(http_request($port, 'GET', '/fn/two')->{status}, 200, 'a second function');
is(http_request($port, 'GET', '/fn/three')->{status}, 200, 'a third function');
# an unreachable agent: an agent error, then the call is served by another sandbox
$r->lpush($idle, 's-00000000deadbee0|unix:/nonexistent/agent.sock|-');
is(http_request($port, 'GET', '/fn/hello/x')->{status}, 200,
   'an unreachable agent, then another sandbox');
$r->lrem($idle, 0, 's-00000000deadbee0|unix:/nonexistent/agent.sock|-');

ok(wait_until(sub { (scrape())[1]{'faas_in_flight{function="hello"}'} eq '0' }, 5),
   'in flight: 0 once the calls ended');
($res, $m) = scrape();
my $h = 'function="hello"';
is($m->{qq{faas_invocations_total{$h,start="warm",status="2xx"}}}, 6, 'hello: 6 warm 2xx');
is($m->{qq{faas_invocations_total{$h,start="warm",status="5xx"}}}, 2, 'hello: 2 warm 5xx');
is($m->{qq{faas_call_duration_seconds_count{$h}}}, 8, 'call duration: 8 calls');
is($m->{qq{faas_call_duration_seconds_bucket{$h,le="+Inf"}}}, 8, '... +Inf bucket = count');
is($m->{qq{faas_sandbox_duration_seconds_count{$h}}}, 8, 'sandbox duration: 8 calls');
ok($m->{qq{faas_call_duration_seconds_sum{$h}}} > 0, '... a sum');
my @b = map { $m->{qq{faas_call_duration_seconds_bucket{$h,le="$_"}}} }
        qw(0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf);
ok(!grep({ $b[$_] < $b[$_ - 1] } 1 .. $#b), '... buckets cumulative');
is($m->{qq{faas_cold_start_seconds_count{$h}}}, 0, 'no cold start');
is($m->{'faas_shed_total{function="nosbx"}'}, 1, 'nosbx: 1 shed (503)');
is($m->{'faas_invocations_total{function="nosbx",start="none",status="5xx"}'}, 1,
   'nosbx: 1 5xx without a sandbox');
is($m->{'faas_sandbox_wait_seconds_count{function="nosbx"}'}, 1,
   '... its wait for a sandbox');
ok($m->{'faas_sandbox_wait_seconds_sum{function="nosbx"}'} >= 0.3, '... 300 ms or more');
is($m->{'faas_invocations_total{function="two",start="warm",status="2xx"}'}, 1, 'two: 1');
is($m->{'faas_invocations_total{function="_other",start="warm",status="2xx"}'}, 1,
   'beyond faas_metrics_max_functions: "_other"');
ok(!grep(/unknown|three/, keys %$m), 'no series for an unknown function or past the cap');
is($m->{faas_agent_errors_total}, 1, 'one agent error');

# the JSON view and the page
$res = http_request($port, 'GET', '/status?format=json');
is($res->{status}, 200, 'status JSON: 200');
like($res->{headers}{'content-type'}, qr{^application/json}, '... application/json');
my $j = eval { json_decode($res->{body}) } // {};
my ($jh) = grep { $_->{name} eq 'hello' } @{ $j->{functions} // [] };
is($jh->{calls}, 8, 'JSON: hello calls');
is($jh->{errors}, 2, 'JSON: hello errors');
is($jh->{cold}, 0, 'JSON: hello cold');
is(scalar @{ $jh->{buckets} // [] }, 14, 'JSON: 14 buckets');
is(scalar @{ $j->{le_ms} // [] }, 13, 'JSON: 13 bounds');
$res = http_request($port, 'GET', '/status');
like($res->{headers}{'content-type'}, qr{^text/html}, 'status page: HTML');
like($res->{body}, qr/<script>.*format=json/s, '... polls the JSON view');
is(http_request($port, 'POST', '/metrics', body => 'x')->{status}, 405, 'metrics: POST refused');

# a reload keeps the figures
reload_nginx();
sleep 2;
is(http_request($port, 'GET', '/fn/hello/x')->{status}, 200, 'a call after the reload');
ok(wait_until(sub {
    (scrape())[1]{qq{faas_invocations_total{$h,start="warm",status="2xx"}}} == 7 }, 10),
   'reload: the figures are kept (6 + 1)');

# Redis lost: counted (each worker's command connection), the figures still shown
stop_proc($redis);
ok(wait_until(sub { ((scrape())[1]{faas_redis_errors_total} // 0) >= 1 }, 10),
   'Redis lost: faas_redis_errors_total counts it');
is((scrape())[1]{qq{faas_invocations_total{$h,start="warm",status="2xx"}}}, 7,
   '... the figures are still there');

sandbox_destroy($agent, $_) for @sids, $t1, $t3;
faas_finish();
