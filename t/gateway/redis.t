# faas_redis: a password (right and wrong) and a Unix socket.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use File::Path qw(make_path);

my $redis = start_redis(password => 'pw-123');
my $r = redis_client($redis);
$r->hset('faas:fn:pub', rid => 'pub@1', name => 'pub', version => 1, owner => 'a',
         runtime => 'python3', handler => 'h.h', public => 1, timeout_ms => 1000);
my $cfg = 'location /fn/ { faas_function on; faas_cold_start_timeout 200ms; }';

my $ng = start_nginx(http_config => "faas_redis $redis->{addr} password=pw-123;",
                     config => $cfg);
my $res = http_request($ng->{port}, 'GET', '/fn/nope');
is($res->{status}, 404, 'right password: Redis answers (unknown function: 404)');
$res = http_request($ng->{port}, 'GET', '/fn/pub');
is($res->{status}, 503, 'a known function reaches the cold-start wait');
like($res->{body}, qr/no sandbox within 200 ms/, '... and times out there');

my $off = error_log_size();
$ng = start_nginx(http_config => "faas_redis $redis->{addr} password=wrong;",
                  config => $cfg);
$res = http_request($ng->{port}, 'GET', '/fn/pub');
is($res->{status}, 503, 'wrong password: 503');
ok(wait_until(sub { error_log_since($off) =~ /AUTH failed/ }, 5), '... and "AUTH failed" logged');

# a Unix socket
my $dir = work_dir() . '/redis-unix';
make_path($dir);
my $sock = "$dir/redis.sock";
my $ur = spawn('redis-unix', ['redis-server', '--port', 0, '--unixsocket', $sock,
                              '--unixsocketperm', 700, '--save', '', '--appendonly', 'no',
                              '--dir', $dir, '--daemonize', 'no']);
wait_path($sock) or die 'redis on a Unix socket did not start';
require Redis;
my $ru = Redis->new(sock => $sock);
$ru->hset('faas:fn:pub', rid => 'pub@1', name => 'pub', version => 1, owner => 'a',
          runtime => 'python3', handler => 'h.h', public => 0, timeout_ms => 1000);
$ng = start_nginx(http_config => "faas_redis unix:$sock;", config => $cfg);
$res = http_request($ng->{port}, 'GET', '/fn/pub');
is($res->{status}, 401, 'Unix socket: metadata read (private function: 401)');
$res = http_request($ng->{port}, 'GET', '/fn/nope');
is($res->{status}, 404, 'Unix socket: unknown function: 404');

# the cache's safety-net TTL: a change without an invalidation message is
# seen once the entry expires
$ng = start_nginx(http_config => "faas_redis unix:$sock; faas_cache_ttl 300ms;", config => $cfg);
$res = http_request($ng->{port}, 'GET', '/fn/pub');
is($res->{status}, 401, 'cached as private');
$ru->hset('faas:fn:pub', public => 1);
ok(wait_until(sub { http_request($ng->{port}, 'GET', '/fn/pub')->{status} == 503 }, 10),
   'made public without a message: seen after faas_cache_ttl');

stop_nginx();
faas_finish();
