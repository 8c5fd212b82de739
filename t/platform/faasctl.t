# faasctl against the real registry (MariaDB, Redis, file:// store), talking
# straight to the registry's Unix socket with the testing-only --user flag
# (what nginx sends after its JWT check). Through nginx and HTTPS it is
# exercised by t/platform/e2e.t. Covers every command, the error messages
# and the exit codes (0 ok, 1 server error, 2 usage, 3 unreachable, 4 404).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX qw(strftime);
use MIME::Base64 qw(decode_base64);
use Digest::SHA qw(hmac_sha256);
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;
use Faas::Platform;

my $db = start_mariadb();
my $redis = start_redis();
my $r = redis_client($redis);
my $reg = start_registry(db => $db, redis => $redis,
                         cfg => { records_interval_ms => 50 });
my $w = work_dir();
my $store = "$w/store";

# Whatever the developer's shell has must not leak into these runs.
faasctl_env(map { ($_ => undef) } qw(FAAS_URL FAAS_TOKEN FAAS_CACERT
    FAAS_JWT_SECRET_FILE FAAS_SUBJECT FAAS_KEY FAAS_UNIX_SOCKET));
my @alice = ('--unix-socket', $reg->{socket}, '--user', 'alice');
my @bob = ('--unix-socket', $reg->{socket}, '--user', 'bob');

# --- usage errors: exit 2, one clear line ---
my $x = faasctl();
is($x->{rc}, 2, 'no command: exit 2');
like($x->{err}, qr/usage: faasctl/, '... with the usage');
$x = faasctl('--help');
is($x->{rc}, 0, '--help: exit 0');
like($x->{out}, qr/exit codes: 0 ok/, '--help documents the exit codes');
like($x->{out}, qr/--user NAME\s+TESTING ONLY/, '--help marks --user as testing only');
for my $bad (
    [ ['frobnicate'], qr/unknown command "frobnicate"/ ],
    [ [@alice, 'info', 'Bad_Name'], qr/invalid function name "Bad_Name"/ ],
    [ [@alice, 'ls', '--name', 'x'], qr/option --name does not apply/ ],
    [ [@alice, 'ls', '--bogus'], qr/unknown or incomplete option "--bogus"/ ],
    [ [@alice, 'info'], qr/usage: faasctl info <name>/ ],
    [ [@alice, 'deploy', $w], qr/--name is required/ ],
    [ [@alice, 'deploy', "$w/none", '--name', 'x'], qr/none: No such file/ ],
    [ [@alice, 'deploy', $w, '--name', 'x', '--memory', 'lots'],
      qr/--memory: "lots" is not a number/ ],
    [ [@alice, 'deploy', $w, '--name', 'x', '--env', 'NOEQUALS'],
      qr/--env: "NOEQUALS" is not K=V/ ],
    [ [@alice, 'deploy', $w, '--name', 'x', '--runtime', 'ruby'],
      qr/--runtime must be python3 or nodejs/ ],
    [ [@alice, 'deploy', $w, '--name', 'x', '--public', '--private'],
      qr/--public and --private together/ ],
    [ [@alice, 'invoke', 'x', '--path', 'nope'], qr/--path must start with \// ],
    [ [@alice, 'invoke', 'x', '-H', 'novalue'], qr/is not 'Name: value'/ ],
    [ [@alice, 'invoke', 'x', '--data', '@/nonexistent'], qr/nonexistent: No such file/ ],
    [ [@alice, 'logs', 'x', 'zz'], qr/invalid request id "zz"/ ],
    [ [@alice, 'keys', 'explode', 'x'], qr/unknown keys command "explode"/ ],
    [ [@alice, 'keys', 'rm', 'x'], qr/usage: keys rm <name> <key-id>/ ],
    [ [@alice, 'keys', 'rm', 'x', 'abc'], qr/invalid key id "abc"/ ],
    [ ['--url', 'localhost', 'ls'], qr/has no scheme/ ],
    [ ['token'], qr/no secret: pass --secret-file/ ],
) {
    my ($args, $re) = @$bad;
    $x = faasctl(@$args);
    is($x->{rc}, 2, "exit 2: @$args");
    like($x->{err}, $re, "... says $re");
}

# --- unreachable: exit 3 ---
$x = faasctl('--unix-socket', "$w/nothing.sock", '--user', 'a', 'ls');
is($x->{rc}, 3, 'no server: exit 3');
like($x->{err}, qr/^faasctl: ls: GET http:\/\/localhost\/v1\/functions: /,
     '... names the request');

# --- token ---
write_file("$w/secret", "s3cret-for-tests\n");
$x = faasctl('--secret-file', "$w/secret", '--subject', 'carol', 'token',
             '--ttl', '120', '--issuer', 'me', '--audience', 'faas');
is($x->{rc}, 0, 'token: exit 0');
chomp(my $jwt = $x->{out});
my ($h64, $c64, $s64) = split /\./, $jwt;
sub b64url { my $s = shift; $s =~ tr/-_/+\//; $s .= '=' x ((4 - length($s) % 4) % 4); decode_base64($s) }
my $hdr = json_decode(b64url($h64));
my $claims = json_decode(b64url($c64));
is($hdr->{alg}, 'HS256', 'HS256 header');
is($claims->{sub}, 'carol', 'subject');
is($claims->{exp} - $claims->{iat}, 120, 'exp = iat + ttl');
ok(abs($claims->{iat} - time) < 60, 'iat is now');
is($claims->{iss}, 'me', 'issuer');
is($claims->{aud}, 'faas', 'audience');
is(b64url($s64), hmac_sha256("$h64.$c64", 's3cret-for-tests'),
   'signed with the file content minus its final newline');
$x = faasctl({ FAAS_JWT_SECRET_FILE => "$w/secret" }, 'token');
is($x->{rc}, 0, 'token with FAAS_JWT_SECRET_FILE');
is(json_decode(b64url((split /\./, $x->{out})[1]))->{sub}, 'dev', 'default subject dev');
write_file("$w/empty", "\n");
$x = faasctl('--secret-file', "$w/empty", 'token');
is($x->{rc}, 2, 'empty secret: exit 2');
like($x->{err}, qr/is empty/, '... says so');
write_file("$w/pem", "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n");
$x = faasctl('--secret-file', "$w/pem", 'token');
is($x->{rc}, 2, 'PEM as a secret: exit 2');
like($x->{err}, qr/holds a PEM key/, '... says so');
$x = faasctl('--secret-file', "$w/missing", 'token');
is($x->{rc}, 2, 'missing secret file: exit 2');

# --- authentication errors from the server: exit 1 with a hint ---
$x = faasctl('--unix-socket', $reg->{socket}, 'ls');
is($x->{rc}, 1, 'no credentials: exit 1');
like($x->{err}, qr/\(HTTP 401 unauthenticated\); set FAAS_TOKEN/, '... with the status and a hint');

# --- deploy a directory (new function) ---
write_file("$w/fn1/app.py", "import lib.util\ndef handler(event, context):\n    return lib.util.msg()\n");
write_file("$w/fn1/lib/__init__.py", "");
write_file("$w/fn1/lib/util.py", "def msg():\n    return {'v': 1}\n");
write_file("$w/fn1/.git/config", "not deployed");
$x = faasctl(@alice, 'deploy', "$w/fn1", '--name', 'hello', '--runtime', 'python3',
             '--handler', 'app.handler', '--memory', '192', '--timeout', '4000',
             '--env', 'GREETING=hi', '--env', 'EMPTY=', '--max-concurrency', '4',
             '--keep-alive', '90');
is($x->{rc}, 0, 'deploy a new function: exit 0') or diag $x->{err};
is($x->{out}, "created hello version 1\n", '... says created, version 1');
$x = faasctl(@alice, 'info', 'hello');
is($x->{rc}, 0, 'info: exit 0');
my $info = json_decode($x->{out});
is($info->{runtime}, 'python3', 'runtime');
is($info->{handler}, 'app.handler', 'handler');
is($info->{memory_mb}, 192, 'memory');
is($info->{timeout_ms}, 4000, 'timeout');
is($info->{max_concurrency}, 4, 'max concurrency');
is($info->{keep_alive_s}, 90, 'keep-alive');
is_deeply($info->{env}, { GREETING => 'hi', EMPTY => '' }, 'env');
ok(!$info->{public}, 'private by default');
is($r->hget('faas:fn:hello', 'rid'), 'hello@1', 'mirrored to Redis');
my $zip = read_file("$store/$info->{code_key}");
ok(defined $zip, 'the zip is in the store');
like($zip, qr/lib\/util\.py/, 'subdirectories are packed');
unlike($zip, qr/\.git/, '.git is not packed');

# --- ls ---
$x = faasctl(@alice, 'ls');
is($x->{rc}, 0, 'ls: exit 0');
like($x->{out}, qr/^NAME\s+VERSION\s+RUNTIME/, 'ls: header');
like($x->{out}, qr/^hello\s+1\s+python3\s+app\.handler\s+192\s+4000\s+no\s+alice$/m,
     'ls: one line per function');
$x = faasctl(@alice, '--json', 'ls');
is(json_decode($x->{out})->{functions}[0]{name}, 'hello', 'ls --json: the API answer');
$x = faasctl(@bob, 'ls');
unlike($x->{out}, qr/hello/, 'another user does not see it');
$x = faasctl(@bob, 'info', 'hello');
is($x->{rc}, 4, "another user's function: exit 4");
like($x->{err}, qr/HTTP 404 not_found/, '... with the status and code');

# --- deploy again: a new version, settings changed only when given ---
write_file("$w/fn1/lib/util.py", "def msg():\n    return {'v': 2}\n");
$x = faasctl(@alice, 'deploy', "$w/fn1", '--name', 'hello', '--memory', '256');
is($x->{rc}, 0, 'redeploy: exit 0') or diag $x->{err};
like($x->{out}, qr/^updated hello to version (\d+)$/, '... says updated');
$info = json_decode(faasctl(@alice, 'info', 'hello')->{out});
ok($info->{version} >= 2, 'a new version');
is($info->{memory_mb}, 256, 'memory changed');
is($info->{timeout_ms}, 4000, 'timeout kept');
is_deeply($info->{env}, { GREETING => 'hi', EMPTY => '' }, 'env kept');
like(read_file("$store/$info->{code_key}") // '', qr/util\.py/, 'new code stored');
my $v = $info->{version};
$x = faasctl(@alice, 'deploy', "$w/fn1", '--name', 'hello', '--env', 'ONLY=1', '--public');
is($x->{rc}, 0, 'redeploy with --env and --public');
$info = json_decode(faasctl(@alice, 'info', 'hello')->{out});
is_deeply($info->{env}, { ONLY => '1' }, '--env replaces the environment');
ok($info->{public}, 'now public');
ok($info->{version} > $v, 'and a newer version');
$x = faasctl(@alice, 'deploy', "$w/fn1", '--name', 'hello', '--runtime', 'nodejs');
is($x->{rc}, 2, 'changing the runtime: exit 2');
like($x->{err}, qr/runs python3; the runtime of a function cannot change/, '... says why');
$x = faasctl(@alice, 'deploy', "$w/fn1", '--name', 'hello', '--handler', 'nothere.handler');
is($x->{rc}, 1, 'handler file missing: exit 1 (the registry refuses)');
like($x->{err}, qr/HTTP 400 bad_code/, '... with the registry\'s code');

# --- deploy a single file, Node.js ---
write_file("$w/index.js", "exports.handler = async (e) => ({ statusCode: 200, body: 'js' });\n");
$x = faasctl(@alice, 'deploy', "$w/index.js", '--name', 'js-fn', '--runtime', 'nodejs',
             '--handler', 'index.handler', '--public');
is($x->{rc}, 0, 'deploy a single file') or diag $x->{err};
$info = json_decode(faasctl(@alice, 'info', 'js-fn')->{out});
is($info->{runtime}, 'nodejs', 'nodejs');
ok($info->{public}, 'public');
$x = faasctl(@alice, 'deploy', "$w/index.js", '--name', 'js-new');
is($x->{rc}, 2, 'a new function without --runtime/--handler: exit 2');
like($x->{err}, qr/needs --runtime and --handler/, '... says so');
write_file("$w/broken.py", "def handler(:\n");
$x = faasctl(@alice, 'deploy', "$w/broken.py", '--name', 'broken',
             '--runtime', 'python3', '--handler', 'broken.handler');
is($x->{rc}, 1, 'code that does not compile: exit 1');
like($x->{err}, qr/\(HTTP 400 bad_code\)/, '... the registry\'s answer');
mkdir "$w/emptydir";
$x = faasctl(@alice, 'deploy', "$w/emptydir", '--name', 'e', '--runtime', 'python3',
             '--handler', 'a.b');
is($x->{rc}, 2, 'an empty directory: exit 2');
like($x->{err}, qr/no file to deploy/, '... says so');

# --- access keys ---
$x = faasctl(@alice, 'keys', 'create', 'hello');
is($x->{rc}, 0, 'keys create: exit 0');
like($x->{out}, qr/^fk_[A-Za-z0-9_-]{43}\n\z/, 'the key alone on stdout');
like($x->{err}, qr/key id (\d+) of hello; it is shown once/, 'its id on stderr');
my ($kid) = $x->{err} =~ /key id (\d+)/;
my $key = $x->{out} =~ s/\n//r;
$x = faasctl(@alice, 'keys', 'ls', 'hello');
like($x->{out}, qr/^$kid\s+\Q@{[substr($key, 0, 11)]}\E/m, 'keys ls: id and prefix');
unlike($x->{out}, qr/\Q$key\E/, 'keys ls never shows the key');
$x = faasctl(@alice, 'keys', 'rotate', 'hello', $kid);
is($x->{rc}, 0, 'keys rotate: exit 0');
like($x->{out}, qr/^fk_/, 'a new key');
my ($kid2) = $x->{err} =~ /key id (\d+)/;
$x = faasctl(@alice, 'keys', 'rm', 'hello', $kid);
is($x->{rc}, 4, 'the rotated-out key is gone: exit 4');
$x = faasctl(@alice, 'keys', 'rm', 'hello', $kid2);
is($x->{rc}, 0, 'keys rm: exit 0');
is($x->{out}, "revoked key $kid2 of hello\n", '... says so');
is($r->hget('faas:fn:hello', 'keys') // '', '', 'no key left in the mirror');

# --- executions and logs (records pushed the way the gateway does) ---
my $now = int(time * 1000);
my $day = strftime('%Y-%m-%d', gmtime($now / 1000));
my @rids = map { sprintf('%032x', 0xabc000 + $_) } 1 .. 3;
for my $i (0 .. 2) {
    $r->rpush('faas:records', exec_record(
        request_id => $rids[$i], function => 'hello', version => 2, user => 'alice',
        start_type => 1 + $i, status => 0, http_status => 200,
        duration_us => 1500, total_us => 2500, memory_bytes => 4 << 20,
        log_key => ($i == 1 ? '' : "logs/hello/$day/$rids[$i].log"),
        agent_host => 'h', timestamp_ms => $now + $i, sandbox_id => 's-0123456789abcdef',
        ($i == 2 ? (trace_id => '4bf92f3577b34da6a3ce929d0e0e4736') : ())));
}
write_file("$store/logs/hello/$day/$rids[0].log", "first log\n");
write_file("$store/logs/hello/$day/$rids[2].log", "third log");
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'records drained');
$x = faasctl(@alice, 'executions', 'hello');
is($x->{rc}, 0, 'executions: exit 0');
like($x->{out}, qr/^TIME\s+REQUEST-ID/, 'a header');
like($x->{out}, qr/^\S+Z\s+$rids[2]\s+2\s+STOLEN\s+OK\s+200\s+1\.500\s+2\.500\s+4096\s+4bf92f3577b34da6a3ce929d0e0e4736$/m,
     'one line per execution, newest first, with its trace id');
like($x->{out}, qr/^\S+Z\s+$rids[0]\s+2\s+COLD\s+OK\s+200\s+1\.500\s+2\.500\s+4096\s+-$/m,
     'a record without a trace id shows -');
my @order = $x->{out} =~ /^\S+Z\s+([0-9a-f]{32})/mg;
is_deeply(\@order, [ reverse @rids ], 'newest first');
$x = faasctl(@alice, 'executions', 'hello', '--limit', '2');
like($x->{err}, qr/more: faasctl executions hello --before \d+\.$rids[1]/, 'a cursor for the next page');
my ($cursor) = $x->{err} =~ /--before (\S+)/;
$x = faasctl(@alice, 'executions', 'hello', '--limit', '2', '--before', $cursor);
is_deeply([ $x->{out} =~ /([0-9a-f]{32})/g ], [ $rids[0] ], 'the next page');
$x = faasctl(@alice, 'logs', 'hello', $rids[0]);
is($x->{rc}, 0, 'logs of a request: exit 0');
is($x->{out}, "first log\n", 'the stored log, verbatim');
$x = faasctl(@alice, 'logs', 'hello', $rids[2]);
is($x->{out}, "third log\n", 'a final newline is added');
$x = faasctl(@alice, 'logs', 'hello', $rids[1]);
is($x->{rc}, 4, 'no log: exit 4');
$x = faasctl(@alice, 'logs', 'hello');
is($x->{rc}, 0, 'logs of the latest executions');
is($x->{out}, "=== " . ($x->{out} =~ /^=== (\S+)/)[0] . " $rids[0] OK\nfirst log\n"
              . "=== " . ($x->{out} =~ /\n=== (\S+)/)[0] . " $rids[2] OK\nthird log\n",
   'oldest first, each with a header; the one without a log skipped');
$x = faasctl(@bob, 'logs', 'hello', $rids[0]);
is($x->{rc}, 4, "another user's logs: exit 4");

# --- logs --follow: the calls already there, then each new one once ---
sub record_of {
    my ($rid, %o) = @_;
    return exec_record(
        request_id => $rid, function => 'hello', version => 2, user => 'alice',
        start_type => 2, status => 0, http_status => 200, duration_us => 1500,
        total_us => 2500, log_key => "logs/hello/$day/$rid.log", agent_host => 'h',
        timestamp_ms => int(time * 1000), sandbox_id => 's-0123456789abcdef', %o);
}
my $fout = "$w/follow.out";
my $fpid = fork() // die "fork: $!";
if ($fpid == 0) {
    open(STDOUT, '>', $fout) or POSIX::_exit(127);
    open(STDERR, '>', "$w/follow.err") or POSIX::_exit(127);
    exec(objs_dir() . '/faasctl', @alice, 'logs', '--follow', 'hello') or POSIX::_exit(127);
}
ok(wait_until(sub { (read_file($fout) // '') =~ /third log\n/ }, 10),
   'logs --follow: the logged calls already there first');
my @new = map { sprintf('%032x', 0xabd000 + $_) } 1 .. 2;
write_file("$store/logs/hello/$day/$new[0].log", "fourth log\n");
$r->rpush('faas:records', record_of($new[0]));
ok(wait_until(sub { (read_file($fout) // '') =~ /\Q$new[0]\E OK\nfourth log\n/ }, 10),
   '... then a new call, with its heading');
$r->rpush('faas:records', record_of($new[1], status => 1, http_status => 502));
sleep 2;   # its log comes after its record: tried again at the next polls
write_file("$store/logs/hello/$day/$new[1].log", "fifth log\n");
ok(wait_until(sub { (read_file($fout) // '') =~ /\Q$new[1]\E FUNCTION_ERROR\nfifth log\n/ }, 10),
   '... and a call whose log was stored after its record');
sleep 2;
kill 'TERM', $fpid;
waitpid($fpid, 0);
my $followed = read_file($fout) // '';
is_deeply([ $followed =~ /^=== \S+ ([0-9a-f]{32}) /mg ], [ $rids[0], $rids[2], @new ],
          '... each call once, oldest first, the one without a log skipped');
is(read_file("$w/follow.err") // '', '', '... nothing on stderr');
$x = faasctl(@alice, 'logs', '--follow', 'hello', $rids[0]);
is($x->{rc}, 2, 'logs --follow with a request id: exit 2');

# --- top: figures of the last minute's records, per function ---
my $tnow = int(time * 1000);
my $n = 0;
for my $c ([1, 0, 200, 1000], [2, 0, 200, 2000], [2, 1, 0, 3000], [2, 0, 200, 100000]) {
    $r->rpush('faas:records', exec_record(
        request_id => sprintf('%032x', 0xace000 + ++$n), function => 'js-fn', version => 1,
        user => 'alice', start_type => $c->[0], status => $c->[1], http_status => $c->[2],
        duration_us => 500, total_us => $c->[3], agent_host => 'h',
        timestamp_ms => $tnow - $n, sandbox_id => 's-0123456789abcdef'));
}
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'records for top drained');
$x = faasctl(@alice, 'top', '--iterations', '2');
is($x->{rc}, 0, 'top --iterations 2: exit 0') or diag $x->{err};
my @heads = $x->{out} =~ /^(FUNCTION\s+RATE\/s\s+CALLS\s+P50-MS\s+P99-MS\s+COLD%\s+ERRORS)/mg;
is(scalar @heads, 2, '... two refreshes, each with its header');
like($x->{out}, qr/^js-fn\s+0\.07\s+4\s+2\.000\s+100\.000\s+25\.0\s+1$/m,
     '... rate, calls, p50, p99, cold share and errors of a function');
like($x->{out}, qr/^hello\s+\S+\s+\d+\s/m, '... a row for every function');
$x = faasctl(@bob, 'top', '--iterations', '1');
unlike($x->{out}, qr/^(js-fn|hello)\s/m, "... only the caller's functions");

# --- invoke: the answer's status is the exit code (no /fn on the registry) ---
$x = faasctl(@alice, 'invoke', 'hello', '--data', '{}');
is($x->{rc}, 4, 'invoke answered 404: exit 4');
like($x->{err}, qr/invoke: HTTP 404/, '... and the status on stderr');

# --- rm ---
$x = faasctl(@alice, 'rm', 'hello');
is($x->{rc}, 0, 'rm: exit 0');
is($x->{out}, "deleted hello\n", '... says so');
$x = faasctl(@alice, 'info', 'hello');
is($x->{rc}, 4, 'then info: exit 4');
$x = faasctl(@alice, 'rm', 'hello');
is($x->{rc}, 4, 'rm again: exit 4');
ok(!$r->exists('faas:fn:hello'), 'mirror removed');

faas_finish();
