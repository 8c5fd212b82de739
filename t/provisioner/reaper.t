# Keep-alive: an idle sandbox unused for longer than its keep-alive is taken
# out of its idle list and destroyed, never one that a gateway popped
# meanwhile; a returned sandbox's keep-alive restarts, and so does that of
# a sandbox that ran code although its list looked unchanged between two
# scans (a gateway popped, invoked and returned it in between). Code GC: a revision
# unused for code_gc_s is deleted from the cache, never while a sandbox uses it.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;
use Time::HiRes qw(time);

need_programs('faas-provisioner');

my $redis = start_redis();
my $r = redis_client($redis);
my $p = start_provisioner($redis, name => 'p1', code_gc_s => 2,
                          grace_ms => 60000);
my $cache = $p->{cfg}{cache_dir};
my %code = %{ put_handlers($p, qw(keep short popped gc used)) };

sub provision {
    my ($fn, %f) = @_;
    my $rid = "$fn\@1";
    my $id = push_request($r, $p, rid => $rid, memory_mb => 32, %{ $code{$fn} }, %f);
    my ($k, $e) = @{ $r->blpop("faas:idle:{$rid}", "faas:err:{$rid}:$id", 30) || [] };
    die "no sandbox for $rid: " . ($e // 'timeout') unless ($k // '') eq "faas:idle:{$rid}";
    $r->rpush("faas:idle:{$rid}", $e);   # put it back: we only looked
    return ($e, (split /\|/, $e)[0]);
}
sub freezer { '/sys/fs/cgroup/freezer/' . cgroup_root() . "/$_[0]/freezer.state" }
sub exists_sbx { -d "$p->{cfg}{run_dir}/sbx/$_[0]" }

my ($keep_e, $keep) = provision('keep');                       # default 600 s
my ($short_e, $short) = provision('short', keep_alive_s => 2);
my ($pop_e, $pop) = provision('popped', keep_alive_s => 2);

# A gateway takes 'popped' and invokes it (thawed) for longer than its keep-alive.
is($r->lpop('faas:idle:{popped@1}'), $pop_e, 'a gateway pops one sandbox');
write_file(freezer($pop), 'THAWED');

ok(wait_until(sub { !exists_sbx($short) }, 20), 'the idle sandbox is destroyed after its keep-alive');
is(scalar(my @l = idle_entries($r, 'short@1')), 0, 'and taken out of its idle list');
ok(wait_until(sub { ($r->get('faas:count:{short@1}') // '') eq '0' }, 10),
   'its count is decremented');
ok(exists_sbx($pop), 'the popped sandbox is left alone past its keep-alive');
is($r->get('faas:count:{popped@1}'), 1, 'and still counted');
ok(exists_sbx($keep), 'a sandbox with the default keep-alive stays');
is_deeply([idle_entries($r, 'keep@1')], [$keep_e], 'and stays listed');

# The gateway gives it back: its keep-alive starts again, then it is reaped.
write_file(freezer($pop), 'FROZEN');
$r->rpush('faas:idle:{popped@1}', $pop_e);
ok(wait_until(sub { !exists_sbx($pop) }, 20), 'once returned and idle again, it is reaped');
# The run dir goes first, then the count and the log line: wait for them.
ok(wait_until(sub { ($r->get('faas:count:{popped@1}') // '') eq '0' }, 10),
   'count decremented');
ok(wait_until(sub { prov_log_count($p, qr/sandbox \Q$pop\E \(popped\@1\) destroyed: keep-alive expired/) }, 10),
   'reason logged');

# Used between two scans: the entry never leaves its list as far as the
# provisioner can see, but the sandbox ran code, so its keep-alive restarts
# from then (its CPU time grew).
my ($used_e, $used) = provision('used', keep_alive_s => 3);
my $created = prov_log_ms($p, qr/sandbox \Q$used\E \(used\@1\) idle in/);
# Let half its keep-alive pass (not a synchronisation: the scenario).
ok(wait_until(sub { time * 1000 - $created > 1500 }, 10), 'half its keep-alive later');
my $ans = prov_sbx_invoke($p, $used, '{"n":1}');
is($ans && $ans->{ok} ? 'ok' : 'failed', 'ok', 'it is invoked while listed');
ok(wait_until(sub { prov_log_count($p, qr/reconcile: \Q$used\E used/) }, 15),
   'the provisioner notices that it ran');
ok(wait_until(sub { !exists_sbx($used) }, 20), 'then reaps it after its keep-alive');
my $noticed = prov_log_ms($p, qr/reconcile: \Q$used\E used/);
my $reaped = prov_log_ms($p, qr/sandbox \Q$used\E \(used\@1\): idle for/);
ok(defined $reaped && $reaped - $noticed >= 3000,
   'counted from its use, not from its creation (' . ($reaped - $noticed) . ' ms)');

# Code GC: 'short' and 'popped' have no sandbox left and are older than 2 s.
ok(wait_until(sub { !-d "$cache/short\@1.$code{short}{code_sha256}"
                    && !-d "$cache/popped\@1.$code{popped}{code_sha256}" }, 20),
   'unused code is removed from the cache');
ok(-d "$cache/keep\@1.$code{keep}{code_sha256}", 'code used by a sandbox stays');
ok(wait_until(sub { !(my @t = glob("$cache/.tmp*")) }, 10), 'no leftovers in the cache');

# A revision whose code was collected is fetched again when asked for.
my ($again) = provision('short', keep_alive_s => 600);
like($again, qr/^s-/, 'collected code is fetched again on demand');
is(prov_log_count($p, qr/code: fetched code\/short\//), 2, 'fetched a second time');

prov_cleanup($p);
faas_finish();
