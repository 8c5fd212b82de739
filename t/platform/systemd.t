# The systemd units of conf/systemd/ and the daemons' readiness protocol.
#
# - `systemd-analyze verify` over the units rendered with this checkout's
#   paths (binaries in objs/, configs in the work directory): any line it
#   prints fails, since it returns 0 on unknown keys and bad values.
# - Each daemon, started with NOTIFY_SOCKET pointing at a datagram socket of
#   this test, sends READY=1 only once it serves (agent: its socket accepts;
#   registry: MariaDB reached and its socket accepts; provisioner: a shard
#   lease held), with a STATUS= line, and STOPPING=1 on SIGTERM before it
#   exits 0.
# - Each daemon refused by its configuration exits 1 with one line on
#   stderr, which is what `systemctl status` shows of it.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Basename qw(basename);
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::UNIX;
use Time::HiRes qw(time);
use Faas::Test;
use Faas::Agent;
use Faas::MariaDB;
use Faas::Provisioner;
use Faas::Registry;

my $w = work_dir();
my $conf = faas_root() . '/conf/systemd';
my $debian_nginx = '/usr/lib/systemd/system/nginx.service';

plan skip_all => 'systemd-analyze is not installed'
    unless -x '/usr/bin/systemd-analyze';
plan skip_all => 'objs/ is not built'
    unless -x objs_dir() . '/faas-agent' && -x objs_dir() . '/faas-provisioner'
        && -x objs_dir() . '/faas-registry';

# --- the units --------------------------------------------------------------

# Copies the units into $dir with this checkout's binaries and $dir/etc for
# /etc/faas; nginx's drop-in goes beside a copy of Debian's nginx.service.
sub render_units {
    my ($dir) = @_;
    make_path("$dir/nginx.service.d", "$dir/etc");
    my @units;
    for my $f (glob("$conf/*.service"), glob("$conf/nginx.service.d/*.conf")) {
        my $text = read_file($f);
        $text =~ s{/usr/lib/faas/}{objs_dir() . '/'}ge;
        $text =~ s{/etc/faas/}{$dir/etc/}g;
        my $rel = $f =~ m{/nginx\.service\.d/} ? 'nginx.service.d/' : '';
        write_file("$dir/$rel" . basename($f), $text);
        push @units, "$dir/" . basename($f) if $f =~ /\.service$/;
    }
    write_file("$dir/nginx.service", read_file($debian_nginx));
    return (@units, "$dir/nginx.service");
}

# Runs systemd-analyze verify; returns its exit status and its output.
sub verify {
    my (@units) = @_;
    my $out = `systemd-analyze verify --man=no @units 2>&1`;
    return ($? >> 8, $out);
}

SKIP: {
    skip "Debian's nginx.service is not installed", 3 unless -f $debian_nginx;
    my @units = render_units("$w/units");
    is(scalar(grep { m{/faas-[a-z]+\.service$} } @units), 3,
       'a unit for each daemon');
    my ($rc, $out) = verify(@units);
    is($rc, 0, 'systemd-analyze verify: exit 0');
    is($out, '', '... and nothing to say about any unit or the nginx drop-in');

    # The same check sees a mistake in the drop-in (it is read at all).
    my $bad = "$w/units-bad";
    my @bad_units = render_units($bad);
    write_file("$bad/nginx.service.d/faas.conf",
               read_file("$bad/nginx.service.d/faas.conf") . "Bogus=1\n");
    (undef, $out) = verify(@bad_units);
    like($out, qr/faas\.conf:\d+: Unknown key 'Bogus'/,
         'a mistake in the drop-in would be reported');
}

# --- readiness --------------------------------------------------------------

# The datagram socket a service manager listens on.
my $n_notify = 0;
sub notify_socket {
    my $path = "$w/notify-" . ++$n_notify . '.sock';
    my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path)
        or die "notify socket $path: $!";
    return { sock => $s, path => $path, sel => IO::Select->new($s) };
}

# The next message within $timeout s, as { KEY => value }, or undef.
sub next_message {
    my ($n, $timeout) = @_;
    return undef unless $n->{sel}->can_read($timeout);
    my $buf = '';
    $n->{sock}->recv($buf, 4096);
    return { map { split /=/, $_, 2 } split /\n/, $buf };
}

# Waits for a message that has $key; returns it (undef after $timeout s).
# The messages before it are kept in @{ $n->{seen} }.
sub wait_message {
    my ($n, $key, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $m = next_message($n, 0.2) // next;
        push @{ $n->{seen} }, $m;
        return $m if exists $m->{$key};
    }
    return undef;
}

sub unix_accepts {
    my ($path) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $path, Type => SOCK_STREAM);
    close $s if $s;
    return !!$s;
}

# SIGTERM: STOPPING=1 arrives, then the daemon exits 0.
sub stops_cleanly {
    my ($h, $n, $what) = @_;
    kill 'TERM', $h->{pid};
    my $m = wait_message($n, 'STOPPING', 30);
    is($m && $m->{STOPPING}, '1', "$what: STOPPING=1 on SIGTERM");
    ok($m && length($m->{STATUS} // ''), "$what: ... with a STATUS line");
    ok(wait_until(sub { !proc_alive($h) }, 30), "$what: exits");
    is($h->{status}, 0, "$what: ... with status 0");
}

# The agent: READY=1 once its socket accepts.
{
    my $n = notify_socket();
    my $sock = "$w/agent.sock";
    make_path("$w/agent-run/sbx");
    my $h = start_daemon('faas-agent', {
        run_dir => "$w/agent-run", cgroup_root => cgroup_root(),
        runtimes_dir => faas_root() . '/provisioner/runtimes',
        socket => $sock, log_level => 'debug',
    }, env => { NOTIFY_SOCKET => $n->{path} });
    my $m = wait_message($n, 'READY', 15);
    ok(unix_accepts($sock), 'agent: its socket accepts when READY=1 arrives');
    is($m && $m->{READY}, '1', 'agent: READY=1')
        or diag(read_file($h->{log}));
    like($m && $m->{STATUS}, qr/listening on \Q$sock\E/,
         'agent: ... with STATUS naming the socket');
    stops_cleanly($h, $n, 'agent');
}

# The provisioner: every shard lease is another host's for 4 s at start, so
# not ready; ready once it has taken one over.
{
    my $redis = start_redis();
    my $r = redis_client($redis);
    $r->set("faas:prov:lease:$_", 'other', 'PX', 4000) for 0 .. 3;
    my $n = notify_socket();
    my $cfg = prov_config($redis, name => 'sd', shards => 4);
    make_path($cfg->{run_dir}, $cfg->{cache_dir});
    my $h = start_daemon('faas-provisioner', $cfg, name => 'sd',
                         env => { NOTIFY_SOCKET => $n->{path} });
    ok(!wait_message($n, 'READY', 2),
       'provisioner: not ready while another host holds every lease')
        or diag(read_file($h->{log}));
    my $m = wait_message($n, 'READY', 20);
    my @held = grep { ($r->get("faas:prov:lease:$_") // '') eq $cfg->{host_id} }
               0 .. 3;
    ok(scalar(@held), 'provisioner: holds a lease when READY=1 arrives');
    is($m && $m->{READY}, '1', 'provisioner: READY=1 once a lease is taken')
        or diag(read_file($h->{log}));
    like($m && $m->{STATUS}, qr/host sd: serving/, 'provisioner: ... with STATUS');
    stops_cleanly($h, $n, 'provisioner');
}

# The registry: MariaDB not there yet at start, so not ready; ready once
# the schema is migrated and its socket accepts.
{
    my $redis = start_redis();
    my $port = free_port();
    my $n = notify_socket();
    my $cfg = registry_config(db => { port => $port }, redis => $redis,
                              cfg => { mysql_start_wait_s => 180 });
    unlink $cfg->{socket};
    my $h = start_daemon('faas-registry', $cfg, name => 'registry',
                         env => { NOTIFY_SOCKET => $n->{path} });
    ok(!wait_message($n, 'READY', 2), 'registry: not ready before MariaDB is')
        or diag(read_file($h->{log}));
    start_mariadb(port => $port);
    my $m = wait_message($n, 'READY', 120);
    ok(unix_accepts($cfg->{socket}), 'registry: its socket accepts when READY=1 arrives');
    is($m && $m->{READY}, '1', 'registry: READY=1 once MariaDB is up')
        or diag(read_file($h->{log}));
    like($m && $m->{STATUS}, qr/listening on \Q$cfg->{socket}\E/,
         'registry: ... with STATUS naming the socket');
    stops_cleanly($h, $n, 'registry');
}

# --- a bad configuration: exit 1 and one line on stderr (the journal) ------

# Runs $bin -c <$cfg as JSON>; returns its exit status and stderr's lines.
sub refused {
    my ($bin, $cfg) = @_;
    my $f = "$w/bad-$bin.json";
    write_json($f, $cfg);
    my $out = `timeout 20 ${\ objs_dir()}/$bin -c $f 2>&1 >/dev/null`;
    return ($? >> 8, [ split /\n/, $out ]);
}

{
    my ($rc, $lines) = refused('faas-agent', {
        run_dir => "$w/agent-run", cgroup_root => cgroup_root(),
        runtimes_dir => faas_root() . '/provisioner/runtimes',
        store_url => "file://$w/store", socket => "$w/no/such/dir/a.sock",
    });
    is($rc, 1, 'agent, socket in a missing directory: exit 1');
    is(scalar(@$lines), 1, '... one line') or diag(join("\n", @$lines));
    like($lines->[0] // '', qr/^faas-agent: bind \Q$w\E\/no\/such\/dir\/a\.sock: /,
         '... naming the daemon and the socket');

    my $redis = start_redis();
    ($rc, $lines) = refused('faas-provisioner',
                            { %{ prov_config($redis, name => 'bad') }, shards => 0 });
    is($rc, 1, 'provisioner, shards 0: exit 1');
    is(scalar(@$lines), 1, '... one line') or diag(join("\n", @$lines));
    like($lines->[0] // '', qr/^faas-provisioner: config: shards must be in/,
         '... naming the daemon and the key');

    my $cfg = registry_config(db => { port => free_port() }, redis => $redis);
    delete $cfg->{master_key};
    ($rc, $lines) = refused('faas-registry', $cfg);
    is($rc, 1, 'registry, no master_key: exit 1');
    is(scalar(@$lines), 1, '... one line') or diag(join("\n", @$lines));
    like($lines->[0] // '', qr/^faas-registry: config: master_key is required$/,
         '... naming the daemon and the key');
}

faas_finish();
