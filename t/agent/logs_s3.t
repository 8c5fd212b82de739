# Invocation logs in an S3 store (s3rver): stored per request under
# logs/<name>/<date>/<rid>.log, truncation marker included; while the store
# is down logs are spooled on disk and the answer is not delayed; once the
# store is back (same port) they are delivered and the spool is emptied;
# a spool left by a stopped agent is delivered by the next one.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Setup;
use LWP::UserAgent;
use Time::HiRes qw(time);

need_programs();

my $s3 = start_s3rver();
my $port = $s3->{port};
my $ua = LWP::UserAgent->new(timeout => 5);
sub s3_get {
    my ($key) = @_;
    my $res = $ua->get("$s3->{endpoint}/$s3->{bucket}/$key");
    return $res->is_success ? $res->decoded_content(charset => 'none') : undef;
}

my %store = (store => "s3://$s3->{bucket}",
             cfg => { %{ $s3->{opts} }, log_retry_min_ms => 100,
                      log_retry_max_ms => 500, s3_timeout_ms => 3000 });
my $agent = start_agent(%store);
my $code = write_handler('logs', 'handler.py' => <<'PY');
import sys
def handler(event, context):
    print("line for", context.aws_request_id)
    if event.get("big"):
        sys.stdout.write("y" * 70000 + "\n")
    return {"ok": True}
PY
my $id = sandbox_create($agent, function => 'logfn', code => $code);

my $rid = new_rid();
my $r = invoke_once($agent, request_id => $rid, sandbox_id => $id, function => 'logfn');
is($r->{status}, 'OK', 'call OK');
like($r->{log_key}, qr{^logs/logfn/\d{4}-\d\d-\d\d/$rid\.log$}, 'log key');
my $log;
ok(wait_until(sub { $log = s3_get($r->{log_key}) }, 10), 'log stored in S3');
like($log // '', qr/line for $rid/, '... with the output of that request');

$r = invoke_once($agent, sandbox_id => $id, function => 'logfn', event => '{"big":1}');
ok(wait_until(sub { $log = s3_get($r->{log_key}) }, 10), 'big log stored in S3');
like($log // '', qr/\[faas: log truncated, \d+ bytes dropped\]/,
     '... with the truncation marker');

# --- store down: spool ------------------------------------------------------
stop_proc($s3);
my @keys;
my $t0 = time;
for my $i (1 .. 5) {
    my $rid = sprintf('down%02d', $i);
    $r = invoke_once($agent, request_id => $rid, sandbox_id => $id, function => 'logfn');
    is($r->{status}, 'OK', "store down: call $i still OK");
    push @keys, $r->{log_key};
}
my $spool = $agent->{spool_dir};
sub spooled { opendir(my $d, $spool) or return 0; scalar grep { !/^\./ } readdir $d }
ok(wait_until(sub { spooled() == 5 }, 15), 'five logs spooled on disk');
my @files = do { opendir(my $d, $spool); sort grep { !/^\./ } readdir $d };
like($files[0], qr/^\d{20}-logs%2Flogfn%2F.*down01\.log$/, 'spool file named by sequence and key');
like(read_file("$spool/$files[0]") // '', qr/line for down01/, '... holding the log');
like(read_file($agent->{log}), qr/log store failed, spooling/, 'agent says it spools');

$s3 = start_s3rver(port => $port, dir => $s3->{dir});
ok(wait_until(sub { spooled() == 0 }, 20), 'store back: spool emptied');
my $all = 1;
for my $i (0 .. $#keys) {
    my $l = s3_get($keys[$i]) // '';
    $all = 0 unless $l =~ /line for down0@{[$i + 1]}/;
}
ok($all, '... and every spooled log is in S3');

# --- a spool left by a stopped agent ----------------------------------------
stop_proc($s3);
$r = invoke_once($agent, request_id => 'leftover1', sandbox_id => $id, function => 'logfn');
my $left_key = $r->{log_key};
ok(wait_until(sub { spooled() == 1 }, 15), 'store down again: one log spooled');
stop_proc($agent);
is(spooled(), 1, 'agent stopped: the spool file stays');
$s3 = start_s3rver(port => $port, dir => $s3->{dir});
my $agent2 = start_agent(%store, name => 'agent2', spool_dir => $spool,
                         run_dir => $agent->{run_dir});
ok(wait_until(sub { spooled() == 0 }, 20), 'new agent delivers the old spool');
like(s3_get($left_key) // '', qr/line for leftover1/, '... into S3');

sandbox_destroy($agent2, $id);
faas_finish();
