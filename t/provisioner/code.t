# Code from an s3:// store (s3rver), and single-flight: 50 concurrent
# requests for one new revision fetch its code once and yield 50 sandboxes.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $redis = start_redis();
my $r = redis_client($redis);
my $s3 = start_s3rver(bucket => 'faas');
my $w = work_dir();
my $p = start_provisioner($redis, name => 'p1', store_url => 's3://faas',
                          cfg => $s3->{opts});

# A revision with a few MB of incompressible data, so that its fetch
# (download, sha256, unzip) is still running while the 50 requests arrive.
open(my $rnd, '<', '/dev/urandom') or die;
read($rnd, my $blob, 6 << 20);
close $rnd;
my $zip = make_zip('handler.py' => "import os\ndef handler(e, c):\n    return os.path.getsize('data.bin')\n",
                   'data.bin' => $blob);
my ($key, $sha) = put_code($p, 'big', 1, $zip);
my @objs = grep { m{code/big/1/} } split /\n/, `find $s3->{dir} -type f`;
ok(@objs > 0, 'the code is in s3rver');
ok(!-e "$w/store", 'and not in a file store');

my $N = 50;
my @ids = map { push_request($r, $p, rid => 'big@1', code_key => $key,
                             code_sha256 => $sha, memory_mb => 32) } 1 .. $N;
ok(wait_until(sub { $r->llen('faas:idle:{big@1}') == $N }, 90),
   "$N concurrent requests yield $N idle sandboxes")
    or diag('listed: ' . $r->llen('faas:idle:{big@1}'));
my %origins = map { (split /\|/, $_)[2] => 1 } idle_entries($r, 'big@1');
is(scalar(grep { $origins{$_} } @ids), $N, 'one per request');
is(scalar(my @s = prov_sandboxes($p)), $N, "$N sandboxes on the host");
is(prov_log_count($p, qr/code: fetching code\/big\/1\//), 1, 'the code was downloaded once');
my $waited = prov_log_count($p, qr/code: waiting for big\@1/);
ok($waited > 0, "requests waited for the fetch in progress ($waited)");
is($r->get('faas:count:{big@1}'), $N, 'count untouched');
my @cached = glob("$p->{cfg}{cache_dir}/big\@1.*");
is(scalar(@cached), 1, 'one cache entry');
is(-s "$cached[0]/data.bin", 6 << 20, 'unpacked in full');

# The s3 code runs under the real agent.
my $agent = start_agent_for($p);
my $sid = (split /\|/, $r->lpop('faas:idle:{big@1}'))[0];
my $resp = invoke_once($agent, sandbox_id => $sid, function => 'big', version => 1,
                       event => '{}', deadline_ms => int(time * 1000) + 10000,
                       timeout_ms => 10000, memory_mb => 32);
is("$resp->{status} $resp->{body}", 'OK ' . (6 << 20), 'a sandbox built from s3 code answers');
stop_proc($agent);

# A key missing in the bucket.
my $id = push_request($r, $p, rid => 'nope@1', code_key => 'code/nope/1/' . ('d' x 64) . '.zip',
                      code_sha256 => 'd' x 64);
my ($k, $reason) = @{ $r->blpop("faas:err:{nope\@1}:$id", 30) || [] };
like($reason // '', qr/code missing/, 'a missing s3 object gives "code missing"');
is($r->get('faas:count:{nope@1}'), 0, 'count decremented');

prov_cleanup($p);
faas_finish();
