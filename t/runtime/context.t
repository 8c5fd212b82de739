# The context object: Lambda field names, JSON-serialisable, values from the
# request's "context", remaining time derived from deadline_ms.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Runtime;
use Time::HiRes qw(time);

my %SRC = (
    python => { 'app.py' => <<'PY' },
import json, time

def dump(event, context):
    return json.dumps(vars(context))

def dump_dict(event, context):
    return {"statusCode": 200, "body": json.dumps(context.__dict__, default=str)}

def remaining(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    return [first, context.get_remaining_time_in_millis()]
PY
    node => { 'app.js' => <<'JS' },
exports.dump = async (event, context) => JSON.stringify(context);
exports.dump_dict = async (event, context) => ({ statusCode: 200, body: JSON.stringify(context) });
exports.remaining = async (event, context) => {
  const first = context.getRemainingTimeInMillis();
  await new Promise((r) => setTimeout(r, 50));
  return [first, context.getRemainingTimeInMillis()];
};
JS
);

my %NAMES = (
    python => {
        aws_request_id => 'ctx-req-1', function_name => 'fname',
        function_version => '3', memory_limit_in_mb => '128',
        invoked_function_arn => 'arn:faas:local:function:fname:3',
        log_group_name => '/faas/fname', log_stream_name => 'stream-9',
    },
    node => {
        awsRequestId => 'ctx-req-1', functionName => 'fname',
        functionVersion => '3', memoryLimitInMB => '128',
        invokedFunctionArn => 'arn:faas:local:function:fname:3',
        logGroupName => '/faas/fname', logStreamName => 'stream-9',
        callbackWaitsForEmptyEventLoop => JSON::PP::true(),
    },
);

my $CTX = {
    function_name => 'fname', function_version => '3', memory_limit_in_mb => 128,
    aws_request_id => 'ctx-req-1',
    invoked_function_arn => 'arn:faas:local:function:fname:3',
    log_group_name => '/faas/fname', log_stream_name => 'stream-9',
};

for my $lang (runtime_langs()) {
    my %rt = map {
        $_ => Faas::Runtime->start(lang => $lang, handler => "app.$_",
                                   name => 'fname', files => $SRC{$lang})
    } qw(dump dump_dict remaining);

    for my $fn (qw(dump dump_dict)) {
        my $a = $rt{$fn}->invoke({}, id => 'ctx-req-1', context => $CTX);
        ok($a->{ok}, "$lang/$fn: the context serialises") or diag(explain($a));
        my $body = JSON::PP->new->allow_nonref->decode($a->{response}{body});
        $body = JSON::PP->new->decode($body) unless ref $body;
        for my $k (sort keys %{ $NAMES{$lang} }) {
            is_deeply($body->{$k}, $NAMES{$lang}{$k}, "$lang/$fn: context $k");
        }
    }

    # Fields missing from the request fall back to the launch environment
    # and the request id.
    my $a = $rt{dump}->invoke({}, id => 'only-id', context => {});
    my $body = JSON::PP->new->decode(JSON::PP->new->allow_nonref->decode($a->{response}{body}));
    my ($rid, $fname, $mem) = $lang eq 'python'
        ? qw(aws_request_id function_name memory_limit_in_mb)
        : qw(awsRequestId functionName memoryLimitInMB);
    is($body->{$rid}, 'only-id', "$lang: request id defaults to the frame id");
    is($body->{$fname}, 'fname', "$lang: function name defaults to FAAS_FUNCTION_NAME");
    is($body->{$mem}, '128', "$lang: memory defaults to FAAS_MEMORY_MB");

    # Remaining time: derived from deadline_ms, decreasing.
    my $deadline = int(time * 1000) + 100_000;
    $a = $rt{remaining}->invoke({}, deadline_ms => $deadline);
    my ($r1, $r2) = @{ JSON::PP->new->decode($a->{response}{body}) };
    cmp_ok($r1, '<=', 100_000, "$lang: remaining time is bounded by deadline_ms");
    cmp_ok($r1, '>', 50_000, "$lang: remaining time comes from deadline_ms, not a default");
    cmp_ok($r2, '<', $r1, "$lang: remaining time decreases while the handler runs");
    $a = $rt{remaining}->invoke({}, deadline_ms => $deadline + 500_000);
    my ($r3) = @{ JSON::PP->new->decode($a->{response}{body}) };
    cmp_ok($r3, '>', 500_000, "$lang: a later deadline gives more remaining time");
    $a = $rt{remaining}->invoke({}, deadline_ms => int(time * 1000) - 5000);
    is_deeply(JSON::PP->new->decode($a->{response}{body}), [0, 0],
              "$lang: a deadline in the past gives 0, never negative");

    $_->stop for values %rt;
}

faas_finish();
