# The metrics scraped by a real Prometheus (Debian's prometheus): the
# platform with every daemon's metrics_listen set, a scrape config over the
# gateway's /metrics and the three daemons', N calls (a cold one, warm ones,
# function errors); Prometheus' HTTP API must show exactly those calls.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Platform;

for my $b (qw(faas-registry faas-provisioner faas-agent faasctl ngx_http_faas_module.so)) {
    plan skip_all => "objs/$b is not built" unless -e objs_dir() . "/$b";
}
plan skip_all => 'needs root (sandboxes)' unless $> == 0;
plan skip_all => 'needs prometheus (Debian package)' unless -x '/usr/bin/prometheus';

faasctl_env(map { ($_ => undef) } qw(FAAS_URL FAAS_TOKEN FAAS_CACERT
    FAAS_JWT_SECRET_FILE FAAS_SUBJECT FAAS_KEY FAAS_UNIX_SOCKET));

my $w = work_dir();
my %mport = map { ($_ => free_port()) } qw(agent prov registry);
my $p = start_platform(examples => 0, env => {
    FAAS_AGENT_METRICS => "127.0.0.1:$mport{agent}",
    FAAS_PROV_METRICS => "127.0.0.1:$mport{prov}",
    FAAS_REGISTRY_METRICS => "127.0.0.1:$mport{registry}" });
is($p->{run}{rc}, 0, 'platform up') or BAIL_OUT($p->{run}{err});
faasctl_env(FAAS_URL => $p->{url}, FAAS_CACERT => $p->{cacert},
            FAAS_JWT_SECRET_FILE => $p->{secret}, FAAS_SUBJECT => 'alice');

# --- Prometheus over the gateway and the daemons ----------------------------
my $pport = free_port();
write_file("$w/prometheus.yml", <<"Y");
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: gateway
    static_configs: [{ targets: ['127.0.0.1:$p->{http_port}'] }]
  - job_name: agent
    static_configs: [{ targets: ['127.0.0.1:$mport{agent}'] }]
  - job_name: provisioner
    static_configs: [{ targets: ['127.0.0.1:$mport{prov}'] }]
  - job_name: registry
    static_configs: [{ targets: ['127.0.0.1:$mport{registry}'] }]
Y
my $prom = spawn('prometheus', ['prometheus', "--config.file=$w/prometheus.yml",
                                "--storage.tsdb.path=$w/prometheus-data",
                                "--web.listen-address=127.0.0.1:$pport"]);
ok(wait_port($pport, 60), 'prometheus listens');

sub query {
    my ($q) = @_;
    my $out = `curl -sS --max-time 5 -G --data-urlencode 'query=$q' http://127.0.0.1:$pport/api/v1/query 2>&1`;
    my $j = eval { json_decode($out) } // {};
    my $r = $j->{data}{result} // [];
    return @$r ? $r->[0]{value}[1] : undef;
}
sub eventually {
    my ($q, $want, $name) = @_;
    my $got;
    wait_until(sub { $got = query($q); defined $got && $got == $want }, 30);
    is($got, $want, $name) or diag "query: $q";
}

eventually('sum(up)', 4, 'the four targets are up');

# --- the calls ---------------------------------------------------------------
mkdir "$w/fn";
write_file("$w/fn/app.py", <<'PY');
def handler(event, context):
    if event.get("rawPath") == "/fail":
        raise ValueError("boom")
    return {"statusCode": 200, "body": "ok"}
PY
my $x = faasctl('deploy', "$w/fn", '--name', 'prom', '--runtime', 'python3',
                '--handler', 'app.handler', '--public');
is($x->{rc}, 0, 'deploy') or diag $x->{err};

my ($ok, $fail) = (6, 3);
my $res = https($p, 'GET', '/fn/prom/a');
is($res->{headers}{'x-faas-start'}, 'cold', 'the first call is cold');
my @st = ($res->{status});
push @st, https($p, 'GET', '/fn/prom/a')->{status} for 2 .. $ok;
push @st, https($p, 'GET', '/fn/prom/fail')->{status} for 1 .. $fail;
is_deeply(\@st, [(200) x $ok, (502) x $fail], "$ok answers, $fail function errors");

# --- what Prometheus saw -----------------------------------------------------
my $f = 'function="prom"';
eventually(qq{sum(faas_invocations_total{$f})}, $ok + $fail, 'gateway: every call');
eventually(qq{sum(faas_invocations_total{$f,start="cold"})}, 1, 'gateway: one cold start');
eventually(qq{sum(faas_invocations_total{$f,status="5xx"})}, $fail, 'gateway: the errors');
eventually(qq{sum(faas_invocations_total{$f,status="2xx"})}, $ok, 'gateway: the answers');
eventually(qq{faas_cold_start_seconds_count{$f}}, 1, 'gateway: one cold-start time');
eventually(qq{faas_call_duration_seconds_count{$f}}, $ok + $fail, 'gateway: call times');
eventually(qq{faas_in_flight{$f}}, 0, 'gateway: nothing in flight');
eventually('faas_agent_invocations_total{result="ok"}', $ok, 'agent: the answers');
eventually('faas_agent_invocations_total{result="function_error"}', $fail,
           'agent: the function errors');
eventually('faas_agent_invoke_seconds_count', $ok + $fail, 'agent: invoke times');
eventually('faas_prov_creates_total', 1, 'provisioner: one create');
eventually('faas_prov_create_seconds_count', 1, 'provisioner: one create time');
eventually('faas_prov_create_failures_total', 0, 'provisioner: no failure');
eventually('faas_prov_sandboxes{state="idle"}', 1, 'provisioner: one idle sandbox');
eventually('faas_prov_code_cache_total{result="miss"}', 1, 'provisioner: one code fetch');
eventually('faas_registry_records_drained_total', $ok + $fail,
           'registry: every record drained');
eventually('faas_registry_records_waiting', 0, 'registry: no lag');

# every query of the Grafana dashboard is valid PromQL
my $dash = json_decode(read_file(faas_root() . '/conf/grafana/faas.json'));
my @exprs = map { map { $_->{expr} } @{ $_->{targets} } } @{ $dash->{panels} };
my @bad;
for my $e (@exprs) {
    (my $q = $e) =~ s/\$function/.*/g;
    my $j = eval { json_decode(`curl -sS --max-time 5 -G --data-urlencode 'query=$q' http://127.0.0.1:$pport/api/v1/query`) } // {};
    push @bad, "$e: " . ($j->{error} // 'no answer') unless ($j->{status} // '') eq 'success';
}
ok(@exprs >= 10 && !@bad, 'conf/grafana/faas.json: ' . scalar(@exprs) . ' queries Prometheus accepts')
    or diag join("\n", @bad);

# a daemon's port answers only /metrics, GET only
like(`curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$mport{agent}/x`, qr/^404$/,
     'a daemon: 404 beside /metrics');
like(`curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:$mport{agent}/metrics`,
     qr/^405$/, 'a daemon: POST refused');

stop_proc($prom, 'TERM', 20);
is(stop_platform($p)->{rc}, 0, 'platform stopped');
faas_finish();
