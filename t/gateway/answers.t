# What a function may send back, with a real faas-agent and sandboxes:
# only statuses 200-599 reach the client (a 1xx would switch a proxy's
# connection to a tunnel, or let a body that is itself an HTTP response
# follow a 100: response splitting), header names must be tokens and values
# free of control characters, hop-by-hop and framing headers are dropped,
# and bodies are capped by faas_max_response_body.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use IO::Socket::INET;
use IO::Select;

plan skip_all => 'objs/faas-sandbox, objs/faas-agent or the runtimes are not built'
    unless have_sandboxes() && -x objs_dir() . '/faas-agent';

my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent(store => "file://" . work_dir() . "/store");

my $code = write_handler('ans', 'handler.py' => <<'PY');
def handler(event, context):
    p = event.get("rawPath")
    q = event.get("queryStringParameters") or {}
    if p == "/status":
        return {"statusCode": int(q["s"]), "body": "status " + q["s"]}
    if p == "/upgrade":
        return {"statusCode": 101,
                "headers": {"Upgrade": "websocket", "Connection": "upgrade"}}
    if p == "/continue":
        return {"statusCode": 100,
                "body": "HTTP/1.1 200 OK\r\nSet-Cookie: stolen=1\r\n"
                        "Content-Length: 5\r\n\r\nowned"}
    if p == "/headers":
        return {"statusCode": 200, "body": "h", "headers": {
            "X-Good": "yes", "X-Tab": "a\tb", "X-Obs": "caf\u00e9",
            "X-Crlf": "a\r\nSet-Cookie: evil=1", "X-Lf": "a\nb",
            "X-Ctl": "a\x01b", "X-Del": "a\x7fb", "X Space": "1",
            "X:Colon": "1", "X(Paren)": "1", "X-Caf\u00e9": "1",
            "Keep-Alive": "timeout=99", "Upgrade": "h2c", "TE": "trailers",
            "Trailer": "X-T", "Transfer-Encoding": "chunked",
            "Content-Length": "999", "Proxy-Authenticate": "Basic",
            "Proxy-Connection": "keep-alive",
            "Connection": "X-Secret, x-other", "X-Secret": "1",
            "X-Other": "1", "Content-Type": "text/x-ok"}}
    if p == "/big":
        return {"statusCode": 200, "body": "b" * int(q["n"])}
    return {"statusCode": 200, "body": "ok"}
PY
my @sbx = map { sandbox_create($agent, function => 'ans', code => $code) } 1 .. 2;
my $ep = "unix:$agent->{socket}";
$r->hset('faas:fn:ans', rid => 'ans@1', name => 'ans', version => 1,
         owner => 'alice', runtime => 'python3', handler => 'handler.handler',
         code_key => 'code/ans/1/x.zip', code_sha256 => 'x', memory_mb => 128,
         timeout_ms => 5000, max_concurrency => 0, keep_alive_s => 60,
         public => 1, env => '{}', keys => '');
my $idle = 'faas:idle:{ans@1}';
$r->rpush($idle, "$_|$ep|-") for @sbx;

my $ng = start_nginx(http_config => "faas_redis $redis->{addr};",
                     config => <<'C');
location /fn/ { faas_function on; }
location /small/ { faas_function on; faas_max_response_body 100k; }
C
my $port = $ng->{port};

# One kept-alive connection; each answer read by its Content-Length.
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                 Proto => 'tcp', Timeout => 5) or die "connect: $!";
binmode $sock;
my $raw = '';

sub ka_request {
    my ($uri) = @_;
    print $sock "GET $uri HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my $sel = IO::Select->new($sock);
    my $buf = '';
    my $deadline = time + 10;
    my ($head, $len);
    while (time < $deadline) {
        if (!defined $head && $buf =~ /\r\n\r\n/) {
            ($head) = $buf =~ /^(.*?)\r\n\r\n/s;
            ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
            $len //= 0;
        }
        last if defined $head && length($buf) >= length($head) + 4 + $len;
        last unless $sel->can_read($deadline - time);
        my $n = sysread($sock, $buf, 65536, length $buf);
        last unless $n;
    }
    $raw .= $buf;
    return { status => 0, raw => $buf } unless defined $head;
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    my %hdr;
    for (split /\r\n/, $head) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $hdr{lc $k} = $v;
    }
    return { status => $status, headers => \%hdr, raw => $buf,
             body => substr($buf, length($head) + 4, $len) };
}

# 1. statusCode 101 with Upgrade, then a good call on the same connection
my $res = ka_request('/fn/ans/upgrade');
is($res->{status}, 502, '101 from the function: 502') or diag explain $res;
like($res->{body}, qr/"error":"function answered an invalid HTTP status"/,
     '... with a JSON error');
like($res->{body}, qr/"request_id":"[0-9a-f]{32}"/, '... and the request id');
ok(!defined $res->{headers}{upgrade}, '... no Upgrade header');
unlike($res->{headers}{connection} // '', qr/upgrade/i, '... no Connection: upgrade');
my $rid = $res->{headers}{'x-faas-request-id'};
like(error_log_since(0), qr/$rid: function ans answered HTTP status 101/,
     '... logged with the request id');
$res = ka_request('/fn/ans/ok');
is($res->{status}, 200, '... the next call on the connection: 200');
is($res->{body}, 'ok', '... with its own body');

# 2. statusCode 100 with a body that is an HTTP response
$res = ka_request('/fn/ans/continue');
is($res->{status}, 502, '100 with an HTTP response as body: 502');
$res = ka_request('/fn/ans/ok');
is($res->{status}, 200, '... the next call on the connection: 200');
is($res->{body}, 'ok', '... with its own body');
unlike($raw, qr{HTTP/1\.1 1\d\d}, 'no 1xx status line on the connection');
unlike($raw, qr/stolen|owned/, 'the smuggled response never reached the client');
is(() = $raw =~ m{HTTP/1\.1 \d\d\d }g, 4, "four answers for four requests") or diag $raw;
close $sock;

# 3. other statuses out of range, and the edges of the range
for my $s (0, 99, 199, 600, 999, 4294967295, 4294967496, -56) {
    $res = http_request($port, 'GET', "/fn/ans/status?s=$s");
    is($res->{status}, 502, "statusCode $s: 502");
}
for my $s (200, 599) {
    $res = http_request($port, 'GET', "/fn/ans/status?s=$s");
    is($res->{status}, $s, "statusCode $s passes");
    is($res->{body}, "status $s", '... with its body');
}

# 4. headers: bad names and values dropped, hop-by-hop dropped, the rest kept
my $off = error_log_size();
$res = http_request($port, 'GET', '/fn/ans/headers');
is($res->{status}, 200, 'bad headers are dropped, the answer is sent');
is($res->{body}, 'h', '... its body');
my $h = $res->{headers};
is($h->{'x-good'}, 'yes', 'a good header passes');
is($h->{'x-tab'}, "a\tb", 'HTAB is allowed in a value');
ok(defined $h->{'x-obs'}, 'bytes above 0x7f are allowed in a value');
is($h->{'content-type'}, 'text/x-ok', 'Content-Type passes');
is($h->{'content-length'}, 1, "Content-Length is nginx's");
ok(!defined $h->{$_}, "$_ dropped")
    for qw(x-crlf x-lf x-ctl x-del set-cookie keep-alive upgrade te trailer
           transfer-encoding proxy-authenticate proxy-connection x-secret x-other);
ok(!(grep { /^x[ :(]|^x-caf/ } keys %$h), 'names that are not tokens dropped');
is($h->{connection}, 'close', "Connection is nginx's");
my $log = error_log_since($off);
is(() = $log =~ /answered a header that is not valid HTTP/g, 1,
   'bad headers logged once per call');

# 5. the body cap
$res = http_request($port, 'GET', '/small/ans/big?n=102400');
is($res->{status}, 200, 'a body at faas_max_response_body passes');
is(length $res->{body}, 102400, '... whole');
$res = http_request($port, 'GET', '/small/ans/big?n=102401');
is($res->{status}, 502, 'one byte over faas_max_response_body: 502');
like($res->{body}, qr/"error":"function response too large"/, '... with a clear error');
$res = http_request($port, 'GET', '/fn/ans/big?n=3000000');
is($res->{status}, 200, 'the default cap (6m) lets 3 MB through');
is(length $res->{body}, 3000000, '... whole');
ok(wait_until(sub { $r->llen($idle) == 2 }, 5), 'both sandboxes are back');

# an answer frame far over the cap is read and dropped as it comes
$r->del('faas:records');
$res = http_request($port, 'GET', '/small/ans/big?n=' . (2 * 1024 * 1024));
is($res->{status}, 502, 'an answer frame far over the cap: 502');
like($res->{body}, qr/"error":"function response too large"/, '... with a clear error');
ok(wait_until(sub { $r->llen($idle) == 2 }, 5), '... the sandbox is back');
ok(wait_until(sub { $r->llen('faas:records') == 1 }, 5), '... one record');
my $rec = Faas::Agent::pb_decode(($r->lrange('faas:records', 0, -1))[0] // '');
ok(!defined $rec->{6}[0], '... status OK (the function answered)');
is($rec->{7}[0], 502, '... http status 502');
my $warm = 0;
for (1 .. 4) {
    $res = http_request($port, 'GET', '/fn/ans/ok');
    $warm++ if $res->{status} == 200 && $res->{body} eq 'ok';
}
is($warm, 4, 'the next calls are served, on the same sandboxes');
is($r->llen($idle), 2, '... both listed');

stop_nginx();
sandbox_destroy($agent, $_) for @sbx;
stop_proc($agent);
faas_finish();
