# Scale-out by evidence (docs/DESIGN.md section 10): a fast function under
# 16 concurrent closed-loop clients gets fewer than 16 sandboxes (a call
# that misses waits briefly for a returned sandbox instead of asking for a
# new one), and every call is answered 200. With faas_scale_patience 0 the
# gateway asks for a sandbox on every miss, as before.
use lib 't/lib';
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner', 'faas-agent');

my $CLIENTS = 16;
my $SECONDS = 3;
my $redis = start_redis();
my $r = redis_client($redis);
my $prov = start_provisioner($redis, name => 'p1', shards => 4);
my $agent = start_agent_for($prov);

my $zip = make_zip('handler.py' => <<'PY');
def handler(event, context):
    return {"statusCode": 200, "body": "ok"}
PY
for my $name (qw(fast eager)) {
    my ($key, $sha) = put_code($prov, $name, 1, $zip);
    fn_mirror($r, $name, code_key => $key, code_sha256 => $sha, memory_mb => 64,
              timeout_ms => 3000, max_concurrency => 64, keep_alive_s => 600);
}

my $ng = start_nginx(
    http_config => "faas_redis $redis->{addr}; faas_shards 4;",
    config => <<'C');
location /fn/ { faas_function on; faas_cold_start_timeout 20s; }
location /eager/ { faas_function on; faas_cold_start_timeout 20s; faas_scale_patience 0; }
C
my $port = $ng->{port};

# $CLIENTS closed-loop clients for $SECONDS s: { status => count }
sub closed_loop {
    my ($uri) = @_;
    my @pids;
    my $dir = work_dir();
    for my $c (1 .. $CLIENTS) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            my %st;
            my $end = time() + $SECONDS;
            while (time() < $end) {
                $st{ http_request($port, 'GET', $uri)->{status} // 'none' }++;
            }
            open(my $fh, '>', "$dir/loop$c") or die;
            print $fh join("\n", map { "$_ $st{$_}" } keys %st), "\n";
            close $fh;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    my %all;
    for my $c (1 .. $CLIENTS) {
        for (split /\n/, read_file("$dir/loop$c") // '') {
            my ($s, $n) = split / /;
            $all{$s} += $n;
        }
        unlink "$dir/loop$c";
    }
    return \%all;
}

my $st = closed_loop('/fn/fast/x');
my $n = $r->get('faas:count:{fast@1}') // 0;
my $calls = 0;
$calls += $_ for values %$st;
ok($calls >= $CLIENTS, "$calls calls by $CLIENTS closed-loop clients in $SECONDS s");
is_deeply([keys %$st], ['200'], '... every one answered 200') or diag explain $st;
# (2-11 sandboxes measured on a shared 2-vCPU machine at load 18-28; the
# bound leaves room for such load, the comparison below is the point)
ok($n >= 1 && $n < $CLIENTS, "... on fewer sandboxes than clients ($n)");
diag("scale-out by evidence: $n sandboxes for $CLIENTS clients, $calls calls");

# the seed's policy, for comparison: a cold start on every miss
$st = closed_loop('/eager/eager/x');
my $eager = $r->get('faas:count:{eager@1}') // 0;
is_deeply([keys %$st], ['200'], 'faas_scale_patience 0: every call answered 200 too');
diag("faas_scale_patience 0: $eager sandboxes for $CLIENTS clients");
ok($eager > $n, "... on more sandboxes than with patience ($eager)");

stop_nginx();
prov_cleanup($prov);
stop_proc($agent);
faas_finish();
