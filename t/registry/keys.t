# Access keys: create (shown once), the HMAC digest in the Redis mirror,
# rotation, revocation, each with its faas:inval message; sealed at rest.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;
use Faas::Setup;

my $db = start_mariadb();
my $redis = start_redis();
my $r = redis_client($redis);
my $reg = start_registry(db => $db, redis => $redis);
my $secret = $reg->{cfg}{key_digest_secret};
my $dbh = mariadb_dbh($db, 'faas');

my $sub = redis_client($redis);
my @inval;
$sub->subscribe('faas:inval', sub { push @inval, $_[0] });
sub inval_seen {
    my ($name) = @_;
    my $ok = wait_until(sub {
        $sub->wait_for_messages(0.1);
        return scalar grep { $_ eq $name } @inval;
    }, 10);
    @inval = ();
    return $ok;
}
sub mirror_keys { [ sort split / /, $r->hget('faas:fn:kf', 'keys') // '' ] }
sub digest { hmac_sha256_hex($_[0], $secret) }

my $res = create_py_function($reg, 'kf');
is($res->{status}, 201, 'function created');
ok(inval_seen('kf'), 'invalidation on create');
is_deeply(mirror_keys(), [], 'no keys yet');

# --- create ---
$res = api($reg, 'POST', '/v1/functions/kf/keys', user => 'alice');
is($res->{status}, 201, 'key created');
my $k1 = $res->{json}{key};
my $id1 = $res->{json}{id};
like($k1, qr/^fk_[A-Za-z0-9_-]{43}$/, 'key format: fk_ + base64url(32 bytes)');
like($res->{json}{note}, qr/shown once/, 'the answer says it is shown once');
is($res->{json}{prefix}, substr($k1, 0, 11), 'prefix for recognising it');
ok(inval_seen('kf'), 'invalidation on key creation');
is_deeply(mirror_keys(), [ digest($k1) ], 'mirror holds the HMAC-SHA256 digest');
unlike($r->hget('faas:fn:kf', 'keys'), qr/\Q$k1\E/, 'never the key itself');

my ($sealed) = $dbh->selectrow_array('SELECT sealed FROM access_keys WHERE id = ?',
                                     undef, $id1);
is(length($sealed), 12 + 46 + 16, 'stored sealed: nonce + ciphertext + tag');
ok(index($sealed, $k1) < 0 && index($sealed, substr($k1, 3, 20)) < 0,
   'the key is not in MySQL in clear');

$res = api($reg, 'GET', '/v1/functions/kf/keys', user => 'alice');
is($res->{status}, 200, 'list keys');
is_deeply([ map { $_->{id} } @{ $res->{json}{keys} } ], [ $id1 ], 'one key listed');
ok(!exists $res->{json}{keys}[0]{key}, 'the list never shows a key');

$res = api($reg, 'POST', '/v1/functions/kf/keys', user => 'alice');
my ($k2, $id2) = @{ $res->{json} }{qw(key id)};
isnt($k2, $k1, 'keys are random');
ok(inval_seen('kf'), 'invalidation');
is_deeply(mirror_keys(), [ sort(digest($k1), digest($k2)) ], 'two digests');

# --- isolation ---
$res = api($reg, 'POST', '/v1/functions/kf/keys', user => 'bob');
is($res->{status}, 404, 'another user cannot create keys');
$res = api($reg, 'DELETE', "/v1/functions/kf/keys/$id1", user => 'bob');
is($res->{status}, 404, 'nor revoke them');
$res = api($reg, 'GET', '/v1/functions/kf/keys', user => 'admin');
is($res->{status}, 200, 'admin can list them');

# --- rotate ---
$res = api($reg, 'POST', "/v1/functions/kf/keys/$id1/rotate", user => 'alice');
is($res->{status}, 201, 'rotate');
my ($k3, $id3) = @{ $res->{json} }{qw(key id)};
is($res->{json}{replaces}, $id1, 'says what it replaces');
ok(inval_seen('kf'), 'invalidation on rotation');
is_deeply(mirror_keys(), [ sort(digest($k2), digest($k3)) ],
          'old digest gone, new one there');
$res = api($reg, 'POST', "/v1/functions/kf/keys/$id1/rotate", user => 'alice');
is($res->{status}, 404, 'rotating a revoked key: 404');

# --- revoke ---
$res = api($reg, 'DELETE', "/v1/functions/kf/keys/$id2", user => 'alice');
is($res->{status}, 200, 'revoke');
ok(inval_seen('kf'), 'invalidation on revocation');
is_deeply(mirror_keys(), [ digest($k3) ], 'only the remaining key');
$res = api($reg, 'DELETE', "/v1/functions/kf/keys/$id2", user => 'alice');
is($res->{status}, 404, 'revoking twice: 404');
$res = api($reg, 'DELETE', '/v1/functions/kf/keys/abc', user => 'alice');
is($res->{status}, 404, 'bad key id: 404');
$res = api($reg, 'PUT', '/v1/functions/kf/keys', user => 'alice');
is($res->{status}, 405, 'wrong method: 405');

# --- limit ---
my $n = 1;
while ($n < 16) {
    $res = api($reg, 'POST', '/v1/functions/kf/keys', user => 'alice');
    last unless $res->{status} == 201;
    $n++;
}
is($n, 16, 'sixteen keys allowed');
$res = api($reg, 'POST', '/v1/functions/kf/keys', user => 'alice');
is($res->{status}, 409, 'the seventeenth is refused');
is(scalar @{ mirror_keys() }, 16, 'sixteen digests mirrored');

# --- the mirror is rebuilt from the sealed keys ---
$r->del('faas:fn:kf');
stop_proc($reg);
$reg = start_registry(db => $db, redis => $redis,
                      cfg => { mysql_socket => $db->{socket} });   # not TCP this time
ok(wait_until(sub { $r->exists('faas:fn:kf') }, 15), 'mirror rebuilt at start');
is(api($reg, 'GET', '/v1/functions/kf', user => 'alice')->{status}, 200,
   'MySQL over its Unix socket (mysql_socket)');
ok((grep { $_ eq digest($k3) } @{ mirror_keys() }),
   'digest recomputed from the decrypted key');

# --- a wrong master key opens nothing ---
stop_proc($reg);
$r->del('faas:fn:kf');
$reg = start_registry(db => $db, redis => $redis,
                      cfg => { master_key => 'ff' x 32 });
ok(wait_until(sub { $r->exists('faas:fn:kf') }, 15), 'mirror rebuilt');
is_deeply(mirror_keys(), [], 'keys that do not authenticate are not mirrored');
like(read_file($reg->{log}), qr/does not authenticate/, 'and the log says why');

# --- a bad master key in the config is refused ---
stop_proc($reg);
my $cfg = registry_config(db => $db, redis => $redis);
$cfg->{master_key} = 'xyz';
my $h = start_daemon('faas-registry', $cfg, name => 'badcfg');
ok(wait_until(sub { !proc_alive($h) }, 15), 'registry with a bad master key exits');
like(read_file($h->{log}), qr/master_key must be 64 hex/, 'and says why');

faas_finish();
