# Outages: MariaDB restarted in the middle (requests fail cleanly, later ones
# succeed, nothing half-registered), Redis down during an update (the mirror
# is repaired when it is back), stale mirrors removed by the repair.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Find;
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;

my $db = start_mariadb();
my $redis = start_redis();
my $r = redis_client($redis);
my $reg = start_registry(db => $db, redis => $redis,
                         cfg => { mysql_timeout_s => 2 });
my $store = work_dir() . '/store';

sub store_files {
    my @f;
    find(sub { push @f, $File::Find::name if -f $_ }, $store) if -d $store;
    return sort @f;
}
sub create {
    my ($name, %o) = @_;
    return api($reg, 'POST', '/v1/functions', user => 'alice', json => {
        name => $name, runtime => 'python3', handler => 'app.handler',
        code => { file => 'app.py', content => py_fn($name) }, %o });
}

my $res = create('one');
is($res->{status}, 201, 'created before the outage');

# --- MariaDB down ---
stop_mariadb($db);
$res = api($reg, 'GET', '/v1/functions/one', user => 'alice');
is($res->{status}, 503, 'GET during the outage: 503');
is($res->{json}{error}{code}, 'unavailable', 'error code unavailable');
$res = api($reg, 'GET', '/v1/functions', user => 'alice');
is($res->{status}, 503, 'list: 503');
my @before = store_files();
$res = create('two');
is($res->{status}, 503, 'create during the outage: 503');
is_deeply([ store_files() ], \@before, 'nothing stored');
$res = api($reg, 'PUT', '/v1/functions/one/code', user => 'alice',
           body => make_zip([ 'app.py' => py_fn('x') ]));
is($res->{status}, 503, 'upload during the outage: 503');
is_deeply([ store_files() ], \@before, 'nothing stored');
$res = api($reg, 'POST', '/v1/functions/one/keys', user => 'alice');
is($res->{status}, 503, 'key creation: 503');
is($r->hget('faas:fn:one', 'rid'), 'one@1', 'mirror untouched');

restart_mariadb($db);
$res = api($reg, 'GET', '/v1/functions/one', user => 'alice');
is($res->{status}, 200, 'after the restart requests succeed again');
$res = create('two');
is($res->{status}, 201, 'create succeeds again');
is($r->hget('faas:fn:two', 'rid'), 'two@' . $res->{json}{version}, 'and is mirrored');

# --- MySQL fails after the store write: nothing visible, blob taken back ---
my $dbh = mariadb_dbh($db, 'faas');
$dbh->do('LOCK TABLES versions WRITE');
@before = store_files();
$res = create('three');
$dbh->do('UNLOCK TABLES');
is($res->{status}, 503, 'transaction fails after the code was stored: 503')
    or diag explain $res;
ok(wait_until(sub { join(',', store_files()) eq join(',', @before) }, 10),
   'the stored zip is deleted again');
$res = api($reg, 'GET', '/v1/functions/three', user => 'alice');
is($res->{status}, 404, 'no half-registered function');
ok(!$r->exists('faas:fn:three'), 'no mirror');
is($dbh->selectrow_array("SELECT COUNT(*) FROM functions WHERE name = 'three'"), 0,
   'no row');
$res = create('three');
is($res->{status}, 201, 'the same create works afterwards');

# --- Redis down during an update ---
my $ver = api($reg, 'GET', '/v1/functions/one', user => 'alice')->{json}{version};
stop_proc($redis);
$res = api($reg, 'PATCH', '/v1/functions/one', user => 'alice',
           json => { memory_mb => 321, public => JSON::PP::true });
is($res->{status}, 200, 'update with Redis down: MySQL has it, 200');
my $newver = $res->{json}{version};
isnt($newver, $ver, 'new revision');
$res = api($reg, 'POST', '/v1/functions/one/keys', user => 'alice');
is($res->{status}, 201, 'key created with Redis down');
my $key = $res->{json}{key};
$res = api($reg, 'DELETE', '/v1/functions/two', user => 'alice');
is($res->{status}, 200, 'delete with Redis down');
like(read_file($reg->{log}), qr/left for repair/, 'the log says the mirror waits');

$redis = restart_redis_same_port($redis);
$r = redis_client($redis);
ok(wait_until(sub { ($r->hget('faas:fn:one', 'rid') // '') eq "one\@$newver" }, 30),
   'mirror repaired once Redis is back');
my %m = $r->hgetall('faas:fn:one');
is($m{memory_mb}, 321, 'with the update');
is($m{public}, '1', 'and the public flag');
is(length($m{keys}), 64, 'and the new key digest');
is($r->hget("faas:rev:{one\@$newver}", 'memory_mb'), 321, 'and the hash of its revision');
ok($r->exists('faas:fn:three'), 'other functions rebuilt too');
ok(!$r->exists('faas:fn:two'), 'the deleted one is not');

# --- a stale mirror is removed by the periodic repair ---
stop_proc($reg);
$reg = start_registry(db => $db, redis => $redis,
                      cfg => { mirror_repair_interval_ms => 300 });
my $sub = redis_client($redis);
my @inval;
$sub->subscribe('faas:inval', sub { push @inval, $_[0] });
$r->hset('faas:rev:{ghost@1}', 'runtime', 'python3');
$r->hset('faas:fn:ghost', 'rid', 'ghost@1');
$r->hset('faas:fn:one', 'memory_mb', '1');
ok(wait_until(sub { !$r->exists('faas:fn:ghost') }, 15),
   'mirror of a function MySQL does not know is removed');
ok(!$r->exists('faas:rev:{ghost@1}'), '... with the hash of its revision');
ok(wait_until(sub { $sub->wait_for_messages(0.1); grep { $_ eq 'ghost' } @inval }, 10),
   '... with an invalidation');
ok(wait_until(sub { ($r->hget('faas:fn:one', 'memory_mb') // '') eq '321' }, 15),
   'a tampered mirror is rewritten from MySQL');
ok(wait_until(sub { $sub->wait_for_messages(0.1); grep { $_ eq 'one' } @inval }, 10),
   '... with an invalidation');
@inval = ();
$r->hset('faas:fn:ghost2', 'rid', 'ghost2@1');
ok(wait_until(sub { $sub->wait_for_messages(0.1); grep { $_ eq 'ghost2' } @inval }, 15),
   'a later repair pass completed');
is_deeply([ grep { $_ eq 'three' || $_ eq 'one' } @inval ], [],
          'unchanged mirrors are not rewritten: no invalidation for them');

# --- a revision's hash lost alone, then everything (FLUSHALL) ---
$r->del("faas:rev:{one\@$newver}");
ok(wait_until(sub { $r->exists("faas:rev:{one\@$newver}") }, 15),
   'a missing revision hash is recreated by the repair');
my $three = 'three@' . $r->hget('faas:fn:three', 'version');
my %rev_three = $r->hgetall("faas:rev:{$three}");
$r->flushall;
ok(wait_until(sub { $r->exists("faas:rev:{one\@$newver}") && $r->exists("faas:rev:{$three}")
                    && $r->exists('faas:fn:one') }, 15),
   'after a FLUSHALL the repair writes every current revision\'s hash again');
is_deeply({ $r->hgetall("faas:rev:{$three}") }, \%rev_three, '... as it was');

stop_proc($reg);
faas_finish();
