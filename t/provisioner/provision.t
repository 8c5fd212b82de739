# One provisioner, code from a file:// store: a request for a new revision
# yields a ready, frozen, idle-listed sandbox that the real agent invokes;
# failures (sha256 mismatch, broken zip, unsafe zip, missing code, bad
# request) reach the waiting request on faas:err:{rid}:<request-id> with the
# count decremented.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $redis = start_redis();
my $r = redis_client($redis);
my $w = work_dir();
my $prov = start_provisioner($redis, name => 'p1', shards => 4, grace_ms => 600000);
my $cfg = $prov->{cfg};

my $zip = make_zip('handler.py' => <<'PY');
import json
def handler(event, context):
    return {"statusCode": 200, "body": "hello " + str(event.get("who")) + " from " + context.function_name}
PY
my ($key, $sha) = put_code($prov, 'hello', 1, $zip);

# --- success --------------------------------------------------------------
my $rq = push_request($r, $prov, rid => 'hello@1', code_key => $key,
                      code_sha256 => $sha, memory_mb => 64);
my ($k, $entry) = @{ $r->blpop('faas:idle:{hello@1}', "faas:err:{hello\@1}:$rq", 30) || [] };
is($k, 'faas:idle:{hello@1}', 'the request yields an idle-listed sandbox');
like($entry // '', qr/^s-[0-9a-f]{16}\|\Q$cfg->{agent_endpoint}\E\|$rq$/,
     'entry is <sandbox-id>|<agent-endpoint>|<origin-request-id>');
my ($sid) = split /\|/, ($entry // '');
is(sandbox_state($sid), 'FROZEN', 'the new sandbox is frozen');
is($r->get('faas:count:{hello@1}'), 1, 'the count is left alone on success');
ok(-d "$cfg->{cache_dir}/hello\@1.$sha", 'code unpacked into the cache');
ok(!$r->exists("faas:err:{hello\@1}:$rq"), 'no error key on success');

# The real agent invokes the sandbox the provisioner built.
my $agent = start_agent_for($prov);
my $resp = invoke_once($agent, sandbox_id => $sid, function => 'hello',
                       version => 1, event => '{"who":"prov"}',
                       deadline_ms => int(time * 1000) + 10000,
                       timeout_ms => 10000, memory_mb => 64);
is($resp->{status}, 'OK', 'the agent invokes it');
is($resp->{body}, 'hello prov from hello', 'with the handler from the zip');
ok(wait_until(sub { (sandbox_state($sid) // '') eq 'FROZEN' }, 10), 'frozen again after the call');
stop_proc($agent);

# A second request of the same revision uses the cache (no second fetch).
my $rq2 = push_request($r, $prov, rid => 'hello@1', code_key => $key,
                       code_sha256 => $sha, memory_mb => 64);
($k, $entry) = @{ $r->blpop('faas:idle:{hello@1}', "faas:err:{hello\@1}:$rq2", 30) || [] };
like($entry // '', qr/\|$rq2$/, 'second sandbox listed');
is(prov_log_count($prov, qr/code: fetched code\/hello\/1\//), 1,
   'the code was fetched once');

# --- failures -------------------------------------------------------------
sub fails_with {
    my ($rid, $re, $name, %f) = @_;
    my $before = $r->get("faas:count:{$rid}") // 0;
    my $id = push_request($r, $prov, rid => $rid, %f);
    my ($ek, $reason) = @{ $r->blpop("faas:idle:{$rid}", "faas:err:{$rid}:$id", 30) || [] };
    is($ek, "faas:err:{$rid}:$id", "$name: the error reaches the request");
    like($reason // '', $re, "$name: reason") or diag($reason);
    is($r->get("faas:count:{$rid}") // 0, $before, "$name: count decremented");
    return $id;
}

fails_with('hello@2', qr/sha256 mismatch/, 'sha256 mismatch',
           code_key => $key, code_sha256 => 'a' x 64);

my $junk = "$w/junk.zip";
write_file($junk, "this is not a zip archive at all\n" x 10);
my ($jkey, $jsha) = put_code($prov, 'junk', 1, $junk);
fails_with('junk@1', qr/bad code archive/, 'broken zip',
           code_key => $jkey, code_sha256 => $jsha);

my $evil = make_zip_py("$w/evil.zip", <<'PY');
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1], 'w')
z.writestr('handler.py', 'def handler(e, c):\n    return 1\n')
z.writestr('../escape.py', 'x = 1\n')
z.close()
PY
my ($ekey, $esha) = put_code($prov, 'evil', 1, $evil);
fails_with('evil@1', qr/bad code archive: unsafe entry/, 'zip with ..',
           code_key => $ekey, code_sha256 => $esha);
ok(!-e "$cfg->{cache_dir}/escape.py", 'nothing written outside the cache');

my $link = make_zip_py("$w/link.zip", <<'PY');
import sys, zipfile, stat
z = zipfile.ZipFile(sys.argv[1], 'w')
i = zipfile.ZipInfo('handler.py')
i.external_attr = (stat.S_IFLNK | 0o777) << 16
i.create_system = 3
z.writestr(i, '/etc/shadow')
z.close()
PY
my ($lkey, $lsha) = put_code($prov, 'link', 1, $link);
fails_with('link@1', qr/symlink/, 'zip with a symlink',
           code_key => $lkey, code_sha256 => $lsha);

fails_with('gone@1', qr/code missing/, 'code not in the store',
           code_key => 'code/gone/1/' . ('b' x 64) . '.zip',
           code_sha256 => 'b' x 64);

fails_with('hello@3', qr/^bad revision hello\@3: unknown runtime$/, 'unknown runtime',
           runtime => 'cobol', code_key => $key, code_sha256 => $sha);

# A runtime that cannot start (node refuses an unknown NODE_OPTIONS flag).
fails_with('hello@5', qr/runtime failed to start/, 'runtime fails to start',
           code_key => $key, code_sha256 => $sha, runtime => 'nodejs',
           handler => 'app.handler',
           env => { NODE_OPTIONS => '--no-such-node-flag' });
fails_with('hello@6', qr/runtime failed to start/, 'sandbox limits refused',
           code_key => $key, code_sha256 => $sha, memory_mb => 1);

# The error key expires.
my $id = push_request($r, $prov, rid => 'hello@4', code_key => $key,
                      code_sha256 => 'c' x 64);
ok(wait_until(sub { $r->exists("faas:err:{hello\@4}:$id") }, 30), 'error key written');
my $ttl = $r->ttl("faas:err:{hello\@4}:$id");
ok($ttl > 0 && $ttl <= 30, "error key has a short expiry ($ttl s)");

# A failed revision can be retried once the code is right.
my $rq5 = push_request($r, $prov, rid => 'hello@1', code_key => $key,
                       code_sha256 => $sha, memory_mb => 64);
($k, $entry) = @{ $r->blpop('faas:idle:{hello@1}', "faas:err:{hello\@1}:$rq5", 30) || [] };
like($entry // '', qr/\|$rq5$/, 'the provisioner keeps serving after failures');

prov_cleanup($prov);
faas_finish();
