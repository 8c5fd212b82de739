# Read-your-writes against the mirror repair: with the repair running all
# the time (mirror_repair_interval_ms 100, its least), functions are created, updated
# and deleted by several clients at once. When a create or an update is
# answered, faas:fn:<name> already names its revision; when a delete is
# answered, it is gone; and no repair undoes either afterwards.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;

my $db = start_mariadb();
my $redis = start_redis();
my $reg = start_registry(db => $db, redis => $redis,
                         cfg => { mirror_repair_interval_ms => 100 });

sub create {
    my ($name) = @_;
    return api($reg, 'POST', '/v1/functions', user => 'alice', json => {
        name => $name, runtime => 'python3', handler => 'app.handler',
        code => { file => 'app.py', content => py_fn($name) } });
}

# Enough functions that one repair takes a while.
for my $i (1 .. 20) {
    is(create("base$i")->{status}, 201, "base$i created") or BAIL_OUT('create failed');
}

my $out = work_dir() . '/race';
my @kids;
for my $k (1 .. 4) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $r = redis_client($redis);
        my @bad;
        for my $i (1 .. 8) {
            my $name = "c$k-$i";
            my $res = create($name);
            if ($res->{status} != 201) {
                push @bad, "$name: create answered $res->{status}";
                next;
            }
            my $rid = $r->hget("faas:fn:$name", 'rid') // 'none';
            push @bad, "$name: after its 201 the mirror names $rid" if $rid ne "$name\@1";
            $res = api($reg, 'PATCH', "/v1/functions/$name", user => 'alice',
                       json => { memory_mb => 256 });
            my $v = $res->{json}{version} // '?';
            $rid = $r->hget("faas:fn:$name", 'rid') // 'none';
            push @bad, "$name: after its update ($res->{status}, version $v) the mirror names $rid"
                if $res->{status} !~ /^20/ || $rid ne "$name\@$v";
            next if $i % 2;
            $res = api($reg, 'DELETE', "/v1/functions/$name", user => 'alice');
            push @bad, "$name: delete answered $res->{status}" if $res->{status} !~ /^20/;
            push @bad, "$name: mirror still there after its delete"
                if $r->exists("faas:fn:$name");
        }
        write_file("$out-$k", join("\n", @bad));
        exit 0;
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;
my @bad = map { grep { length } split /\n/, (read_file("$out-$_") // "child $_ wrote nothing") } 1 .. 4;
is_deeply(\@bad, [], 'every answered create, update and delete was visible at once')
    or diag(join "\n", @bad);

# A few more repairs, then the end state: the odd ones at their last version,
# the even ones gone, the base ones untouched.
sleep 1;
my $r = redis_client($redis);
my @wrong;
for my $k (1 .. 4) {
    for my $i (1 .. 8) {
        my $name = "c$k-$i";
        my $rid = $r->hget("faas:fn:$name", 'rid');
        push @wrong, "$name: " . ($rid // 'none') if $i % 2 ? ($rid // '') !~ /^\Q$name\E\@\d+$/ : defined $rid;
    }
}
is(scalar(grep { $r->exists("faas:fn:base$_") } 1 .. 20), 20, 'the base functions are mirrored');
is_deeply(\@wrong, [], 'the repairs left every mirror as the last answer said') or diag(join "\n", @wrong);
like(read_file($reg->{log}), qr/mirror repaired/, 'the repair ran meanwhile');

stop_proc($reg);
faas_finish();
