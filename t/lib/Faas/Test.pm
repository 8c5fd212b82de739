package Faas::Test;
# The test harness core: a private work directory, free loopback ports, real
# servers (Redis, s3rver, our daemons) started as process groups and always
# stopped, and a leak check at the end (no process, mount, cgroup or sandbox
# directory of this test file may survive it).
#
#   use lib 't/lib';
#   use Test::More;
#   use Faas::Test;
#   my $redis = start_redis();
#   ...
#   faas_finish();        # stops everything, checks for leaks, done_testing
#
# Every test file gets its own run id (also the name of its cgroup root,
# "faas-<run id>"), so test files never see each other's sandboxes.
use strict;
use warnings;
use Exporter 'import';

# libmongoc's shared-memory counters are off, as in the shipped units: a
# killed registry leaves /dev/shm/mongoc-<pid> behind, and a later one
# with that pid would warn on stderr.
$ENV{MONGOC_DISABLE_SHM} = 1;
use Cwd qw(abs_path);
use File::Basename qw(dirname basename);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use Test::More ();

our @EXPORT = qw(
    faas_root objs_dir work_dir run_id cgroup_root free_port
    spawn stop_proc kill_proc proc_alive wait_until wait_port wait_path
    start_redis redis_client start_s3rver start_daemon
    write_file read_file write_json json_encode json_decode
    faas_finish sandbox_leaks in_parallel
);

my $ROOT = abs_path(dirname(__FILE__) . '/../../..');
my $RUN_ID = sprintf('t%d', $$);
my $WORK;
my @PROCS;
my $FINISHED = 0;
my $OWNER_PID = $$;
my $JSON = JSON::PP->new->canonical->allow_nonref;

sub faas_root { $ROOT }
sub objs_dir  { "$ROOT/objs" }
sub run_id    { $RUN_ID }

# Name of this test file's cgroup root under each hierarchy, e.g.
# /sys/fs/cgroup/memory/faas-t1234. Daemons get it as "cgroup_root".
sub cgroup_root { "faas-$RUN_ID" }

# Short on purpose: Unix socket paths must stay under 108 bytes.
sub work_dir {
    return $WORK if defined $WORK;
    $WORK = "/tmp/ft-$RUN_ID";
    remove_tree($WORK) if -d $WORK;
    make_path($WORK);
    return $WORK;
}

sub json_encode { $JSON->encode($_[0]) }
sub json_decode { $JSON->decode($_[0]) }

sub write_file {
    my ($path, $content, $mode) = @_;
    make_path(dirname($path));
    open(my $fh, '>', $path) or die "write $path: $!";
    binmode $fh;
    print $fh $content;
    close $fh;
    chmod($mode, $path) if defined $mode;
    return $path;
}

sub read_file {
    my ($path) = @_;
    open(my $fh, '<', $path) or return undef;
    binmode $fh;
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s;
}

sub write_json { write_file($_[0], $JSON->pretty->encode($_[1])) }

my %USED_PORTS;
sub free_port {
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
            Listen => 1, ReuseAddr => 1) or die "free_port: $!";
        my $port = $s->sockport;
        close $s;
        next if $USED_PORTS{$port}++;
        return $port;
    }
    die "free_port: no port";
}

# Polls $cond every 20 ms until it returns true or $timeout seconds pass.
# Returns the condition's last value.
sub wait_until {
    my ($cond, $timeout, $interval) = @_;
    $timeout  //= 10;
    $interval //= 0.02;
    my $deadline = time + $timeout;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return $v if time >= $deadline;
        sleep $interval;
    }
}

sub wait_port {
    my ($port, $timeout) = @_;
    return wait_until(sub {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp', Timeout => 1);
        close $s if $s;
        return !!$s;
    }, $timeout // 15);
}

sub wait_path {
    my ($path, $timeout) = @_;
    return wait_until(sub { -e $path }, $timeout // 15);
}

# spawn(name => [argv], env => {..}, dir => ..) starts argv in its own
# process group with stdout/stderr in <work>/<name>.log. Returns a handle
# {name, pid, log}.
sub spawn {
    my ($name, $argv, %o) = @_;
    my $dir = work_dir();
    my $log = "$dir/$name.log";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', $log) or POSIX::_exit(127);
        open(STDERR, '>&', \*STDOUT);
        chdir($o{dir}) if $o{dir};
        %ENV = (%ENV, %{ $o{env} || {} });
        exec(@$argv) or do { print STDERR "exec $argv->[0]: $!\n"; POSIX::_exit(127) };
    }
    my $h = { name => $name, pid => $pid, log => $log, argv => $argv };
    push @PROCS, $h;
    return $h;
}

sub proc_alive {
    my ($h) = @_;
    return 0 unless $h->{pid};
    my $r = waitpid($h->{pid}, WNOHANG);
    if ($r == $h->{pid}) {
        $h->{status} = $?;
        $h->{pid} = 0;
        return 0;
    }
    return kill(0, $h->{pid}) ? 1 : 0;
}

# Signals the whole process group, waits up to $timeout s, then SIGKILL.
sub stop_proc {
    my ($h, $sig, $timeout) = @_;
    return unless $h && $h->{pid};
    $sig //= 'TERM';
    kill($sig, -$h->{pid});
    kill($sig, $h->{pid});
    my $ok = wait_until(sub { !proc_alive($h) }, $timeout // 5);
    if (!$ok && $h->{pid}) {
        kill('KILL', -$h->{pid});
        kill('KILL', $h->{pid});
        wait_until(sub { !proc_alive($h) }, 5);
    }
    $h->{pid} = 0;
    return $h->{status};
}

# kill -9 of a daemon, as a crash would be: the group is left alone so that
# children meant to outlive it (sandboxes are never children) are not hit.
sub kill_proc {
    my ($h, $sig) = @_;
    return unless $h && $h->{pid};
    kill($sig // 'KILL', $h->{pid});
    wait_until(sub { !proc_alive($h) }, 5);
    $h->{pid} = 0;
}

sub start_redis {
    my (%o) = @_;
    my $port = free_port();
    my $dir = work_dir() . "/redis-$port";
    make_path($dir);
    my $h = spawn("redis-$port", [
        'redis-server', '--port', $port, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--dir', $dir,
        '--daemonize', 'no', '--loglevel', 'warning',
        ($o{password} ? ('--requirepass', $o{password}) : ()),
    ]);
    wait_port($port) or die "redis did not start, see $h->{log}";
    $h->{port} = $port;
    $h->{host} = '127.0.0.1';
    $h->{addr} = "127.0.0.1:$port";
    $h->{password} = $o{password};
    return $h;
}

# A Redis.pm client for assertions (libredis-perl).
sub redis_client {
    my ($h) = @_;
    require Redis;
    my $r = Redis->new(server => $h->{addr}, reconnect => 2, every => 100_000,
                       ($h->{password} ? (password => $h->{password}) : ()));
    return $r;
}

# s3rver (npm) as the S3 endpoint, with bucket $o{bucket} (default "faas").
# Credentials: s3rver's defaults, access key S3RVER / secret S3RVER.
sub start_s3rver {
    my (%o) = @_;
    my $port = $o{port} // free_port();
    my $bucket = $o{bucket} // 'faas';
    my $dir = $o{dir} // work_dir() . "/s3-$port";
    make_path($dir);
    my $bin = "$ROOT/.deps/npm/node_modules/s3rver/bin/s3rver.js";
    die "s3rver is not installed: run ./build.sh deps" unless -f $bin;
    my $h = spawn("s3rver-$port", [
        'node', $bin, '--directory', $dir, '--address', '127.0.0.1',
        '--port', $port, '--configure-bucket', $bucket, '--silent',
    ]);
    wait_port($port, 30) or die "s3rver did not start, see $h->{log}";
    $h->{port} = $port;
    $h->{dir} = $dir;
    $h->{endpoint} = "http://127.0.0.1:$port";
    $h->{bucket} = $bucket;
    $h->{opts} = {
        s3_endpoint => "http://127.0.0.1:$port", s3_region => 'us-east-1',
        s3_access_key => 'S3RVER', s3_secret_key => 'S3RVER',
        s3_path_style => JSON::PP::true,
    };
    return $h;
}

# start_daemon('faas-agent', {config}) writes <work>/<name>.json and runs
# objs/<name> -c that file. $o{wait_path} / $o{wait_port} say when it is up.
sub start_daemon {
    my ($bin, $cfg, %o) = @_;
    my $name = $o{name} // $bin;
    my $cfgfile = work_dir() . "/$name.json";
    write_json($cfgfile, $cfg);
    my $exe = $o{exe} // "$ROOT/objs/$bin";
    my @wrap = $o{wrap} ? @{ $o{wrap} } : ();
    my $h = spawn($name, [@wrap, $exe, '-c', $cfgfile, @{ $o{args} || [] }],
                  env => $o{env});
    $h->{config} = $cfgfile;
    if ($o{wait_path}) {
        wait_path($o{wait_path}, $o{timeout} // 15)
            or die "$name did not create $o{wait_path}, see $h->{log}:\n"
                   . (read_file($h->{log}) // '');
    }
    if ($o{wait_port}) {
        wait_port($o{wait_port}, $o{timeout} // 15)
            or die "$name did not listen on $o{wait_port}, see $h->{log}";
    }
    return $h;
}

# Runs each code ref in its own child process, all at once, and returns
# their results (JSON-serialisable values; undef when a child died) in order.
sub in_parallel {
    my (@subs) = @_;
    my @kids;
    for my $sub (@subs) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            close $r;
            print $w $JSON->encode([$sub->()]);
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }
    my @out;
    for my $k (@kids) {
        my $fh = $k->[1];
        local $/;
        my $txt = <$fh>;
        close $fh;
        waitpid($k->[0], 0);
        push @out, $txt ? $JSON->decode($txt)->[0] : undef;
    }
    return @out;
}

# --- leak check ----------------------------------------------------------

my @HIERARCHIES = qw(memory freezer pids cpu unified);

sub cgroup_dirs {
    my @dirs;
    for my $hier (@HIERARCHIES) {
        my $d = "/sys/fs/cgroup/$hier/" . cgroup_root();
        push @dirs, $d if -d $d;
    }
    return @dirs;
}

# Lists what this test file left behind: processes in its cgroups, cgroups
# other than the permanently frozen pin, mounts under its work directory,
# sandbox run directories.
sub sandbox_leaks {
    my @leaks;
    for my $root (cgroup_dirs()) {
        opendir(my $dh, $root) or next;
        for my $e (readdir $dh) {
            next if $e =~ /^\./;
            my $p = "$root/$e";
            push @leaks, "cgroup $p" if -d $p;
        }
        closedir $dh;
        my $procs = read_file("$root/cgroup.procs") // '';
        push @leaks, "processes in $root: $procs" if $procs =~ /\d/;
    }
    if (defined $WORK) {
        my $mounts = read_file('/proc/self/mountinfo') // '';
        for my $line (split /\n/, $mounts) {
            my $mp = (split / /, $line)[4];
            push @leaks, "mount $mp" if index($mp, $WORK) == 0;
        }
        for my $sbx (glob("$WORK/*/sbx/s-*"), glob("$WORK/sbx/s-*")) {
            push @leaks, "sandbox dir $sbx";
        }
    }
    return @leaks;
}

# Kills whatever is left in this file's cgroups and removes them, so that a
# failing test does not poison the machine for the next one.
sub force_cleanup {
    for my $root (cgroup_dirs()) {
        my @all = sort { length($b) <=> length($a) }
                  split /\n/, `find $root -mindepth 0 -type d 2>/dev/null`;
        for my $cg (@all) {
            if (-f "$cg/freezer.state") {
                write_file("$cg/freezer.state", "THAWED") if -w "$cg/freezer.state";
            }
            if (-f "$cg/cgroup.kill") {
                eval { write_file("$cg/cgroup.kill", "1") };
            }
            for (1 .. 50) {
                my $procs = read_file("$cg/cgroup.procs") // '';
                last unless $procs =~ /\d/;
                kill('KILL', $_) for split /\s+/, $procs;
                sleep 0.02;
            }
        }
        for my $cg (@all) { rmdir $cg }
    }
    if (defined $WORK) {
        my $mounts = read_file('/proc/self/mountinfo') // '';
        my @mps = reverse grep { index($_, $WORK) == 0 }
                  map { (split / /, $_)[4] } split /\n/, $mounts;
        system('umount', '-l', $_) for @mps;
    }
}

sub stop_all {
    for my $h (reverse @PROCS) {
        stop_proc($h, 'TERM', 5) if $h->{pid};
    }
    stop_zygotes();
}

# Zygotes of this file's run dirs: a provisioner stops its own when it
# exits, but one killed with -9 leaves them to their idle timeout.
sub stop_zygotes {
    return unless defined $WORK;
    for my $c (glob('/proc/[0-9]*/cmdline')) {
        my ($pid) = $c =~ m{/proc/(\d+)/};
        my $cmd = read_file($c) // next;
        kill('KILL', $pid) if $cmd =~ /zygote\.py\0\Q$WORK\E\//;
    }
}

# Stops every server, asserts that nothing leaked, then done_testing().
sub faas_finish {
    $FINISHED = 1;
    stop_all();
    my @leaks = sandbox_leaks();
    Test::More::ok(!@leaks, 'nothing left behind (processes, cgroups, mounts, sandbox dirs)')
        or Test::More::diag(join("\n", @leaks));
    force_cleanup();
    remove_tree($WORK) if defined $WORK && !@leaks && !$ENV{FAAS_KEEP};
    Test::More::done_testing();
}

# A dead run that had our pid may have left its cgroups, mounts or work
# directory behind (a killed test, a crashed machine): they are not ours to
# report as leaks, so clear them before this file starts.
sub clear_stale_run {
    my $stale = "/tmp/ft-$RUN_ID";
    $WORK = $stale if -d $stale;
    force_cleanup() if defined $WORK || cgroup_dirs();
    remove_tree($stale) if -d $stale;
    undef $WORK;
}
clear_stale_run();

END {
    if ($$ == $OWNER_PID && !$FINISHED) {
        my $status = $?;
        stop_all();
        my @leaks = sandbox_leaks();
        if (@leaks) {
            print STDERR "# leaked: $_\n" for @leaks;
            $status ||= 1;
        }
        force_cleanup();
        $? = $status;
    }
}

1;
