package Faas::Agent;
# Test helpers for faas-agent: start it, talk to it (a small protobuf codec
# for InvokeRequest / InvokeResponse / AgentHello, frames over Unix or TCP
# sockets), run objs/faas-invoke, and make sandboxes with objs/faas-sandbox.
#
#   my $agent = start_agent(tcp => 1, store => "file://...");
#   my $s = agent_connect($agent);
#   send_request($s, request_id => 'r1', sandbox_id => $id, event => '{}');
#   my $resp = read_response($s);       # hash: status (name), http_status, ...
use strict;
use warnings;
use Faas::Protobuf;
use Exporter 'import';
use IO::Socket::INET;
use IO::Socket::UNIX;
use IO::Select;
use File::Path qw(make_path);
use Time::HiRes qw(time);
use Faas::Test;

our @EXPORT = qw(
    pb_invoke_request pb_hello pb_decode_response
    start_agent agent_connect send_frame send_request read_frame read_response
    invoke_once faas_invoke have_sandboxes sandbox_config sandbox_create
    sandbox_destroy sandbox_list sandbox_state sandbox_procs write_handler
    new_rid status_name write_slow_handler make_certs
);

my @STATUS = qw(OK FUNCTION_ERROR TIMEOUT SANDBOX_GONE SANDBOX_CRASHED
                OVERLOADED BAD_REQUEST UNAUTHORIZED AGENT_DRAINING
                SANDBOX_BUSY);
sub status_name { $STATUS[$_[0]] // "STATUS_$_[0]" }

# --- protobuf ------------------------------------------------------------

# pb_invoke_request(request_id => .., sandbox_id => .., function => ..,
# version => .., event => .., deadline_ms => .., timeout_ms => ..,
# memory_mb => .., user => ..)
sub pb_invoke_request {
    my (%r) = @_;
    return pb_field_str(1, $r{request_id}) . pb_field_str(2, $r{sandbox_id})
         . pb_field_str(3, $r{function}) . pb_field_int(4, $r{version})
         . pb_field_str(5, $r{event}) . pb_field_int(6, $r{deadline_ms})
         . pb_field_int(7, $r{timeout_ms}) . pb_field_int(8, $r{memory_mb})
         . pb_field_str(9, $r{user});
}

sub pb_hello { pb_field_str(1, $_[0]) }

# Generic decode: { field number => [values] } (length-delimited as bytes).
sub pb_decode_response {
    my ($buf) = @_;
    my $f = pb_decode($buf);
    my %h;
    for my $hb (@{ $f->{4} || [] }) {
        my $hf = pb_decode($hb);
        $h{ lc($hf->{1}[0] // '') } = $hf->{2}[0] // '';
    }
    return {
        request_id    => $f->{1}[0] // '',
        status        => status_name($f->{2}[0] // 0),
        http_status   => $f->{3}[0] // 0,
        headers       => \%h,
        body          => $f->{5}[0] // '',
        duration_us   => $f->{6}[0] // 0,
        memory_bytes  => $f->{7}[0] // 0,
        log_key       => $f->{8}[0] // '',
        sandbox_alive => $f->{9}[0] // 0,
        error         => $f->{10}[0] // '',
    };
}

# --- the daemon ----------------------------------------------------------

# start_agent(%o): o{tcp} adds a TCP listener with token o{token} (default
# "sekret"); o{store} = store_url; o{cfg} = more config keys; o{dir} = the
# agent's directory (default <work>/agent). Returns the start_daemon handle
# plus socket, run_dir, spool_dir, tcp_port, token, cfg.
sub start_agent {
    my (%o) = @_;
    my $w = work_dir();
    my $name = $o{name} // 'agent';
    my $run = $o{run_dir} // "$w/run";
    make_path("$run/sbx");
    my $cfg = {
        run_dir     => $run,
        cgroup_root => cgroup_root(),
        runtimes_dir => faas_root() . '/runtimes',
        socket      => $o{socket} // "$w/$name.sock",
        spool_dir   => $o{spool_dir} // "$w/$name-spool",
        log_level   => $o{log_level} // 'debug',
        %{ $o{cfg} || {} },
    };
    $cfg->{store_url} = $o{store} if $o{store};
    my $port;
    if ($o{tcp}) {
        $port = $o{tcp_port} // free_port();
        $cfg->{tcp_listen} = "127.0.0.1:$port";
        $cfg->{token} = $o{token} // 'sekret';
    }
    unlink $cfg->{socket} unless $o{keep_socket};
    # The AddressSanitizer build (objs/asan/) when it is there, so leaks and
    # memory errors fail the exit-status checks; FAAS_AGENT_ASAN=0: objs/.
    my $exe = $o{exe};
    my $asan = objs_dir() . '/asan/faas-agent';
    $exe //= $asan if -x $asan && ($ENV{FAAS_AGENT_ASAN} // 1);
    my $h = start_daemon('faas-agent', $cfg, name => $name,
                         ($port ? (wait_port => $port) : ()),
                         exe => $exe,
                         env => { ASAN_OPTIONS => 'detect_leaks=1:exitcode=23',
                                  UBSAN_OPTIONS => 'print_stacktrace=1:halt_on_error=1' });
    # Up once the socket accepts (a stale socket file may exist before).
    wait_until(sub {
        my $s = IO::Socket::UNIX->new(Peer => $cfg->{socket}, Type => SOCK_STREAM);
        close $s if $s;
        return !!$s;
    }, 15) or die "faas-agent did not listen on $cfg->{socket}:\n"
                  . (read_file($h->{log}) // '');
    $h->{socket} = $cfg->{socket};
    $h->{run_dir} = $run;
    $h->{spool_dir} = $cfg->{spool_dir};
    $h->{tcp_port} = $port;
    $h->{token} = $cfg->{token};
    $h->{cfg} = $cfg;
    return $h;
}

# make_certs(): with the openssl CLI, in <work>/tls/: a CA "ca" and a
# stranger "rogue" (self-signed), "agent" signed by ca for IP 127.0.0.1,
# "gateway" (client) signed by ca, "intruder" (client) signed by rogue.
# Each as <name>.crt and <name>.key; returns the directory.
sub make_certs {
    my $d = work_dir() . '/tls';
    make_path($d);
    my $run = sub {
        system("$_[0] 2>/dev/null") == 0 or die "openssl failed: $_[0]";
    };
    for my $ca ('ca', 'rogue') {
        $run->("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=$ca"
               . " -keyout $d/$ca.key -out $d/$ca.crt");
    }
    for ([ 'agent', 'ca', 'subjectAltName=IP:127.0.0.1' ],
         [ 'gateway', 'ca', 'extendedKeyUsage=clientAuth' ],
         [ 'intruder', 'rogue', 'extendedKeyUsage=clientAuth' ]) {
        my ($name, $ca, $ext) = @$_;
        write_file("$d/$name.ext", "$ext\n");
        $run->("openssl req -newkey rsa:2048 -nodes -subj /CN=$name"
               . " -keyout $d/$name.key -out $d/$name.csr");
        $run->("openssl x509 -req -in $d/$name.csr -CA $d/$ca.crt"
               . " -CAkey $d/$ca.key -CAcreateserial -days 2"
               . " -extfile $d/$name.ext -out $d/$name.crt");
    }
    return $d;
}

# agent_connect($agent, tcp => 1, token => 'x' | undef)
sub agent_connect {
    my ($agent, %o) = @_;
    my $s;
    if ($o{tcp}) {
        $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                   PeerPort => $agent->{tcp_port},
                                   Proto => 'tcp', Timeout => 5)
            or die "connect tcp: $!";
        send_frame($s, pb_hello($o{token})) if defined $o{token};
    } else {
        $s = IO::Socket::UNIX->new(Peer => $agent->{socket}, Type => SOCK_STREAM)
            or die "connect $agent->{socket}: $!";
    }
    binmode $s;
    $s->autoflush(1);
    return $s;
}

sub send_frame {
    my ($s, $payload) = @_;
    my $buf = pack('N', length $payload) . $payload;
    my $off = 0;
    local $SIG{PIPE} = 'IGNORE';
    while ($off < length $buf) {
        my $n = syswrite($s, $buf, length($buf) - $off, $off);
        return 0 unless defined $n && $n > 0;
        $off += $n;
    }
    return 1;
}

sub send_request { send_frame($_[0], pb_invoke_request(@_[1 .. $#_])) }

sub read_exact {
    my ($s, $n, $deadline) = @_;
    my $buf = '';
    my $sel = IO::Select->new($s);
    while (length $buf < $n) {
        my $left = $deadline - time;
        return undef if $left <= 0;
        next unless $sel->can_read($left);
        my $r = sysread($s, $buf, $n - length $buf, length $buf);
        return undef unless $r;   # EOF or error
    }
    return $buf;
}

# One frame, or undef on EOF / timeout ($timeout seconds, default 30).
sub read_frame {
    my ($s, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    my $hdr = read_exact($s, 4, $deadline) // return undef;
    my $len = unpack('N', $hdr);
    return read_exact($s, $len, $deadline);
}

sub read_response {
    my ($s, $timeout) = @_;
    my $f = read_frame($s, $timeout);
    return defined $f ? pb_decode_response($f) : undef;
}

# 1 if the peer closed the connection within $timeout seconds.
sub is_closed {
    my ($s, $timeout) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + ($timeout // 10);
    while (time < $deadline) {
        next unless $sel->can_read($deadline - time);
        my $r = sysread($s, my $buf, 65536);
        return 1 if !defined $r || $r == 0;
    }
    return 0;
}
push @EXPORT, 'is_closed';

my $RID = 0;
sub new_rid { sprintf('%08x%08x%016x', $$, time, ++$RID) }

# One request on a fresh Unix connection; returns the decoded answer.
sub invoke_once {
    my ($agent, %r) = @_;
    $r{request_id} //= new_rid();
    my $s = agent_connect($agent);
    send_request($s, %r);
    my $resp = read_response($s, $r{read_timeout} // 30);
    close $s;
    return $resp;
}

# faas_invoke($agent, [args]) runs objs/faas-invoke -a unix:<socket> args;
# returns (exit code, [decoded JSON lines], stderr).
sub faas_invoke {
    my ($agent, $args, %o) = @_;
    my $w = work_dir();
    my $out = "$w/invoke.out";
    my $err = "$w/invoke.err";
    my @cmd = (objs_dir() . '/faas-invoke',
               '-a', $o{endpoint} // "unix:$agent->{socket}", @$args);
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', $out) or POSIX::_exit(127);
        open(STDERR, '>', $err) or POSIX::_exit(127);
        exec(@cmd) or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $code = $? >> 8;
    my @lines = map { json_decode($_) } grep { /\S/ } split /\n/, (read_file($out) // '');
    return ($code, \@lines, read_file($err) // '');
}

# --- sandboxes (objs/faas-sandbox) ---------------------------------------

sub have_sandboxes {
    my $root = faas_root();
    return -x "$root/objs/faas-sandbox"
        && -f "$root/runtimes/python/bootstrap.py";
}

# The faas-sandbox config sharing run_dir/cgroup_root with $agent.
sub sandbox_config {
    my ($agent) = @_;
    my $file = work_dir() . '/sandbox.json';
    return $file if -f $file;
    write_json($file, {
        run_dir => $agent->{run_dir}, cgroup_root => cgroup_root(),
        runtimes_dir => faas_root() . '/runtimes',
    });
    system(objs_dir() . '/faas-sandbox', '-c', $file, 'init') == 0
        or die "faas-sandbox init failed";
    return $file;
}

sub run_tool {
    my (@args) = @_;
    my $w = work_dir();
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', "$w/sandbox.out") or POSIX::_exit(127);
        open(STDERR, '>', "$w/sandbox.err") or POSIX::_exit(127);
        exec(objs_dir() . '/faas-sandbox', @args) or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    return ($? >> 8, read_file("$w/sandbox.out") // '',
            read_file("$w/sandbox.err") // '');
}

# write_handler('name', 'handler.py' => 'code', ...) -> code dir
# A Python function that sleeps ?s=<seconds> and says so: the long call
# of the gateway's fault tests.
sub write_slow_handler {
    my ($name) = @_;
    return write_handler($name, 'handler.py' => <<'PY');
import time
def handler(event, context):
    s = float((event.get("queryStringParameters") or {}).get("s", "0"))
    time.sleep(s)
    return {"statusCode": 200, "body": "slept %s" % s}
PY
}

sub write_handler {
    my ($name, %files) = @_;
    my $dir = work_dir() . "/code/$name";
    make_path($dir);
    write_file("$dir/$_", $files{$_}) for keys %files;
    chmod 0755, $dir;
    chmod 0644, "$dir/$_" for keys %files;
    return $dir;
}

# sandbox_create($agent, function => f, code => dir, handler => 'h.handler',
# runtime => 'python3', memory => MB, timeout => MS) -> id (dies on failure)
sub sandbox_create {
    my ($agent, %o) = @_;
    my $cfg = sandbox_config($agent);
    my ($code, $out, $err) = run_tool(
        '-c', $cfg, 'create', '--function', $o{function} // 'fn',
        '--version', $o{version} // 1, '--runtime', $o{runtime} // 'python3',
        '--handler', $o{handler} // 'handler.handler', '--code', $o{code},
        ($o{memory} ? ('--memory', $o{memory}) : ()),
        ($o{timeout} ? ('--timeout', $o{timeout}) : ()),
        ($o{pids} ? ('--pids', $o{pids}) : ()));
    die "faas-sandbox create: $err" unless $code == 0;
    $out =~ /(s-[0-9a-f]{16})/ or die "faas-sandbox create printed '$out'";
    return $1;
}

sub sandbox_destroy {
    my ($agent, $id) = @_;
    my ($code, $out, $err) = run_tool('-c', sandbox_config($agent), 'destroy', $id);
    return $code == 0;
}

sub sandbox_list {
    my ($agent) = @_;
    my ($code, $out) = run_tool('-c', sandbox_config($agent), 'list');
    return grep { /^s-/ } split /\n/, $out;
}

# "frozen" / "thawed" from the freezer directly (v1 freezer.state).
sub sandbox_state {
    my ($id) = @_;
    my $st = read_file("/sys/fs/cgroup/freezer/" . cgroup_root() . "/$id/freezer.state");
    return undef unless defined $st;
    chomp $st;
    return $st;
}

sub sandbox_procs {
    my ($id) = @_;
    my $p = read_file("/sys/fs/cgroup/pids/" . cgroup_root() . "/$id/cgroup.procs");
    return () unless defined $p;
    return grep { /\d/ } split /\s+/, $p;
}

1;
