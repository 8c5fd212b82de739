# Parallel creates from separate processes: every sandbox gets its own uid
# (slots are allocated across processes), all come up frozen and answer,
# and all are destroyed.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Sandbox;

my $N = 8;
my $cfg = sandbox_config(uid_count => 16);
my $code = write_handler(work_dir() . '/code', "import os\ndef handler(e, c):\n    return {'uid': os.getuid(), 'n': e['n']}\n");
sbx($cfg, 'init');

my %kids;
for my $i (1 .. $N) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my ($rc, $id, $err) = sbx_create($cfg, code => $code);
        write_file(work_dir() . "/par-$i", $rc == 0 ? $id : "ERR $err");
        POSIX::_exit(0);
    }
    $kids{$pid} = $i;
}
waitpid($_, 0) for keys %kids;

my @ids;
for my $i (1 .. $N) {
    my $r = read_file(work_dir() . "/par-$i") // 'ERR no result';
    chomp $r;
    like($r, qr/^s-[0-9a-f]{16}$/, "parallel create $i succeeded") or diag($r);
    push @ids, $r if $r =~ /^s-/;
}
my %uids;
for my $id (@ids) {
    my $meta = json_decode(read_file("$cfg->{run_dir}/sbx/$id/meta.json"));
    $uids{$meta->{uid}}++;
    is(read_file(cg_file($cfg, 'freezer', $id, 'freezer.state')), "FROZEN\n", "$id is frozen");
}
is(scalar(keys %uids), scalar(@ids), 'every sandbox has its own uid');
my @slots = glob("$cfg->{run_dir}/sbx/.uid/*");
is(scalar(@slots), scalar(@ids), 'one uid slot per sandbox');

my $n = 0;
for my $id (@ids) {
    $n++;
    my ($a, $e) = sbx_invoke($cfg, $id, { n => $n });
    my $r = $a && $a->{response};
    $r = json_decode($r->{body}) if ref $r eq 'HASH' && exists $r->{statusCode};
    is($r && $r->{n}, $n, "$id answers") or diag($e);
}

# a full uid range: the 17th live sandbox cannot get a uid
my @more;
for (1 .. 16 - @ids) {
    my $id = sbx_create($cfg, code => $code);
    push @more, $id if $id =~ /^s-/;
}
is(scalar(@ids) + scalar(@more), 16, 'the uid range fills up');
my ($rc, $id, $err) = sbx_create($cfg, code => $code);
is($rc, 1, 'one more create fails');
like($err, qr/no free uid/, "with a clear error ($err)");

# two destroys of the same sandboxes at once both succeed
my @pids;
for my $k (1 .. 2) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $bad = 0;
        for my $x (@ids, @more) {
            my ($drc, $derr) = sbx_destroy($cfg, $x);
            if ($drc != 0) {
                $bad++;
                write_file(work_dir() . "/destroy-err-$k", $derr);
            }
        }
        POSIX::_exit($bad ? 1 : 0);
    }
    push @pids, $pid;
}
for my $pid (@pids) {
    waitpid($pid, 0);
    is($? >> 8, 0, "concurrent destroyer $pid succeeded on every sandbox")
        or diag(read_file(work_dir() . "/destroy-err-1") // '', read_file(work_dir() . "/destroy-err-2") // '');
}
for my $x (@ids, @more) {
    ok(!-e "$cfg->{run_dir}/sbx/$x", "$x is gone");
}
is_deeply([glob("$cfg->{run_dir}/sbx/.uid/*")], [], 'every uid slot released');

faas_finish();
