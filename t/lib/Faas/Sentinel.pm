package Faas::Sentinel;
# Redis with Redis Sentinel for the tests: a master, a replica of it and
# three sentinels (Debian's redis-sentinel) watching it under the name
# "faas", as docs/DESIGN.md section 4 ("Redis Sentinel") describes.
#
#   my $s = start_sentinels(bind => '10.1.2.3');   # default 127.0.0.1
#   $s->{sentinels}     "127.0.0.1:p1 127.0.0.1:p2 127.0.0.1:p3"
#   my $r = redis_client(current_master($s));   # whichever is master now
#   kill_proc($s->{master}); wait_failover($s, 20);
use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path);
use Faas::Test;

our @EXPORT = qw(start_sentinels current_master wait_failover sentinel_ask);

my $NAME = 'faas';

# Loopback always (wait_port), and the address given.
sub binds { join ' ', '127.0.0.1', ($_[0] eq '127.0.0.1' ? () : $_[0]) }

sub start_node {
    my ($host, @args) = @_;
    my $port = free_port();
    my $dir = work_dir() . "/redis-$port";
    make_path($dir);
    my $h = spawn("redis-$port", [
        'redis-server', '--port', $port, '--bind', split(/ /, binds($host)), '--protected-mode', 'no',
        '--save', '', '--appendonly', 'no', '--dir', $dir,
        '--daemonize', 'no', '--loglevel', 'notice', @args,
    ]);
    wait_port($port) or die "redis did not start, see $h->{log}";
    @$h{qw(port host addr)} = ($port, $host, "$host:$port");
    return $h;
}

sub start_sentinel {
    my ($host, $master) = @_;
    my $port = free_port();
    my $dir = work_dir() . "/sentinel-$port";
    make_path($dir);
    # sentinel rewrites its own file: one per sentinel
    write_file("$dir/sentinel.conf", <<"C");
port $port
bind @{[binds($host)]}
protected-mode no
daemonize no
dir $dir
sentinel monitor $NAME $master->{host} $master->{port} 2
sentinel down-after-milliseconds $NAME 1000
sentinel failover-timeout $NAME 4000
sentinel parallel-syncs $NAME 1
C
    my $h = spawn("sentinel-$port", ['redis-sentinel', "$dir/sentinel.conf"]);
    wait_port($port) or die "sentinel did not start, see $h->{log}";
    @$h{qw(port host addr)} = ($port, $host, "$host:$port");
    return $h;
}

# One sentinel command on sentinel $h; the reply (array ref or scalar).
sub sentinel_ask {
    my ($h, @cmd) = @_;
    require Redis;
    my $c = eval { Redis->new(server => $h->{addr}, cnx_timeout => 1, read_timeout => 1) }
        or return undef;
    my $rep = eval { $c->sentinel(@cmd) };
    eval { $c->quit };
    return $rep;
}

# {addr, host, port} of the master the sentinels name now.
sub current_master {
    my ($s) = @_;
    for my $h (@{ $s->{sentinel_procs} }) {
        my $a = sentinel_ask($h, 'get-master-addr-by-name', $NAME);
        return { host => $a->[0], port => $a->[1], addr => "$a->[0]:$a->[1]" }
            if ref $a eq 'ARRAY' && @$a == 2;
    }
    return undef;
}

# Waits until the sentinels name another master than $s->{master}.
sub wait_failover {
    my ($s, $timeout) = @_;
    return wait_until(sub {
        my $m = current_master($s);
        $m && $m->{port} != $s->{master}{port};
    }, $timeout // 20);
}

# Master + replica + three sentinels on $o{bind} (default 127.0.0.1), ready
# to fail over: the sentinels know the replica and each other.
sub start_sentinels {
    my (%o) = @_;
    my $host = $o{bind} // '127.0.0.1';
    my $master = start_node($host);
    my $replica = start_node($host, '--replicaof', $host, $master->{port});
    my @sent = map { start_sentinel($host, $master) } 1 .. 3;
    my $s = { master => $master, replica => $replica, sentinel_procs => \@sent,
              name => $NAME, sentinels => join(' ', map { $_->{addr} } @sent) };
    wait_until(sub {
        my %m = @{ sentinel_ask($sent[0], 'master', $NAME) || [] };
        ($m{'num-slaves'} // 0) >= 1 && ($m{'num-other-sentinels'} // 0) >= 2;
    }, 30) or die "the sentinels did not find the replica and each other";
    my $rr = redis_client($replica);
    wait_until(sub { ($rr->info('replication')->{master_link_status} // '') eq 'up' }, 15)
        or die "the replica did not sync";
    return $s;
}

1;
