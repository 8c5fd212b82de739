# Deleting a function deletes its execution records and their logs, with
# the records in MongoDB (tested against the wire-protocol stand-in
# t/tools/mongo_standin.pl, the project's only test double: no MongoDB
# server can be installed here) and in MySQL: a delete while MongoDB is down
# still answers 200 (the function is gone), keeps a purges row and is
# finished by the repair thread once MongoDB is back; other functions'
# records and logs are untouched; a re-created name starts empty. Also the
# admin subjects of the config (admin_subjects, admin_subject) and the
# X-Faas-Admin header the gateway sets for an admin claim.
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
my %cfg = (records_mongodb_uri => $mongo->{uri}, records_interval_ms => 50,
           mirror_repair_interval_ms => 300, admin_subject => '',
           admin_subjects => [ 'ops', 'root@corp' ]);
my $reg = start_registry(db => $db, redis => $redis, cfg => \%cfg);
my $dbh = mariadb_dbh($db, 'faas');
my $NS = 'faas.executions';
my $store = work_dir() . '/store';

my $n = 0;
# Queues one record of $fn@$version with a log file in the store; returns
# the log's path.
sub record {
    my ($fn, $version) = @_;
    my $id = sprintf('%032x', ++$n);
    my $key = "logs/$fn/2026-01-02/$id.log";
    write_file("$store/$key", "output of $fn\n");
    $r->rpush('faas:records', exec_record(
        request_id => $id, function => $fn, version => $version, user => 'alice',
        start_type => 1, status => 0, http_status => 200, duration_us => 1, total_us => 1,
        cold_start_us => 0, memory_bytes => 1, log_key => $key, agent_host => 'h',
        timestamp_ms => 1_767_000_000_000 + $n, sandbox_id => 's-0123456789abcdef'));
    return "$store/$key";
}
sub docs_of { scalar grep { $_->{function} eq $_[0] } @{ mongo_docs($mongo, $NS) } }
sub purges { $dbh->selectrow_array('SELECT COUNT(*) FROM purges') }

is(create_py_function($reg, 'gone')->{status}, 201, 'alice creates gone');
is(create_py_function($reg, 'stays')->{status}, 201, 'alice creates stays');
use File::Path qw(make_path);
make_path("$store/logs/gone/2026-01-02", "$store/logs/stays/2026-01-02");
my @gone = map { record('gone', 1) } 1 .. 30;
my @stays = map { record('stays', 1) } 1 .. 5;
ok(wait_until(sub { $r->llen('faas:records') == 0 && docs_of('gone') == 30 }, 30),
   'records drained into MongoDB');

# --- MongoDB down during the delete ---
stop_proc($mongo);
my $res = api($reg, 'DELETE', '/v1/functions/gone', user => 'alice');
is($res->{status}, 200, 'delete while MongoDB is down: 200, the function is gone');
is(api($reg, 'GET', '/v1/functions/gone', user => 'alice')->{status}, 404, '... 404 afterwards');
is(purges(), 1, 'a purges row remembers what is left to delete');
is(scalar(grep { -f } @gone), 30, 'no log deleted yet (records first looked up)');
ok(wait_until(sub { read_file($reg->{log}) =~ /purge of deleted functions left for later/ }, 15),
   'the repair thread tried and logged it');
$mongo = start_mongo_standin(port => $mongo->{port});
ok(wait_until(sub { purges() == 0 }, 30), 'MongoDB back: the repair finished the purge');
is(docs_of('gone'), 0, "gone's records are deleted from MongoDB");
is(scalar(grep { -f } @gone), 0, "gone's logs are deleted from the store");
is(docs_of('stays'), 5, "the other function's records stay");
is(scalar(grep { -f } @stays), 5, '... and its logs');
like(read_file($reg->{log}), qr/purge of deleted functions resumed/, 'resumption logged');

# --- a re-created name starts empty ---
is(create_py_function($reg, 'gone')->{status}, 201, 'gone re-created');
my $late = record('gone', 1);
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'a late record of the old gone@1 arrives');
is(docs_of('gone'), 0, '... and is dropped by the drain');
ok(!-e $late, '... with its log');
$res = api($reg, 'GET', '/v1/functions/gone/executions', user => 'alice');
is_deeply($res->{json}{executions}, [], 'the new gone lists nothing');

# --- the same with MySQL records, and deletes that are retried ---
stop_proc($reg);
delete $cfg{records_mongodb_uri};
$reg = start_registry(db => $db, redis => $redis, cfg => \%cfg, name => 'registry-mysql');
is(create_py_function($reg, 'mgone')->{status}, 201, 'mgone created');
make_path("$store/logs/mgone/2026-01-02");
my @mgone = map { record('mgone', 1) } 1 .. 620;
my @mstays = map { record('stays', 1) } 1 .. 3;
sub rows { $dbh->selectrow_array('SELECT COUNT(*) FROM executions WHERE function = ?', undef, $_[0]) }
ok(wait_until(sub { rows('mgone') == 620 }, 60), 'records drained into MySQL');
# The purge row of an interrupted delete is finished by the repair too.
$dbh->do("INSERT INTO purges (name, last_version) VALUES ('mgone', 1)");
ok(wait_until(sub { purges() == 0 }, 30), 'a recorded purge is run by the repair thread');
is(rows('mgone'), 0, 'all 620 records (more than one batch) deleted from MySQL');
is(scalar(grep { -f } @mgone), 0, 'with their logs');
is(rows('stays'), 3, "other functions' records stay");
is(scalar(grep { -f } @mstays), 3, '... and their logs');
is(api($reg, 'GET', '/v1/functions/mgone', user => 'alice')->{status}, 200,
   'the purge of old records left the function itself alone');

# --- admin subjects ---
is(api($reg, 'GET', '/v1/functions/stays', user => 'ops')->{status}, 200,
   'admin_subjects: ops sees alice\'s function');
is(api($reg, 'GET', '/v1/functions/stays', user => 'root@corp')->{status}, 200,
   '... so does root@corp');
is(api($reg, 'GET', '/v1/functions/stays', user => 'admin')->{status}, 404,
   '"admin" is nobody special');
is(api($reg, 'GET', '/v1/functions/stays', user => 'bob',
       headers => { 'X-Faas-Admin' => '1' })->{status}, 200,
   'X-Faas-Admin: 1 (set by the gateway for an admin claim) is an admin');
is(api($reg, 'GET', '/v1/functions/stays', user => 'bob',
       headers => { 'X-Faas-Admin' => 'yes' })->{status}, 404,
   'any other value is not');
stop_proc($reg);
$reg = start_registry(db => $db, redis => $redis, name => 'registry-old-key',
                      cfg => { %cfg, admin_subjects => [], admin_subject => 'boss' });
is(api($reg, 'GET', '/v1/functions/stays', user => 'boss')->{status}, 200,
   'admin_subject (one subject, older configs) still works');
stop_proc($reg);
for my $bad ([ admin_subjects => 'ops' ], [ admin_subjects => [ 'o ps' ] ]) {
    my $h = start_daemon('faas-registry', registry_config(db => $db, redis => $redis,
                         cfg => { @$bad }), name => "registry-bad-$bad->[0]-" . ++$n);
    ok(wait_until(sub { !proc_alive($h) }, 30),
       'refuses to start with ' . json_encode({ @$bad }));
    like(read_file($h->{log}) // '', qr/admin_subjects must be a list|admin subject must match/,
         '... and says why');
}

faas_finish();
