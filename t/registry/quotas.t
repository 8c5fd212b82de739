# Per-owner limits of the registry (owner_max_functions, owner_max_memory_mb
# = the sum of memory_mb x max_concurrency, owner_max_concurrency = the sum
# of max_concurrency): create, PATCH and new code beyond them answer 403
# quota_exceeded naming the limit and change nothing; each owner has its
# own; concurrent creates cannot pass a limit together.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;

my $db = start_mariadb();
my $redis = start_redis();
my $reg = start_registry(db => $db, redis => $redis, cfg => {
    owner_max_functions => 2, owner_max_memory_mb => 1024,
    owner_max_concurrency => 20 });
my $dbh = mariadb_dbh($db, 'faas');

sub create {
    my ($user, $name, %o) = @_;
    return api($reg, 'POST', '/v1/functions', user => $user, json => {
        name => $name, runtime => 'python3', handler => 'app.handler',
        code => { file => 'app.py', content => py_fn($name) }, %o });
}
sub refused {
    my ($res, $limit, $what) = @_;
    is($res->{status}, 403, "$what: 403");
    is($res->{json}{error}{code}, 'quota_exceeded', '... quota_exceeded');
    like($res->{json}{error}{message}, qr/\b$limit = \d+/, "... names $limit");
}
sub fn_count { $dbh->selectrow_array('SELECT COUNT(*) FROM functions WHERE owner = ?',
                                     undef, $_[0]) }

# --- owner_max_functions ---
is(create('alice', 'a1', memory_mb => 128, max_concurrency => 4)->{status}, 201,
   'alice: first function');
is(create('alice', 'a2', memory_mb => 128, max_concurrency => 4)->{status}, 201,
   'alice: second function (512 + 512 MB, concurrency 8)');
refused(create('alice', 'a3', memory_mb => 32, max_concurrency => 1),
        'owner_max_functions', 'alice: a third function');
is(fn_count('alice'), 2, '... and nothing was created');
is(scalar(() = glob(work_dir() . '/store/code/a3/*/*.zip')), 0,
   '... nor its code kept in the store');
is(create('bob', 'b1', memory_mb => 128, max_concurrency => 1)->{status}, 201,
   'bob has limits of his own');

# --- owner_max_memory_mb, on PATCH and new code ---
my $res = api($reg, 'PATCH', '/v1/functions/a1', user => 'alice',
              json => { memory_mb => 256 });
refused($res, 'owner_max_memory_mb', 'alice: PATCH to 256 MB x 4 (1536 MB in all)');
$res = api($reg, 'GET', '/v1/functions/a1', user => 'alice');
is($res->{json}{memory_mb}, 128, '... memory_mb unchanged');
is($res->{json}{version}, 1, '... no new version');
$res = api($reg, 'PATCH', '/v1/functions/a1', user => 'alice',
           json => { max_concurrency => 5 });
refused($res, 'owner_max_memory_mb', 'alice: PATCH max_concurrency 5 (1152 MB)');
is(api($reg, 'GET', '/v1/functions/a1', user => 'alice')->{json}{max_concurrency}, 4,
   '... max_concurrency unchanged');
$res = api($reg, 'PATCH', '/v1/functions/a1', user => 'alice',
           json => { max_concurrency => 2, memory_mb => 256 });
is($res->{status}, 200, 'alice: 256 MB x 2 fits (1024 MB)');
$res = api($reg, 'PUT', '/v1/functions/a1/code', user => 'alice',
           body => make_zip([ 'app.py' => py_fn('v2') ]));
is($res->{status}, 200, 'new code with the same config fits');
$res = api($reg, 'PATCH', '/v1/functions/a1', user => 'alice', json => { public => JSON::PP::true });
is($res->{status}, 200, 'a PATCH that changes no total passes');
is(api($reg, 'PATCH', '/v1/functions/a1', user => 'admin', json => { memory_mb => 512 })->{status},
   403, 'an admin changing alice\'s function is held to alice\'s limits');

# --- owner_max_concurrency ---
$res = create('bob', 'b2', memory_mb => 32, max_concurrency => 20);
refused($res, 'owner_max_concurrency', 'bob: max_concurrency 1 + 20');
is(create('bob', 'b2', memory_mb => 32, max_concurrency => 19)->{status}, 201,
   'bob: 1 + 19 fits');

# --- a delete gives the room back ---
is(api($reg, 'DELETE', '/v1/functions/a2', user => 'alice')->{status}, 200, 'alice deletes a2');
is(create('alice', 'a3', memory_mb => 128, max_concurrency => 4)->{status}, 201,
   'and may create another');

# --- concurrent creates: the owner's row is locked, so at most the limit ---
my @res = in_parallel(map { my $i = $_; sub {
    create('carol', "c$i", memory_mb => 32, max_concurrency => 1)->{status} } } 1 .. 8);
is(scalar(grep { $_ == 201 } @res), 2, '8 creates at once: exactly 2 created')
    or diag "@res";
is(scalar(grep { $_ == 403 } @res), 6, '... the others refused with 403') or diag "@res";
is(fn_count('carol'), 2, 'carol has 2 functions');

# --- limits off by default (0) ---
stop_proc($reg);
$reg = start_registry(db => $db, redis => $redis, name => 'registry-nolimit');
is(create('alice', 'a4', memory_mb => 8192, max_concurrency => 1000)->{status}, 201,
   'without owner_max_* nothing is refused');

# --- a limit must be a non-negative integer ---
stop_proc($reg);
my $bad = start_daemon('faas-registry', registry_config(db => $db, redis => $redis,
                       cfg => { owner_max_functions => -1 }), name => 'registry-bad',
                       wait => 0);
ok(wait_until(sub { !proc_alive($bad) }, 30), 'a negative limit: the registry refuses to start');
like(read_file($bad->{log}) // '', qr/out of range/, '... and says why');

faas_finish();
