# Execution records into MongoDB (mongo-c-driver), tested against the
# wire-protocol stand-in t/tools/mongo_standin.pl: the only test double of
# the project, because no MongoDB server can be installed here.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;
use Faas::Setup;

my $db = start_mariadb();
my $redis = start_redis();
my $r = redis_client($redis);
my $mongo = start_mongo_standin();
my %cfg = (records_mongodb_uri => $mongo->{uri}, records_batch => 100,
           records_interval_ms => 50, records_lock_ms => 1000);
my $reg = start_registry(db => $db, redis => $redis, cfg => \%cfg);
my $dbh = mariadb_dbh($db, 'faas');
my $NS = 'faas.executions';

my $res = create_py_function($reg, 'mrec');
is($res->{status}, 201, 'function created');

my $T0 = 1_700_000_000_000;
sub rid { sprintf('%032x', $_[0]) }
sub rec {
    my ($i, %o) = @_;
    return exec_record(
        request_id => rid($i), function => 'mrec', version => 1, user => 'alice',
        start_type => 3, status => 1, http_status => 502, duration_us => 10 + $i,
        total_us => 20 + $i, cold_start_us => 0, memory_bytes => 4096,
        log_key => 'logs/mrec/2023-11-14/' . rid($i) . '.log',
        agent_host => 'h2', timestamp_ms => $T0 + $i, sandbox_id => 's-00000000000000aa', %o);
}
sub ndocs { scalar @{ mongo_docs($mongo, $NS) } }

$r->rpush('faas:records', rec($_)) for 1 .. 150;
$r->rpush('faas:records', 'garbage');
$r->rpush('faas:records', rec(3));
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'drained');
is(ndocs(), 150, '150 documents in MongoDB, the duplicate ignored');
my ($d) = grep { $_->{_id} eq rid(3) } @{ mongo_docs($mongo, $NS) };
is($d->{request_id}, rid(3), '_id = request_id');
is($d->{start_type}, 'STOLEN', 'start type by name');
is($d->{status}, 'FUNCTION_ERROR', 'status by name');
is($d->{timestamp_ms}, $T0 + 3, 'timestamp');
is($d->{total_us}, 23, 'total_us');
is($dbh->selectrow_array('SELECT COUNT(*) FROM executions'), 0,
   'nothing in the MySQL table when MongoDB is configured');

# Replay: duplicates are ignored (write error 11000), new ones inserted.
$r->rpush('faas:records', rec($_)) for 140 .. 160;
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'mixed replay drained');
is(ndocs(), 160, 'only the new ten added');

# The API reads MongoDB.
$res = api($reg, 'GET', '/v1/functions/mrec/executions?limit=5', user => 'alice');
is($res->{status}, 200, 'list from MongoDB');
is_deeply([ map { $_->{request_id} } @{ $res->{json}{executions} } ],
          [ map { rid($_) } reverse 156 .. 160 ], 'newest first');
ok(!exists $res->{json}{executions}[0]{_id}, 'no _id in the answer');
$res = api($reg, 'GET', "/v1/functions/mrec/executions?limit=5&before=$res->{json}{next_before}",
           user => 'alice');
is_deeply([ map { $_->{request_id} } @{ $res->{json}{executions} } ],
          [ map { rid($_) } reverse 151 .. 155 ], 'next page');
$res = api($reg, 'GET', '/v1/functions/mrec/executions/' . rid(42), user => 'alice');
is($res->{status}, 200, 'one record');
is($res->{json}{duration_us}, 52, '... from MongoDB');
is($res->{json}{trace_id}, '', '... a document without a trace id reads as empty');
$res = api($reg, 'GET', '/v1/functions/mrec/executions/' . rid(4242), user => 'alice');
is($res->{status}, 404, 'unknown: 404');
$res = api($reg, 'GET', '/v1/functions/mrec/executions', user => 'bob');
is($res->{status}, 404, 'another user: 404');

# MongoDB down: the batch waits in Redis.
stop_proc($mongo);
$r->rpush('faas:records', rec($_)) for 501 .. 510;
ok(wait_until(sub { read_file($reg->{log}) =~ /batch kept for later: mongodb/ }, 30),
   'failed insert logged');
is($r->llen('faas:records'), 10, 'the batch is still queued');
$res = api($reg, 'GET', '/v1/functions/mrec/executions', user => 'alice');
is($res->{status}, 503, 'listing while MongoDB is down: 503');
$mongo = start_mongo_standin(port => $mongo->{port});
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 60), 'drained when it is back');
is(ndocs(), 170, 'and stored');

# Killed in the middle of a drain.
stop_proc($reg);
my $N = 2000;
for my $chunk (0 .. 19) {
    $r->rpush('faas:records', map { rec(10_000 + $chunk * 100 + $_) } 1 .. 100);
}
$reg = start_registry(db => $db, redis => $redis, name => 'registry-crash',
                      cfg => { %cfg, records_batch => 40, records_interval_ms => 1 });
ok(wait_until(sub { ndocs() > 170 + 100 }, 60, 0.01), 'draining started');
kill_proc($reg);
my $left = $r->llen('faas:records');
my $in = ndocs() - 170;
ok($left > 0, "killed mid-drain ($in stored, $left queued)");
cmp_ok($in + $left, '>=', $N, 'nothing lost at the crash');
$reg = start_registry(db => $db, redis => $redis, name => 'registry-after',
                      cfg => { %cfg, records_batch => 40, records_interval_ms => 1 });
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 90), 'drained after the restart');
my $docs = mongo_docs($mongo, $NS);
is(scalar @$docs, 170 + $N, 'every record exactly once');
my %seen;
$seen{ $_->{_id} }++ for @$docs;
is(scalar(grep { $_ > 1 } values %seen), 0, 'no duplicate _id');

# Paging across records that share a timestamp skips none.
my ($drained, $tie) = same_ms_pages($reg, $r, 'mtie',
    map { rec($_, function => 'mtie', timestamp_ms => $T0 + 77) } 30001 .. 30007);
ok($drained, 'same-millisecond records drained');
is_deeply($tie, [ map { rid($_) } reverse 30001 .. 30007 ],
          'pages of 3 over 7 records of one millisecond: all, in order, once');

# A trace id is stored and read back.
$r->rpush('faas:records', rec(900, trace_id => '4bf92f3577b34da6a3ce929d0e0e4736'));
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'a record with a trace id drained');
$res = api($reg, 'GET', '/v1/functions/mrec/executions/' . rid(900), user => 'alice');
is($res->{json}{trace_id}, '4bf92f3577b34da6a3ce929d0e0e4736', '... and read back');

stop_proc($reg);
faas_finish();
