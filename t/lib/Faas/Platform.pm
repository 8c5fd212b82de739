package Faas::Platform;
# Test helpers for the assembled platform:
#
#   faasctl(...)            runs objs/faasctl (FAAS_CLI_ASAN=1: objs/asan/),
#                           returns {rc, out, err}
#   start_platform(%o)      conf/platform.sh run, exactly as `./build.sh run`,
#                           with FAAS_VAR = work_dir()/var, free ports and
#                           cgroup_root(); returns the handle below
#   platform_sh($p, @verb)  conf/platform.sh <verb> with the same settings
#   stop_platform($p)       conf/platform.sh stop (also done at exit)
#   https($p, METHOD, PATH, headers => {..}, body => ..)  one request with
#                           curl through nginx's HTTPS port, verifying the
#                           generated certificate; {status, headers, body}
#   https_parallel($p, [METHOD, PATH, %o], ...)   at once, in order
#   platform_pid($p, $component)   pid from var/run/<component>.pid
use strict;
use warnings;
use Exporter 'import';
use POSIX ();
use Faas::Test;

our @EXPORT = qw(faasctl faasctl_env start_platform stop_platform platform_sh
                 https https_parallel platform_pid platform_redis);

my %ENVV;
my @PLATFORMS;
my $OWNER_PID = $$;

# Environment for every later faasctl call (FAAS_URL, FAAS_CACERT, ...).
sub faasctl_env { %ENVV = (%ENVV, @_) }

# Runs $argv with %env (undef values unset); returns {rc, out, err}.
sub run_cmd {
    my ($argv, $env, $tag) = @_;
    my $w = work_dir();
    my ($out, $err) = ("$w/$tag.out", "$w/$tag.err");
    my %env = %$env;
    my $stdin = delete $env{STDIN};
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        for my $k (keys %env) {
            if (defined $env{$k}) { $ENV{$k} = $env{$k} } else { delete $ENV{$k} }
        }
        if (defined $stdin) {
            write_file("$w/$tag.in", $stdin);
            open(STDIN, '<', "$w/$tag.in") or POSIX::_exit(127);
        } else {
            open(STDIN, '<', '/dev/null');
        }
        open(STDOUT, '>', $out) or POSIX::_exit(127);
        open(STDERR, '>', $err) or POSIX::_exit(127);
        exec(@$argv) or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    return { rc => $? >> 8, out => read_file($out) // '',
             err => read_file($err) // '' };
}

# faasctl([{env}], args...): objs/faasctl with faasctl_env's environment.
sub faasctl {
    my @args = @_;
    my %env = (%ENVV, (ref $args[0] eq 'HASH' ? %{ shift @args } : ()));
    # FAAS_CLI_ASAN=1: the AddressSanitizer build (leaks fail the run)
    my $exe = $ENV{FAAS_CLI_ASAN} ? objs_dir() . '/asan/faasctl' : objs_dir() . '/faasctl';
    $env{ASAN_OPTIONS} //= 'detect_leaks=1:exitcode=23' if $ENV{FAAS_CLI_ASAN};
    return run_cmd([$exe, @args], \%env, 'faasctl');
}

sub platform_env {
    my ($p) = @_;
    return {
        FAAS_VAR => $p->{var}, FAAS_HTTPS_PORT => $p->{https_port},
        FAAS_HTTP_PORT => $p->{http_port}, FAAS_REDIS_PORT => $p->{redis_port},
        FAAS_MYSQL_PORT => $p->{mysql_port}, FAAS_CGROUP_ROOT => cgroup_root(),
        FAAS_HOST_ID => "host-" . run_id(), FAAS_WORKERS => $p->{workers},
        FAAS_EXAMPLES => $p->{examples}, FAAS_SHARDS => $p->{shards},
        %{ $p->{env} || {} },
    };
}

# conf/platform.sh <verb...> with this platform's settings; {rc, out, err}.
sub platform_sh {
    my ($p, @verb) = @_;
    return run_cmd([faas_root() . '/conf/platform.sh', @verb],
                   platform_env($p), 'platform');
}

# start_platform(examples => 0|1, env => {..}): the handle has var, ports,
# cacert, secret, url, and {run} (the result of `platform.sh run`). Does not
# die when run fails: the caller checks $p->{run}{rc}.
sub start_platform {
    my (%o) = @_;
    my $p = {
        var => $o{var} // work_dir() . '/var',
        https_port => $o{https_port} // free_port(),
        http_port => $o{http_port} // free_port(),
        redis_port => $o{redis_port} // free_port(),
        mysql_port => $o{mysql_port} // free_port(),
        workers => $o{workers} // 2,
        examples => $o{examples} // 1,
        shards => $o{shards} // 8,
        env => $o{env},
    };
    $p->{cacert} = "$p->{var}/tls/cert.pem";
    $p->{secret} = "$p->{var}/secrets/jwt.secret";
    $p->{url} = "https://localhost:$p->{https_port}";
    push @PLATFORMS, $p;
    $p->{run} = platform_sh($p, 'run');
    return $p;
}

sub stop_platform {
    my ($p) = @_;
    return undef if $p->{stopped};
    $p->{stopped} = 1;
    return platform_sh($p, 'stop');
}

sub platform_pid {
    my ($p, $c) = @_;
    my $pid = read_file("$p->{var}/run/$c.pid") // '';
    chomp $pid;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# {addr, port} for redis_client().
sub platform_redis {
    my ($p) = @_;
    return { addr => "127.0.0.1:$p->{redis_port}", port => $p->{redis_port} };
}

# One request with curl over HTTPS (certificate verified).
sub https {
    my ($p, $method, $path, %o) = @_;
    my $w = work_dir();
    my $tag = "curl-$$-" . int(rand(1e9));
    my @argv = ('curl', '-sS', '-i', '-X', $method, '--max-time', $o{timeout} // 60,
                '--cacert', $p->{cacert}, '-H', 'Expect:');
    my %h = %{ $o{headers} || {} };
    push @argv, '-H', "$_: $h{$_}" for sort keys %h;
    if (defined $o{body}) {
        write_file("$w/$tag.body", $o{body});
        push @argv, '--data-binary', "\@$w/$tag.body";
    }
    push @argv, "$p->{url}$path";
    my $res = run_cmd(\@argv, {}, $tag);
    unlink "$w/$tag.body", "$w/$tag.out", "$w/$tag.err";
    return { status => 0, error => $res->{err} } if $res->{rc};
    my ($head, $body) = split /\r\n\r\n/, $res->{out}, 2;
    my @lines = split /\r\n/, $head // '';
    my ($status) = (shift(@lines) // '') =~ m{^HTTP/\S+ (\d+)};
    my %hdr;
    for (@lines) {
        $hdr{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    return { status => $status // 0, headers => \%hdr, body => $body // '' };
}

# Runs the requests at once (one process each); answers in order.
sub https_parallel {
    my ($p, @reqs) = @_;
    return map { $_ // { status => 0 } } in_parallel(map {
        my ($m, $u, %o) = @$_;
        sub { https($p, $m, $u, %o) }
    } @reqs);
}

# Whatever a test left running is stopped before Faas::Test's leak check
# (END blocks run last-defined first).
END {
    return unless $$ == $OWNER_PID;
    my $status = $?;
    stop_platform($_) for @PLATFORMS;
    $? = $status;
}

1;
