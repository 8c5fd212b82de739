# faas-agent refuses a bad configuration at start: exit 1 and one line on
# stderr naming the key and the problem (unknown key, wrong type, out of
# range, missing required key, unreadable file). Each block changes a good
# configuration (set: a JSON object of keys, delete: key names) and gives
# the reason the agent must print (error_like).
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Setup;
use Faas::Blocks;

need_programs('faas-agent');

my $w = work_dir();
my $good = {
    run_dir => "$w/run", cgroup_root => cgroup_root(),
    runtimes_dir => faas_root() . '/runtimes', socket => "$w/agent.sock",
    spool_dir => "$w/spool", store_url => "file://$w/store",
};

sub run_with {
    my ($f) = @_;
    my $out = `timeout 10 ${\ objs_dir()}/faas-agent -c $f 2>&1`;
    return ($? >> 8, $out);
}
sub run_cfg {
    my ($cfg) = @_;
    my $f = "$w/bad.json";
    if (ref $cfg) { write_json($f, $cfg) } else { write_file($f, $cfg) }
    return run_with($f);
}

for my $b (data_blocks()) {
    my ($rc, $out) = run_cfg(edit_config($good, $b));
    is($rc, 1, $b->name . ': exit 1');
    my $re = $b->error_like =~ s/\n\z//r;
    like($out, qr/\Afaas-agent: .*$re/, $b->name . ': reason') or diag($out);
    is(scalar(() = $out =~ /\n/g), 1, $b->name . ': one line');
}
my ($rc, $out) = run_cfg('{"socket": ');
is($rc, 1, 'invalid JSON: exit 1');
like($out, qr/\Afaas-agent: config .*bad\.json:\d+: /, 'invalid JSON: names the file and line');
($rc, $out) = run_with("$w/none.json");
is($rc, 1, 'missing file: exit 1');
like($out, qr/\Afaas-agent: config .*none\.json: unable to open .*No such file/,
     'missing file: says so in one line') or diag($out);
is(scalar(() = $out =~ /\n/g), 1, 'missing file: one line');
ok(!-e "$w/agent.sock", 'no socket was ever made');
faas_finish();

__DATA__

=== TEST 1: unknown key (a typo)
--- set
{"spool_dri": "/tmp/x"}
--- error_like
config: unknown key "spool_dri"

=== TEST 2: unknown key with control characters is shown on one line
--- set
{"bad\nkey": 1}
--- error_like
config: unknown key "bad\?key"

=== TEST 3: wrong type
--- set
{"max_inflight": "10"}
--- error_like
config: max_inflight must be an integer

=== TEST 4: wrong type of a string key
--- set
{"socket": 5}
--- error_like
config: socket must be a string

=== TEST 5: missing socket
--- delete: socket
--- error_like
config: socket is required

=== TEST 6: missing run_dir
--- delete: run_dir
--- error_like
config: run_dir is required

=== TEST 7: spin_us out of range
--- set
{"spin_us": 20000}
--- error_like
config: spin_us must be 0\.\.10000

=== TEST 8: uid_base out of range
--- set
{"uid_base": 5}
--- error_like
config: uid_base must be 1000\.\.2147483647

=== TEST 9: negative retry
--- set
{"log_retry_min_ms": -1}
--- error_like
config: log_retry_min_ms must be 1\.\.3600000

=== TEST 10: log_max_bytes out of range
--- set
{"log_max_bytes": 10}
--- error_like
config: log_max_bytes must be 1024\.\.8388608

=== TEST 11: log queue smaller than one log
--- set
{"log_max_bytes": 65536, "log_queue_bytes": 4096}
--- error_like
config: log_queue_bytes must be log_max_bytes\.\.4 GiB

=== TEST 12: max_frame_bytes out of range
--- set
{"max_frame_bytes": 10}
--- error_like
config: max_frame_bytes must be between 1024 and 1 GiB

=== TEST 13: tcp_listen without a token
--- set
{"tcp_listen": "127.0.0.1:1"}
--- error_like
config: token is required with tcp_listen

=== TEST 14: unreadable certificate
--- set
{"tcp_listen": "127.0.0.1:1", "token": "t", "tls_cert": "/nonexistent/cert.pem", "tls_key": "/nonexistent/key.pem"}
--- error_like
/nonexistent/cert\.pem

=== TEST 15: bad freezer
--- set
{"freezer": "v3"}
--- error_like
config: freezer must be v1 or v2

=== TEST 16: bad S3 option type
--- set
{"store_url": "s3://b", "s3_timeout_ms": "slow"}
--- error_like
s3_timeout_ms must be an integer
