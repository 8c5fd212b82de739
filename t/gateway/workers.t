# nginx's workers need not be root: with `user nobody nogroup;` (as the
# shipped conf/nginx.conf runs them as `faas`), the agent's socket (mode
# 0660) is reached through its socket_group, and a warm call works. Without
# the group the same workers cannot connect: the group is what lets them.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;

plan skip_all => 'objs/faas-sandbox, objs/faas-agent or the runtimes are not built'
    unless have_sandboxes() && -x objs_dir() . '/faas-agent';
plan skip_all => 'no user nobody or group nogroup'
    unless defined getpwnam('nobody') && defined getgrnam('nogroup');

my $redis = start_redis();
my $r = redis_client($redis);
my $w = work_dir();
chmod 0755, $w;
my $agent = start_agent(store => "file://$w/store",
                        cfg => { socket_group => 'nogroup' });
my @st = stat($agent->{socket});
is($st[5], scalar getgrnam('nogroup'), "the agent's socket is group nogroup");
is($st[2] & 0777, 0660, '... mode 0660');

my $code = write_handler('who', 'handler.py' => <<'PY');
def handler(event, context):
    return {"statusCode": 200, "body": "hello"}
PY
my $sbx = sandbox_create($agent, function => 'who', code => $code);
my $ep = "unix:$agent->{socket}";
$r->hset('faas:fn:who', rid => 'who@1', name => 'who', version => 1,
         owner => 'alice', runtime => 'python3', handler => 'handler.handler',
         code_key => 'code/who/1/x.zip', code_sha256 => 'x', memory_mb => 128,
         timeout_ms => 5000, max_concurrency => 0, keep_alive_s => 60,
         public => 1, env => '{}', keys => '');
$r->rpush('faas:idle:{who@1}', "$sbx|$ep|-");

my %conf = (http_config => "faas_redis $redis->{addr};",
            config => 'location /fn/ { faas_function on; faas_cold_start_timeout 1s; }');
my $ng = start_nginx(%conf, user => 'nobody nogroup');
my $pid = (split ' ', `pgrep -P $ng->{h}{pid} 2>/dev/null`)[0];
my ($uid) = (read_file("/proc/$pid/status") // '') =~ /^Uid:\s+(\d+)/m;
is($uid, scalar getpwnam('nobody'), 'the worker runs as nobody');

my $res = http_request($ng->{port}, 'GET', '/fn/who/');
is($res->{status}, 200, 'a warm call through the group: 200') or diag explain $res;
is($res->{body}, 'hello', '... the function answered');
is($res->{headers}{'x-faas-start'}, 'warm', '... warm');

# new workers (no kept-alive agent connection) without the group: the
# socket is root's, 0660
chown -1, 0, $agent->{socket};
$ng = start_nginx(%conf, user => 'nobody nogroup');
$res = http_request($ng->{port}, 'GET', '/fn/who/');
is($res->{status}, 503, 'without the group the worker cannot connect: 503');
like($res->{body}, qr/agent unavailable/, '... agent unavailable');

stop_nginx();
sandbox_destroy($agent, $sbx);
stop_proc($agent);
faas_finish();
