# Directives of ngx_http_faas_module: bad values are refused by nginx -t
# with a clear message; a good configuration loads.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Jwt;

my $w = work_dir();
write_file("$w/hs.key", "0123456789abcdef0123456789abcdef\n");
write_file("$w/empty.key", "\n");
key_pair('rsa');
key_pair('ec', 'EC');

run_blocks();
stop_nginx();
faas_finish();

__DATA__

=== TEST 1: a complete configuration passes nginx -t and serves
--- http_config
faas_redis 127.0.0.1:1 password=secret;
faas_shards 16;
faas_key_secret k;
faas_agent_token t;
faas_redis_timeout 500ms;
faas_redis_blpop_connections 8;
faas_cache_ttl 5s;
--- config
location /fn/ {
    faas_function on;
    faas_jwt_alg RS256;
    faas_jwt_key $TEST_NGINX_WORK/rsa.pub;
    faas_jwt_issuer https://issuer;
    faas_jwt_audience faas;
    faas_jwt_leeway 10s;
    faas_cold_start_timeout 3s;
    faas_max_body 1m;
    faas_retries 2;
}
location /v1/ {
    faas_management on;
    faas_jwt_alg HS256;
    faas_jwt_key $TEST_NGINX_WORK/hs.key;
    return 200 "user=$faas_user\n";
}
location = /ok { return 200 "ok\n"; }
--- request
GET /ok
--- response_body
ok

=== TEST 2: faas_redis without a port
--- http_config
faas_redis 127.0.0.1;
--- must_die
--- error_log
invalid Redis address "127.0.0.1": "host:port" or "unix:/path" expected

=== TEST 3: faas_redis with a bad port
--- http_config
faas_redis 127.0.0.1:99999;
--- must_die
--- error_log
invalid Redis address "127.0.0.1:99999"

=== TEST 4: faas_redis with a relative socket path
--- http_config
faas_redis unix:redis.sock;
--- must_die
--- error_log
invalid Redis socket "unix:redis.sock"

=== TEST 5: faas_redis with a bad second parameter
--- http_config
faas_redis 127.0.0.1:6379 secret;
--- must_die
--- error_log
invalid parameter "secret": "password=..." expected

=== TEST 6: faas_redis twice
--- http_config
faas_redis 127.0.0.1:6379;
faas_redis 127.0.0.1:6380;
--- must_die
--- error_log
"faas_redis" directive is duplicate

=== TEST 7: faas_function without faas_redis
--- config
location /fn/ { faas_function on; }
--- must_die
--- error_log
"faas_function" and "faas_management" need "faas_redis" in the http block

=== TEST 8: faas_shards out of range
--- http_config
faas_redis 127.0.0.1:6379;
faas_shards 0;
--- must_die
--- error_log
"faas_shards" directive must be between 1 and 16384

=== TEST 9: faas_shards not a number
--- http_config
faas_redis 127.0.0.1:6379;
faas_shards many;
--- must_die
--- error_log
"faas_shards" directive invalid number

=== TEST 10: the none algorithm is refused
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_jwt_alg none; faas_jwt_key /dev/null; }
--- must_die
--- error_log
invalid JWT algorithm "none"
("none" is never accepted)

=== TEST 11: an unknown algorithm is refused
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_jwt_alg PS256; }
--- must_die
--- error_log
invalid JWT algorithm "PS256"

=== TEST 12: an algorithm without a key
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_jwt_alg HS256; }
--- must_die
--- error_log
"faas_jwt_alg" is set but "faas_jwt_key" is not

=== TEST 13: a key without an algorithm
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_jwt_key $TEST_NGINX_WORK/hs.key; }
--- must_die
--- error_log
"faas_jwt_key" is set but "faas_jwt_alg" is not

=== TEST 14: a missing key file
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_jwt_alg HS256; faas_jwt_key $TEST_NGINX_WORK/nope.key; }
--- must_die
--- error_log
faas_jwt_key: cannot open
nope.key

=== TEST 15: RS256 with a file that is no PEM key
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_jwt_alg RS256; faas_jwt_key $TEST_NGINX_WORK/hs.key; }
--- must_die
--- error_log
is not a PEM public key (RS256 needs one)

=== TEST 16: RS256 with an EC key
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_jwt_alg RS256; faas_jwt_key $TEST_NGINX_WORK/ec.pub; }
--- must_die
--- error_log
is not an RSA public key, as RS256 needs

=== TEST 17: HS256 with a PEM key (algorithm confusion)
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_jwt_alg HS256; faas_jwt_key $TEST_NGINX_WORK/rsa.pub; }
--- must_die
--- error_log
holds a PEM key, but HS256 needs a shared secret

=== TEST 18: HS256 with an empty secret
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_jwt_alg HS256; faas_jwt_key $TEST_NGINX_WORK/empty.key; }
--- must_die
--- error_log
empty.key" is empty

=== TEST 19: faas_management without a JWT key
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /v1/ { faas_management on; }
--- must_die
--- error_log
"faas_management" requires "faas_jwt_alg" and "faas_jwt_key"

=== TEST 20: faas_function and faas_management together
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /x/ { faas_function on; faas_management on; }
--- must_die
--- error_log
"faas_management" directive cannot be combined with "faas_function"

=== TEST 21: faas_cold_start_timeout zero
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_cold_start_timeout 0; }
--- must_die
--- error_log
"faas_cold_start_timeout" directive must be greater than zero

=== TEST 22: faas_max_body not a size
--- http_config
faas_redis 127.0.0.1:6379;
--- config
location /fn/ { faas_function on; faas_max_body lots; }
--- must_die
--- error_log
"faas_max_body" directive invalid value

=== TEST 23: faas_redis outside the http block
--- config
location /fn/ { faas_redis 127.0.0.1:6379; }
--- must_die
--- error_log
"faas_redis" directive is not allowed here

=== TEST 24: Redis unreachable: 503 at once
--- http_config
faas_redis 127.0.0.1:1;
--- config
location /fn/ { faas_function on; }
--- request
GET /fn/hello
--- error_code: 503
--- response_body_like
"error":"Redis is unavailable"
--- response_headers_like
X-Faas-Request-Id: ^[0-9a-f]{32}$
