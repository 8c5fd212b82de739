# Driven by bench/gateway/run.sh. Uses the test harness to start Redis,
# faas-agent, sandboxes (objs/faas-sandbox), nginx with the module, and
# uWSGI; runs wrk against the three paths; prints figures, asserts nothing.
#
# Paths, all through the same nginx (HTTP/1.1 keep-alive, access_log off):
#   /fn/bench   the gateway: LPOP an idle sandbox, agent call (thaw, the
#               Python handler, freeze), RPUSH the sandbox and the record
#   /wsgi       the same handler behind uwsgi_pass (uWSGI, python3 plugin,
#               as many processes as there are sandboxes)
#   /static     return 200 (nginx alone)
use strict;
use warnings;
use lib 't/lib';
use Faas::Test;
use Faas::Agent;
use Faas::Nginx;

# A/B runs: MODULE=/path/to/ngx_http_faas_module.so, AGENT=/path/to/faas-agent,
# RUNTIMES=/path/to/runtimes (default: this tree's objs/ and runtimes)
if (my $m = $ENV{MODULE}) {
    no warnings 'redefine';
    *Faas::Nginx::module_path = sub { $m };
}
my $DURATION = $ENV{DURATION} // 10;
my $SANDBOXES = $ENV{SANDBOXES} // 8;
my $WORKERS = $ENV{NGINX_WORKERS} // 2;
my $THREADS = $ENV{WRK_THREADS} // 2;
my @CONNS = split /,/, ($ENV{CONNECTIONS} // '64,256');

my $w = work_dir();
# Redis on TCP (as the tests run it) and on a Unix socket; the gateway uses
# REDIS=unix (default: no TCP/IP stack per command) or REDIS=tcp.
my $REDIS_MODE = $ENV{REDIS} // 'unix';
my $rport = free_port();
my $rsock = "$w/redis.sock";
my $redis = spawn("redis-$rport", ['redis-server', '--port', $rport, '--bind', '127.0.0.1',
                                   '--unixsocket', $rsock, '--unixsocketperm', '700',
                                   '--save', '', '--appendonly', 'no', '--dir', $w,
                                   '--daemonize', 'no', '--loglevel', 'warning']);
wait_port($rport) or die "redis did not start, see $redis->{log}";
$redis->{addr} = "127.0.0.1:$rport";
my $redis_gw = $REDIS_MODE eq 'tcp' ? $redis->{addr} : "unix:$rsock";
my $r = redis_client($redis);
# the optimised agent (the harness defaults to the AddressSanitizer build)
# FREEZER=v1 (default) or v2: which freezer the agent and sandboxes use
my $FREEZER = $ENV{FREEZER} // 'v1';
my $RUNTIMES = $ENV{RUNTIMES} // faas_root() . '/runtimes';
my $agent = start_agent(log_level => 'warn', exe => $ENV{AGENT} // objs_dir() . '/faas-agent',
                        cfg => { spin_us => ($ENV{SPIN_US} // 0) + 0,
                                 freezer => $FREEZER, runtimes_dir => $RUNTIMES });
{
    my $f = "$w/sandbox.json";
    # CPU_MB_PER_VCPU: the sandboxes' CPU quota ratio (sandbox/README.md);
    # 1 makes the quota of a 128 MB sandbox larger than the host
    write_json($f, { run_dir => $agent->{run_dir}, cgroup_root => cgroup_root(),
                     runtimes_dir => $RUNTIMES,
                     freezer => $FREEZER,
                     $ENV{CPU_MB_PER_VCPU} ? (cpu_mb_per_vcpu => $ENV{CPU_MB_PER_VCPU} + 0) : () });
    system(objs_dir() . '/faas-sandbox', '-c', $f, 'init') == 0
        or die "faas-sandbox init failed";
    my $pin = '/sys/fs/cgroup/freezer/' . cgroup_root() . '/.pin/freezer.state';
    my $st = read_file($pin) // 'missing';
    chomp $st;
    print "v1 freezer pin cgroup: $st\n";
}
my $src = <<'PY';
def handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "ok"}
PY
my $code = write_handler('bench', 'handler.py' => $src);
my @ids = map { sandbox_create($agent, function => 'bench', code => $code) } 1 .. $SANDBOXES;
$r->hset('faas:fn:bench', rid => 'bench@1', name => 'bench', version => 1,
         owner => 'bench', runtime => 'python3', handler => 'handler.handler',
         code_key => 'code/bench/1/x.zip', code_sha256 => 'x', memory_mb => 128,
         timeout_ms => 10000, max_concurrency => $SANDBOXES, keep_alive_s => 600,
         public => 1, env => '{}', keys => '');
$r->rpush('faas:idle:{bench@1}', "$_|unix:$agent->{socket}|-") for @ids;

# uWSGI with the same handler
write_file("$w/wsgi/app.py", $src . <<'PY');

def application(environ, start_response):
    body = environ["wsgi.input"].read()
    res = handler({"body": body.decode("utf-8", "replace"),
                   "rawPath": environ.get("PATH_INFO", "/")}, None)
    start_response("%d OK" % res["statusCode"], list(res["headers"].items()))
    return [res["body"].encode()]
PY
my $usock = "$w/uwsgi.sock";
my $uwsgi = spawn('uwsgi', ['uwsgi', '--plugin', 'python3', '--master',
                            '--processes', $SANDBOXES, '--socket', $usock,
                            '--chmod-socket=666', '--wsgi-file', "$w/wsgi/app.py",
                            '--disable-logging', '--die-on-term', '--need-app']);
wait_path($usock, 30) or die "uwsgi did not start, see $uwsgi->{log}";

# The gateway with its metrics on (faas_metrics_zone) or off (none): the
# metrics cost is measured by running the faas path both ways in one run.
my $port = free_port();
my $ng;
sub gateway {
    my ($metrics) = @_;
    my $zone = $metrics ? 'faas_metrics_zone bench 1m;' : '';
    $ng = start_nginx(
        port => $port,
        workers => $WORKERS,
        main_config => 'worker_rlimit_nofile 8192;',
        http_config => "faas_redis $redis_gw; access_log off; keepalive_requests 1000000; $zone",
        config => <<"C");
location /fn/ { faas_function on; faas_cold_start_timeout 10s; }
location /wsgi { include /etc/nginx/uwsgi_params; uwsgi_pass unix:$usock; }
location /static { return 200 "ok"; }
@{[ $metrics ? 'location = /metrics { faas_metrics; }' : '' ]}
C
}
gateway(1);

# MODULE_B=/path/to/ngx_http_faas_module.so: a same-run A/B of the gateway
# alone: the point "faas-b" is served by nginx restarted with that module
# (the same Redis, agent and sandboxes), then nginx goes back to module A.
my $MODULE_A = Faas::Nginx::module_path();
sub nginx_with {
    my ($module) = @_;
    no warnings 'redefine';
    *Faas::Nginx::module_path = sub { $module };
    gateway(1);
    my $res = http_request($port, 'GET', '/fn/bench');
    die "faas with $module answers $res->{status}" unless $res->{status} == 200;
}

for my $p ('/fn/bench', '/wsgi', '/static') {
    my $res = http_request($port, 'GET', $p);
    die "$p answers $res->{status}: $res->{body}" unless $res->{status} == 200 && $res->{body} eq 'ok';
}

sub to_ms {
    my ($v, $u) = @_;
    return $v / 1000 if $u eq 'us';
    return $v if $u eq 'ms';
    return $v * 1000 if $u eq 's';
    return $v;
}

sub wrk {
    my ($path, $conns, $name) = @_;
    my $pids = component_pids();
    # PERF_DIR=dir: a perf profile of this bench's processes at each point
    # (perf report --sort comm,dso,sym splits nginx / faas-agent / python3 /
    # redis-server / uwsgi)
    my $perf;
    if (my $d = $ENV{PERF_DIR}) {
        my $secs = $DURATION > 2 ? $DURATION - 1 : 1;
        my $list = join ',', map { @$_ } values %$pids;
        $perf = fork();
        if (defined $perf && $perf == 0) {
            open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
            exec 'perf', 'record', '-g', '-F', '1999', '-p', $list, '-o',
                 "$d/$name-$conns.data", '--', 'sleep', $secs;
            exit 127;
        }
    }
    my $before = cpu_snapshot($pids);
    my $out = `wrk -t$THREADS -c$conns -d${DURATION}s --latency http://127.0.0.1:$port$path 2>&1`;
    my ($rps) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    my ($p50, $u50) = $out =~ /^\s+50%\s+([\d.]+)(us|ms|s)/m;
    my ($p99, $u99) = $out =~ /^\s+99%\s+([\d.]+)(us|ms|s)/m;
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
    my ($errs) = $out =~ /Socket errors:(.*)/;
    waitpid($perf, 0) if $perf;
    my $after = cpu_snapshot($pids);
    my ($reqs) = $out =~ /(\d+) requests in/;
    my %cpu = map { $_ => $reqs ? ($after->{$_} - $before->{$_}) / $reqs / 1000 : 0 } keys %$after;
    return { rps => $rps // 0, p50 => to_ms($p50 // 0, $u50 // 'ms'),
             p99 => to_ms($p99 // 0, $u99 // 'ms'), non2xx => $non2xx // 0,
             errors => $errs // '', raw => $out, cpu => \%cpu };
}

# CPU time (ns, every thread) of the processes of each component, from
# /proc/<pid>/task/*/schedstat: divided by the requests served, the CPU cost
# per request of each process, which is what the throughput is made of
# (and much less disturbed by other load on the machine than req/s).
sub pgid_pids {
    my ($root) = @_;
    # the process, its process group, and all their descendants
    my (%ppid, %pgid);
    for my $d (glob '/proc/[0-9]*') {
        my $st = read_file("$d/stat") // next;
        my ($pp, $pg) = $st =~ /\)\s+\S+\s+(\d+)\s+(\d+)/ or next;
        my ($pid) = $d =~ m{(\d+)$};
        ($ppid{$pid}, $pgid{$pid}) = ($pp, $pg);
    }
    my %in = ($root => 1);
    $in{$_} = 1 for grep { $pgid{$_} == $root } keys %pgid;
    for (1 .. 5) {
        $in{$_} = 1 for grep { $in{$ppid{$_}} } keys %ppid;
    }
    return grep { exists $ppid{$_} } keys %in;
}

sub component_pids {
    my %c = (nginx => [pgid_pids($ng->{h}{pid})], redis => [pgid_pids($redis->{pid})],
             agent => [pgid_pids($agent->{pid})], uwsgi => [pgid_pids($uwsgi->{pid})]);
    my @py;
    for my $f (glob '/sys/fs/cgroup/pids/' . cgroup_root() . '/*/cgroup.procs') {
        push @py, grep { /^\d+$/ } split /\s+/, (read_file($f) // '');
    }
    $c{sandboxes} = \@py;
    return \%c;
}

sub cpu_ns {
    my ($pids) = @_;
    my $ns = 0;
    for my $pid (@$pids) {
        for my $t (glob "/proc/$pid/task/*/schedstat") {
            my $l = read_file($t) // next;
            $ns += (split ' ', $l)[0];
        }
    }
    return $ns;
}

sub cpu_snapshot {
    my ($pids) = @_;
    my %s = map { $_ => cpu_ns($pids->{$_}) } keys %$pids;
    my @t = times;
    $s{wrk} = ($t[2] + $t[3]) * 1e9;
    return \%s;
}

sub loadavg {
    my $l = read_file('/proc/loadavg') // '';
    return (split ' ', $l)[0] // '?';
}

my %want = map { $_ => 1 } split /,/, ($ENV{PATHS} // 'faas,faas-aof,uwsgi,return200');
$want{'faas-b'} = 1 if $ENV{MODULE_B};

# faas-aof: the same calls with Redis persisting as conf/redis.conf ships it
# (appendonly yes, appendfsync everysec), switched on for that point only.
sub aof {
    my ($on) = @_;
    $r->config_set('appendonly', $on ? 'yes' : 'no');
    $r->config_set('appendfsync', 'everysec');
    wait_until(sub { !$r->info('persistence')->{aof_rewrite_in_progress} }, 60, 0.1);
}
printf "bench/gateway: %d s per point, %d sandboxes / uWSGI processes, %d nginx workers, wrk -t%d, Redis over %s, freezer %s, %d vCPUs, load %s\n",
    $DURATION, $SANDBOXES, $WORKERS, $THREADS, $REDIS_MODE, $FREEZER, scalar(() = (read_file('/proc/cpuinfo') // '') =~ /^processor/mg), loadavg();
printf "%-10s %6s %12s %10s %10s %8s %6s\n", 'path', 'conns', 'requests/s', 'p50 ms', 'p99 ms', 'non-2xx', 'load';
my %res;
for my $c (@CONNS) {
    for my $p (['faas', '/fn/bench'], ['faas-b', '/fn/bench'], ['faas-aof', '/fn/bench'],
               ['uwsgi', '/wsgi'], ['return200', '/static']) {
        next unless $want{$p->[0]};
        aof(1) if $p->[0] eq 'faas-aof';
        nginx_with($ENV{MODULE_B}) if $p->[0] eq 'faas-b';
        my $x = wrk($p->[1], $c, $p->[0]);
        nginx_with($MODULE_A) if $p->[0] eq 'faas-b';
        aof(0) if $p->[0] eq 'faas-aof';
        $res{$c}{$p->[0]} = $x;
        printf "%-10s %6d %12.0f %10.2f %10.2f %8d %6s%s\n", $p->[0], $c, $x->{rps},
            $x->{p50}, $x->{p99}, $x->{non2xx}, loadavg(),
            $x->{errors} ? "  socket errors:$x->{errors}" : '';
    }
}
my @comp = ('nginx', 'redis', 'agent', 'sandboxes', 'uwsgi', 'wrk');
print "\nCPU per request (us, all threads of each component's processes)\n";
printf "%-10s %6s" . (" %9s" x (@comp + 1)) . "\n", 'path', 'conns', @comp, 'total';
for my $c (@CONNS) {
    for my $p ('faas', 'faas-b', 'faas-aof', 'uwsgi', 'return200') {
        my $x = $res{$c}{$p} or next;
        my $tot = 0;
        $tot += $x->{cpu}{$_} // 0 for @comp;
        printf "%-10s %6d" . (" %9.1f" x (@comp + 1)) . "\n", $p, $c,
            (map { $x->{cpu}{$_} // 0 } @comp), $tot;
    }
}
print "\nratios\n";
for my $c (@CONNS) {
    my $f = $res{$c}{faas} // { rps => 0, p99 => 0 };
    my $u = $res{$c}{uwsgi} // { rps => 0, p99 => 0 };
    my $s = $res{$c}{return200} // { rps => 0, p99 => 0 };
    my $a = $res{$c}{'faas-aof'};
    printf "  %3d conns: Redis AOF (everysec) costs %.1f %% of faas throughput, p99 %.2f ms vs %.2f ms\n",
        $c, $f->{rps} ? 100 * (1 - $a->{rps} / $f->{rps}) : 0, $a->{p99}, $f->{p99} if $a;
    my $b = $res{$c}{'faas-b'};
    printf "  %3d conns: A/B: faas %.0f req/s, nginx %.1f us/call; faas-b (%s) %.0f req/s, nginx %.1f us/call\n",
        $c, $f->{rps}, $f->{cpu}{nginx} // 0, $ENV{MODULE_B}, $b->{rps}, $b->{cpu}{nginx} // 0 if $b;
    printf "  %3d conns: faas/uwsgi throughput %.2fx, faas/return200 %.2fx, p99 faas %.2f ms vs uwsgi %.2f ms\n",
        $c, $u->{rps} ? $f->{rps} / $u->{rps} : 0, $s->{rps} ? $f->{rps} / $s->{rps} : 0,
        $f->{p99}, $u->{p99};
}
my $f = $res{256}{faas};
if ($f && $res{256}{uwsgi}) {
    my $u = $res{256}{uwsgi};
    printf "\ntargets at 256 connections: throughput >= 1.5x uWSGI: %s (%.2fx); p99 <= 10 ms: %s (%.2f ms)\n",
        ($u->{rps} && $f->{rps} / $u->{rps} >= 1.5) ? 'met' : 'NOT met',
        $u->{rps} ? $f->{rps} / $u->{rps} : 0,
        $f->{p99} <= 10 ? 'met' : 'NOT met', $f->{p99};
}
# the metrics' cost: the faas path at the largest connection count with the
# metrics on, off, and on again (the mean of both "on" runs against "off")
if ($want{faas} && ($ENV{METRICS_COST} // 1)) {
    my $c = $CONNS[-1];
    my $on1 = wrk('/fn/bench', $c, 'faas-metrics-on');
    gateway(0);
    my $off = wrk('/fn/bench', $c, 'faas-metrics-off');
    gateway(1);
    my $on2 = wrk('/fn/bench', $c, 'faas-metrics-on2');
    my $on = ($on1->{rps} + $on2->{rps}) / 2;
    printf "\nmetrics cost at %d conns: on %.0f req/s (%.0f, %.0f), off %.0f req/s: %.1f%% of warm throughput\n",
        $c, $on, $on1->{rps}, $on2->{rps}, $off->{rps},
        $off->{rps} ? 100 * ($off->{rps} - $on) / $off->{rps} : 0;
}
my $rec = $r->llen('faas:records');
print "records written: $rec\n";

stop_nginx();
stop_proc($uwsgi);
system(objs_dir() . '/faas-sandbox', '-c', sandbox_config($agent), 'cleanup');
stop_proc($agent);
faas_finish();
