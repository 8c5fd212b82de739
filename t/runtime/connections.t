# The runtime's socket: one connection at a time, requests answered in
# order, the next connection served when one closes, 8 MiB frame limit,
# malformed frames refused without killing the runtime, SIGTERM.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Runtime;
use IO::Select;

my %SRC = (
    python => { 'app.py' => <<'PY' },
def handler(event, context):
    return {"statusCode": 200, "body": str(len(event["body"])) if "body" in event else event["n"]}

def huge(event, context):
    return "h" * (9 << 20)
PY
    node => { 'app.js' => <<'JS' },
exports.handler = async (event) =>
  ({ statusCode: 200, body: 'body' in event ? String(event.body.length) : event.n });
exports.huge = async () => 'h'.repeat(9 << 20);
JS
);
my $FRAME_MAX = 8 * 1024 * 1024;

sub req { my ($rt, $n, $id) = @_; $rt->request({ n => $n }, id => $id) }

for my $lang (runtime_langs()) {
    my $rt = Faas::Runtime->start(lang => $lang, files => $SRC{$lang});

    # Several requests on one connection, sent at once, answered in order.
    my $c = $rt->connect;
    $c->send_frame(req($rt, $_, "pipe-$_")) for 1 .. 3;
    $c->send_frame({ id => 'pipe-ping', ping => JSON::PP::true() });
    my @ids = map { $c->read_frame->{id} } 1 .. 4;
    is_deeply(\@ids, ['pipe-1', 'pipe-2', 'pipe-3', 'pipe-ping'],
              "$lang: pipelined requests answered in order");
    $c->close;

    # A second connection after the first closes is served.
    $c = $rt->connect;
    my $a = $c->call(req($rt, 7, 'second-conn'));
    is($a->{response}{body}, '7', "$lang: a new connection after a close is served");

    # While a connection is open, another waits and is served once it closes.
    my $c2 = $rt->connect;
    $c2->send_frame(req($rt, 8, 'waiting'));
    $a = $c->call(req($rt, 9, 'first-still'));
    is($a->{id}, 'first-still', "$lang: the open connection keeps being served");
    ok(!IO::Select->new($c2->sock)->can_read(0.2),
       "$lang: the second connection waits while the first is open");
    $c->close;
    $a = $c2->read_frame;
    is($a && $a->{id}, 'waiting', "$lang: the waiting connection is served after the first closes");
    $c2->close;

    # A frame of exactly 8 MiB is accepted.
    my $skel = JSON::PP->new->canonical->encode({ id => 'big', event => { body => '' },
                                                  deadline_ms => 9e12 + 0 });
    my $body = 'b' x ($FRAME_MAX - length $skel);
    (my $frame = $skel) =~ s/"body":""/"body":"$body"/;
    is(length $frame, $FRAME_MAX, "$lang: test frame is exactly 8 MiB");
    $c = $rt->connect;
    $c->send_frame($frame);
    $a = $c->read_frame(60);
    ok($a && $a->{ok}, "$lang: an 8 MiB frame is accepted");
    is($a && $a->{response}{body}, length $body, "$lang: ... and fully read");
    $c->close;

    # One byte more: the connection is closed, the runtime keeps serving.
    $c = $rt->connect;
    $c->send_raw(pack('N', $FRAME_MAX + 1) . ('x' x 1000));
    ok($c->eof_seen(20), "$lang: an oversized frame closes the connection");
    $c->close;
    ok($rt->alive, "$lang: the runtime survives an oversized frame");
    $a = $rt->invoke({ n => 11 });
    is($a->{response}{body}, '11', "$lang: a new connection is served after an oversized frame");

    # Malformed JSON: an error answer, then the connection is closed.
    for my $bad (['not json', '{"id": "x", '], ['not an object', '[1,2]'],
                 ['bad UTF-8', "{\"id\":\"\xff\xfe\"}"]) {
        $c = $rt->connect;
        $a = $c->call($bad->[1]);
        ok($a && !$a->{ok}, "$lang: $bad->[0]: an error answer");
        is($a && $a->{error}{type}, 'Runtime.BadRequest', "$lang: $bad->[0]: Runtime.BadRequest");
        ok($c->eof_seen(20), "$lang: $bad->[0]: then the connection is closed");
        $c->close;
    }
    $a = $rt->invoke({ n => 12 });
    is($a->{response}{body}, '12', "$lang: served after malformed frames");

    # A client that goes away in the middle of a frame.
    $c = $rt->connect;
    $c->send_raw(pack('N', 100) . '{"id":');
    $c->close;
    $a = $rt->invoke({ n => 13 });
    is($a->{response}{body}, '13', "$lang: served after a half-sent frame");

    # SIGTERM while a client is connected: prompt exit.
    $c = $rt->connect;
    $c->call({ id => 'p', ping => JSON::PP::true() });
    my $status = $rt->stop('TERM');
    ok(!$rt->alive, "$lang: SIGTERM stops the runtime");
    ok(defined $status && ($status & 127) != 9, "$lang: ... without needing SIGKILL")
        or diag("status $status");
    ok($c->eof_seen(5), "$lang: the client sees the connection close");
    $c->close;

    # Started by a parent that ignores SIGTERM: still stops on SIGTERM.
    {
        local $SIG{TERM} = 'IGNORE';
        $rt = Faas::Runtime->start(lang => $lang, files => $SRC{$lang});
    }
    $status = $rt->stop('TERM');
    is($status & 127, 15, "$lang: SIGTERM ends it even when inherited as ignored");

    # An answer over the frame limit becomes an error answer.
    $rt = Faas::Runtime->start(lang => $lang, handler => 'app.huge', files => $SRC{$lang});
    $a = $rt->invoke({});
    ok($a && !$a->{ok}, "$lang: an answer over 8 MiB is refused");
    is($a && $a->{error}{type}, 'Runtime.MarshalError', "$lang: ... as Runtime.MarshalError");
    like($a && $a->{error}{message}, qr/frame limit/, "$lang: ... saying why");
    $rt->stop;
}

faas_finish();
