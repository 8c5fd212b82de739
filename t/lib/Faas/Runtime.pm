package Faas::Runtime;
# Test helpers for the runtime bootstraps (runtimes/*): start one
# as a plain process (no sandbox) with the launch environment of the
# contract, pointed at a task directory and a socket under work_dir(), and a
# client that speaks the runtime's frames (4-byte big-endian length + JSON).
#
#   my $rt = Faas::Runtime->start(lang => 'python', handler => 'app.handler',
#                                 files => { 'app.py' => $source });
#   my $c = $rt->connect;
#   my $ans = $c->invoke({ body => 'hi' });     # decoded answer
#   $c->close; $rt->stop;
#
# Runtimes are started through Faas::Test::spawn, so faas_finish() stops
# whatever a test forgets.
use strict;
use warnings;
use Exporter 'import';
use JSON::PP ();
use Time::HiRes qw(time);
use Faas::Test;

our @EXPORT = qw(runtime_langs);

my %ARGV = (
    python => sub { ['/usr/bin/python3', '-I', '-S', "$_[0]/python/bootstrap.py"] },
    node   => sub { ['/usr/bin/node', "$_[0]/node/bootstrap.js"] },
);
my $SEQ = 0;

# The runtimes every test runs against.
sub runtime_langs { qw(python node) }

sub runtimes_dir { faas_root() . '/runtimes' }

# Faas::Runtime->start(lang => 'python'|'node', handler => 'file.fn',
#     files => { relpath => content }, env => { extra env },
#     log_max => bytes, wait => 0|1 (default 1), name => 'label')
# Writes the files into a fresh task directory, starts the bootstrap with
# exactly the contract's environment (env -i), and (unless wait => 0)
# waits until its socket answers a ping. $rt->{ready_s} is the time from
# the spawn to the socket appearing (polled every millisecond).
sub start {
    my ($class, %o) = @_;
    my $lang = $o{lang} or die "start: lang is required";
    die "start: unknown lang $lang" unless $ARGV{$lang};
    my $n = ++$SEQ;
    my $w = work_dir();
    my $task = "$w/task$n";
    my $sock = "$w/rt$n.sock";
    mkdir $task;
    my $files = $o{files} || {};
    write_file("$task/$_", $files->{$_}) for keys %$files;
    my $name = $o{name} // "function";
    my %env = (
        PATH => '/usr/bin:/bin', HOME => '/tmp', LANG => 'C.UTF-8',
        FAAS_SOCKET => $sock, FAAS_HANDLER => $o{handler} // 'app.handler',
        FAAS_FUNCTION_NAME => $name, FAAS_FUNCTION_VERSION => '3',
        FAAS_MEMORY_MB => '128', FAAS_TIMEOUT_MS => '30000',
        FAAS_TASK_ROOT => $task, FAAS_LOG_MAX => $o{log_max} // 65536,
        AWS_LAMBDA_FUNCTION_NAME => $name, AWS_LAMBDA_FUNCTION_VERSION => '3',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE => '128', LAMBDA_TASK_ROOT => $task,
        AWS_REGION => 'local',
        %{ $o{env} || {} },
    );
    my @envv = map { "$_=$env{$_}" } sort keys %env;
    my $t0 = time;
    my $proc = spawn("rt$n-$lang", ['/usr/bin/env', '-i', @envv,
                                    @{ $ARGV{$lang}->(runtimes_dir()) }],
                     dir => $task);
    my $self = bless {
        lang => $lang, n => $n, task => $task, socket => $sock,
        proc => $proc, log => $proc->{log}, env => \%env, t0 => $t0,
    }, $class;
    $self->wait_ready if $o{wait} // 1;
    return $self;
}

# Waits (up to 20 s) for the socket to appear and answer a ping; dies with
# the runtime's log otherwise. Returns the start-to-socket time in seconds.
sub wait_ready {
    my ($self) = @_;
    my $ok = wait_until(sub { -S $self->{socket} || !proc_alive($self->{proc}) },
                        20, 0.001);
    $self->{ready_s} = time - $self->{t0};
    die "runtime $self->{lang} did not bind $self->{socket}:\n" . $self->runtime_log
        unless $ok && -S $self->{socket};
    my $c = $self->connect;
    my $pong = $c->call({ id => 'ready', ping => JSON::PP::true() });
    $c->close;
    die "runtime $self->{lang} did not answer a ping:\n" . $self->runtime_log
        unless $pong && $pong->{pong};
    return $self->{ready_s};
}

# What the runtime wrote on its own stdout/stderr (outside invocations).
sub runtime_log { read_file($_[0]{log}) // '' }

sub alive { proc_alive($_[0]{proc}) }

# SIGTERM; returns the wait status.
sub stop {
    my ($self, $sig) = @_;
    return stop_proc($self->{proc}, $sig // 'TERM', 5);
}

# A connected client (Faas::Runtime::Conn).
sub connect {
    my ($self) = @_;
    return Faas::Runtime::Conn->new($self->{socket});
}

# A request frame for $event with a deadline $o{deadline_ms} (default now +
# 30 s) and a context naming this runtime's function.
sub request {
    my ($self, $event, %o) = @_;
    my $id = $o{id} // sprintf('req-%d-%d', $self->{n}, ++$self->{reqs});
    return {
        id => $id,
        event => $event,
        deadline_ms => $o{deadline_ms} // int(time * 1000) + 30000,
        context => $o{context} // {
            function_name => $self->{env}{FAAS_FUNCTION_NAME},
            function_version => '3',
            memory_limit_in_mb => 128,
            aws_request_id => $id,
            invoked_function_arn => "arn:faas:local:function:$self->{env}{FAAS_FUNCTION_NAME}:3",
            log_group_name => "/faas/$self->{env}{FAAS_FUNCTION_NAME}",
            log_stream_name => "sbx-$self->{n}",
        },
    };
}

# One invocation on a fresh connection: returns the decoded answer.
sub invoke {
    my ($self, $event, %o) = @_;
    my $c = $self->connect;
    my $ans = $c->call($self->request($event, %o), $o{timeout});
    $c->close;
    return $ans;
}

package Faas::Runtime::Conn;
use strict;
use warnings;
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time);
use JSON::PP ();

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

sub new {
    my ($class, $path) = @_;
    my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path)
        or die "connect $path: $!";
    binmode $s;
    return bless { s => $s, buf => '' }, $class;
}

sub sock { $_[0]{s} }

# Sends raw bytes.
sub send_raw {
    my ($self, $bytes) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($self->{s}, $bytes, length($bytes) - $off, $off);
        return 0 unless defined $n;
        $off += $n;
    }
    return 1;
}

# Sends one frame holding $payload (bytes) or the JSON of a reference.
sub send_frame {
    my ($self, $payload) = @_;
    $payload = $JSON->encode($payload) if ref $payload;
    return $self->send_raw(pack('N', length $payload) . $payload);
}

# Reads until $n bytes are buffered. Returns 1, 0 on EOF or error; dies
# after $timeout seconds.
sub fill {
    my ($self, $n, $timeout) = @_;
    my $deadline = time + ($timeout // 20);
    my $sel = IO::Select->new($self->{s});
    while (length($self->{buf}) < $n) {
        my $left = $deadline - time;
        die "runtime answer timed out\n" if $left <= 0;
        next unless $sel->can_read($left);
        my $r = sysread($self->{s}, $self->{buf}, 1 << 20, length $self->{buf});
        return 0 unless $r;
    }
    return 1;
}

# Reads one frame: its decoded JSON, or undef on EOF (connection closed).
sub read_frame {
    my ($self, $timeout) = @_;
    return undef unless $self->fill(4, $timeout);
    my $len = unpack('N', substr($self->{buf}, 0, 4));
    return undef unless $self->fill(4 + $len, $timeout);
    my $json = substr($self->{buf}, 4, $len);
    substr($self->{buf}, 0, 4 + $len) = '';
    return $JSON->decode($json);
}

# True once the runtime closed the connection (EOF within $timeout s).
sub eof_seen {
    my ($self, $timeout) = @_;
    my $sel = IO::Select->new($self->{s});
    my $deadline = time + ($timeout // 20);
    while (time < $deadline) {
        next unless $sel->can_read($deadline - time);
        my $r = sysread($self->{s}, my $junk, 65536);
        return 1 if !$r;
    }
    return 0;
}

# Sends a request and returns the decoded answer (undef on EOF).
sub call {
    my ($self, $req, $timeout) = @_;
    $self->send_frame($req) or return undef;
    return $self->read_frame($timeout);
}

sub close {
    my ($self) = @_;
    close($self->{s}) if $self->{s};
    $self->{s} = undef;
}

1;
