# faas-agent's TCP listener over TLS (tls_cert, tls_key) and with client
# certificates (tls_client_ca): the token is still required inside TLS, a
# plaintext peer gets nothing, a client without a good certificate is refused.
# Certificates are made by the test with the openssl CLI.
use lib 't/lib';
use Test::More;
use IO::Socket::SSL;
use Faas::Test;
use Faas::Agent;

my $w = make_certs();

sub tls_connect {
    my ($agent, %o) = @_;
    my $s = IO::Socket::SSL->new(
        PeerAddr => '127.0.0.1', PeerPort => $agent->{tcp_port}, Timeout => 5,
        SSL_ca_file => "$w/ca.crt", SSL_verifycn_name => '127.0.0.1',
        SSL_verifycn_scheme => 'default',
        ($o{cert} ? (SSL_cert_file => "$w/$o{cert}.crt",
                     SSL_key_file => "$w/$o{cert}.key") : ()))
        or return undef;
    $s->autoflush(1);
    send_frame($s, pb_hello($o{token})) if defined $o{token};
    return $s;
}

# read_response for a TLS socket: blocking reads under an alarm, since
# select() does not see what OpenSSL has already buffered.
sub tls_response {
    my ($s, $timeout) = @_;
    my $buf = '';
    my $read = sub {
        my ($n) = @_;
        while (length $buf < $n) {
            my $r = sysread($s, $buf, $n - length $buf, length $buf);
            return 0 unless $r;
        }
        return 1;
    };
    my $frame;
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm($timeout);
        if ($read->(4)) {
            my $len = unpack('N', $buf);
            $frame = substr($buf, 4) if $read->(4 + $len);
        }
        alarm(0);
    };
    alarm(0);
    return defined $frame ? pb_decode_response($frame) : undef;
}

sub tls_closed {
    my ($s) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + 10;
    while (time < $deadline) {
        next unless $s->pending || $sel->can_read(1);
        my $r = sysread($s, my $buf, 65536);
        return 1 if !defined $r && $SSL_ERROR != SSL_WANT_READ || defined $r && $r == 0;
    }
    return 0;
}

# --- TLS with the token -----------------------------------------------------
my $agent = start_agent(tcp => 1, token => 'tok-123',
                        cfg => { tls_cert => "$w/agent.crt",
                                 tls_key => "$w/agent.key",
                                 hello_timeout_ms => 2000 });
my $s = tls_connect($agent, token => 'tok-123');
ok($s, 'TLS handshake with the agent, its certificate verified')
    or diag $SSL_ERROR;
send_request($s, request_id => 'tls1', sandbox_id => 's-0123456789abcdef');
my $r = tls_response($s, 10);
is($r && $r->{request_id}, 'tls1', 'a request over TLS is answered');
is($r && $r->{status}, 'SANDBOX_GONE', '... SANDBOX_GONE for an unknown id');
send_request($s, request_id => 'tls2', sandbox_id => 's-0123456789abcdee',
             event => '{"pad":"' . ('p' x 100000) . '"}');
$r = tls_response($s, 10);
is($r && $r->{request_id}, 'tls2', '... and a 100 KB one on the same connection');
close $s;

$s = tls_connect($agent, token => 'wrong');
send_request($s, request_id => 'bad', sandbox_id => 's-0123456789abcdef');
$r = tls_response($s, 10);
is($r && $r->{status}, 'UNAUTHORIZED', 'TLS with a wrong token: UNAUTHORIZED');
ok(tls_closed($s), '... and closed');

$s = tls_connect($agent);
ok(tls_closed($s), 'TLS without a hello: closed at the hello deadline');

$s = agent_connect($agent, tcp => 1, token => 'tok-123');
send_request($s, request_id => 'plain', sandbox_id => 's-0123456789abcdef');
$r = read_response($s, 5);
ok(!$r, 'a plaintext hello and request on the TLS port: no answer');
ok(is_closed($s), '... and the connection is closed');

$r = invoke_once($agent, sandbox_id => 's-0123456789abcdef');
is($r->{status}, 'SANDBOX_GONE', 'the Unix socket stays plaintext');
stop_agent($agent);

# --- mutual TLS -------------------------------------------------------------
$agent = start_agent(tcp => 1, token => 'tok-123', name => 'agent2',
                     cfg => { tls_cert => "$w/agent.crt",
                              tls_key => "$w/agent.key",
                              tls_client_ca => "$w/ca.crt" });
$s = tls_connect($agent, token => 'tok-123', cert => 'gateway');
send_request($s, request_id => 'mtls', sandbox_id => 's-0123456789abcdef') if $s;
$r = $s && tls_response($s, 10);
is($r && $r->{request_id}, 'mtls', 'mutual TLS with a gateway certificate: answered');

for my $case ([ undef, 'no client certificate' ],
              [ 'intruder', 'a client certificate from another CA' ]) {
    $s = tls_connect($agent, token => 'tok-123',
                     ($case->[0] ? (cert => $case->[0]) : ()));
    send_request($s, request_id => 'no', sandbox_id => 's-0123456789abcdef') if $s;
    $r = $s && tls_response($s, 5);
    ok(!$r, "$case->[1]: refused");
}
like(read_file($agent->{log}) // '', qr/tls: .*certificate/,
     '... the agent logs why');
stop_agent($agent);

# --- configuration errors ---------------------------------------------------
for my $case (
    [ { tls_cert => "$w/agent.crt" }, qr/tls_cert and tls_key go together/ ],
    [ { tls_cert => "$w/agent.crt", tls_key => "$w/gateway.key" }, qr/tls_key/ ],
    [ { tls_cert => "$w/nothere.crt", tls_key => "$w/agent.key" }, qr/tls_cert/ ],
) {
    write_json("$w/bad.json", { run_dir => work_dir() . "/run", cgroup_root => cgroup_root(),
                                socket => "$w/x.sock", token => 't',
                                tcp_listen => '127.0.0.1:1', %{ $case->[0] } });
    my $out = `objs/faas-agent -c $w/bad.json 2>&1`;
    isnt($? >> 8, 0, "bad config refused: $case->[1]");
    like($out, $case->[1], '... with the reason');
}

sub stop_agent {
    my ($a) = @_;
    kill 'TERM', $a->{pid};
    ok(wait_until(sub { !proc_alive($a) }, 15), 'SIGTERM: the agent exits');
    is($a->{status} >> 8, 0, '... with status 0 (no leak)');
}

faas_finish();
