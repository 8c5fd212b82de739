# Execution records: faas:records drained into MySQL in batches, idempotent
# on request_id; listing and logs through the API; a registry killed in the
# middle of a drain loses and duplicates nothing.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX qw(strftime);
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;
use Faas::Setup;

my $db = start_mariadb();
my $redis = start_redis();
my $r = redis_client($redis);
my $reg = start_registry(db => $db, redis => $redis,
                         cfg => { records_batch => 100, records_interval_ms => 50 });
my $dbh = mariadb_dbh($db, 'faas');
my $store = work_dir() . '/store';

my $res = create_py_function($reg, 'rec');
is($res->{status}, 201, 'function created');

my $T0 = 1_700_000_000_000;
sub rid { sprintf('%032x', $_[0]) }
sub rec {
    my ($i, %o) = @_;
    my $rid = rid($i);
    my $day = strftime('%Y-%m-%d', gmtime(($T0 + $i) / 1000));
    return exec_record(
        request_id => $rid, function => 'rec', version => 1, user => 'alice',
        start_type => 1 + $i % 3, status => 0, http_status => 200,
        duration_us => 1000 + $i, total_us => 2000 + $i, cold_start_us => $i % 3 == 0 ? 30000 : 0,
        memory_bytes => 1 << 20, log_key => "logs/rec/$day/$rid.log",
        agent_host => 'host1', timestamp_ms => $T0 + $i,
        sandbox_id => 's-0123456789abcdef', %o);
}
sub count { $dbh->selectrow_array('SELECT COUNT(*) FROM executions') }

# --- a drain ---
$r->rpush('faas:records', rec($_)) for 1 .. 250;
$r->rpush('faas:records', 'this is not a protobuf');
$r->rpush('faas:records', exec_record(request_id => 'short', function => 'rec'));
$r->rpush('faas:records', rec(7));    # the gateway retried: same request id
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'faas:records drained');
is(count(), 250, '250 records, the duplicate ignored, malformed ones dropped');
my $row = $dbh->selectrow_hashref('SELECT * FROM executions WHERE request_id = ?',
                                  undef, rid(3));
is($row->{function}, 'rec', 'function');
is($row->{start_type}, 'COLD', 'start type by name');
is($row->{status}, 'OK', 'status by name');
is($row->{duration_us}, 1003, 'duration_us');
is($row->{total_us}, 2003, 'total_us');
is($row->{cold_start_us}, 30000, 'cold_start_us');
is($row->{timestamp_ms}, $T0 + 3, 'timestamp');
is($row->{agent_host}, 'host1', 'agent host');
like(read_file($reg->{log}), qr/malformed record/, 'malformed records are logged');

# --- the trace id: kept when well formed, empty otherwise or when absent ---
my $tid = '4bf92f3577b34da6a3ce929d0e0e4736';
$r->rpush('faas:records', rec(901, trace_id => $tid));
$r->rpush('faas:records', rec(902, trace_id => "4BF92F35'; DROP TABLE x; --"));
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'records with trace ids drained');
my $tr = $dbh->selectall_hashref('SELECT request_id, trace_id FROM executions'
                                 . ' WHERE request_id IN (?, ?, ?)', 'request_id',
                                 undef, rid(3), rid(901), rid(902));
is($tr->{rid(901)}{trace_id}, $tid, 'a trace id is stored');
is($tr->{rid(902)}{trace_id}, '', 'a malformed one is stored empty, the record kept');
is($tr->{rid(3)}{trace_id}, '', 'a record without one has it empty');
$res = api($reg, 'GET', '/v1/functions/rec/executions/' . rid(901), user => 'alice');
is($res->{json}{trace_id}, $tid, '... and the API answers it');
$dbh->do('DELETE FROM executions WHERE request_id IN (?, ?)', undef, rid(901), rid(902));

# --- replay of an already stored batch changes nothing ---
$r->rpush('faas:records', rec($_, http_status => 500)) for 1 .. 10;
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'replayed batch drained');
is(count(), 250, 'no duplicate');
is($dbh->selectrow_array('SELECT http_status FROM executions WHERE request_id = ?',
                         undef, rid(1)), 200, 'first write wins');

# --- another registry holds the drain lock ---
$r->set('faas:records:lock', 'someone-else');
$r->rpush('faas:records', rec($_)) for 501 .. 505;
ok(wait_until(sub { read_file($reg->{log}) =~ /drain lock is held by another registry/ }, 30),
   'the drain sees the lock of another registry');
is($r->llen('faas:records'), 5, 'and leaves the list alone');
$r->del('faas:records:lock');
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'drained once the lock is free');
is(count(), 255, 'stored');

# --- the API ---
$res = api($reg, 'GET', '/v1/functions/rec/executions?limit=10', user => 'alice');
is($res->{status}, 200, 'list executions');
is_deeply([ map { $_->{request_id} } @{ $res->{json}{executions} } ],
          [ map { rid($_) } reverse(246 .. 250, 501 .. 505) ], 'newest first');
is($res->{json}{next_before}, ($T0 + 246) . '.' . rid(246), 'next_before: <timestamp>.<request id>');
my @all;
my $before = '';
for (1 .. 40) {
    $res = api($reg, 'GET', "/v1/functions/rec/executions?limit=100$before", user => 'alice');
    push @all, @{ $res->{json}{executions} };
    last unless defined $res->{json}{next_before};
    $before = "&before=$res->{json}{next_before}";
}
is(scalar @all, 255, 'paging walks through all of them');
$res = api($reg, 'GET', '/v1/functions/rec/executions', user => 'bob');
is($res->{status}, 404, 'another user: 404');
$res = api($reg, 'GET', '/v1/functions/rec/executions', user => 'admin');
is($res->{status}, 200, 'admin: 200');
$res = api($reg, 'GET', '/v1/functions/rec/executions?limit=0', user => 'alice');
is($res->{status}, 400, 'limit 0: 400');
$res = api($reg, 'GET', '/v1/functions/rec/executions?before=x', user => 'alice');
is($res->{status}, 400, 'bad before: 400');
$res = api($reg, 'GET', '/v1/functions/rec/executions?before=12.zz', user => 'alice');
is($res->{status}, 400, 'bad before cursor: 400');
$res = api($reg, 'GET', '/v1/functions/rec/executions?limit=3&before=' . ($T0 + 250), user => 'alice');
is_deeply([ map { $_->{request_id} } @{ $res->{json}{executions} } ],
          [ map { rid($_) } 249, 248, 247 ], 'before as a plain timestamp');
$res = api($reg, 'GET', '/v1/functions/rec/executions/' . rid(5), user => 'alice');
is($res->{status}, 200, 'one execution');
is($res->{json}{total_us}, 2005, '... its record');
$res = api($reg, 'GET', '/v1/functions/rec/executions/nothex', user => 'alice');
is($res->{status}, 400, 'bad request id: 400');
$res = api($reg, 'GET', '/v1/functions/rec/executions/' . rid(99999), user => 'alice');
is($res->{status}, 404, 'unknown request id: 404');

my $day = strftime('%Y-%m-%d', gmtime(($T0 + 5) / 1000));
write_file("$store/logs/rec/$day/" . rid(5) . '.log', "line 1\nline 2\n");
$res = api($reg, 'GET', '/v1/functions/rec/executions/' . rid(5) . '/logs', user => 'alice');
is($res->{status}, 200, 'logs');
is($res->{body}, "line 1\nline 2\n", 'logs from the store, verbatim');
like($res->{headers}{'content-type'}, qr{^text/plain}, 'as text');
$res = api($reg, 'GET', '/v1/functions/rec/executions/' . rid(6) . '/logs', user => 'alice');
is($res->{status}, 404, 'logs not (yet) in the store: 404');
$res = api($reg, 'GET', '/v1/functions/rec/executions/' . rid(5) . '/logs', user => 'bob');
is($res->{status}, 404, 'logs of another user\'s function: 404');

# --- killed in the middle of a drain ---
stop_proc($reg);
my $N = 3000;
for my $chunk (0 .. 29) {
    $r->rpush('faas:records', map { rec(1000 + $chunk * 100 + $_) } 1 .. 100);
}
is($r->llen('faas:records'), $N, "$N records queued");
$reg = start_registry(db => $db, redis => $redis, name => 'registry-crash',
                      cfg => { records_batch => 40, records_interval_ms => 1,
                               records_lock_ms => 1000 });
ok(wait_until(sub { count() > 255 + 200 }, 30, 0.005), 'draining started');
kill_proc($reg);
my $left = $r->llen('faas:records');
my $in = count() - 255;
ok($left > 0, "killed mid-drain ($in stored, $left still queued)");
cmp_ok($in + $left, '>=', $N, 'nothing lost at the crash');
$reg = start_registry(db => $db, redis => $redis, name => 'registry-after',
                      cfg => { records_batch => 40, records_interval_ms => 1,
                               records_lock_ms => 1000 });
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 60), 'drained after the restart');
is(count(), 255 + $N, 'every record stored exactly once');
is($dbh->selectrow_array('SELECT COUNT(DISTINCT request_id) FROM executions'),
   255 + $N, 'no duplicates');
my ($min, $max) = $dbh->selectrow_array('SELECT MIN(timestamp_ms), MAX(timestamp_ms)'
                                        . ' FROM executions WHERE timestamp_ms > ?',
                                        undef, $T0 + 1000);
is_deeply([ $min, $max ], [ $T0 + 1001, $T0 + 1000 + $N ], 'first and last of them present');

# --- MySQL down: the batch stays queued ---
stop_mariadb($db);
$r->rpush('faas:records', rec($_)) for 9001 .. 9010;
ok(wait_until(sub { read_file($reg->{log}) =~ /batch kept for later/ }, 30),
   'a failed insert keeps the batch');
is($r->llen('faas:records'), 10, 'still queued');
restart_mariadb($db);
$dbh = mariadb_dbh($db, 'faas');
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 60), 'drained when MySQL is back');
is(count(), 255 + $N + 10, 'and stored');

# --- paging across records that share a timestamp skips none ---
my ($drained, $tie) = same_ms_pages($reg, $r, 'tie',
    map { rec($_, function => 'tie', timestamp_ms => $T0 + 77) } 20001 .. 20007);
ok($drained, 'same-millisecond records drained');
is_deeply($tie, [ map { rid($_) } reverse 20001 .. 20007 ],
          'pages of 3 over 7 records of one millisecond: all, in order, once');

stop_proc($reg);
faas_finish();
