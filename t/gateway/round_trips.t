# What a warm call costs Redis (docs/DESIGN.md section 10): the gateway's
# commands are LPOP of the idle list, then the RPUSH of the entry back and
# the RPUSH of the execution record, the two written together (one read of
# Redis for both). Redis counts the reads it processes (INFO stats,
# total_reads_processed): a warm call adds two, and one more for the INFO
# that asks.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Setup;
use Time::HiRes qw(sleep);

need_programs('faas-agent');

my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent();
my $code = write_handler('rt', 'handler.py' => <<'PY');
def handler(event, context):
    return "ok"
PY
my ($sid) = warm_sandboxes($agent, $r, 'rt', $code, 1);
fn_mirror($r, 'rt');
my $idle = idle_key('rt');

my $ng = start_nginx(http_config => "faas_redis $redis->{addr};",
                     config => 'location /fn/ { faas_function on; }');
my $port = $ng->{port};

sub reads { ($r->info('stats')->{total_reads_processed}) }

# the first call loads the function's metadata
is(http_request($port, 'GET', '/fn/rt')->{status}, 200, 'a first call');
ok(wait_until(sub { $r->llen('faas:records') == 1 }, 5), 'its record');

# Redis' own reads: each INFO is one; the least over a few calls leaves out
# a stray one (a reconnect, another client)
my ($least, $calls) = (undef, 5);
for my $i (1 .. $calls) {
    my $before = reads();
    my $res = http_request($port, 'GET', '/fn/rt');
    sleep 0.2;
    my $d = reads() - $before;
    is($res->{status}, 200, "warm call $i");
    $least = $d if !defined $least || $d < $least;
}
is($least, 3, 'a warm call is two Redis reads: LPOP, then the entry and the record together');
is($r->llen('faas:records'), 1 + $calls, 'every record reached Redis');
is($r->llen($idle), 1, 'the entry is back');

stop_nginx();
sandbox_destroy($agent, $sid);
faas_finish();
