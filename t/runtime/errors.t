# Runtime bootstraps: a handler that throws, a module that fails to import,
# a missing handler function, a malformed handler name.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Runtime;

my %SRC = (
    python => {
        ext => 'py',
        raises => <<'PY',
def inner(n):
    raise ValueError("bad value %d" % n)

def handler(event, context):
    print("before the raise")
    inner(event["n"])
PY
        custom => <<'PY',
class QuotaExceeded(Exception):
    pass

def handler(event, context):
    raise QuotaExceeded("over quota")
PY
        syntax => "print('loading broken')\ndef handler(event, context)\n    return 1\n",
        raising_import => "print('loading broken')\nimport no_such_module_xyz\ndef handler(e, c):\n    return 1\n",
        nohandler => "def other(event, context):\n    return 1\nhandler_value = 5\n",
        exits => "import sys\nprint('leaving')\nsys.exit(3)\n",
    },
    node => {
        ext => 'js',
        raises => <<'JS',
function inner(n) { throw new RangeError('bad value ' + n); }
exports.handler = async (event) => {
  console.log('before the raise');
  inner(event.n);
};
JS
        custom => <<'JS',
class QuotaExceeded extends Error {
  constructor(m) { super(m); this.name = 'QuotaExceeded'; }
}
exports.handler = async () => { throw new QuotaExceeded('over quota'); };
JS
        syntax => "console.log('loading broken');\nexports.handler = async (event => {\n",
        raising_import => "console.log('loading broken');\nrequire('no_such_module_xyz');\nexports.handler = async () => 1;\n",
        nohandler => "exports.other = async () => 1;\nexports.handler_value = 5;\n",
        exits => "console.log('leaving');\nprocess.exit(3);\n",
    },
);
my %TYPE = (python => 'ValueError', node => 'RangeError');

for my $lang (runtime_langs()) {
    my $s = $SRC{$lang};
    my $file = "app.$s->{ext}";

    # the handler raises
    my $rt = Faas::Runtime->start(lang => $lang, files => { $file => $s->{raises} });
    my $a = $rt->invoke({ n => 7 });
    ok(!$a->{ok}, "$lang: an exception answers ok:false");
    is($a->{error}{type}, $TYPE{$lang}, "$lang: error type is the exception's class");
    is($a->{error}{message}, 'bad value 7', "$lang: error message is the exception's message");
    unlike($a->{error}{message}, qr/inner|Traceback|at /, "$lang: no trace in the message");
    like($a->{error}{trace}, qr/inner/, "$lang: error trace names the raising function");
    unlike($a->{error}{trace}, qr/faas_runtime/, "$lang: the trace starts at the handler")
        if $lang eq 'python';
    like($a->{logs}, qr/before the raise/, "$lang: output before the exception is in the logs");
    like($a->{logs}, qr/bad value 7/, "$lang: the exception is in the logs");
    like($a->{logs}, qr/inner/, "$lang: the trace is in the logs");
    ok($rt->alive, "$lang: the runtime survives an exception");
    $a = $rt->invoke({ n => 8 });
    is($a->{error}{message}, 'bad value 8', "$lang: the next invocation runs the handler again");
    $rt->stop;

    $rt = Faas::Runtime->start(lang => $lang, files => { $file => $s->{custom} });
    $a = $rt->invoke({});
    is($a->{error}{type}, 'QuotaExceeded', "$lang: a custom exception class is the type");
    is($a->{error}{message}, 'over quota', "$lang: ... with its message");
    $rt->stop;

    # import failures: socket still bound, ping answers, every invocation
    # answers the import error
    for my $case (qw(syntax raising_import exits)) {
        $rt = Faas::Runtime->start(lang => $lang, files => { $file => $s->{$case} });
        ok(-S $rt->{socket}, "$lang/$case: the socket is bound despite the import error");
        my $c = $rt->connect;
        my $p = $c->call({ id => 'p', ping => JSON::PP::true() });
        ok($p && $p->{pong}, "$lang/$case: ping answers");
        for my $i (1, 2) {
            $a = $c->call($rt->request({ n => $i }));
            ok($a && !$a->{ok}, "$lang/$case: invocation $i fails");
            is($a->{error}{type}, 'Runtime.ImportModuleError',
               "$lang/$case: invocation $i: Runtime.ImportModuleError");
            like($a->{error}{message}, qr/Unable to import module 'app'/,
                 "$lang/$case: invocation $i: message names the module");
            like($a->{error}{message},
                 $case eq 'syntax' ? qr/SyntaxError: /
                 : $case eq 'exits' ? qr/exit/i : qr/no_such_module_xyz/,
                 "$lang/$case: invocation $i: message says why");
        }
        $p = $c->call({ id => 'p2', ping => JSON::PP::true() });
        ok($p && $p->{pong}, "$lang/$case: ping still answers after the failed invocations");
        $c->close;
        ok($rt->alive, "$lang/$case: the runtime did not exit");
        like($rt->runtime_log, qr/ImportModuleError/,
             "$lang/$case: the import error is in the runtime's own log");
        like($rt->runtime_log, qr/loading broken/, "$lang/$case: output at import time went to the runtime log")
            if $case eq 'raising_import';
        $rt->stop;
    }

    # the module file is missing altogether
    $rt = Faas::Runtime->start(lang => $lang, handler => 'nothere.handler',
                               files => { $file => $s->{nohandler} });
    $a = $rt->invoke({});
    is($a->{error}{type}, 'Runtime.ImportModuleError', "$lang: missing module file -> ImportModuleError");
    like($a->{error}{message}, qr/nothere/, "$lang: ... naming it");
    $rt->stop;

    # module loads, function missing / not callable
    for my $fn (qw(handler handler_value)) {
        $rt = Faas::Runtime->start(lang => $lang, handler => "app.$fn",
                                   files => { $file => $s->{nohandler} });
        $a = $rt->invoke({});
        ok(!$a->{ok}, "$lang: app.$fn fails");
        is($a->{error}{type}, 'Runtime.HandlerNotFound', "$lang: app.$fn -> Runtime.HandlerNotFound");
        like($a->{error}{message}, qr/\Q$fn\E/, "$lang: ... naming $fn");
        $rt->stop;
    }

    # no function part in the handler setting
    $rt = Faas::Runtime->start(lang => $lang, handler => 'app',
                               files => { $file => $s->{nohandler} });
    $a = $rt->invoke({});
    is($a->{error}{type}, 'Runtime.MalformedHandlerName', "$lang: handler 'app' -> Runtime.MalformedHandlerName");
    $rt->stop;

    # Launch errors: no socket path, a socket path that cannot be bound.
    for my $bad (['', qr/FAAS_SOCKET is not set/],
                 [work_dir() . '/no/such/dir/f.sock', qr/no\/such\/dir|ENOENT|No such file/]) {
        $rt = Faas::Runtime->start(lang => $lang, files => { $file => $s->{nohandler} },
                                   handler => 'app.other', wait => 0,
                                   env => { FAAS_SOCKET => $bad->[0] });
        ok(wait_until(sub { !$rt->alive }, 20), "$lang: socket '$bad->[0]': the runtime exits");
        isnt($rt->{proc}{status}, 0, "$lang: socket '$bad->[0]': with a failure status");
        like($rt->runtime_log, $bad->[1], "$lang: socket '$bad->[0]': and says why");
    }
}

faas_finish();
