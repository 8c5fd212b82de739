# Per-invocation log capture: stdout and stderr (and Python's logging,
# Node's console.*) during one invocation land in that invocation's "logs";
# nothing leaks into the next one; output outside invocations goes to the
# runtime's own stderr; FAAS_LOG_MAX caps the logs with a marker line.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Runtime;
use Encode qw(encode_utf8);

my %SRC = (
    python => { 'app.py' => <<'PY' },
import sys, logging, threading
print("IMPORT-TIME stdout")
sys.stderr.write("IMPORT-TIME stderr\n")
log = logging.getLogger("fn")

def handler(event, context):
    tag = event["tag"]
    print("out", tag)
    sys.stderr.write("err %s\n" % tag)
    sys.stdout.buffer.write(b"bytes " + tag.encode() + b"\n")
    logging.warning("warn %s", tag)
    log.setLevel(logging.INFO)
    log.info("info %s", tag)
    if event.get("late"):
        threading.Timer(0.05, lambda: print("LATE", tag)).start()
    return tag

def flood(event, context):
    for i in range(event["lines"]):
        print(event["fill"] * event["width"])
    if event.get("fail"):
        raise RuntimeError("flooded")
    return "done"
PY
    node => { 'app.js' => <<'JS' },
console.log('IMPORT-TIME stdout');
console.error('IMPORT-TIME stderr');
exports.handler = async (event) => {
  const tag = event.tag;
  console.log('out', tag);
  console.error('err ' + tag);
  process.stdout.write(Buffer.from('bytes ' + tag + '\n'));
  console.warn('warn ' + tag);
  console.info('info ' + tag);
  if (event.late) setTimeout(() => console.log('LATE', tag), 50);
  return tag;
};
exports.flood = async (event) => {
  for (let i = 0; i < event.lines; i++) console.log(event.fill.repeat(event.width));
  if (event.fail) throw new Error('flooded');
  return 'done';
};
JS
);

for my $lang (runtime_langs()) {
    my $rt = Faas::Runtime->start(lang => $lang, files => $SRC{$lang});
    my $c = $rt->connect;
    my $a = $c->call($rt->request({ tag => 'AAA', late => JSON::PP::true() }));
    ok($a->{ok}, "$lang: first invocation ok");
    for my $want ('out AAA', 'err AAA', 'bytes AAA', 'warn AAA', 'info AAA') {
        like($a->{logs}, qr/\Q$want\E/, "$lang: logs hold '$want'");
    }
    unlike($a->{logs}, qr/IMPORT-TIME/, "$lang: import-time output is not in the invocation logs");
    like($rt->runtime_log, qr/IMPORT-TIME stdout/, "$lang: import-time stdout went to the runtime's stderr");
    like($rt->runtime_log, qr/IMPORT-TIME stderr/, "$lang: import-time stderr went to the runtime's stderr");

    ok(wait_until(sub { $rt->runtime_log =~ /LATE AAA/ }, 10),
       "$lang: output after the invocation ended goes to the runtime's stderr");
    $a = $c->call($rt->request({ tag => 'BBB' }));
    like($a->{logs}, qr/out BBB/, "$lang: second invocation has its own logs");
    unlike($a->{logs}, qr/AAA/, "$lang: nothing of the first invocation leaks into the second");
    $c->close;
    $rt->stop;

    # The cap
    my $cap = 1000;
    $rt = Faas::Runtime->start(lang => $lang, handler => 'app.flood',
                               files => $SRC{$lang}, log_max => $cap);
    $a = $rt->invoke({ lines => 5, width => 99, fill => 'x' });
    is($a->{logs}, ("x" x 99 . "\n") x 5, "$lang: logs under the cap are complete, no marker");

    $a = $rt->invoke({ lines => 50, width => 99, fill => 'y' });
    my $logs = $a->{logs};
    cmp_ok(length(encode_utf8($logs)), '<=', $cap, "$lang: logs are capped at FAAS_LOG_MAX bytes");
    like($logs, qr/\n\[faas: log truncated, (\d+) bytes dropped\]\n\z/,
         "$lang: truncated logs end with the marker line");
    my ($dropped) = $logs =~ /\[faas: log truncated, (\d+) bytes dropped\]\n\z/;
    (my $kept = $logs) =~ s/\[faas: log truncated, \d+ bytes dropped\]\n\z//;
    # The marker starts a line of its own: a newline is added after a cut
    # that did not fall at the end of a line.
    my $full = ("y" x 99 . "\n") x 50;
    my $content = $kept;
    chop $content if substr($full, 0, length $kept) ne $kept;
    is(substr($full, 0, length $content), $content, "$lang: the kept part is the start of the output");
    is($dropped + length($content), 5000, "$lang: kept + dropped = everything written");
    cmp_ok(length($kept), '>', $cap / 2, "$lang: the cap keeps most of its room for output");

    # A multi-byte character cut by the cap stays valid UTF-8.
    $a = $rt->invoke({ lines => 50, width => 33, fill => "\x{20ac}" });
    $logs = $a->{logs};
    cmp_ok(length(encode_utf8($logs)), '<=', $cap, "$lang: UTF-8 output capped in bytes");
    (my $k2 = $logs) =~ s/\n?\[faas: log truncated, \d+ bytes dropped\]\n\z//;
    unlike($k2, qr/\x{fffd}/, "$lang: no character cut in half");
    like($k2, qr/\A(\x{20ac}+\n)*\x{20ac}*\z/, "$lang: kept part is whole characters");

    # The trace of an exception still reaches the logs' end... within the cap.
    $a = $rt->invoke({ lines => 2, width => 10, fill => 'z', fail => JSON::PP::true() });
    ok(!$a->{ok}, "$lang: failing flood is an error");
    like($a->{logs}, qr/\Azzzzzzzzzz\nzzzzzzzzzz\n.*flooded/s, "$lang: output then the error in the logs");

    # Logs capped, the next invocation starts empty again.
    $a = $rt->invoke({ lines => 1, width => 3, fill => 'q' });
    is($a->{logs}, "qqq\n", "$lang: the cap does not carry over to the next invocation");
    $rt->stop;
}

faas_finish();
