# The platform as `./build.sh run` starts it (conf/platform.sh with this
# test's var dir, free ports and cgroup root), exercised through HTTPS with
# curl and faasctl: the printed curl lines, deploy, cold and warm calls, a
# code update (the new version answers, the old sandboxes are reaped), logs
# and executions, access keys, delete then 404; `run` twice; `stop`; a
# failed start naming the component and its log.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Faas::Test;
use Faas::Platform;

for my $b (qw(faas-registry faas-provisioner faas-agent faasctl ngx_http_faas_module.so)) {
    plan skip_all => "objs/$b is not built" unless -e objs_dir() . "/$b";
}
plan skip_all => 'needs root (sandboxes)' unless $> == 0;

faasctl_env(map { ($_ => undef) } qw(FAAS_URL FAAS_TOKEN FAAS_CACERT
    FAAS_JWT_SECRET_FILE FAAS_SUBJECT FAAS_KEY FAAS_UNIX_SOCKET));

# --- a failed start names the component and its log ---
{
    my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                      Listen => 1, ReuseAddr => 1) or die $!;
    my $bad = start_platform(var => work_dir() . '/badvar',
                             redis_port => $busy->sockport, examples => 0);
    is($bad->{run}{rc}, 1, 'run with the Redis port taken: exit 1');
    like($bad->{run}{err}, qr/^platform: redis failed to start: /m, '... names redis');
    like($bad->{run}{err}, qr{its log is \Q$bad->{var}\E/log/redis\.log},
         '... and where its log is');
    like($bad->{run}{err}, qr/Address already in use/, '... and shows the end of the log');
    my $st = stop_platform($bad);
    is($st->{rc}, 0, 'stop after a failed start: exit 0');
}

# --- run ---
my $p = start_platform();
is($p->{run}{rc}, 0, 'run: exit 0') or diag $p->{run}{err}, $p->{run}{out};
BAIL_OUT('the platform did not start') if $p->{run}{rc};
my $out = $p->{run}{out};
like($out, qr/The platform is up/, 'run says the platform is up');
ok(-s $p->{cacert} && -s "$p->{var}/tls/key.pem", 'a certificate was generated');
is((stat("$p->{var}/secrets"))[2] & 07777, 0700, 'secrets directory is private');

# The printed curl lines work as printed.
my @curls = $out =~ /^\s+(curl .*)$/mg;
is(scalar @curls, 2, 'two curl lines printed');
my ($py_line) = grep { /hello-python/ } @curls;
my ($js_line) = grep { /hello-node/ } @curls;
my $root = faas_root();
my $r = `cd $root && $py_line -sS 2>&1`;
is($?, 0, 'the Python curl line runs');
like($r, qr/"greeting":\s*"Hello, you!"/, '... and the Python example answers');
$r = `cd $root && $js_line -sS 2>&1`;
is($?, 0, 'the Node.js curl line runs');
like($r, qr/"message":"Hello from Node\.js v\d+/, '... and the Node.js example answers');
like($r, qr/"body":"any body"/, '... with the posted body');
like($out, qr/faasctl token --secret-file \S+ --subject demo/, 'run says how to mint a token');

# The examples' owner is "demo"; a token for someone else does not work.
my $res = https($p, 'GET', '/fn/hello-python');
is($res->{status}, 401, 'private example without a token: 401');

# --- run again: harmless ---
my $again = platform_sh($p, 'run');
is($again->{rc}, 0, 'run twice: exit 0');
like($again->{err}, qr/nginx is already running/, '... leaves nginx alone');
unlike($again->{err}, qr/starting/, '... starts nothing');
my $st = platform_sh($p, 'status');
is($st->{rc}, 0, 'status: all running');
like($st->{out}, qr/^provisioner\s+running \(pid \d+\)$/m, 'status lines');

# --- faasctl through HTTPS ---
faasctl_env(FAAS_URL => $p->{url}, FAAS_CACERT => $p->{cacert},
            FAAS_JWT_SECRET_FILE => $p->{secret}, FAAS_SUBJECT => 'alice');
my $w = work_dir();
my $x = faasctl('ls');
is($x->{rc}, 0, 'faasctl ls through nginx');
unlike($x->{out}, qr/hello-python/, "alice does not see demo's functions");
$x = faasctl({ FAAS_CACERT => undef }, 'ls');
is($x->{rc}, 3, 'without the certificate: TLS fails, exit 3');
$x = faasctl({ FAAS_JWT_SECRET_FILE => undef }, 'ls');
is($x->{rc}, 1, 'without a token: exit 1');
like($x->{err}, qr/HTTP 401/, '... 401 from the gateway');

write_file("$w/v1/app.py", <<'PY');
import os, binascii
ID = binascii.hexlify(os.urandom(8)).decode()   # one per sandbox process
def handler(event, context):
    print("called with", event.get("rawPath"))
    return {"statusCode": 200, "headers": {"x-v": "1"},
            "body": "v1 " + os.environ.get("COLOR", "none") + " " + ID}
PY
$x = faasctl('deploy', "$w/v1", '--name', 'e2e', '--runtime', 'python3',
             '--handler', 'app.handler', '--env', 'COLOR=blue', '--keep-alive', '3');
is($x->{rc}, 0, 'deploy through HTTPS') or diag $x->{err};
my $tok = faasctl('token')->{out};
chomp $tok;
my %auth = (Authorization => "Bearer $tok");

$res = https($p, 'POST', '/fn/e2e/a', headers => \%auth, body => '{}');
is($res->{status}, 200, 'cold call: 200') or diag explain $res;
like($res->{body}, qr/^v1 blue [0-9a-f]{16}$/, '... the function answered, with its env');
is($res->{headers}{'x-faas-start'}, 'cold', '... cold');
like($res->{headers}{'x-faas-request-id'}, qr/^[0-9a-f]{32}$/, '... with a request id');
my $cold_id = $res->{headers}{'x-faas-request-id'};
my ($pid1) = $res->{body} =~ /(\w+)$/;
$res = https($p, 'POST', '/fn/e2e/b', headers => \%auth, body => '{}');
is($res->{headers}{'x-faas-start'}, 'warm', 'second call: warm');
is(($res->{body} =~ /(\w+)$/)[0], $pid1, '... same sandbox (same process)');
my $warm_id = $res->{headers}{'x-faas-request-id'};
$x = faasctl('invoke', 'e2e', '--path', '/c', '-v');
is($x->{rc}, 0, 'faasctl invoke: exit 0');
like($x->{out}, qr/^v1 blue/, '... prints the body');
like($x->{err}, qr/< 200 request-id [0-9a-f]{32} start warm/, '... -v shows status and start');
$res = https($p, 'POST', '/fn/e2e', body => '{}');
is($res->{status}, 401, 'private function without credentials: 401');

# access keys
$x = faasctl('keys', 'create', 'e2e');
is($x->{rc}, 0, 'keys create');
chomp(my $key = $x->{out});
$res = https($p, 'GET', '/fn/e2e/k', headers => { 'X-Faas-Key' => $key });
is($res->{status}, 200, 'the access key works');
$x = faasctl('invoke', 'e2e', '--key', $key);
is($x->{rc}, 0, 'faasctl invoke --key');
$res = https($p, 'GET', '/fn/e2e/k', headers => { 'X-Faas-Key' => 'fk_' . ('A' x 43) });
is($res->{status}, 403, 'a wrong key: 403');

# logs and executions through faasctl (records drained by the registry)
ok(wait_until(sub {
    my $e = faasctl('executions', 'e2e')->{out};
    return $e =~ /\Q$cold_id\E/ && $e =~ /\Q$warm_id\E/;
}, 30), 'executions lists the calls');
$x = faasctl('executions', 'e2e');
like($x->{out}, qr/\Q$cold_id\E\s+1\s+COLD\s+OK\s+200/, '... the cold one as COLD');
like($x->{out}, qr/\Q$warm_id\E\s+1\s+WARM\s+OK\s+200/, '... the warm one as WARM');
ok(wait_until(sub { faasctl('logs', 'e2e', $cold_id)->{rc} == 0 }, 30),
   'the log of the cold call is stored');
$x = faasctl('logs', 'e2e', $cold_id);
is($x->{out}, "called with /a\n", 'faasctl logs: what the handler printed');
$x = faasctl('logs', 'e2e');
like($x->{out}, qr/=== \S+ \Q$cold_id\E OK\ncalled with \/a\n/, 'faasctl logs <name>: the latest');

# --- update: the new version answers, the old sandboxes are reaped ---
my $redis = platform_redis($p);
my $rc = redis_client($redis);
ok($rc->llen('faas:idle:{e2e@1}') >= 1, 'version 1 has an idle sandbox');
my @v1_ids = map { (split /\|/)[0] } $rc->lrange('faas:idle:{e2e@1}', 0, -1);
ok(@v1_ids && -d "$p->{var}/sbx/sbx/$v1_ids[0]", "... whose directory is $p->{var}/sbx/sbx/$v1_ids[0]");
write_file("$w/v1/app.py", <<'PY');
import os, binascii
ID = binascii.hexlify(os.urandom(8)).decode()
def handler(event, context):
    return {"statusCode": 200, "body": "v2 " + os.environ.get("COLOR", "none") + " " + ID}
PY
$x = faasctl('deploy', "$w/v1", '--name', 'e2e');
is($x->{rc}, 0, 'deploy new code');
like($x->{out}, qr/updated e2e to version 2/, '... version 2');
my $new;
ok(wait_until(sub {
    $new = https($p, 'GET', '/fn/e2e/n', headers => \%auth);
    return $new->{body} =~ /^v2 /;
}, 15), 'the new version answers (metadata cache invalidated)');
is($new->{headers}{'x-faas-start'}, 'cold', '... from a new sandbox (cold)');
isnt(($new->{body} =~ /(\w+)$/)[0], $pid1, '... another process');
for (1 .. 3) {
    $res = https($p, 'GET', '/fn/e2e/n', headers => \%auth);
    like($res->{body}, qr/^v2 blue/, "call $_ after the update: version 2, env kept");
}
ok(wait_until(sub { !grep { -e "$p->{var}/sbx/sbx/$_" } @v1_ids }, 60),
   'the old version\'s sandboxes are reaped (keep-alive 3 s)');
is($rc->llen('faas:idle:{e2e@1}'), 0, '... and no longer listed idle');
# (the provisioner DECRs once the destroy, which removes the directory, is done)
ok(wait_until(sub { ($rc->get('faas:count:{e2e@1}') // 0) == 0 }, 10), '... nor counted');

# --- delete, then 404 ---
$x = faasctl('rm', 'e2e');
is($x->{rc}, 0, 'faasctl rm');
ok(wait_until(sub { https($p, 'GET', '/fn/e2e', headers => \%auth)->{status} == 404 }, 15),
   'then 404');
$x = faasctl('invoke', 'e2e');
is($x->{rc}, 4, 'faasctl invoke of a deleted function: exit 4');

# --- stop ---
my @pids = map { platform_pid($p, $_) } qw(redis mariadb registry agent provisioner nginx);
is(scalar(grep { defined } @pids), 6, 'six pid files');
$st = stop_platform($p);
is($st->{rc}, 0, 'stop: exit 0') or diag $st->{err};
ok(!grep({ kill(0, $_) } @pids), 'every process is gone');
ok(!glob("$p->{var}/run/*.pid"), 'no pid file left');
$st = platform_sh($p, 'status');
is($st->{rc}, 3, 'status after stop: exit 3');
$st = platform_sh($p, 'stop');
is($st->{rc}, 0, 'stop twice: harmless');

faas_finish();
