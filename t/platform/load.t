# The platform as `./build.sh run` starts it, under load through HTTPS:
# fifty concurrent first requests to a new function (all served, cold and
# stolen starts, never more sandboxes than its max concurrency), then each
# daemon restarted in turn under light load (no failed request), and an
# agent killed with SIGKILL (only the calls in flight on it may fail).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Platform;

for my $b (qw(faas-registry faas-provisioner faas-agent faasctl ngx_http_faas_module.so)) {
    plan skip_all => "objs/$b is not built" unless -e objs_dir() . "/$b";
}
plan skip_all => 'needs root (sandboxes)' unless $> == 0;

my $p = start_platform(examples => 0);
is($p->{run}{rc}, 0, 'run: exit 0') or diag $p->{run}{err};
BAIL_OUT('the platform did not start') if $p->{run}{rc};
faasctl_env(FAAS_URL => $p->{url}, FAAS_CACERT => $p->{cacert},
            FAAS_JWT_SECRET_FILE => $p->{secret}, FAAS_SUBJECT => 'load',
            FAAS_TOKEN => undef, FAAS_KEY => undef, FAAS_UNIX_SOCKET => undef);
my $w = work_dir();
my $r = redis_client(platform_redis($p));

# --- fifty concurrent first requests ---
write_file("$w/burst/app.py", <<'PY');
import os, time, binascii
ID = binascii.hexlify(os.urandom(8)).decode()   # one per sandbox process
def handler(event, context):
    time.sleep(0.3)
    return {"statusCode": 200, "body": ID}
PY
my $MAX = 5;
my $x = faasctl('deploy', "$w/burst", '--name', 'burst', '--runtime', 'python3',
                '--handler', 'app.handler', '--public', '--max-concurrency', $MAX);
is($x->{rc}, 0, 'deploy burst') or diag $x->{err};

my $peak = 0;
my $watch = fork() // die;
if ($watch == 0) {
    # samples faas:count while the burst runs; the peak goes to a file
    my $rr = redis_client(platform_redis($p));
    my $m = 0;
    my $end = time + 120;
    while (time < $end && !-e "$w/burst.done") {
        my $c = $rr->get('faas:count:{burst@1}') // 0;
        $m = $c if $c > $m;
        sleep 0.01;
    }
    write_file("$w/burst.peak", $m);
    POSIX::_exit(0);
}
my @res = https_parallel($p, map { ['POST', "/fn/burst/$_", body => "{\"i\":$_}"] } 1 .. 50);
write_file("$w/burst.done", '');
waitpid($watch, 0);
$peak = read_file("$w/burst.peak");
my @bad = grep { $_->{status} != 200 } @res;
is(scalar @bad, 0, 'fifty concurrent first requests: all 200')
    or diag explain [ map { { status => $_->{status}, body => $_->{body}, error => $_->{error} } } @bad[0 .. ($#bad < 4 ? $#bad : 4)] ];
my %start;
$start{ $_->{headers}{'x-faas-start'} // 'none' }++ for @res;
diag('start types: ' . join(', ', map { "$_=$start{$_}" } sort keys %start));
ok($start{cold}, 'some cold starts');
ok($start{stolen}, 'some stolen starts');
is(scalar(grep { !/^(cold|warm|stolen)$/ } keys %start), 0, 'no other start type');
ok($start{cold} <= $MAX, "at most $MAX cold starts");
my %ids = map { $_->{body} => 1 } grep { $_->{status} == 200 } @res;
ok(keys(%ids) >= 1 && keys(%ids) <= $MAX,
   "served by at most $MAX sandboxes (" . scalar(keys %ids) . ')');
ok($peak >= 1 && $peak <= $MAX, "faas:count never above $MAX (peak $peak)");
ok(wait_until(sub { $r->llen('faas:idle:{burst@1}') == ($r->get('faas:count:{burst@1}') // -1) }, 15),
   'every sandbox back on the idle list');
# the function's sandboxes: a stem cell no function took yet is not one
my @dirs = grep {
    my $m = eval { json_decode(read_file("$_/meta.json") // '') };
    !($m && $m->{stem} && !defined $m->{rid});
} glob("$p->{var}/sbx/sbx/s-*");
ok(@dirs <= $MAX, "no more than $MAX sandbox directories (" . scalar(@dirs) . ')');

# --- restarts under light load ---
write_file("$w/steady/app.py", "def handler(event, context):\n    return {'ok': True}\n");
$x = faasctl('deploy', "$w/steady", '--name', 'steady', '--runtime', 'python3',
             '--handler', 'app.handler', '--public', '--max-concurrency', '4');
is($x->{rc}, 0, 'deploy steady');
is(https($p, 'GET', '/fn/steady')->{status}, 200, 'steady answers');

# Two clients, one request after the other, each line "<t0> <t1> <status>".
sub start_load {
    my ($tag) = @_;
    unlink "$w/load.stop";
    my @kids;
    for my $c (1 .. 2) {
        my $pid = fork() // die;
        if ($pid == 0) {
            open(my $fh, '>', "$w/load-$tag-$c.log") or POSIX::_exit(1);
            $fh->autoflush(1);
            while (!-e "$w/load.stop") {
                my $t0 = time;
                my $res = https($p, 'GET', '/fn/steady', timeout => 30);
                printf $fh "%.3f %.3f %d %s\n", $t0, time, $res->{status},
                    ($res->{status} == 200 ? '-' : ($res->{body} // $res->{error} // '') =~ s/\s+/ /gr);
                sleep 0.02;
            }
            close $fh;
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    return \@kids;
}
sub load_lines { map { split /\n/, (read_file("$w/load-$_[0]-$_.log") // '') } 1 .. 2 }
sub stop_load {
    my ($kids, $tag) = @_;
    write_file("$w/load.stop", '');
    waitpid($_, 0) for @$kids;
    return [ map { [split / /, $_, 4] } load_lines($tag) ];
}
sub wait_requests {
    my ($tag, $n) = @_;
    my $start = () = load_lines($tag);
    wait_until(sub { scalar(() = load_lines($tag)) >= $start + $n }, 30);
}

for my $c (qw(registry provisioner agent nginx)) {
    my $kids = start_load($c);
    wait_requests($c, 10);
    my $old = platform_pid($p, $c);
    if ($c eq 'nginx') {
        # nginx is restarted the way it is operated: a reload (SIGHUP)
        kill('HUP', $old);
        wait_requests($c, 10);
    } else {
        kill('TERM', $old);
        ok(wait_until(sub { !kill(0, $old) }, 30), "$c stopped on SIGTERM");
        my $run = platform_sh($p, 'run');
        is($run->{rc}, 0, "run restarts $c") or diag $run->{err};
        like($run->{err}, qr/starting $c/, "... and only $c")
            && unlike($run->{err}, qr/starting (?!$c)/, '... nothing else');
        isnt(platform_pid($p, $c), $old, "... a new $c process");
        wait_requests($c, 20);
    }
    my $lines = stop_load($kids, $c);
    my @fail = grep { $_->[2] != 200 } @$lines;
    ok(@$lines >= 20, "$c: " . scalar(@$lines) . ' requests under restart');
    is(scalar @fail, 0, "$c restarted: no failed request")
        or diag join("\n", map { "@$_" } @fail[0 .. ($#fail < 9 ? $#fail : 9)]);
}

# --- an agent killed: only its calls in flight may fail ---
{
    my $kids = start_load('kill');
    wait_requests('kill', 10);
    my $old = platform_pid($p, 'agent');
    my $t_kill = time;
    kill('KILL', $old);
    ok(wait_until(sub { !kill(0, $old) }, 10), 'agent killed');
    my $run = platform_sh($p, 'run');
    is($run->{rc}, 0, 'run restarts the agent') or diag $run->{err};
    my $t_up = time;
    wait_requests('kill', 20);
    my $lines = stop_load($kids, 'kill');
    my @fail = grep { $_->[2] != 200 } @$lines;
    my @in_flight = grep { $_->[0] <= $t_kill && $_->[1] >= $t_kill } @fail;
    diag(scalar(@fail) . " failed, " . scalar(@in_flight) . " in flight at the kill; agent down "
         . sprintf('%.2f', $t_up - $t_kill) . ' s');
    is(scalar(@fail) - scalar(@in_flight), 0,
       'no failed request except those in flight at the kill')
        or diag join("\n", map { "@$_" } @fail[0 .. ($#fail < 9 ? $#fail : 9)]);
    is(https($p, 'GET', '/fn/steady')->{status}, 200, 'steady answers after the kill');
}

my $st = stop_platform($p);
is($st->{rc}, 0, 'stop: exit 0') or diag $st->{err};
faas_finish();
