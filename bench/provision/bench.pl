# Driven by bench/provision/run.sh. Uses the test harness to start Redis and
# faas-provisioner; prints figures, asserts nothing.
use strict;
use warnings;
use lib 't/lib';
use Faas::Test;
use Faas::Provisioner;
use Time::HiRes qw(time sleep);
use POSIX qw(floor);
use JSON::PP ();

my $N = $ENV{N} // 200;
my $CONC = $ENV{CONCURRENCY} // 8;
# ZYGOTE=off|shared|function (run.sh --zygote=MODE): the provisioner's
# "zygote" setting; default: the provisioner's own default, "function" (the
# second create of the function starts its zygote, later ones fork from it).
my ($arg) = map { /^--zygote=(\w+)$/ ? $1 : () } @ARGV;
my $ZYGOTE = $arg // $ENV{ZYGOTE} // 'function';
$ZYGOTE = 'shared' if $ZYGOTE eq '1';
my $redis = start_redis();
my $r = redis_client($redis);

sub pct {
    my ($p, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return $v[ floor(($#v) * $p / 100 + 0.5) ];
}

sub run_phase {
    my ($name, $conc) = @_;
    my $p = start_provisioner($redis, name => $name, create_concurrency => $conc,
                              memory_budget_mb => 1 << 20, grace_ms => 600000,
                              log_level => 'info', shards => 8,
                              reconcile_ms => 3000,
                              cfg => { zygote => $ZYGOTE });
    my ($key, $sha) = put_code($p, 'bench', 1, make_zip('handler.py' => "def handler(e, c):\n    return 'ok'\n"));
    my %req = (rid => 'bench@1', code_key => $key, code_sha256 => $sha, memory_mb => 64);
    # Warm-up: fetch the code into the cache (and, with a zygote, start it:
    # a function's zygote is started by its second create).
    for (1 .. 2) {
        push_request($r, $p, %req);
        $r->blpop('faas:idle:{bench@1}', 30) or die 'warm-up failed';
    }
    if ($ZYGOTE ne 'off') {  # wait until the zygote listens
        wait_until(sub { glob("$p->{cfg}{run_dir}/sbx/.zygote/*.sock") }, 30)
            or die 'the zygote does not answer';
    }
    return ($p, \%req);
}

print "bench/provision: $N requests, revision cached, python3 runtime, ",
    "zygote \"$ZYGOTE\"; ", `uptime`;

# Phase 1: one at a time, latency from RPUSH to the entry on the idle list.
my ($p, $req) = run_phase('lat', 4);
my @lat;
for (1 .. $N) {
    my $t0 = time;
    push_request($r, $p, %$req);
    my $got = $r->blpop('faas:idle:{bench@1}', 30) or die "request $_ timed out";
    push @lat, (time - $t0) * 1000;
}
printf "latency request->idle-listed: p50 %.1f ms  p99 %.1f ms  max %.1f ms  (target p50 <= 45 ms)\n",
    pct(50, @lat), pct(99, @lat), pct(100, @lat);
# Split: time inside faas_sandbox_create vs the provisioner's own share.
my (@create, @own);
for (split /\n/, read_file($p->{log}) // '') {
    next unless /idle in (\d+) ms \(create (\d+) ms\)/;
    push @create, $2;
    push @own, $1 - $2;
}
if ($ZYGOTE ne 'off') {
    my $n = () = glob("$p->{cfg}{run_dir}/sbx/s-*");
    my $z = grep { my $m = eval { json_decode(read_file($_)) }; $m && $m->{zygote} }
            glob("$p->{cfg}{run_dir}/sbx/s-*/meta.json");
    print "  sandboxes alive made by the zygote: $z of $n\n";
}
printf "  of which faas_sandbox_create: p50 %d ms  p99 %d ms; provisioner pop-to-list overhead: p50 %d ms  p99 %d ms\n",
    pct(50, @create), pct(99, @create), pct(50, @own), pct(99, @own) if @create;
prov_cleanup($p);

# Phase 2: N requests queued at once, create_concurrency $CONC.
($p, $req) = run_phase('rate', $CONC);
my $t0 = time;
push_request($r, $p, %$req) for 1 .. $N;
my ($got, $t_last) = (0, $t0);
while ($got < $N) {
    my $e = $r->blpop('faas:idle:{bench@1}', 20);
    last unless $e;
    $got++;
    $t_last = time;
}
my $dt = $t_last - $t0;
printf "throughput at concurrency %d: %d sandboxes in %.2f s = %.1f sandboxes/s  (target >= 60/s)\n",
    $CONC, $got, $dt, $got / ($dt || 1);
if ($got < $N) {
    printf "  %d of %d requests got no sandbox within 20 s of the last one (creates that never returned: see %s)\n",
        $N - $got, $N, $p->{log};
}
prov_cleanup($p);
faas_finish();
