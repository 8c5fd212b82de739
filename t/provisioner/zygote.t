# The provisioner's default: a python3 zygote per function revision. The
# first sandbox of a revision is made the fresh way, and so is the second,
# which starts the revision's zygote (one that gets one sandbox costs no
# zygote); the next ones are forked from it. Sandboxes of different functions never
# share a zygote, so never its address layout or its str hash secret. An
# unused zygote exits after zygote_idle_s and is reaped; the provisioner
# stops its zygotes when it exits.
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Faas::Test;
use Faas::Provisioner;

plan skip_all => 'objs/faas-provisioner or the sandboxes are not built'
    unless -x objs_dir() . '/faas-provisioner' && -e objs_dir() . '/_faas_zygote.so';

my $IDLE = 3;
my $redis = start_redis();
my $r = redis_client($redis);
my $p = start_provisioner($redis, name => 'p1', cfg => { zygote_idle_s => $IDLE });
my $zdir = "$p->{cfg}{run_dir}/sbx/.zygote";
my $zip = make_zip('handler.py' => <<'PY');
def handler(event, context):
    # the str hash secret, and where libc is mapped (ASLR)
    with open("/proc/self/maps") as f:
        libc = [l.split("-")[0] for l in f if "libc.so" in l]
    return {"hash": hash("faas-zygote"), "libc": libc[0] if libc else None}
PY
my %code;
for my $rid (qw(za@1 zb@1 za@2)) {
    my ($fn, $v) = split /@/, $rid;
    $code{$rid} = [put_code($p, $fn, $v, $zip)];
}

sub provision {
    my ($fn) = @_;
    my $rid = $fn =~ /@/ ? $fn : "$fn\@1";
    my ($entry, $err) = provision_wait($r, $p, rid => $rid, code_key => $code{$rid}[0],
                                       code_sha256 => $code{$rid}[1], memory_mb => 32);
    die "provisioning $rid failed: $err" unless $entry;
    return (split /\|/, $entry)[0];
}
sub meta { json_decode(read_file("$p->{cfg}{run_dir}/sbx/$_[0]/meta.json") // '{}') }
sub zygote_pids {
    my %pid;
    for my $lock (glob("$zdir/fn-*.lock")) {
        my $pid = (read_file($lock) // '') =~ /^(\d+)/ ? $1 : next;
        $pid{$lock} = $pid if kill(0, $pid) && (read_file("/proc/$pid/stat") // '') !~ /^\d+ \(.*\) Z /s;
    }
    return %pid;
}
sub zygote_up { -S $_[0] =~ s/\.lock$/.sock/r }
sub invoke {
    my $x = prov_sbx_invoke($p, $_[0], '{}') or return undef;
    return eval { json_decode($x->{response}{body}) };
}

# --- za: fresh first, then from its zygote ---------------------------------
my $a1 = provision('za');
ok(!meta($a1)->{zygote}, 'the first sandbox of a function is made the fresh way');
sleep 1;
my %z = zygote_pids();
is(scalar(keys %z), 0, '... and starts no zygote');
my $a0 = provision('za');
ok(!meta($a0)->{zygote}, 'the second one too');
ok(wait_until(sub { %z = zygote_pids(); keys(%z) == 1 && zygote_up((keys %z)[0]) }, 20),
   '... and it starts the function\'s zygote');
my ($za_lock) = keys %z;
my $za_pid = $z{$za_lock};
my @a = map { provision('za') } 1 .. 2;
ok(meta($_)->{zygote}, "the next sandboxes are forked from it ($_)") for @a;
is(meta($a[0])->{function}, 'za', '... and run the function');

# --- zb: a zygote of its own ------------------------------------------------
my $b1 = provision('zb');
ok(!meta($b1)->{zygote}, 'another function: not from the first one\'s zygote');
$b1 = provision('zb');
ok(wait_until(sub { %z = zygote_pids(); keys(%z) == 2 }, 20), '... it gets its own zygote');
my ($zb_lock) = grep { $_ ne $za_lock } keys %z;
ok(wait_until(sub { zygote_up($zb_lock) }, 20), '... which answers');
my $b2 = provision('zb');
ok(meta($b2)->{zygote}, '... and forks its next sandboxes');
isnt($z{$zb_lock}, $za_pid, 'two functions, two zygote processes');

# A new version of za: its own zygote too (a revision never names two codes).
provision('za@2') for 1 .. 2;
ok(wait_until(sub { %z = zygote_pids(); keys(%z) == 3 }, 20), 'a new version gets a zygote of its own');
my ($v2_lock) = grep { $_ ne $za_lock && $_ ne $zb_lock } keys %z;
ok(wait_until(sub { zygote_up($v2_lock) }, 20), '... which answers');
my $c2 = provision('za@2');
ok(meta($c2)->{zygote}, '... and forks that version\'s sandboxes');

# A zygote answers requests for its own revision only (so a collision of
# the socket names' hashes could only send a revision the fresh way).
sub zygote_ping {
    my ($lock, $key) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $lock =~ s/\.lock$/.sock/r, Type => SOCK_STREAM)
        or return undef;
    print $s pack('V V a4096 a80', 0x595a4146, 1, $p->{cfg}{runtimes_dir}, $key);
    my $ans = '';
    while (length($ans) < 208) {
        my $n = sysread($s, $ans, 208 - length($ans), length($ans)) or last;
    }
    close $s;
    my ($pid, $errnum, $msg) = unpack('q< l< Z196', $ans);
    return { pid => $pid, errnum => $errnum, msg => $msg };
}
my $ping = zygote_ping($za_lock, 'za@1');
is($ping && $ping->{pid}, $za_pid, 'a zygote answers a request with its own revision');
$ping = zygote_ping($za_lock, 'zb@1');
ok($ping && $ping->{pid} == 0, '... and refuses another revision\'s');
like($ping && $ping->{msg}, qr/zygote serves another revision/, '... saying so');

# What the sandboxes can see of each other through a shared zygote.
my %v = map { $_ => invoke($_) } ($a1, @a, $b1, $b2, $c2);
ok(!grep({ !$_ || !defined $_->{hash} || !$_->{libc} } values %v), 'every sandbox answers')
    or diag explain \%v;
isnt($v{$a[0]}{hash}, $v{$b2}{hash}, 'zygote-made sandboxes of two functions: different hash secrets');
isnt($v{$a[0]}{libc}, $v{$b2}{libc}, '... and different address layouts');
isnt($v{$a[0]}{hash}, $v{$c2}{hash}, 'two versions of one function: different hash secrets too');
is($v{$a[0]}{hash}, $v{$a[1]}{hash},
   'two sandboxes of one function forked from its zygote share them (the trade-off, within one function)');

# --- idle zygotes exit and are reaped ---------------------------------------
ok(wait_until(sub { !zygote_pids() }, $IDLE + 20), "unused for ${IDLE} s, the zygotes exit");
my @zz;
ok(wait_until(sub { @zz = grep { /faas-zygote/ } prov_zombies($p->{pid}); !@zz }, 10),
   '... and the provisioner reaps them (no zombie)') or diag("zombies: @zz");
ok(!-e ($za_lock =~ s/\.lock$/.sock/r), '... their sockets are gone');
is(invoke($a[0])->{hash}, $v{$a[0]}{hash}, 'their sandboxes live on');
my $a4 = provision('za');
ok(!meta($a4)->{zygote}, 'the next create of the function goes the fresh way');
$a4 = provision('za');
ok(wait_until(sub { %z = zygote_pids(); keys(%z) == 1 }, 20), '... and starts a new zygote');

# --- the provisioner stops its zygotes when it exits ------------------------
my ($pid) = values %z;
stop_proc($p);
ok(!kill(0, $pid) || (read_file("/proc/$pid/stat") // '') =~ /^\d+ \(.*\) Z /s,
   'SIGTERM: the provisioner stopped its zygote before exiting');
ok(!glob("$zdir/fn-*.sock"), '... and removed its socket');

prov_cleanup($p);
faas_finish();
