# Redis goes away and comes back: the provisioner reconnects both of its
# connections, takes its leases again and serves requests.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;
use File::Path qw(make_path);

need_programs('faas-provisioner');

my $redis = start_redis();
my $p = start_provisioner($redis, name => 'p1', shards => 2, lease_ms => 1000);
my ($key, $sha) = put_code($p, 'echo', 1, make_zip('handler.py' => "def handler(e, c):\n    return 1\n"));

stop_proc($redis);
ok(wait_until(sub { prov_log_count($p, qr/redis (cmd|q\d+): lost \(/) >= 2 }, 15),
   'the provisioner notices that Redis is gone');
ok(proc_alive($p), 'and keeps running');

# The same port again, empty (as after a Redis restart without persistence).
my $port = $redis->{port};
my $dir = work_dir() . "/redis-again";
make_path($dir);
my $again = spawn('redis-again', ['redis-server', '--port', $port, '--bind', '127.0.0.1',
                                  '--save', '', '--appendonly', 'no', '--dir', $dir]);
wait_port($port) or die 'redis did not restart';
my $r = redis_client($redis);
ok(wait_until(sub { scalar(prov_held_shards($r, 'p1', 2)) == 2 }, 15),
   'after Redis is back it leads its shards again');
my $id = push_request($r, $p, rid => 'echo@1', code_key => $key, code_sha256 => $sha,
                      memory_mb => 32);
my ($k, $e) = @{ $r->blpop('faas:idle:{echo@1}', "faas:err:{echo\@1}:$id", 30) || [] };
like($e // '', qr/\|$id$/, 'and serves requests');

prov_cleanup($p);
faas_finish();
