# The gateway calling an agent over TLS (faas_agent_tls): with the agent's CA
# trusted the call runs and the connection is kept; an agent whose
# certificate does not verify gets no call; with the agent's tls_client_ca
# the gateway shows faas_agent_tls_certificate. Certificates are made by the
# test with the openssl CLI.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;

plan skip_all => 'objs/faas-sandbox, objs/faas-agent or the runtimes are not built'
    unless have_sandboxes() && -x objs_dir() . '/faas-agent';

my $tls = make_certs();
my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent(store => "file://" . work_dir() . "/store", tcp => 1,
                        token => 'tok-123',
                        cfg => { tls_cert => "$tls/agent.crt",
                                 tls_key => "$tls/agent.key" });

my $code = write_handler('hello', 'handler.py' => <<'PY');
def handler(event, context):
    return {"statusCode": 200, "body": "over tls " + event["rawPath"]}
PY
my $sbx = sandbox_create($agent, function => 'hello', code => $code);
$r->hset('faas:fn:hello', rid => 'hello@1', name => 'hello', version => 1,
         owner => 'alice', runtime => 'python3', handler => 'handler.handler',
         code_key => 'code/hello/1/x.zip', code_sha256 => 'x', memory_mb => 128,
         timeout_ms => 5000, max_concurrency => 0, keep_alive_s => 60,
         public => 1, env => '{}', keys => '');
my $idle = 'faas:idle:{hello@1}';

# The sandbox's only idle entry, naming the agent's TCP endpoint.
sub list_entry {
    $r->del($idle);
    $r->rpush($idle, "$sbx|tcp:127.0.0.1:$agent->{tcp_port}|-");
}
list_entry();

sub gateway {
    my ($tls_conf) = @_;
    return start_nginx(http_config => "faas_redis $redis->{addr};"
                                      . " faas_agent_token tok-123; $tls_conf",
                       config => 'location /fn/ { faas_function on; }');
}

# --- the agent's CA trusted -------------------------------------------------
my $ng = gateway("faas_agent_tls on;"
                 . " faas_agent_tls_trusted_certificate $tls/ca.crt;");
my $res = http_request($ng->{port}, 'GET', '/fn/hello/one');
is($res->{status}, 200, 'a call to an agent over TLS: 200') or diag explain $res;
is($res->{body}, 'over tls /one', '... with the function\'s answer');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), '... the entry is returned');
$res = http_request($ng->{port}, 'GET', '/fn/hello/two');
is($res->{status}, 200, '... again over the kept-alive TLS connection');
is($res->{body}, 'over tls /two', '... answered');

# --- a certificate that does not verify --------------------------------------
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), 'entry listed');
$ng = gateway("faas_agent_tls on;"
              . " faas_agent_tls_trusted_certificate $tls/rogue.crt;");
my $off = error_log_size();
$res = http_request($ng->{port}, 'GET', '/fn/hello/rogue');
is($res->{status}, 502, 'an agent certificate from another CA: 502');
like(error_log_since($off), qr/certificate does not verify/,
     '... and the reason is logged');
like(error_log_since($off), qr/refused the call/, '... as a refusal');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), '... nothing ran: the entry stays');

# --- plaintext gateway, TLS agent ---------------------------------------------
list_entry();
$ng = gateway('');
$res = http_request($ng->{port}, 'GET', '/fn/hello/plain');
is($res->{status}, 502, 'a gateway without faas_agent_tls: 502');

# --- mutual TLS ----------------------------------------------------------------
stop_nginx();
kill 'TERM', $agent->{pid};
ok(wait_until(sub { !proc_alive($agent) }, 15), 'the agent stops');
$agent = start_agent(store => "file://" . work_dir() . "/store", tcp => 1,
                     token => 'tok-123', name => 'agent2',
                     socket => $agent->{socket}, spool_dir => $agent->{spool_dir},
                     cfg => { tls_cert => "$tls/agent.crt",
                              tls_key => "$tls/agent.key",
                              tls_client_ca => "$tls/ca.crt" });
list_entry();
$ng = gateway("faas_agent_tls on;"
              . " faas_agent_tls_trusted_certificate $tls/ca.crt;");
$res = http_request($ng->{port}, 'GET', '/fn/hello/nocert');
is($res->{status}, 502, 'mutual TLS, the gateway without a certificate: 502');
list_entry();
$ng = gateway("faas_agent_tls on;"
              . " faas_agent_tls_trusted_certificate $tls/ca.crt;"
              . " faas_agent_tls_certificate $tls/gateway.crt;"
              . " faas_agent_tls_certificate_key $tls/gateway.key;");
$res = http_request($ng->{port}, 'GET', '/fn/hello/mutual');
is($res->{status}, 200, 'mutual TLS with faas_agent_tls_certificate: 200')
    or diag explain $res;
is($res->{body}, 'over tls /mutual', '... answered');

# --- configuration ------------------------------------------------------------
my ($ok, $out) = nginx_t(http_config => "faas_redis $redis->{addr};"
                                        . " faas_agent_tls on;",
                         config => 'location /fn/ { faas_function on; }');
ok(!$ok, 'faas_agent_tls on without a trusted certificate: refused');
like($out, qr/faas_agent_tls_trusted_certificate/, '... naming the directive');

sandbox_destroy($agent, $sbx);

faas_finish();
