# Tenancy through the real gateway (conf/platform.sh, nginx, JWTs): alice
# creates function tf, calls it, deletes it; bob creates tf. Bob sees none
# of alice's records or logs: the delete removed them (MySQL rows and log
# files, and nothing of alice's other function), and reads go through the
# current incarnation of the name anyway (a record of alice's version that
# arrives late stays invisible). The logs endpoint serves only the
# request's own key under logs/<name>/. Subjects are checked by the same
# rule in the gateway and the registry and compared exactly; admin rights
# come from the token's faas_admin claim (faas_admin_claim) only, never from
# a user name, and client-sent X-Faas-User / X-Faas-Admin are dropped.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use DBI;
use POSIX qw(strftime);
use Faas::Test;
use Faas::Platform;
use Faas::Jwt;
use Faas::Registry qw(api exec_record);

for my $b (qw(faas-registry faas-provisioner faas-agent ngx_http_faas_module.so)) {
    plan skip_all => "objs/$b is not built" unless -e objs_dir() . "/$b";
}
plan skip_all => 'needs root (sandboxes)' unless $> == 0;

my $p = start_platform(examples => 0);
is($p->{run}{rc}, 0, 'the platform runs') or diag $p->{run}{err};
BAIL_OUT('the platform did not start') if $p->{run}{rc};
my $secret = read_file($p->{secret});
$secret =~ s/\n\z//;
my $r = redis_client(platform_redis($p));
my $reg = { socket => "$p->{var}/run/registry.sock" };
my $dbh = DBI->connect("DBI:MariaDB:database=faas;mariadb_socket=$p->{var}/run/mysqld.sock",
                       'root', '', { RaiseError => 1, PrintError => 0 });

sub tok { jwt_hs({ alg => 'HS256', typ => 'JWT' }, { exp => time + 3600, @_ }, $secret) }
sub call {
    my ($tok, $method, $path, %o) = @_;
    my $res = https($p, $method, $path, body => $o{body}, headers => {
        ($tok ? (Authorization => "Bearer $tok") : ()),
        ($o{json} ? ('Content-Type' => 'application/json') : ()),
        %{ $o{headers} || {} } }, $o{json} ? (body => json_encode($o{json})) : ());
    $res->{json} = eval { json_decode($res->{body}) }
        if ($res->{headers}{'content-type'} // '') =~ /json/;
    return $res;
}
sub create {
    my ($tok, $name, $says) = @_;
    return call($tok, 'POST', '/v1/functions', json => {
        name => $name, runtime => 'python3', handler => 'app.handler',
        code => { file => 'app.py', content => "def handler(event, context):\n"
                  . "    print('$says')\n    return {'statusCode': 200, 'body': '$says'}\n" } });
}
# Calls $name, waits for its record and logs; returns the record.
sub invoke_logged {
    my ($tok, $name, $says) = @_;
    my $res = call($tok, 'GET', "/fn/$name");
    is($res->{status}, 200, "$name answers") or diag $res->{body};
    my $id = $res->{headers}{'x-faas-request-id'};
    my $rec;
    ok(wait_until(sub {
        my $x = call($tok, 'GET', "/v1/functions/$name/executions/$id");
        $rec = $x->{json} if $x->{status} == 200;
        return $rec;
    }, 30), "$name: its record is listed");
    ok(wait_until(sub {
        call($tok, 'GET', "/v1/functions/$name/executions/$id/logs")->{body} =~ /\Q$says\E/
    }, 30), "$name: its logs are served");
    return $rec;
}
sub rows { $dbh->selectrow_array('SELECT COUNT(*) FROM executions WHERE function = ?', undef, $_[0]) }

my ($alice, $bob) = (tok(sub => 'alice'), tok(sub => 'bob'));
my $store = "$p->{var}/store";

# --- alice: tf and tk, called ---
is(create($alice, 'tf', 'alice-secret-tf')->{status}, 201, 'alice creates tf');
is(create($alice, 'tk', 'alice-keeps-tk')->{status}, 201, 'alice creates tk');
my $old = invoke_logged($alice, 'tf', 'alice-secret-tf');
my $kept = invoke_logged($alice, 'tk', 'alice-keeps-tk');
ok(-f "$store/$old->{log_key}", "tf's log is in the store ($old->{log_key})");

# --- alice deletes tf: its records and logs go, nothing else ---
my $res = call($alice, 'DELETE', '/v1/functions/tf');
is($res->{status}, 200, 'alice deletes tf');
is(rows('tf'), 0, "tf's records are deleted from MySQL");
ok(!-e "$store/$old->{log_key}", "tf's log is deleted from the store");
is($dbh->selectrow_array('SELECT COUNT(*) FROM purges'), 0, 'the purge finished');
is(rows('tk'), 1, "alice's other function keeps its record");
ok(-f "$store/$kept->{log_key}", '... and its log');

# --- bob creates tf: nothing of alice's ---
is(create($bob, 'tf', 'bob-tf')->{status}, 201, 'bob creates a function named tf');
$res = call($bob, 'GET', '/v1/functions/tf/executions');
is($res->{status}, 200, 'bob lists the executions of tf');
is_deeply($res->{json}{executions}, [], '... and sees none of alice\'s');
$res = call($bob, 'GET', "/v1/functions/tf/executions/$old->{request_id}");
is($res->{status}, 404, "alice's request id is not found");
$res = call($bob, 'GET', "/v1/functions/tf/executions/$old->{request_id}/logs");
is($res->{status}, 404, '... nor its logs');
is($res->{json}{error}{code}, 'not_found', '... a JSON error');

# A record of alice's incarnation reaching the drain after the delete (a
# call that ended meanwhile) is dropped, with its log.
my $day = strftime('%Y-%m-%d', gmtime);
my $late = 'ab' x 16;
mkdir "$store/logs/tf"; mkdir "$store/logs/tf/$day";
write_file("$store/logs/tf/$day/$late.log", "alice-late-output\n");
$r->rpush('faas:records', exec_record(
    request_id => $late, function => 'tf', version => $old->{version}, user => 'alice',
    start_type => 1, status => 0, http_status => 200, duration_us => 1, total_us => 1,
    cold_start_us => 0, memory_bytes => 1, log_key => "logs/tf/$day/$late.log",
    agent_host => 'h', timestamp_ms => int(time * 1000), sandbox_id => 's-0123456789abcdef'));
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'a late record of alice\'s tf is drained');
is(rows('tf'), 0, '... and dropped, not stored');
ok(!-e "$store/logs/tf/$day/$late.log", '... its log deleted');

# Had the deletion of alice's records failed, bob would still not see them:
# reads go through the current incarnation of tf (version >= bob's first).
write_file("$store/logs/tf/$day/$late.log", "alice-late-output\n");
$dbh->do(q{INSERT INTO executions (request_id, function, version, user, start_type,
           status, http_status, duration_us, total_us, cold_start_us, memory_bytes,
           log_key, agent_host, sandbox_id, timestamp_ms) VALUES (?, 'tf', ?, 'alice',
           'COLD', 'OK', 200, 1, 1, 0, 1, ?, 'h', 's-0123456789abcdef', ?)}, undef,
         $late, $old->{version}, "logs/tf/$day/$late.log", int(time * 1000));
is(rows('tf'), 1, 'a record of alice\'s tf left in MySQL');
$res = call($bob, 'GET', '/v1/functions/tf/executions');
is_deeply($res->{json}{executions}, [], 'bob still lists none');
is(call($bob, 'GET', "/v1/functions/tf/executions/$late")->{status}, 404, '... cannot get it');
$res = call($bob, 'GET', "/v1/functions/tf/executions/$late/logs");
is($res->{status}, 404, '... nor its logs');
unlike($res->{body}, qr/alice-late-output/, '... whose text is not served');

# --- the logs endpoint serves only the request's own key under logs/tf/ ---
my $bobs = invoke_logged($bob, 'tf', 'bob-tf');
my $n = 0;
for my $key ($kept->{log_key}, "code/tf/1/x.zip", "logs/tf/$day/../../tk/x.log",
             "logs/tf/$day/$late.log") {
    my $id = sprintf('%032x', 0xbeef00 + ++$n);
    $r->rpush('faas:records', exec_record(
        request_id => $id, function => 'tf', version => $bobs->{version}, user => 'bob',
        start_type => 1, status => 0, http_status => 200, duration_us => 1, total_us => 1,
        cold_start_us => 0, memory_bytes => 1, log_key => $key, agent_host => 'h',
        timestamp_ms => int(time * 1000), sandbox_id => 's-0123456789abcdef'));
    ok(wait_until(sub { call($bob, 'GET', "/v1/functions/tf/executions/$id")->{status} == 200 }, 30),
       "a record of bob's tf naming $key");
    $res = call($bob, 'GET', "/v1/functions/tf/executions/$id/logs");
    is($res->{status}, 404, '... its logs: 404');
    is($res->{json}{error}{code}, 'not_found', '... with a JSON error');
    unlike($res->{body}, qr/alice/, '... and nothing of alice');
}

# --- subjects: one strict rule, exact comparison ---
for my $sub ("alice ", " alice", "alice\r\nX-Faas-User: admin", "al ice", '') {
    $res = call(tok(sub => $sub), 'GET', '/v1/functions/tk');
    is($res->{status}, 401, 'gateway refuses sub ' . json_encode($sub));
}
for my $user ("al ice", "alice,bob", 'x' x 129, "al/ice") {
    $res = api($reg, 'GET', '/v1/functions/tk', user => $user);
    is($res->{status}, 400, 'registry refuses X-Faas-User ' . json_encode($user));
    like($res->{json}{error}{message} // '', qr/malformed subject/, '... saying why');
}
is(api($reg, 'GET', '/v1/functions/tk', user => 'alice')->{status}, 200,
   'registry: alice is alice');
is(api($reg, 'GET', '/v1/functions/tk', user => 'Alice')->{status}, 404,
   'registry: Alice is not alice');
is(call(tok(sub => 'Alice'), 'GET', '/v1/functions/tk')->{status}, 404,
   'gateway: a token for Alice does not reach alice\'s function');

# --- client-sent identity headers are dropped ---
$res = call($bob, 'GET', '/v1/functions/tk', headers => { 'X-Faas-User' => 'alice' });
is($res->{status}, 404, 'bob sending X-Faas-User: alice is still bob');
$res = call($bob, 'GET', '/v1/functions/tk', headers => { 'X-Faas-Admin' => '1' });
is($res->{status}, 404, 'bob sending X-Faas-Admin: 1 is no admin');

# --- admin rights: the claim, not a name ---
is(call(tok(sub => 'admin'), 'GET', '/v1/functions/tk')->{status}, 404,
   'a subject named "admin" has no rights');
my $ops = tok(sub => 'ops', faas_admin => JSON::PP::true);
$res = call($ops, 'GET', '/v1/functions/tk');
is($res->{status}, 200, 'a token with faas_admin: true sees alice\'s function');
is($res->{json}{owner}, 'alice', '... owned by alice');
$res = call($ops, 'GET', '/v1/functions');
is_deeply([ sort map { $_->{name} } @{ $res->{json}{functions} } ], [qw(tf tk)],
          '... and lists every function');
for my $v ('true', 1, JSON::PP::false) {
    $res = call(tok(sub => 'ops', faas_admin => $v), 'GET', '/v1/functions/tk');
    is($res->{status}, 404, 'faas_admin: ' . json_encode($v) . ' is no admin claim');
}

stop_platform($p);
faas_finish();
