# The per-owner cap of live sandboxes on a host (owner_max_sandboxes): an
# owner at the cap gets "host full for owner ..." (the failure a full host
# gives, through faas:err), other owners still get sandboxes, and the owner
# gets one again once one of its sandboxes is gone. The owner is the
# `owner` field of faas:rev:{rid}.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $redis = start_redis();
my $r = redis_client($redis);
my $p = start_provisioner($redis, name => 'p1', grace_ms => 600000,
                          cfg => { owner_max_sandboxes => 2 });
my %code = %{ put_handlers($p, qw(a b c)) };
sub count { $r->get("faas:count:{$_[0]}") // 0 }
sub sbx_of { (split /\|/, $_[0])[0] }

my ($e1, $err1) = provision_wait($r, $p, rid => 'a@1', owner => 'alice', %{ $code{a} });
ok($e1, 'alice: first sandbox') or diag $err1;
my ($e2, $err2) = provision_wait($r, $p, rid => 'b@1', owner => 'alice', keep_alive_s => 8,
                                 %{ $code{b} });
ok($e2, 'alice: second sandbox, of another function') or diag $err2;

my ($e3, $err3) = provision_wait($r, $p, rid => 'a@1', owner => 'alice', %{ $code{a} });
ok(!$e3, 'alice: a third sandbox is refused');
like($err3 // '', qr/^host full for owner alice: 2 sandboxes, the owner_max_sandboxes/,
     '... answered like a full host, naming the owner');
is(count('a@1'), 1, '... and the refused request gave its count slot back');

my ($e4, $err4) = provision_wait($r, $p, rid => 'c@1', owner => 'bob', %{ $code{c} });
ok($e4, 'bob still gets a sandbox on the same host') or diag $err4;

my ($e5, $err5) = provision_wait($r, $p, rid => 'c@1', owner => 'bob', %{ $code{c} });
ok($e5, 'bob: second sandbox') or diag $err5;
my ($e6, $err6) = provision_wait($r, $p, rid => 'c@1', owner => 'bob', %{ $code{c} });
like($err6 // '', qr/^host full for owner bob:/, 'bob at his own cap');

# One of alice's sandboxes goes (its keep-alive ends): she may have one
# again.
my $gone = sbx_of($e2);
ok(wait_until(sub { !-d "$p->{cfg}{run_dir}/sbx/$gone" }, 40),
   'the sandbox of alice with a short keep-alive is destroyed')
    or diag read_file($p->{log});
my ($e7, $err7) = provision_wait($r, $p, rid => 'a@1', owner => 'alice', %{ $code{a} });
ok($e7, 'below the cap again: alice gets a sandbox') or diag $err7;

prov_cleanup($p);
faas_finish();
