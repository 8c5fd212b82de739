# Per-function origins (faas_function_host) and cookies on the shared host,
# with a real faas-agent and sandboxes. On the shared host (/fn/<name>/...)
# every function shares one browser origin, so a function's Set-Cookie
# with a Domain is dropped and its Path kept below /fn/<name>/; on the
# function's own host (<name>.fn.test) the whole URI is its path and its
# cookies are left as sent.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;

plan skip_all => 'objs/faas-sandbox, objs/faas-agent or the runtimes are not built'
    unless have_sandboxes() && -x objs_dir() . '/faas-agent';

my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent(store => "file://" . work_dir() . "/store");

# The cookie to set is in the query (c=...), the answer names the function
# and its path.
my $code = write_handler('ck', 'handler.py' => <<'PY');
def handler(event, context):
    q = event.get("queryStringParameters") or {}
    h = {"Content-Type": "text/plain"}
    mv = {}
    if "c" in q:
        mv["Set-Cookie"] = [q["c"]]
    return {"statusCode": 200, "headers": h, "multiValueHeaders": mv,
            "body": context.function_name + " " + event["rawPath"]}
PY
my @sbx = map { sandbox_create($agent, function => 'ck', code => $code) } 1 .. 2;
my $ep = "unix:$agent->{socket}";
$r->hset('faas:fn:ck', rid => 'ck@1', name => 'ck', version => 1,
         owner => 'alice', runtime => 'python3', handler => 'handler.handler',
         code_key => 'code/ck/1/x.zip', code_sha256 => 'x', memory_mb => 128,
         timeout_ms => 5000, max_concurrency => 0, keep_alive_s => 60,
         public => 1, env => '{}', keys => '');
$r->rpush('faas:idle:{ck@1}', "$_|$ep|-") for @sbx;

my $ng = start_nginx(http_config => "faas_redis $redis->{addr};",
                     config => <<'C');
location /fn/ { faas_function on; faas_function_host .fn.test; }
location / { faas_function on; faas_function_host .fn.test; }
C
my $port = $ng->{port};

sub call {
    my ($host, $uri) = @_;
    my $res = http_request($port, 'GET', $uri, host => $host);
    return ($res, $res->{headers}{'set-cookie'});
}

# routing
my ($res) = call('localhost', '/fn/ck/a/b');
is($res->{status}, 200, 'shared host: /fn/ck/a/b');
like($res->{body}, qr{^ck /a/b$}, '... is function ck with path /a/b');
($res) = call('ck.fn.test', '/a/b');
is($res->{status}, 200, 'own host: ck.fn.test/a/b');
like($res->{body}, qr{^ck /a/b$}, '... is function ck with path /a/b');
($res) = call('ck.fn.test:8080', '/fn/other/x');
like($res->{body}, qr{^ck /fn/other/x$},
     'own host (with a port): the whole URI is the path, any prefix');
($res) = call('CK.FN.TEST', '/');
like($res->{body}, qr{^ck /$}, 'host names compare without case');
($res) = call('nosuch.fn.test', '/');
is($res->{status}, 404, 'own host of an unknown function: 404');
($res) = call('a.ck.fn.test', '/');
is($res->{status}, 404, 'a name with a dot is no function: 404');
($res) = call('fn.test', '/ck/x');
like($res->{body}, qr{^ck /x$},
     'the bare domain is a shared host: the first segment names the function');

# cookies on the shared host
my $c;
(undef, $c) = call('localhost', '/fn/ck/?c=' . 's%3D1');
is($c, 's=1; Path=/fn/ck/', 'no Path: Path=/fn/<name>/');
(undef, $c) = call('localhost', '/fn/ck/?c=' . 's%3D1%3B%20Path%3D%2F');
is($c, 's=1; Path=/fn/ck/', 'Path=/ is put below /fn/<name>');
(undef, $c) = call('localhost', '/fn/ck/?c=' . 's%3D1%3B%20Path%3D%2Fapi%3B%20HttpOnly');
is($c, 's=1; HttpOnly; Path=/fn/ck/api', 'Path=/api: /fn/<name>/api, the rest kept');
(undef, $c) = call('localhost', '/fn/ck/?c=' . 's%3D1%3B%20path%3D%2Ffn%2Fck%2Fx');
is($c, 's=1; Path=/fn/ck/x', 'a Path already below /fn/<name>/ is kept');
(undef, $c) = call('localhost', '/fn/ck/?c=' . 's%3D1%3B%20Path%3D%2Ffn%2Fckother');
is($c, 's=1; Path=/fn/ck/fn/ckother', "another function's prefix is not below");
my $off = error_log_size();
($res, $c) = call('localhost', '/fn/ck/?c=' . 'd%3D1%3B%20Domain%3Dfn.test%3B%20Path%3D%2F');
is($res->{status}, 200, 'a cookie with a Domain: the answer is sent');
like($res->{body}, qr{^ck /$}, '... whole');
ok(!defined $c, '... without the cookie');
like(error_log_since($off), qr/function ck set a cookie with a Domain on the shared host, dropped/,
     '... and it is logged');
(undef, $c) = call('localhost', '/fn/ck/?c=' . 'd%3D1%3B%20%20DOMAIN%20%3D%20.test');
ok(!defined $c, 'Domain in any case and spacing is dropped');

# cookies on the function's own host: as sent
(undef, $c) = call('ck.fn.test', '/?c=' . 's%3D1%3B%20Path%3D%2F%3B%20Domain%3Dck.fn.test');
is($c, 's=1; Path=/; Domain=ck.fn.test', 'own host: the cookie as sent');
(undef, $c) = call('ck.fn.test', '/?c=' . 's%3D1');
is($c, 's=1', 'own host: no Path added');

# nginx -t refuses a domain that does not start with a dot
my ($ok, $out) = nginx_t(http_config => "faas_redis $redis->{addr};",
                         config => 'location / { faas_function on; faas_function_host fn.test; }');
ok(!$ok, 'faas_function_host without a leading dot: nginx -t fails');
like($out, qr/must be a domain that starts with a dot/, '... saying why');

stop_nginx();
sandbox_destroy($agent, $_) for @sbx;
stop_proc($agent);
faas_finish();
