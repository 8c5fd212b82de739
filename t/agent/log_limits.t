# The agent bounds invocation logs itself, whatever the runtime in the
# sandbox did: a handler that lifts the runtime's cap still gets its log cut
# to log_max_bytes with the truncation marker; while the store is slow, a
# function flooding logs gets no more than its share of the log queue (its
# further logs become a one-line marker under the same key), and another
# function's logs all arrive in full (here: in the spool, the store being
# down).
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Faas::Test;
use Faas::Agent;
use Faas::Setup;

need_programs();

my $w = work_dir();
my $code = write_handler('loud', 'handler.py' => <<'PY');
import sys
def lift():
    # What tenant code can do: lift the runtime's own cap for this call.
    for m in list(sys.modules.values()):
        c = getattr(m, '_capture', None)
        if c is not None and hasattr(c, 'cap'):
            c.cap = 1 << 30
def loud(event, context):
    lift()
    sys.stdout.write("z" * event.get("n", 2000000) + "\n")
    return "ok"
def quiet(event, context):
    print("quiet line for", context.aws_request_id)
    return "ok"
PY

# --- the per-call cap --------------------------------------------------------
my $store = "$w/store";
my $agent = start_agent(store => "file://$store", cfg => { log_max_bytes => 16384 });
my $id = sandbox_create($agent, function => 'loud', code => $code, handler => 'handler.loud');
my $r = invoke_once($agent, sandbox_id => $id, function => 'loud');
is($r->{status}, 'OK', 'a 2 MB log with the runtime cap lifted: OK');
ok(wait_until(sub { -f "$store/$r->{log_key}" }, 10), '... its log is stored');
my $log = read_file("$store/$r->{log_key}") // '';
cmp_ok(length($log), '<=', 16384, '... cut to log_max_bytes by the agent');
cmp_ok(length($log), '>', 16000, '... and filled up to it');
like($log, qr/\A(z{100})/, '... keeping the start');
like($log, qr/\n\[faas: log truncated, (\d+) bytes dropped\]\n\z/, '... ending with the marker');
my ($dropped) = $log =~ /truncated, (\d+) bytes/;
is(length($log) - length("[faas: log truncated, $dropped bytes dropped]\n") - 1 + $dropped,
   2000001, '... which counts exactly what was dropped');
ok(wait_until(sub { (read_file($agent->{log}) // '') =~ /logs: 1 cut to log_max_bytes/ }, 5),
   '... and the agent says so');
stop_proc($agent);
is($agent->{status} >> 8, 0, 'agent: clean exit');
sandbox_destroy($agent, $id);

# --- the queue share ---------------------------------------------------------
# A store that accepts connections and never answers: an upload hangs until
# s3_timeout_ms, and logs pile up in memory meanwhile.
my $hole = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                 LocalPort => 0, ReuseAddr => 1) or die "listen: $!";
my $hport = $hole->sockport;
$agent = start_agent(name => 'agent2', store => 's3://logs',
                     cfg => { s3_endpoint => "http://127.0.0.1:$hport",
                              s3_region => 'us-east-1', s3_access_key => 'k',
                              s3_secret_key => 's', s3_path_style => JSON::PP::true,
                              s3_timeout_ms => 15000, log_retry_min_ms => 60000,
                              log_retry_max_ms => 60000,
                              log_max_bytes => 16384, log_queue_bytes => 131072 });
my $loud = sandbox_create($agent, function => 'loud', code => $code, handler => 'handler.loud');
my $quiet = sandbox_create($agent, function => 'quiet', code => $code, handler => 'handler.quiet');

my (@quiet, @loud);
# The first log starts an upload that hangs.
$r = invoke_once($agent, sandbox_id => $quiet, function => 'quiet');
push @quiet, [ $r->{request_id} // '', $r->{log_key} ];
for my $i (1 .. 20) {
    $r = invoke_once($agent, sandbox_id => $loud, function => 'loud', event => '{"n":50000}');
    push @loud, $r->{log_key};
    if ($i % 4 == 0) {
        my $rid = new_rid();
        $r = invoke_once($agent, request_id => $rid, sandbox_id => $quiet, function => 'quiet');
        push @quiet, [ $rid, $r->{log_key} ];
    }
}
$quiet[0][0] = ($quiet[0][1] =~ m{/([0-9a-f]+)\.log\z})[0];
is(scalar(grep { $_ } @loud, map { $_->[1] } @quiet), 26, 'every call got a log key');

sub spooled {
    my ($key) = @_;
    (my $name = $key) =~ s{/}{%2F}g;
    my @f = glob("$agent->{spool_dir}/*-$name");
    return @f ? read_file($f[0]) : undef;
}
ok(wait_until(sub { !grep { !defined spooled($_) } @loud, map { $_->[1] } @quiet }, 40),
   'once the upload failed, every log is in the spool under its key')
    or diag(read_file($agent->{log}));
my @full = grep { spooled($_) =~ /^z{1000}/ } @loud;
my @shed = grep { spooled($_) =~ /\A\[faas: log dropped, 50001 bytes: this function's share/ } @loud;
cmp_ok(scalar @full, '>=', 1, 'the flooding function kept some logs (' . scalar(@full) . ')');
cmp_ok(scalar @full, '<=', 4, '... no more than its share');
is(scalar(@full) + scalar(@shed), 20, '... the others are a one-line marker');
for my $q (@quiet) {
    like(spooled($q->[1]), qr/\Aquiet line for \Q$q->[0]\E\n\z/, "quiet $q->[0]: its log is whole");
}
like(read_file($agent->{log}), qr/dropped over their function's queue share/, 'the agent says so');
stop_proc($agent);
is($agent->{status} >> 8, 0, 'agent: clean exit');
sandbox_destroy($agent, $_) for $loud, $quiet;
close $hole;
faas_finish();
