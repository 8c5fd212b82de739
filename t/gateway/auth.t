# JWT and access-key checks of /fn/<name>, 404 and 413, management access.
# Metadata is written into Redis by the test; a request that passes every
# check goes on to wait for a sandbox, which none provides here, so it ends
# in the cold-start 503 ("no sandbox within").
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Setup;
use Faas::Jwt;
use Digest::SHA qw(hmac_sha256_hex);

my $w = work_dir();
key_pair($_) for qw(rsa other);
write_file("$w/hs.key", "hs-secret-0123456789\n");

our $redis = start_redis();
our $r = redis_client($redis);
my $secret = 'key-secret';
our $digest = hmac_sha256_hex('good-key', $secret);
our $digest2 = hmac_sha256_hex('other-key', $secret);

for my $fn (['priv', public => 0, keys => "$digest $digest2"], ['pub', public => 1]) {
    fn_mirror($r, @$fn, handler => 'main.handler', memory_mb => 64, timeout_ms => 1000);
}

my $now = time;
my %good = (sub => 'alice', iss => 'https://issuer', aud => 'faas', exp => $now + 600);
my $rs = { alg => 'RS256', typ => 'JWT' };
my $rsapub = read_file("$w/rsa.pub");

my $owner = jwt_rs($rs, \%good, "$w/rsa.pem", 'sha256');
nginx_env(
    REDIS => $redis->{addr},
    BACKEND_PORT => free_port(),
    OWNER => $owner,
    OTHER_USER => jwt_rs($rs, { %good, sub => 'bob' }, "$w/rsa.pem", 'sha256'),
    EXPIRED => jwt_rs($rs, { %good, exp => $now - 3600 }, "$w/rsa.pem", 'sha256'),
    IN_LEEWAY => jwt_rs($rs, { %good, exp => $now - 5 }, "$w/rsa.pem", 'sha256'),
    NBF_FUTURE => jwt_rs($rs, { %good, nbf => $now + 3600 }, "$w/rsa.pem", 'sha256'),
    NO_EXP => jwt_rs($rs, { sub => 'alice', iss => 'https://issuer', aud => 'faas' }, "$w/rsa.pem", 'sha256'),
    NO_SUB => jwt_rs($rs, { %good, sub => undef }, "$w/rsa.pem", 'sha256') =~ s/^/x/r,
    ALG_NONE => b64url(json_encode({ alg => 'none' })) . '.' . b64url(json_encode(\%good)) . '.',
    ALG_NONE_SIGNED => b64url(json_encode({ alg => 'none' })) . '.' . b64url(json_encode(\%good)) . '.'
                       . b64url('x'),
    HS_WITH_PUB => jwt_hs({ alg => 'HS256', typ => 'JWT' }, \%good, $rsapub),
    RS512 => jwt_rs({ alg => 'RS512' }, \%good, "$w/rsa.pem", 'sha512'),
    OTHER_KEY => jwt_rs($rs, \%good, "$w/other.pem", 'sha256'),
    WRONG_ISS => jwt_rs($rs, { %good, iss => 'https://evil' }, "$w/rsa.pem", 'sha256'),
    WRONG_AUD => jwt_rs($rs, { %good, aud => 'other' }, "$w/rsa.pem", 'sha256'),
    AUD_ARRAY => jwt_rs($rs, { %good, aud => ['x', 'faas'] }, "$w/rsa.pem", 'sha256'),
    HS_GOOD => jwt_hs({ alg => 'HS256' }, \%good, 'hs-secret-0123456789'),
    HS_BAD => jwt_hs({ alg => 'HS256' }, \%good, 'wrong-secret'),
    SUB_CRLF => jwt_rs($rs, { %good, sub => "alice\r\nX-Faas-User: admin" }, "$w/rsa.pem", 'sha256'),
    SUB_SPACE => jwt_rs($rs, { %good, sub => 'alice ' }, "$w/rsa.pem", 'sha256'),
    SUB_LONG => jwt_rs($rs, { %good, sub => 'a' x 129 }, "$w/rsa.pem", 'sha256'),
    SUB_NUL => jwt_rs($rs, { %good, sub => "alice\0x" }, "$w/rsa.pem", 'sha256'),
);

our $HTTP = <<'E';
faas_redis $TEST_NGINX_REDIS;
faas_key_secret key-secret;
faas_cache_ttl 60s;
server {
    listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    location / { return 200 "user=$http_x_faas_user\n"; }
}
E
our $CONFIG = <<'E';
location /fn/ {
    faas_function on;
    faas_jwt_alg RS256;
    faas_jwt_key $TEST_NGINX_WORK/rsa.pub;
    faas_jwt_issuer https://issuer;
    faas_jwt_audience faas;
    faas_cold_start_timeout 200ms;
    faas_max_body 1k;
}
location /hs/ {
    faas_function on;
    faas_jwt_alg HS256;
    faas_jwt_key $TEST_NGINX_WORK/hs.key;
    faas_cold_start_timeout 200ms;
}
location /v1/ {
    faas_management on;
    faas_jwt_alg RS256;
    faas_jwt_key $TEST_NGINX_WORK/rsa.pub;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
}
location /page {
    default_type text/html;
    ssi on;
    return 200 '<!--# include virtual="/v1/functions" -->';
}
E

block_defaults(http_config => $HTTP, config => $CONFIG);
run_blocks();

# A subrequest (here an SSI include) to a management location is checked
# too: nginx runs no access phase for subrequests.
my $port = nginx_handle()->{port};
my $res = http_request($port, 'GET', '/page', headers => { 'X-Faas-User' => 'mallory' });
unlike($res->{body}, qr/user=/, 'subrequest without a token: the registry is not reached')
    or diag $res->{body};
like($res->{body}, qr/401/, '... the include gets 401');
$res = http_request($port, 'GET', '/page', headers => {
    'X-Faas-User' => 'mallory', Authorization => "Bearer $owner" });
like($res->{body}, qr/^user=alice$/m, 'subrequest with a token: X-Faas-User is its subject')
    or diag $res->{body};
unlike($res->{body}, qr/mallory/, '... the forged one is gone');

stop_nginx();
faas_finish();

__DATA__

=== TEST 1: unknown function: 404
--- request
GET /fn/nope
--- error_code: 404
--- response_body_like
"error":"no such function"
--- response_headers_like
X-Faas-Request-Id: ^[0-9a-f]{32}$

=== TEST 2: invalid function name: 404
--- request
GET /fn/Bad_Name/x
--- error_code: 404

=== TEST 3: private function without credentials: 401 with WWW-Authenticate
--- request
GET /fn/priv
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="faas"
--- response_body_like
"error":"credentials required"

=== TEST 4: the owner's token passes
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_OWNER
--- error_code: 503
--- response_body_like
no sandbox within 200 ms

=== TEST 5: another user's valid token: 403
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_OTHER_USER
--- error_code: 403
--- response_body_like
"error":"access denied"

=== TEST 6: expired token: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_EXPIRED
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="faas", error="invalid_token", error_description="token expired"

=== TEST 7: expired 5 s ago, inside the leeway: passes
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_IN_LEEWAY
--- error_code: 503

=== TEST 8: nbf in the future: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_NBF_FUTURE
--- error_code: 401
--- response_body_like
token not yet valid

=== TEST 9: exp missing: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_NO_EXP
--- error_code: 401
--- response_body_like
token has no expiry

=== TEST 10: alg none: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_ALG_NONE
--- error_code: 401
--- response_body_like
token algorithm not accepted

=== TEST 11: alg none with a signature part: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_ALG_NONE_SIGNED
--- error_code: 401
--- response_body_like
token algorithm not accepted

=== TEST 12: HS256 signed with the RSA public key: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_HS_WITH_PUB
--- error_code: 401
--- response_body_like
token algorithm not accepted

=== TEST 13: RS512 under RS256: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_RS512
--- error_code: 401
--- response_body_like
token algorithm not accepted

=== TEST 14: signed by another key: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_OTHER_KEY
--- error_code: 401
--- response_body_like
bad token signature

=== TEST 15: wrong issuer: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_WRONG_ISS
--- error_code: 401
--- response_body_like
wrong token issuer

=== TEST 16: wrong audience: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_WRONG_AUD
--- error_code: 401
--- response_body_like
wrong token audience

=== TEST 17: audience in an array: passes
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_AUD_ARRAY
--- error_code: 503

=== TEST 18: garbage token: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer not.a-token
--- error_code: 401
--- response_body_like
malformed token

=== TEST 19: not a Bearer scheme: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Basic YTpi
--- error_code: 401
--- response_body_like
malformed Authorization header

=== TEST 20: token without a subject: 401
--- request
GET /fn/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_NO_SUB
--- error_code: 401

=== TEST 21: HS256 location, good secret: passes
--- request
GET /hs/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_HS_GOOD
--- error_code: 503

=== TEST 22: HS256 location, wrong secret: 401
--- request
GET /hs/priv
--- more_headers
Authorization: Bearer $TEST_NGINX_HS_BAD
--- error_code: 401
--- response_body_like
bad token signature

=== TEST 23: access key right: passes
--- request
GET /fn/priv
--- more_headers
X-Faas-Key: good-key
--- error_code: 503
--- response_body_like
no sandbox within

=== TEST 24: access key wrong: 403
--- request
GET /fn/priv
--- more_headers
X-Faas-Key: bad-key
--- error_code: 403

=== TEST 25: revoked in Redis but no invalidation yet: still cached
--- init
$r->hset('faas:fn:priv', keys => $digest2);
--- request
GET /fn/priv
--- more_headers
X-Faas-Key: good-key
--- error_code: 503

=== TEST 26: revoked after the invalidation message: 403
--- init
$r->publish('faas:inval', 'priv');
Time::HiRes::sleep(0.2);
--- request
GET /fn/priv
--- more_headers
X-Faas-Key: good-key
--- error_code: 403

=== TEST 27: the other key still works after the revocation
--- request
GET /fn/priv
--- more_headers
X-Faas-Key: other-key
--- error_code: 503

=== TEST 28: public function without credentials: passes
--- request
GET /fn/pub/some/path?x=1
--- error_code: 503

=== TEST 29: body over faas_max_body: 413
--- request eval
"POST /fn/pub\n" . ("x" x 2000)
--- error_code: 413
--- response_body_like
request body too large

=== TEST 30: body at faas_max_body: accepted
--- request eval
"POST /fn/pub\n" . ("x" x 1024)
--- error_code: 503

=== TEST 31: management without a token: 401
--- request
GET /v1/functions
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="faas"

=== TEST 32: management with an expired token: 401
--- request
GET /v1/functions
--- more_headers
Authorization: Bearer $TEST_NGINX_EXPIRED
--- error_code: 401

=== TEST 33: management with a valid token: X-Faas-User set, a forged one replaced
--- request
GET /v1/functions
--- more_headers
Authorization: Bearer $TEST_NGINX_OWNER
X-Faas-User: mallory
--- response_body
user=alice

=== TEST 34: a subject with CR LF: 401, never an X-Faas-User
--- http_config eval: $::HTTP
--- config eval: $::CONFIG
--- request
GET /v1/functions
--- more_headers
Authorization: Bearer $TEST_NGINX_SUB_CRLF
--- error_code: 401
--- response_headers_like
WWW-Authenticate: malformed subject

=== TEST 35: a subject with a trailing space: 401
--- http_config eval: $::HTTP
--- config eval: $::CONFIG
--- request
GET /v1/functions
--- more_headers
Authorization: Bearer $TEST_NGINX_SUB_SPACE
--- error_code: 401

=== TEST 36: a subject of 129 characters: 401
--- http_config eval: $::HTTP
--- config eval: $::CONFIG
--- request
GET /v1/functions
--- more_headers
Authorization: Bearer $TEST_NGINX_SUB_LONG
--- error_code: 401

=== TEST 37: a subject with NUL: 401
--- http_config eval: $::HTTP
--- config eval: $::CONFIG
--- request
GET /v1/functions
--- more_headers
Authorization: Bearer $TEST_NGINX_SUB_NUL
--- error_code: 401

=== TEST 38: a function call with a bad subject: 401 with the reason
--- http_config eval: $::HTTP
--- config eval: $::CONFIG
--- request
GET /fn/pub
--- more_headers
Authorization: Bearer $TEST_NGINX_SUB_CRLF
--- error_code: 401
--- response_body_like
"error":"malformed subject
