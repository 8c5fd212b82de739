# The provisioner builds a sandbox from the revision's hash faas:rev:{rid}
# (the ProvisionRequest names only the rid): a rid without one, or with an
# unusable one, is answered on faas:err:{rid}:<request-id>; one read is kept
# for the daemon's life; env values reach the handler as strings.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner', 'faas-agent');

my $redis = start_redis();
my $r = redis_client($redis);
my $prov = start_provisioner($redis, name => 'p1', shards => 4, grace_ms => 600000);

my $zip = make_zip('handler.py' => <<'PY');
import os
def handler(event, context):
    return {"statusCode": 200, "body": os.environ.get("N", "-") + "|" + os.environ.get("S", "-")}
PY
my ($key, $sha) = put_code($prov, 'rev', 1, $zip);
my %code = (code_key => $key, code_sha256 => $sha, memory_mb => 64);

sub outcome {
    my ($rid, %f) = @_;
    my $id = push_request($r, $prov, rid => $rid, %f);
    my ($k, $v) = @{ $r->blpop("faas:idle:{$rid}", "faas:err:{$rid}:$id", 30) || [] };
    return ($k // '') eq "faas:idle:{$rid}" ? ($v, undef) : (undef, $v);
}

# --- a rid without faas:rev ---------------------------------------------
my ($entry, $err) = outcome('rev@1', %code, no_rev => 1);
is($err, 'function revision rev@1 is unknown', 'a rid without faas:rev: the reason reaches the request');
is($r->get('faas:count:{rev@1}'), 0, '... and the count is given back');

# Not remembered as unknown: once the registry writes it, it is served.
($entry, $err) = outcome('rev@1', %code, env => { S => 'text' });
like($entry // '', qr/^s-[0-9a-f]{16}\|/, 'the same rid once faas:rev exists: a sandbox') or diag($err);

# --- kept for the daemon's life -----------------------------------------
$r->del('faas:rev:{rev@1}');
($entry, $err) = outcome('rev@1', %code, no_rev => 1);
like($entry // '', qr/^s-[0-9a-f]{16}\|/, 'a revision read once is not read again (its hash never changes)')
    or diag($err);

# --- unusable hashes ----------------------------------------------------
put_revision_hash($r, 'rev@2', runtime => 'python3', handler => 'handler.handler',
                  code_key => $key, code_sha256 => $sha, env => '[1]');
($entry, $err) = outcome('rev@2', no_rev => 1);
is($err, 'bad revision rev@2: env is not a JSON object', 'env not an object: refused');
put_revision_hash($r, 'rev@3', runtime => 'python3', handler => 'handler.handler',
                  code_key => $key, code_sha256 => 'X' x 64);
($entry, $err) = outcome('rev@3', no_rev => 1);
is($err, 'bad revision rev@3: invalid code sha256', 'a bad sha256: refused');
put_revision_hash($r, 'rev@4', runtime => 'python3', code_key => $key, code_sha256 => $sha);
($entry, $err) = outcome('rev@4', no_rev => 1);
is($err, 'bad revision rev@4: invalid handler', 'no handler: refused');

# --- env: a value that is not a string reaches the handler JSON-encoded ---
($entry, $err) = outcome('rev@5', %code, env => { N => 5, S => 'x y' });
# (put_revision encodes the number as a JSON number)
like($r->hget('faas:rev:{rev@5}', 'env'), qr/"N":5\b/, 'the hash holds a JSON number');
my ($sid) = split /\|/, ($entry // '');
my $agent = start_agent_for($prov);
my $resp = invoke_once($agent, sandbox_id => $sid, function => 'rev', version => 5,
                       event => '{}', deadline_ms => int(time * 1000) + 10000,
                       timeout_ms => 10000, memory_mb => 64);
is($resp->{body}, '5|x y', 'the handler sees env from faas:rev, the number as "5"');
stop_proc($agent);

ok(proc_alive($prov), 'the provisioner is still running');
prov_cleanup($prov);
faas_finish();
