# The Lambda event a handler sees for a request through the gateway (a warm
# call to a real sandbox): each block is a request and the event fields the
# handler echoes back as a JSON object (response_json).
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Setup;

need_programs('faas-agent');

my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent();
my $code = write_handler('echo', 'handler.py' => <<'PY');
def handler(event, context):
    return {"path": event["rawPath"], "method": event["requestContext"]["http"]["method"],
            "v1method": event["httpMethod"], "query": event["queryStringParameters"],
            "body": event["body"], "b64": event["isBase64Encoded"],
            "hdr": event["headers"].get("x-test"),
            "key": event["headers"].get("x-faas-key"),
            "blen": len(event["body"] or ""),
            "quotes": (event["body"] or "").count('"')}
PY
my ($sid) = warm_sandboxes($agent, $r, 'echo', $code, 1);
fn_mirror($r, 'echo');

nginx_env(REDIS => $redis->{addr});
block_defaults(http_config => "faas_redis \$TEST_NGINX_REDIS;\n",
               config => "location /fn/ { faas_function on; }\n");
run_blocks();
stop_nginx();
sandbox_destroy($agent, $sid);
faas_finish();

__DATA__

=== TEST 1: path, method, query parameters, headers and a text body
--- request
POST /fn/echo/items/7?a=1&a=2&b=x%20y
{"k":1}
--- more_headers
X-Test: hi
X-Faas-Key: secret
--- response_headers
X-Faas-Start: warm
--- response_json
path: "/items/7"
method: "POST"
v1method: "POST"
query: {"a":"1,2","b":"x y"}
body: "{\"k\":1}"
b64: false
hdr: "hi"
key: null

=== TEST 2: a binary body is passed in base64
--- request eval
"POST /fn/echo/bin\n\xff\x00\x01"
--- response_json
b64: true
body: "/wAB"

=== TEST 3: a large body of escaped characters (beyond the event's first block, in a temp file) arrives whole
--- request eval
"POST /fn/echo/big\n" . ('"' x 100000) . "\n" . ("\\" x 100000)
--- response_json
blen: 200001
quotes: 100000
b64: false
