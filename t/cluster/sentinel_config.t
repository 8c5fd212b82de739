# faas_redis_sentinel: bad values are refused by nginx -t with a clear
# message; with no sentinel answering, a call is answered 503 at once and
# the worker says why (and keeps asking, docs/DESIGN.md section 4).
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;

nginx_env(DEAD => free_port());
run_blocks();
stop_nginx();
faas_finish();

__DATA__

=== TEST 1: the master's name must come first
--- http_config
faas_redis_sentinel 127.0.0.1:26379 master=faas;
--- must_die
--- error_log
invalid parameter "127.0.0.1:26379": "master=NAME" expected first

=== TEST 2: at least one sentinel
--- http_config
faas_redis_sentinel master=faas password=x;
--- must_die
--- error_log
"faas_redis_sentinel" directive needs at least one sentinel

=== TEST 3: a sentinel without a port
--- http_config
faas_redis_sentinel master=faas 127.0.0.1;
--- must_die
--- error_log
invalid sentinel "127.0.0.1": "host:port" expected

=== TEST 4: a sentinel with a bad port
--- http_config
faas_redis_sentinel master=faas 127.0.0.1:70000;
--- must_die
--- error_log
invalid sentinel "127.0.0.1:70000": "host:port" expected

=== TEST 5: not with faas_redis
--- http_config
faas_redis 127.0.0.1:6379;
faas_redis_sentinel master=faas 127.0.0.1:26379;
--- must_die
--- error_log
is duplicate or given with "faas_redis"

=== TEST 6: no sentinel answers: 503 at once, the reason in the error log
--- http_config
faas_redis_sentinel master=faas 127.0.0.1:$TEST_NGINX_DEAD;
--- config
location /fn/ { faas_function on; }
--- request
GET /fn/hello
--- error_code: 503
--- error_log
redis master "faas" not found
