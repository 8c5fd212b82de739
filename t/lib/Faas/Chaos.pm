package Faas::Chaos;
# Faults under load for t/platform/chaos.t and bench/chaos:
#
#   chaos_functions($p)        deploys the functions the load calls (fast,
#                              sleepy: 100 ms) and the one that fills the
#                              host (4 GB sandboxes, 300 ms); names in @FNS
#   load_start($p, $clients)   closed-loop clients over HTTPS, each calling
#                              the functions in turn; one line per answer
#   load_lines()               [t0, t1, status, request_id, function,
#                              the start of the body when not 200]
#   load_stop()                stops the clients; all lines
#   wait_answers($n, $since)   until $n more answers ended after $since
#   fault($p, $name)           does the fault and returns {t_fault, t_back}
#                              (and the in-flight window)
#   ledger($p, $name, $f, $lines)  the fault's figures: requests, failed
#                              by status, 502s not in flight, seconds until
#                              calls succeed again (recovery: a first call;
#                              recovery_all: a call of every function)
#   records_missing($p, $lines)  answers 200 without their execution record
#   load_pause(), load_resume()  no call in flight in between
#   handed_twice($p)           records of one sandbox whose run times overlap
#                              (their times, in ms)
#   sandbox_census($p)         {dirs, listed, count}: sandboxes on disk,
#                              entries on idle lists, sum of faas:count
#   @FAULTS                    the faults in the order they are done
use strict;
use warnings;
use Exporter 'import';
use POSIX ();
use File::Path qw(remove_tree);
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Platform;

our @EXPORT = qw(chaos_functions load_start load_lines load_stop wait_answers
                 load_pause load_resume
                 fault ledger records_missing handed_twice sandbox_census
                 ledger_line @FAULTS @FNS);

our @FAULTS = qw(registry provisioner agent redis-persisted redis-empty
                 nginx-worker nginx-reload overload);
our @FNS = qw(chaos-fast chaos-sleepy);
my @KIDS;
my $DIR;

sub deploy {
    my ($name, $code, @opt) = @_;
    my $d = work_dir() . "/fn-$name";
    write_file("$d/app.py", $code);
    my $x = faasctl('deploy', $d, '--name', $name, '--runtime', 'python3',
                    '--handler', 'app.handler', '--public', @opt);
    die "deploy $name: $x->{err}" if $x->{rc};
}

sub chaos_functions {
    my ($p) = @_;
    deploy('chaos-fast', "def handler(event, context):\n    return {'ok': True}\n",
           '--max-concurrency', 8);
    deploy('chaos-sleepy', "import time\ndef handler(event, context):\n"
           . "    time.sleep(0.1)\n    return {'slept': True}\n", '--max-concurrency', 8);
    # 4 GB each: 16384 MB of memory_budget_mb holds at most four
    deploy('chaos-fill', "import time\ndef handler(event, context):\n"
           . "    time.sleep(0.3)\n    return {'filled': True}\n", '--memory', 4096);
}

sub load_start {
    my ($p, $clients) = @_;
    $DIR = work_dir() . '/load';
    mkdir $DIR;
    unlink "$DIR/stop";
    for my $c (1 .. $clients) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            open(my $fh, '>', "$DIR/client-$c.log") or POSIX::_exit(1);
            $fh->autoflush(1);
            my $i = $c;
            while (!-e "$DIR/stop") {
                if (-e "$DIR/pause") { sleep 0.05; next }
                my $fn = $FNS[$i++ % @FNS];
                my $t0 = time;
                my $res = https($p, 'GET', "/fn/$fn", timeout => 40);
                my $why = $res->{status} == 200 ? ''
                        : substr($res->{body} // $res->{error} // '', 0, 160) =~ s/\s+/_/gr;
                printf $fh "%.3f %.3f %d %s %s %s\n", $t0, time, $res->{status},
                    $res->{headers}{'x-faas-request-id'} // '-', $fn, $why;
            }
            close $fh;
            POSIX::_exit(0);
        }
        push @KIDS, $pid;
    }
}

sub load_lines {
    return [ map { [split / /, $_, 6] } map { split /\n/, (read_file($_) // '') }
             glob("$DIR/client-*.log") ];
}

# No new call starts until load_resume(); returns when none is in flight.
sub load_pause {
    write_file("$DIR/pause", '');
    sleep 0.2;
    my $n = scalar @{ load_lines() };
    wait_until(sub { my $m = scalar @{ load_lines() }; my $same = $m == $n; $n = $m; $same }, 60, 1);
}

sub load_resume { unlink "$DIR/pause" }

sub load_stop {
    write_file("$DIR/stop", '');
    waitpid($_, 0) for @KIDS;
    @KIDS = ();
    return load_lines();
}

sub wait_answers {
    my ($n, $since) = @_;
    return wait_until(sub { scalar(grep { $_->[1] >= $since } @{ load_lines() }) >= $n }, 60, 0.1);
}

sub restart_dead {
    my ($p, $what) = @_;
    my $run = platform_sh($p, 'run');
    die "run after $what: $run->{err}" if $run->{rc};
}

sub kill9 {
    my ($pid) = @_;
    kill('KILL', $pid);
    wait_until(sub { !kill(0, $pid) }, 10, 0.02);
}

sub nginx_workers {
    my ($p) = @_;
    my $master = platform_pid($p, 'nginx');
    my @w = grep { (read_file("/proc/$_/cmdline") // '') =~ /^nginx: worker/ }
            split ' ', `pgrep -P $master`;
    return @w;
}

# Does the fault; {t_fault, t_back}: when it struck, when the component
# was back (a restarted process answering, or the fault over).
sub fault {
    my ($p, $name) = @_;
    # calls in flight may fail only when a process serving them is killed
    my $f = { name => $name, t_fault => time, kills => $name !~ /^(nginx-reload|overload)$/ };
    if ($name =~ /^(registry|provisioner|agent)$/) {
        kill9(platform_pid($p, $name));
        restart_dead($p, $name);
    } elsif ($name =~ /^redis-(persisted|empty)$/) {
        kill9(platform_pid($p, 'redis'));
        $f->{t_killed} = time;
        if ($1 eq 'empty') {
            remove_tree("$p->{var}/data/redis");
            mkdir "$p->{var}/data/redis";
        }
        restart_dead($p, 'redis');
    } elsif ($name eq 'nginx-worker') {
        my @w = nginx_workers($p);
        kill9($w[0]);
        wait_until(sub { nginx_workers($p) == @w }, 10, 0.05);
    } elsif ($name eq 'nginx-reload') {
        kill('HUP', platform_pid($p, 'nginx'));
        sleep 1;
    } elsif ($name eq 'overload') {
        # twice as many concurrent calls as the host holds sandboxes of it
        $f->{fill} = [ https_parallel($p, map { ['GET', '/fn/chaos-fill', timeout => 60] } 1 .. 8) ];
    }
    $f->{t_back} = time;
    return $f;
}

# Figures of one fault over the answers whose request overlapped
# [$from, $to].
sub ledger {
    my ($f, $lines, $from, $to) = @_;
    my @mine = grep { $_->[1] >= $from && $_->[0] <= $to } @$lines;
    push @mine, map { [$f->{t_fault}, $f->{t_back}, $_->{status},
                       $_->{headers}{'x-faas-request-id'} // '-', 'chaos-fill',
                       $_->{status} == 200 ? '' : substr($_->{body} // '', 0, 160) =~ s/\s+/_/gr] }
                @{ $f->{fill} || [] };
    my %by;
    $by{ $_->[2] }++ for grep { $_->[2] != 200 } @mine;
    my $in_flight = sub { $f->{kills} && $_[0][0] <= $f->{t_fault} && $_[0][1] >= $f->{t_fault} };
    my @in_flight = grep { $in_flight->($_) } @mine;
    my $bad502 = grep { $_->[2] == 502 && !$in_flight->($_) } @mine;
    my ($first) = sort { $a->[1] <=> $b->[1] }
                  grep { $_->[2] == 200 && $_->[0] >= $f->{t_back} } @mine;
    # every function's first success after the component is back
    my %first_of;
    for (grep { $_->[2] == 200 && $_->[0] >= $f->{t_back} } @mine) {
        $first_of{ $_->[4] } = $_->[1] if !defined $first_of{ $_->[4] } || $_->[1] < $first_of{ $_->[4] };
    }
    my %called = map { $_->[4] => 1 } grep { $_->[0] >= $f->{t_back} } @mine;
    my $all = (grep { !defined $first_of{$_} } keys %called) ? undef
            : (sort { $b <=> $a } values %first_of)[0];
    return {
        name => $f->{name}, requests => scalar @mine, by_status => \%by,
        failed => scalar(grep { $_->[2] != 200 } @mine),
        failed_in_flight => scalar(grep { $_->[2] != 200 } @in_flight),
        bad502 => $bad502,
        recovery => $first ? $first->[1] - $f->{t_back} : undef,
        recovery_all => defined $all ? $all - $f->{t_back} : undef,
        down => $f->{t_back} - $f->{t_fault},
        lines => \@mine,
    };
}

sub mysql {
    my ($p, $sql) = @_;
    my $out = `mariadb --no-defaults --batch --skip-column-names --socket=$p->{var}/run/mysqld.sock -u root faas -e "$sql" 2>&1`;
    die "mariadb: $out" if $?;
    return [ map { [split /\t/] } split /\n/, $out ];
}

# Answers 200 (with a request id) that have no row in executions.
sub records_missing {
    my ($p, $lines) = @_;
    my %have = map { $_->[0] => 1 } @{ mysql($p, 'SELECT request_id FROM executions') };
    return [ grep { $_->[2] == 200 && $_->[3] ne '-' && !$have{ $_->[3] } } @$lines ];
}

# Pairs of records of one sandbox whose run times overlap by more than
# 20 ms (a record's run: duration_us up to timestamp_ms).
sub handed_twice {
    my ($p) = @_;
    my %by;
    for (@{ mysql($p, 'SELECT sandbox_id, timestamp_ms, duration_us FROM executions WHERE sandbox_id <> \'\'') }) {
        push @{ $by{ $_->[0] } }, [ $_->[1] - $_->[2] / 1000, $_->[1] ];
    }
    my @twice;
    for my $runs (values %by) {
        my @s = sort { $a->[0] <=> $b->[0] } @$runs;
        my $end = $s[0][1];
        for my $i (1 .. $#s) {
            push @twice, $s[$i][0] if $s[$i][0] < $end - 20;
            $end = $s[$i][1] if $s[$i][1] > $end;
        }
    }
    return \@twice;
}

sub sandbox_census {
    my ($p) = @_;
    my $r = redis_client(platform_redis($p));
    my ($listed, $count) = (0, 0);
    for my $k ($r->keys('faas:idle:*')) { $listed += $r->llen($k) }
    for my $k ($r->keys('faas:count:*')) { $count += $r->get($k) // 0 }
    my @dirs = grep { m{/s-[0-9a-f]+$} } glob("$p->{var}/sbx/sbx/*");
    return { dirs => scalar @dirs, listed => $listed, count => $count };
}

sub ledger_line {
    my ($l, $missing) = @_;
    my $st = join(',', map { "$_=$l->{by_status}{$_}" } sort keys %{ $l->{by_status} }) || '-';
    return sprintf('%-16s requests %5d  failed %4d (%s; in flight %d, 502 not in flight %d)  '
                   . 'down %5.1f s  calls succeed %s s after  records missing %d',
                   $l->{name}, $l->{requests}, $l->{failed}, $st, $l->{failed_in_flight},
                   $l->{bad502}, $l->{down},
                   defined $l->{recovery} ? sprintf('%.1f', $l->{recovery}) : 'never', $missing);
}

END { load_stop() if @KIDS }

1;
