# The Node.js runtime runs handlers in every style people deploy: async,
# promise, callback (ok and error), sync, context.succeed/fail/done,
# ES modules (.mjs and package.json "type": "module"), nested names, and
# turns unhandled rejections and uncaught exceptions into error answers.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Runtime;

sub run_style {
    my ($label, $handler, $files, $event) = @_;
    my $rt = Faas::Runtime->start(lang => 'node', handler => $handler, files => $files);
    my $a = $rt->invoke($event // { n => 41 });
    my $b = $rt->invoke($event // { n => 1 });
    ok($rt->alive, "$label: runtime still running");
    $rt->stop;
    return ($a, $b);
}

sub body_of { JSON::PP->new->allow_nonref->decode($_[0]{response}{body}) }

my @ok_styles = (
    [ 'async function', 'index.handler', { 'index.js' => <<'JS' } ],
exports.handler = async (event, context) => {
  await new Promise((r) => setTimeout(r, 5));
  return { got: event.n + 1, style: 'async' };
};
JS
    [ 'returns a promise', 'index.handler', { 'index.js' => <<'JS' } ],
exports.handler = (event) => new Promise((resolve) =>
  setTimeout(() => resolve({ got: event.n + 1, style: 'promise' }), 5));
JS
    [ 'callback(null, result)', 'index.handler', { 'index.js' => <<'JS' } ],
exports.handler = function (event, context, callback) {
  setTimeout(() => callback(null, { got: event.n + 1, style: 'callback' }), 5);
};
JS
    [ 'callback with a lingering timer', 'index.handler', { 'index.js' => <<'JS' } ],
exports.handler = function (event, context, callback) {
  setTimeout(() => {}, 60000).unref();
  setTimeout(() => {}, 3000);
  callback(null, { got: event.n + 1, style: 'callback-early' });
};
JS
    [ 'callback fed by a resource opened at import', 'index.handler', { 'index.js' => <<'JS' } ],
// like a connection pool made at import time: the handler adds nothing new
// to the event loop, the answer still waits for the callback
const pending = [];
setInterval(() => { while (pending.length) pending.shift()(); }, 20);
exports.handler = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  pending.push(() => callback(null, { got: event.n + 1, style: 'pool' }));
};
JS
    [ 'sync return', 'index.handler', { 'index.js' => <<'JS' } ],
exports.handler = (event) => ({ got: event.n + 1, style: 'sync' });
JS
    [ 'context.succeed', 'index.handler', { 'index.js' => <<'JS' } ],
exports.handler = function (event, context) {
  setTimeout(() => context.succeed({ got: event.n + 1, style: 'succeed' }), 5);
};
JS
    [ 'context.done(null, r)', 'index.handler', { 'index.js' => <<'JS' } ],
exports.handler = function (event, context) {
  setImmediate(() => context.done(null, { got: event.n + 1, style: 'done' }));
};
JS
    [ '.mjs ES module', 'index.handler', { 'index.mjs' => <<'JS' } ],
import { setTimeout as sleep } from 'node:timers/promises';
const bump = (n) => n + 1;
await sleep(1); // top-level await runs before the socket is bound
export const handler = async (event) => ({ got: bump(event.n), style: 'mjs' });
JS
    [ '.js under package.json type module', 'index.handler', {
        'package.json' => '{"name":"f","type":"module"}',
        'index.js' => <<'JS' } ],
import { helper } from './lib/helper.js';
export async function handler(event) { return { got: helper(event.n), style: 'esm-js' }; }
JS
    [ 'nested dir/file with a sub-object', 'src/api.routes.get', {
        'src/api.js' => <<'JS' } ],
module.exports.routes = { get: async (event) => ({ got: event.n + 1, style: 'nested' }) };
JS
    [ '.cjs module', 'index.handler', { 'index.cjs' => <<'JS' } ],
module.exports.handler = async (event) => ({ got: event.n + 1, style: 'cjs' });
JS
);
# The ESM package needs its helper.
my ($esm_pkg) = grep { $_->[0] =~ /type module/ } @ok_styles;
$esm_pkg->[2]{'lib/helper.js'} = "export const helper = (n) => n + 1;\n";

for my $s (@ok_styles) {
    my ($label, $handler, $files) = @$s;
    my ($a, $b) = run_style($label, $handler, $files);
    ok($a->{ok}, "$label: ok") or diag(explain($a));
    is($a->{response}{statusCode}, 200, "$label: 200");
    is(body_of($a)->{got}, 42, "$label: result from the event");
    is(body_of($b)->{got}, 2, "$label: second invocation answered too");
}

# Void handlers: the answer is null once nothing is pending.
my ($a) = run_style('void sync', 'index.handler', { 'index.js' => <<'JS' });
exports.handler = function (event) { console.log('side effect', event.n); };
JS
ok($a->{ok}, 'void sync handler answers');
is($a->{response}{body}, 'null', 'void sync handler -> null');
like($a->{logs}, qr/side effect 41/, 'void sync handler logs captured');

($a) = run_style('void with pending timer', 'index.handler', { 'index.js' => <<'JS' });
exports.handler = function (event) {
  setTimeout(() => console.log('timer fired'), 30);
};
JS
is($a->{response}{body}, 'null', 'void handler with a timer -> null');
like($a->{logs}, qr/timer fired/, 'the answer waited for the pending timer (empty event loop)');

# Error styles
my @err_styles = (
    [ 'callback(err)', { 'index.js' => <<'JS' }, 'TypeError', 'cb failed 41' ],
exports.handler = (event, context, callback) => {
  setTimeout(() => callback(new TypeError('cb failed ' + event.n)), 5);
};
JS
    [ 'callback(string)', { 'index.js' => <<'JS' }, 'string', 'plain failure' ],
exports.handler = (event, context, callback) => { callback('plain failure'); };
JS
    [ 'rejected promise', { 'index.js' => <<'JS' }, 'Error', 'rejected 41' ],
exports.handler = (event) => Promise.reject(new Error('rejected ' + event.n));
JS
    [ 'sync throw', { 'index.js' => <<'JS' }, 'SyntaxError', 'thrown 41' ],
exports.handler = (event) => { throw new SyntaxError('thrown ' + event.n); };
JS
    [ 'context.fail', { 'index.js' => <<'JS' }, 'Error', 'failed via context' ],
exports.handler = (event, context) => { context.fail(new Error('failed via context')); };
JS
    [ 'unhandled rejection', { 'index.js' => <<'JS' }, 'Runtime.UnhandledPromiseRejection', 'Error: floating 41' ],
exports.handler = (event, context, callback) => {
  Promise.reject(new Error('floating ' + event.n));
};
JS
    [ 'uncaught exception in a timer', { 'index.js' => <<'JS' }, 'ReferenceError', 'late 41' ],
exports.handler = async (event) => {
  await new Promise(() => setTimeout(() => { throw new ReferenceError('late ' + event.n); }, 5));
};
JS
);
for my $s (@err_styles) {
    my ($label, $files, $type, $msg) = @$s;
    my ($a, $b) = run_style($label, 'index.handler', $files);
    ok(!$a->{ok}, "$label: ok:false");
    is($a->{error}{type}, $type, "$label: type $type");
    is($a->{error}{message}, $msg, "$label: message");
    ok(!$b->{ok} && $b->{error}{type} eq $type, "$label: the next invocation is answered too");
}

# A result whose statusCode getter throws: an error answer, not a hang.
($a) = run_style('throwing getter', 'index.handler', { 'index.js' => <<'JS' });
exports.handler = async () => ({ get statusCode() { throw new Error('getter boom'); } });
JS
is($a->{error}{type}, 'Runtime.MarshalError', 'a result that cannot be read -> Runtime.MarshalError');
like($a->{error}{message}, qr/getter boom/, '... with the reason');

# A JSON.stringify(context) body and the callbackWaitsForEmptyEventLoop flag
($a) = run_style('context flag', 'index.handler', { 'index.js' => <<'JS' });
exports.handler = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  callback(null, { flag: context.callbackWaitsForEmptyEventLoop });
};
JS
is_deeply(body_of($a), { flag => JSON::PP::false() },
          'callbackWaitsForEmptyEventLoop is settable and the callback answers');

faas_finish();
