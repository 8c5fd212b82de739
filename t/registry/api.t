# faas-registry management API: every call round trip, owner isolation, the
# admin subject, the Redis mirror and faas:inval, error answers.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;
use POSIX ();

my $db = start_mariadb();
my $redis = start_redis();
my $r = redis_client($redis);
my $reg = start_registry(db => $db, redis => $redis);
my $store = work_dir() . '/store';

# Subscribe to faas:inval on a second connection, read messages later.
my $sub = redis_client($redis);
my @inval;
$sub->subscribe('faas:inval', sub { push @inval, $_[0] });
sub inval_seen {
    my ($name) = @_;
    return wait_until(sub {
        $sub->wait_for_messages(0.1);
        return scalar grep { $_ eq $name } @inval;
    }, 10);
}

# Keyspace events of faas:fn:* and faas:rev:* in the order Redis applied
# the writes.
$r->config_set('notify-keyspace-events', 'Kgh');
my $ks = redis_client($redis);
my @events;
$ks->psubscribe('__keyspace@0__:faas:fn:*', '__keyspace@0__:faas:rev:*', sub {
    my ($op, $chan) = @_;
    push @events, "$op " . ($chan =~ s/^__keyspace\@0__://r);
});
# Forgets the events so far (those still on their way too).
sub events_reset { $ks->wait_for_messages(0.3); @events = () }
# 1 once both were written, $first before $second.
sub written_before {
    my ($first, $second) = @_;
    my $idx = sub { my ($e) = @_; (grep { $events[$_] eq $e } 0 .. $#events)[0] };
    wait_until(sub { $ks->wait_for_messages(0.1); defined $idx->($second) }, 10)
        or return 0;
    my ($i, $j) = ($idx->($first), $idx->($second));
    return defined $i && $i < $j;
}

# --- errors before anything exists ---
my $res = api($reg, 'GET', '/v1/functions');
is($res->{status}, 401, 'no X-Faas-User: 401');
is($res->{json}{error}{code}, 'unauthenticated', 'error object with a code');
$res = api($reg, 'GET', '/v1/nothing', user => 'alice');
is($res->{status}, 404, 'unknown endpoint: 404');
$res = api($reg, 'DELETE', '/v1/functions', user => 'alice');
is($res->{status}, 405, 'DELETE on the collection: 405');
$res = api($reg, 'PUT', '/v1/functions/x', user => 'alice');
is($res->{status}, 405, 'PUT on a function: 405');
$res = api($reg, 'GET', '/v1/functions/x/other', user => 'alice');
is($res->{status}, 404, 'unknown sub-resource: 404');
$res = api($reg, 'GET', '/v1/functions/Bad_Name', user => 'alice');
is($res->{status}, 404, 'invalid name in the path: 404');
$res = api($reg, 'POST', '/v1/functions', user => 'alice', body => '{nope');
is($res->{status}, 400, 'malformed JSON: 400');
like($res->{json}{error}{message}, qr/JSON object/, 'and says why');

my %base = (runtime => 'python3', handler => 'app.handler',
            code => { file => 'app.py', content => py_fn('v1') });
for my $bad (
    [ { %base, name => 'Bad_Name' }, qr/name must match/ ],
    [ { %base, name => 'x' x 64 }, qr/name must match/ ],
    [ { %base, name => 'ok', runtime => 'ruby' }, qr/runtime must be/ ],
    [ { %base, name => 'ok', handler => '../x.handler' }, qr/handler must/ ],
    [ { %base, name => 'ok', handler => 'nodot' }, qr/handler must/ ],
    [ { %base, name => 'ok', memory_mb => 10 }, qr/memory_mb must be/ ],
    [ { %base, name => 'ok', timeout_ms => 'x' }, qr/timeout_ms must be/ ],
    [ { %base, name => 'ok', env => { FAAS_X => '1' } }, qr/reserved/ ],
    [ { %base, name => 'ok', env => { 'A-B' => '1' } }, qr/invalid variable/ ],
    [ { %base, name => 'ok', env => { A => 1 } }, qr/must be a string/ ],
    [ { %base, name => 'ok', env => { A => 'x' x 5000 } }, qr/too long/ ],
    [ { %base, name => 'ok', public => 'yes' }, qr/public must be/ ],
    [ { %base, name => 'ok', colour => 'red' }, qr/unknown field "colour"/ ],
    [ { %base, name => 'ok', code => undef }, qr/code is required/ ],
    [ { %base, name => 'ok', code => { zip => '***' } }, qr/base64/ ],
    [ { %base, name => 'ok', code => { file => '../a.py', content => 'x' } },
      qr/plain .py/ ],
) {
    $res = api($reg, 'POST', '/v1/functions', user => 'alice', json => $bad->[0]);
    is($res->{status}, 400, "invalid create rejected: $bad->[1]");
    like($res->{json}{error}{message} // '', $bad->[1], '... with its message');
}
is_deeply([ $r->keys('faas:fn:*') ], [], 'nothing mirrored after rejections');

# --- create (single file) ---
events_reset();
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    %base, name => 'hello', memory_mb => 256, timeout_ms => 5000,
    max_concurrency => 3, keep_alive_s => 120, env => { GREETING => 'hi' },
    public => JSON::PP::true });
is($res->{status}, 201, 'create: 201') or diag explain $res;
my $fn = $res->{json};
is($fn->{name}, 'hello', 'name');
is($fn->{owner}, 'alice', 'owner = X-Faas-User');
is($fn->{version}, 1, 'version 1');
is($fn->{memory_mb}, 256, 'memory_mb');
like($fn->{code_sha256}, qr/^[0-9a-f]{64}$/, 'sha256 of the zip');
is($fn->{code_key}, "code/hello/1/$fn->{code_sha256}.zip", 'code key layout');
ok(-f "$store/$fn->{code_key}", 'zip is in the file:// store');
my $zipped = read_file("$store/$fn->{code_key}");
is(substr($zipped, 0, 2), 'PK', 'a single file is wrapped into a zip');

my %m = $r->hgetall('faas:fn:hello');
is_deeply(\%m, {
    rid => 'hello@1', name => 'hello', version => '1', owner => 'alice',
    runtime => 'python3', handler => 'app.handler',
    code_key => $fn->{code_key}, code_sha256 => $fn->{code_sha256},
    memory_mb => '256', timeout_ms => '5000', max_concurrency => '3',
    keep_alive_s => '120', public => '1', env => '{"GREETING":"hi"}',
    keys => '',
}, 'Redis mirror holds every field the gateway reads');
ok(inval_seen('hello'), 'create published the name on faas:inval');
%m = $r->hgetall('faas:rev:{hello@1}');
is_deeply(\%m, {
    owner => 'alice', runtime => 'python3', handler => 'app.handler',
    code_key => $fn->{code_key}, code_sha256 => $fn->{code_sha256},
    memory_mb => '256', timeout_ms => '5000', keep_alive_s => '120',
    env => '{"GREETING":"hi"}',
}, 'faas:rev:{hello@1} holds what the provisioner builds from');
ok(written_before('hset faas:rev:{hello@1}', 'hset faas:fn:hello'),
   'faas:rev is written before faas:fn names it') or diag explain \@events;

$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    %base, name => 'hello' });
is($res->{status}, 409, 'duplicate name: 409');
$res = api($reg, 'POST', '/v1/functions', user => 'bob', json => {
    %base, name => 'hello' });
is($res->{status}, 409, 'duplicate name of another owner: 409 too');

# --- create (zip, nodejs) for bob ---
my $js = make_zip([ 'index.js' => "exports.handler = async (e) => ({ ok: 1 });\n",
                    'lib/util.js' => "module.exports = 1;\n" ]);
$res = api($reg, 'POST', '/v1/functions', user => 'bob', json => {
    name => 'bobs', runtime => 'nodejs', handler => 'index.handler',
    code => { zip => b64($js) } });
is($res->{status}, 201, 'create from a base64 zip (nodejs)') or diag explain $res;
is($res->{json}{memory_mb}, 128, 'defaults applied');
is($res->{json}{public}, JSON::PP::false, 'private by default');
is($r->hget('faas:fn:bobs', 'public'), '0', 'mirror: public 0');

# --- get / list with owner isolation ---
$res = api($reg, 'GET', '/v1/functions/hello', user => 'alice');
is($res->{status}, 200, 'owner gets her function');
is($res->{json}{env}{GREETING}, 'hi', 'env round trip');
$res = api($reg, 'GET', '/v1/functions/hello', user => 'bob');
is($res->{status}, 404, 'another user: 404, as if it did not exist');
$res = api($reg, 'GET', '/v1/functions/hello', user => 'admin');
is($res->{status}, 200, 'admin sees every function');
$res = api($reg, 'GET', '/v1/functions', user => 'alice');
is_deeply([ map { $_->{name} } @{ $res->{json}{functions} } ], ['hello'],
          'alice lists only hers');
$res = api($reg, 'GET', '/v1/functions', user => 'bob');
is_deeply([ map { $_->{name} } @{ $res->{json}{functions} } ], ['bobs'],
          'bob lists only his');
$res = api($reg, 'GET', '/v1/functions', user => 'admin');
is_deeply([ map { $_->{name} } @{ $res->{json}{functions} } ],
          ['bobs', 'hello'], 'admin lists all');
$res = api($reg, 'GET', '/v1/functions/nope', user => 'alice');
is($res->{status}, 404, 'missing function: 404');

# --- PATCH ---
@inval = ();
$res = api($reg, 'PATCH', '/v1/functions/hello', user => 'alice',
           json => { public => JSON::PP::false, max_concurrency => 7 });
is($res->{status}, 200, 'patch public/max_concurrency');
is($res->{json}{version}, 1, '... keeps the revision');
is($r->hget('faas:fn:hello', 'max_concurrency'), '7', 'mirror updated');
is($r->hget('faas:fn:hello', 'public'), '0', 'mirror public 0');
ok(inval_seen('hello'), 'patch published an invalidation');
events_reset();
$res = api($reg, 'PATCH', '/v1/functions/hello', user => 'alice',
           json => { memory_mb => 512, env => { A => 'b' } });
is($res->{status}, 200, 'patch memory and env');
is($res->{json}{version}, 2, 'what the sandbox sees changed: new revision')
    or diag explain $res->{json};
is($res->{json}{code_sha256}, $fn->{code_sha256}, 'same code');
is($r->hget('faas:fn:hello', 'rid'), 'hello@2', 'mirror rid follows');
is($r->hget('faas:fn:hello', 'env'), '{"A":"b"}', 'mirror env follows');
is_deeply([ $r->hmget('faas:rev:{hello@2}', qw(memory_mb env)) ], [512, '{"A":"b"}'],
          'faas:rev:{hello@2} written');
ok(written_before('hset faas:rev:{hello@2}', 'hset faas:fn:hello'),
   '... before faas:fn names it') or diag explain \@events;
is($r->hget('faas:rev:{hello@1}', 'memory_mb'), 256,
   'the previous revision\'s hash is left as it was');
$res = api($reg, 'PATCH', '/v1/functions/hello', user => 'alice',
           json => { runtime => 'nodejs' });
is($res->{status}, 400, 'runtime cannot change');
$res = api($reg, 'PATCH', '/v1/functions/hello', user => 'alice',
           json => { handler => 'missing.handler' });
is($res->{status}, 400, 'patch to a handler whose file is missing');
like($res->{json}{error}{message}, qr/not in the archive/, '... says so');
$res = api($reg, 'PATCH', '/v1/functions/hello', user => 'bob',
           json => { memory_mb => 64 });
is($res->{status}, 404, 'bob cannot patch alice\'s function');
$res = api($reg, 'PATCH', '/v1/functions/hello', user => 'admin',
           json => { timeout_ms => 9000 });
is($res->{status}, 200, 'admin can');

# --- PUT code ---
my $v2 = make_zip([ 'app.py' => py_fn('v2'), 'other.py' => "def h(e, c):\n    return 2\n" ]);
$res = api($reg, 'PUT', '/v1/functions/hello/code', user => 'alice',
           body => $v2, headers => { 'Content-Type' => 'application/zip' });
is($res->{status}, 200, 'PUT code: new version') or diag explain $res;
my $ver = $res->{json}{version};
is($ver, 4, 'version numbers keep growing (admin patch made 3)');
is(read_file("$store/$res->{json}{code_key}"), $v2, 'stored zip is the body');
is($res->{json}{memory_mb}, 512, 'config carried over');
is($r->hget('faas:fn:hello', 'rid'), "hello\@$ver", 'mirror points to it');
$res = api($reg, 'PUT', '/v1/functions/hello/code?handler=other.h',
           user => 'alice', body => $v2);
is($res->{status}, 200, 'PUT code with a new handler');
is($res->{json}{handler}, 'other.h', 'handler changed');
$res = api($reg, 'PUT', '/v1/functions/hello/code', user => 'bob', body => $v2);
is($res->{status}, 404, 'bob cannot upload to alice\'s function');
$res = api($reg, 'PUT', '/v1/functions/hello/code', user => 'alice', body => '');
is($res->{status}, 400, 'empty body');

$res = api($reg, 'GET', '/v1/functions/hello/versions', user => 'alice');
is($res->{status}, 200, 'versions list');
is_deeply([ map { $_->{version} } @{ $res->{json}{versions} } ],
          [5, 4, 3, 2, 1], 'every revision, newest first');
$res = api($reg, 'GET', '/v1/functions/hello/versions', user => 'bob');
is($res->{status}, 404, 'versions of another user: 404');
$res = api($reg, 'POST', '/v1/functions/hello/versions', user => 'alice');
is($res->{status}, 405, 'wrong method: 405');

# --- limits ---
$res = api($reg, 'PUT', '/v1/functions/hello/code', user => 'alice',
           body => 'x' x (3 * 1024 * 1024 + 100000));
is($res->{status}, 413, 'body over the cap: 413 before it is read');
like($res->{json}{error}{message}, qr/request body is larger/, '... says so');
$res = api($reg, 'PUT', '/v1/functions/hello/code', user => 'alice',
           body => 'x' x (2 * 1024 * 1024 + 10));
is($res->{status}, 413, 'zip over max_upload_bytes: 413');
like($res->{json}{error}{message}, qr/code is larger than 2097152 bytes/, '... says so');
$res = api($reg, 'GET', '/v1/functions', user => 'u' x 300);
is($res->{status}, 400, 'over-long user name');

# --- DELETE ---
my @keys = map { $_->{code_key} } @{ api($reg, 'GET', '/v1/functions/hello/versions',
                                         user => 'alice')->{json}{versions} };
$res = api($reg, 'DELETE', '/v1/functions/hello', user => 'bob');
is($res->{status}, 404, 'bob cannot delete alice\'s function');
@inval = ();
$res = api($reg, 'DELETE', '/v1/functions/hello', user => 'alice');
is($res->{status}, 200, 'delete');
ok(!$r->exists('faas:fn:hello'), 'mirror removed');
is_deeply([ $r->keys('faas:rev:{hello@*}') ], [], 'and the hash of every revision');
ok($r->exists('faas:rev:{bobs@' . api($reg, 'GET', '/v1/functions/bobs', user => 'bob')->{json}{version} . '}'),
   'another function\'s revision is left alone');
ok(inval_seen('hello'), 'delete published an invalidation');
ok(!(grep { -f "$store/$_" } @keys), 'code removed from the store');
$res = api($reg, 'GET', '/v1/functions/hello', user => 'alice');
is($res->{status}, 404, 'gone');
$res = api($reg, 'POST', '/v1/functions', user => 'bob', json => {
    %base, name => 'hello' });
is($res->{status}, 201, 'the name can be taken again');
is($res->{json}{version}, 6, 'but revisions are never reused (no stale rid)');
$res = api($reg, 'DELETE', '/v1/functions/bobs', user => 'admin');
is($res->{status}, 200, 'admin deletes bob\'s function');

# --- optimistic concurrency: a PATCH landing during an upload wins ---
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => { %base, name => 'conc' });
is($res->{status}, 201, 'conc created');
my $slowzip = make_zip([ 'app.py' => py_fn() . join('', map {
    "v$_ = [$_, $_ + 1, ($_ * 3) % 7, '$_']\n" } 1 .. 40_000) ]);
my $w = work_dir();
my $pid = fork() // die;
if (!$pid) {
    my $x = api($reg, 'PUT', '/v1/functions/conc/code', user => 'alice', body => $slowzip);
    write_file("$w/conc.json", json_encode($x));
    POSIX::_exit(0);
}
ok(wait_until(sub { glob("$w/faas-registry-*") }, 30, 0.005), 'upload is in its syntax check');
$res = api($reg, 'PATCH', '/v1/functions/conc', user => 'alice', json => { memory_mb => 200 });
is($res->{status}, 200, 'PATCH meanwhile');
waitpid($pid, 0);
my $put = json_decode(read_file("$w/conc.json"));
is($put->{status}, 409, 'the upload based on the old version: 409');
like($put->{json}{error}{message}, qr/changed while this request ran: retry/, '... retry');
$res = api($reg, 'GET', '/v1/functions/conc', user => 'alice');
is($res->{json}{memory_mb}, 200, 'the PATCH stands');
is(scalar(() = glob("$store/code/conc/*/*.zip")), 1, 'the refused upload left no zip');

# --- concurrent creates of one name: one wins, nothing half-made ---
my @kids;
for my $i (1 .. 4) {
    my $pid = fork() // die;
    if (!$pid) {
        my $x = api($reg, 'POST', '/v1/functions', user => "racer$i", json => {
            %base, name => 'race', code => { file => 'app.py', content => py_fn("r$i") } });
        POSIX::_exit($x->{status} == 201 ? 0 : $x->{status} == 409 ? 1 : 2);
    }
    push @kids, $pid;
}
my @codes = sort map { waitpid($_, 0); $? >> 8 } @kids;
is_deeply(\@codes, [0, 1, 1, 1], 'concurrent creates: one 201, three 409');
my @race = glob("$store/code/race/*/*.zip");
is(scalar @race, 1, 'only the winner\'s code is stored');
$res = api($reg, 'GET', '/v1/functions/race', user => 'admin');
is("$store/$res->{json}{code_key}", $race[0], 'and it is the registered one');
is($r->hget('faas:fn:race', 'owner'), $res->{json}{owner}, 'mirror agrees');

# --- restart keeps everything (migrations are idempotent) ---
stop_proc($reg);
$reg = start_registry(db => $db, redis => $redis);
$res = api($reg, 'GET', '/v1/functions/hello', user => 'bob');
is($res->{status}, 200, 'after a restart the function is still there');
my $dbh = mariadb_dbh($db, 'faas');
is_deeply([ $dbh->selectrow_array('SELECT COUNT(*), COUNT(DISTINCT version),'
                                   . ' MAX(version) FROM schema_migrations') ],
          [ 3, 3, 3 ], 'each of the 3 migrations applied once');

stop_proc($reg);
faas_finish();
