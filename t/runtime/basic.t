# Runtime bootstraps (Python and Node.js), run as plain processes: ping,
# the handler's result mapped to an HTTP answer, v1 and v2 event fields.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Runtime;

my %SRC = (
    python => { file => 'app.py', code => <<'PY' },
def echo(event, context):
    return {"statusCode": 200, "headers": {"content-type": "text/plain"},
            "body": event["body"]}

def mapped(event, context):
    return {"statusCode": event["status"], "headers": {"X-A": "one", "X-N": 5},
            "body": {"k": [1, 2], "s": "\u00e9"},
            "isBase64Encoded": event["b64"]}

def b64(event, context):
    return {"statusCode": 200, "body": "aGVsbG8=", "isBase64Encoded": True}

def bare(event, context):
    return {"statusCode": 204}

def value(event, context):
    return event["value"]

def unmarshallable(event, context):
    return {"when": object()}

def surrogate(event, context):
    return {"statusCode": 200, "body": "a\ud800b"}

def bad_status(event, context):
    return {"statusCode": "teapot", "body": "x"}

def fields(event, context):
    return {"v1": [event["httpMethod"], event["path"], event["resource"],
                   event["multiValueHeaders"]["x-m"]],
            "v2": [event["requestContext"]["http"]["method"], event["rawPath"],
                   event["queryStringParameters"]["q"]]}
PY
    node => { file => 'app.js', code => <<'JS' },
exports.echo = async (event) => ({ statusCode: 200,
    headers: { 'content-type': 'text/plain' }, body: event.body });
exports.mapped = async (event) => ({ statusCode: event.status,
    headers: { 'X-A': 'one', 'X-N': 5 }, body: { k: [1, 2], s: '\u00e9' },
    isBase64Encoded: event.b64 });
exports.b64 = async () => ({ statusCode: 200, body: 'aGVsbG8=', isBase64Encoded: true });
exports.bare = async () => ({ statusCode: 204 });
exports.value = async (event) => event.value;
exports.unmarshallable = async () => ({ big: 10n });
exports.surrogate = async () => ({ statusCode: 200, body: 'a\ud800b' });
exports.bad_status = async () => ({ statusCode: 'teapot', body: 'x' });
exports.fields = async (event) => ({
    v1: [event.httpMethod, event.path, event.resource, event.multiValueHeaders['x-m']],
    v2: [event.requestContext.http.method, event.rawPath, event.queryStringParameters.q] });
JS
);

my $EVENT = {
    version => '2.0', rawPath => '/items/7', rawQueryString => 'q=1',
    headers => { 'x-m' => 'a,b' }, queryStringParameters => { q => '1' },
    requestContext => { http => { method => 'PUT', path => '/items/7',
                                  sourceIp => '127.0.0.1' }, requestId => 'r' },
    body => "line1\nline2 \x{263a}", isBase64Encoded => JSON::PP::false(),
    httpMethod => 'PUT', path => '/items/7', resource => '/items/{id}',
    multiValueHeaders => { 'x-m' => ['a', 'b'] },
};

for my $lang (runtime_langs()) {
    my $s = $SRC{$lang};
    (my $mod = $s->{file}) =~ s/\.\w+$//;
    my %rt;
    for my $fn (qw(echo mapped b64 bare value unmarshallable bad_status fields surrogate)) {
        $rt{$fn} = Faas::Runtime->start(lang => $lang, handler => "$mod.$fn",
                                        files => { $s->{file} => $s->{code} });
    }
    # Start-to-ready (spawn to socket bound; informational, not asserted):
    # a few starts of the echo handler, as the machine may be busy.
    my @ms = sort { $a <=> $b } map {
        my $r = Faas::Runtime->start(lang => $lang, handler => "$mod.echo",
                                     files => { $s->{file} => $s->{code} });
        $r->stop;
        1000 * $r->{ready_s};
    } 1 .. 5;
    diag(sprintf('%s start-to-ready (socket bound): min %.1f ms, median %.1f ms',
                 $lang, $ms[0], $ms[2]));

    my $c = $rt{echo}->connect;
    is_deeply($c->call({ id => 'p1', ping => JSON::PP::true() }),
              { id => 'p1', ok => JSON::PP::true(), pong => JSON::PP::true() },
              "$lang: ping answers with the same id");
    $c->close;

    my $a = $rt{echo}->invoke($EVENT, id => 'echo-1');
    is($a->{id}, 'echo-1', "$lang: answer carries the request id");
    ok($a->{ok}, "$lang: echo ok");
    is($a->{response}{statusCode}, 200, "$lang: echo status");
    is($a->{response}{body}, "line1\nline2 \x{263a}", "$lang: body echoed unchanged (UTF-8)");
    is_deeply($a->{response}{headers}, { 'content-type' => 'text/plain' },
              "$lang: echo headers");
    ok(!$a->{response}{isBase64Encoded}, "$lang: isBase64Encoded false by default");

    $a = $rt{mapped}->invoke({ status => 201, b64 => JSON::PP::false() });
    is($a->{response}{statusCode}, 201, "$lang: statusCode mapped");
    is_deeply($a->{response}{headers}, { 'X-A' => 'one', 'X-N' => '5' },
              "$lang: headers mapped, values as strings");
    is_deeply(JSON::PP->new->decode($a->{response}{body}), { k => [1, 2], s => "\x{e9}" },
              "$lang: a non-string body is JSON-encoded");
    ok(!$a->{response}{isBase64Encoded}, "$lang: isBase64Encoded false passed through");

    $a = $rt{b64}->invoke({});
    ok($a->{response}{isBase64Encoded}, "$lang: isBase64Encoded true passed through");
    is($a->{response}{body}, 'aGVsbG8=', "$lang: base64 body left as is");

    $a = $rt{bare}->invoke({});
    is_deeply($a->{response}, { statusCode => 204, headers => {}, body => '',
                                isBase64Encoded => JSON::PP::false() },
              "$lang: missing headers and body give {} and \"\"");

    for my $v ([1, 'two', { three => 3 }], 'a string', 42, 2.5, undef,
               { no_status => 1 }, JSON::PP::true()) {
        my $label = defined $v ? JSON::PP->new->allow_nonref->canonical->encode($v) : 'null';
        $a = $rt{value}->invoke({ value => $v });
        ok($a->{ok}, "$lang: value $label ok");
        is($a->{response}{statusCode}, 200, "$lang: value $label -> 200");
        is_deeply($a->{response}{headers}, { 'content-type' => 'application/json' },
                  "$lang: value $label -> JSON content type");
        is_deeply(JSON::PP->new->allow_nonref->decode($a->{response}{body}), $v,
                  "$lang: value $label -> body is its JSON");
    }

    $a = $rt{unmarshallable}->invoke({});
    ok(!$a->{ok}, "$lang: an unserialisable result is an error");
    is($a->{error}{type}, 'Runtime.MarshalError', "$lang: ... Runtime.MarshalError");

    # A lone surrogate cannot travel as UTF-8: Python refuses the result,
    # Node (whose strings are UTF-16) sends U+FFFD instead.
    $a = $rt{surrogate}->invoke({});
    if ($lang eq 'python') {
        is($a->{error}{type}, 'Runtime.MarshalError', "$lang: a lone surrogate -> Runtime.MarshalError");
    } else {
        is($a->{response}{body}, "a\x{fffd}b", "$lang: a lone surrogate is sent as U+FFFD");
    }

    $a = $rt{bad_status}->invoke({});
    ok(!$a->{ok}, "$lang: a non-numeric statusCode is an error");
    is($a->{error}{type}, 'Runtime.MarshalError', "$lang: ... Runtime.MarshalError");
    like($a->{error}{message}, qr/statusCode/, "$lang: ... naming statusCode");

    $a = $rt{fields}->invoke($EVENT);
    is_deeply(JSON::PP->new->decode($a->{response}{body}),
              { v1 => ['PUT', '/items/7', '/items/{id}', ['a', 'b']],
                v2 => ['PUT', '/items/7', '1'] },
              "$lang: the handler reads v1 and v2 event fields");

    $_->stop for values %rt;
}

faas_finish();
