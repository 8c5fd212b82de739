package Faas::Nginx;
# Test::Nginx-style harness for the gateway module: nginx (Debian's binary
# with objs/ngx_http_faas_module.so loaded) under the test's work_dir(), on a
# free port, plus an HTTP client and a Test::Base block runner.
#
#   use lib 't/lib';
#   use Test::More;
#   use Faas::Test;
#   use Faas::Nginx;
#   my $redis = start_redis();
#   nginx_env(REDIS => $redis->{addr});      # $TEST_NGINX_REDIS in configs
#   run_blocks();                             # the blocks of __DATA__
#   faas_finish();
#   __DATA__
#   === TEST 1: unknown function
#   --- http_config
#   faas_redis $TEST_NGINX_REDIS;
#   --- config
#   location /fn/ { faas_function on; }
#   --- request
#   GET /fn/nope
#   --- error_code: 404
#
# Sections: http_config, config, main_config, request ("METHOD /uri" then
# the body), more_headers ("Name: value" lines), error_code (default 200),
# response_body, response_body_like (a regex), response_headers ("Name:
# value" exact, "!Name" absent), response_headers_like ("Name: regex"),
# no_error_log / error_log (lines that must not / must appear in the error
# log written during the block), init (Perl code run before the request),
# must_die (nginx -t must fail; error_log then applies to its output),
# workers (worker_processes), master_process (on/off, default on),
# response_json ("field: JSON value" lines the JSON body must match).
# Blocks are read by Faas::Blocks: "--- name eval" runs Perl in main, and
# block_defaults(config => ...) gives the blocks that lack a section one.
# nginx is restarted only when a block's configuration differs from the
# previous one. $TEST_NGINX_<NAME> is replaced by nginx_env's values, and
# $TEST_NGINX_SERVER_PORT / $TEST_NGINX_WORK are always set.
use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path);
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);
use Test::More ();
use Faas::Test;
use Faas::Blocks;
use Faas::Http;

our @EXPORT = qw(
    nginx_env start_nginx stop_nginx reload_nginx nginx_handle nginx_t
    http_request http_parallel http_start http_collect error_log_since error_log_size run_blocks
    block_defaults
);

my %ENVV;
my $NGINX;          # the running nginx: {h, port, conf_text, dir}
my $LOG_FORMAT = q{'$remote_addr "$request" $status $faas_request_id }
               . q{$faas_function $faas_start $faas_status'};

sub nginx_env { %ENVV = (%ENVV, @_) }

sub module_path { objs_dir() . '/ngx_http_faas_module.so' }

sub nginx_dir {
    my $d = work_dir() . '/nginx';
    make_path("$d/logs", "$d/tmp");
    return $d;
}

sub expand {
    my ($text, $port) = @_;
    my %v = (%ENVV, SERVER_PORT => $port, WORK => work_dir());
    $text =~ s/\$TEST_NGINX_(\w+)/exists $v{$1} ? $v{$1} : die "undefined \$TEST_NGINX_$1\n"/ge;
    return $text;
}

# The nginx.conf text of a configuration (hash: http_config, config,
# main_config, workers, master_process, port).
sub conf_text {
    my (%o) = @_;
    my $dir = nginx_dir();
    my $port = $o{port};
    my $workers = $o{workers} // 1;
    my $master = $o{master_process} // 'on';
    my $user = $o{user} // 'root root';
    my $main = expand($o{main_config} // '', $port);
    my $http = expand($o{http_config} // '', $port);
    my $server = expand($o{config} // '', $port);
    return <<"CONF";
load_module @{[module_path()]};
user $user;
daemon off;
master_process $master;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/logs/error.log info;
$main
events { worker_connections 1024; }
http {
    default_type text/plain;
    log_format faas $LOG_FORMAT;
    access_log $dir/logs/access.log faas;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
$http
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
$server
    }
}
CONF
}

# nginx -t on a configuration: returns (ok, output).
sub nginx_t {
    my (%o) = @_;
    my $dir = nginx_dir();
    $o{port} //= free_port();
    my $conf = "$dir/test.conf";
    write_file($conf, conf_text(%o));
    my $out = `/usr/sbin/nginx -t -p $dir/ -c $conf -e $dir/logs/test-error.log 2>&1`;
    return ($? == 0, $out);
}

# FAAS_NGINX_VALGRIND=1: every nginx runs as one process (master_process
# off) under valgrind, and stopping it asserts that valgrind found no error.
my $VALGRIND = $ENV{FAAS_NGINX_VALGRIND};
my $VG_N = 0;

# Starts nginx with a configuration; returns the handle {port, ...}.
sub start_nginx {
    my (%o) = @_;
    stop_nginx() if $NGINX;
    my $dir = nginx_dir();
    my $port = $o{port} // free_port();
    my $vglog;
    if ($VALGRIND) {
        $o{master_process} = 'off';
        $vglog = "$dir/logs/valgrind-" . (++$VG_N) . ".log";
        $o{wrap} = ['valgrind', '--error-exitcode=99', '--leak-check=no',
                    '--num-callers=30', "--log-file=$vglog"];
        $o{timeout} //= 90;
    }
    my $text = conf_text(%o, port => $port);
    write_file("$dir/nginx.conf", $text);
    my @wrap = $o{wrap} ? @{ $o{wrap} } : ();
    my $h = spawn('nginx', [@wrap, '/usr/sbin/nginx', '-p', "$dir/",
                            '-c', "$dir/nginx.conf", '-e',
                            "$dir/logs/error.log"], env => $o{env});
    wait_port($port, $o{timeout} // 15)
        or die "nginx did not start:\n" . (read_file("$dir/logs/error.log") // '')
               . (read_file($h->{log}) // '');
    $NGINX = { h => $h, port => $port, text => $text, dir => $dir, vglog => $vglog,
               key => $o{key} // $text, master => ($o{master_process} // 'on') };
    return $NGINX;
}

sub nginx_handle { $NGINX }

sub stop_nginx {
    return unless $NGINX;
    if ($NGINX->{vglog}) {
        # a single-process nginx may take the signal just before it blocks
        # in epoll_wait (valgrind delivers signals late): a connection
        # wakes it up
        my $h = $NGINX->{h};
        for (1 .. 30) {
            last unless $h->{pid};
            kill('QUIT', $h->{pid});
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $NGINX->{port}, Timeout => 1);
            close $s if $s;
            last if wait_until(sub { !proc_alive($h) }, 2);
        }
    }
    stop_proc($NGINX->{h}, 'QUIT', $NGINX->{vglog} ? 60 : 10);
    if (my $f = $NGINX->{vglog}) {
        my $log = read_file($f) // '';
        Test::More::like($log, qr/ERROR SUMMARY: 0 errors/,
                         "valgrind: no error in nginx ($f)")
            or Test::More::diag(substr($log, 0, 20000));
    }
    $NGINX = undef;
}


# nginx -s reload equivalent (SIGHUP to the master).
sub reload_nginx {
    die "no nginx" unless $NGINX;
    kill('HUP', $NGINX->{h}{pid});
}

sub error_log_size {
    my $f = nginx_dir() . '/logs/error.log';
    return -s $f // 0;
}

sub error_log_since {
    my ($off) = @_;
    my $s = read_file(nginx_dir() . '/logs/error.log') // '';
    return substr($s, $off // 0);
}

# One HTTP/1.1 request (Connection: close unless keepalive). Options:
# headers => {..} or [[name, value], ..], body => bytes, timeout => s,
# abort_after => s (close the socket after that and return undef).
sub http_request {
    my ($port, $method, $uri, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or return { status => 0, error => "connect: $!" };
    my @h = ref $o{headers} eq 'HASH' ? map { [$_, $o{headers}{$_}] } sort keys %{ $o{headers} }
          : @{ $o{headers} || [] };
    my $body = $o{body} // '';
    my $host = $o{host} // 'localhost';
    my $req = "$method $uri HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n";
    $req .= "$_->[0]: $_->[1]\r\n" for @h;
    $req .= "Content-Length: " . length($body) . "\r\n"
        if length($body) || $method =~ /^(POST|PUT|PATCH)$/;
    $req .= "\r\n$body";
    binmode $s;
    print $s $req;
    if (defined $o{abort_after}) {
        sleep $o{abort_after};
        close $s;
        return undef;
    }
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = time + ($o{timeout} // 30);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    return http_parse($buf);
}

# Runs several requests at once (one process each); returns their answers
# in order. Each item: [method, uri, %options].
sub http_parallel {
    my ($port, @reqs) = @_;
    return map { $_ // { status => 0 } } in_parallel(map {
        my ($m, $u, %o) = @$_;
        sub { http_request($port, $m, $u, %o) // { status => 0, aborted => 1 } }
    } @reqs);
}

# Starts one request in a child process; http_collect returns its answer
# (waits for it). Options as http_request.
sub http_start {
    my ($port, $method, $uri, %o) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $r;
        my $res = http_request($port, $method, $uri, %o);
        print $w json_encode($res // { status => 0, aborted => 1 });
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    return { pid => $pid, fh => $r };
}

sub http_collect {
    my ($h) = @_;
    my $fh = $h->{fh};
    local $/;
    my $txt = <$fh>;
    close $fh;
    waitpid($h->{pid}, 0);
    return $txt ? json_decode($txt) : { status => 0 };
}

# Runs every block of the calling script's __DATA__.
sub run_blocks {
    run_block($_) for data_blocks();
}

# One block: nginx -t for must_die, else (re)start nginx when the
# configuration changed, send the request and check the answer and the log.
sub run_block {
    my ($b) = @_;
    my %conf = block_conf($b);
    return check_nginx_t($b, %conf) if defined $b->must_die;

    my $key = join("\0", map { $_ // '' } @conf{qw(http_config config main_config workers master_process)});
    if (!$NGINX || $NGINX->{key} ne $key || !proc_alive($NGINX->{h})) {
        start_nginx(%conf, key => $key);
    }
    run_init($b);
    my $log_off = error_log_size();
    my $res = block_request($b);
    check_status_and_body($b, $res);
    check_headers($b, $res);
    check_body_json($b, $res);
    check_error_log($b, $log_off);
    return $res;
}

sub block_conf {
    my ($b) = @_;
    my $word = sub { defined $_[0] ? $_[0] =~ s/\s+//gr : undef };
    return (http_config => $b->http_config, config => $b->config,
            main_config => $b->main_config, workers => $word->($b->workers),
            master_process => $word->($b->master_process));
}

sub check_nginx_t {
    my ($b, %conf) = @_;
    my $name = $b->name;
    my ($ok, $out) = nginx_t(%conf);
    Test::More::ok(!$ok, "$name: nginx -t fails") or Test::More::diag($out);
    for my $l (lines_of($b->error_log)) {
        Test::More::like($out, qr/\Q$l\E/, "$name: nginx -t says \"$l\"")
            or Test::More::diag("nginx -t said: $out");
    }
    return undef;
}

sub run_init {
    my ($b) = @_;
    return unless defined $b->init;
    my $code = $b->init;
    eval "package main; no strict; $code";
    die "init of \"" . $b->name . "\" failed: $@" if $@;
}

# The block's request: "METHOD /uri" then the body, with more_headers.
sub block_request {
    my ($b) = @_;
    my ($line, $body) = split /\n/, ($b->request // "GET /\n"), 2;
    $line =~ s/^\s+|\s+$//g;
    my ($method, $uri) = split /\s+/, $line;
    $body = '' unless defined $body;
    $body =~ s/\n\z// unless defined $b->request_keep_newline;
    my @hdrs;
    for my $l (lines_of(defined $b->more_headers ? expand($b->more_headers, $NGINX->{port}) : '')) {
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or next;
        push @hdrs, [$k, $v];
    }
    return http_request($NGINX->{port}, $method, $uri, headers => \@hdrs, body => $body);
}

sub check_status_and_body {
    my ($b, $res) = @_;
    my $name = $b->name;
    my $want = defined $b->error_code ? $b->error_code =~ s/\s+//gr : 200;
    Test::More::is($res->{status}, $want, "$name: status $want")
        or Test::More::diag("body: " . ($res->{body} // $res->{error} // ''));
    if (defined $b->response_body) {
        Test::More::is($res->{body}, $b->response_body, "$name: body");
    }
    if (defined $b->response_body_like) {
        my $re = $b->response_body_like;
        $re =~ s/\n\z//;
        Test::More::like($res->{body}, qr/$re/s, "$name: body like /$re/");
    }
}

sub check_headers {
    my ($b, $res) = @_;
    my $name = $b->name;
    for my $l (lines_of($b->response_headers)) {
        if ($l =~ /^!\s*(.+)$/) {
            Test::More::ok(!exists $res->{headers}{lc $1}, "$name: no $1 header");
            next;
        }
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or next;
        Test::More::is($res->{headers}{lc $k}, $v, "$name: header $k");
    }
    for my $l (lines_of($b->response_headers_like)) {
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or next;
        Test::More::like($res->{headers}{lc $k} // '', qr/$v/, "$name: header $k like /$v/");
    }
}

# response_json: "field: JSON value" lines; the body is a JSON object whose
# field must equal the value (null: absent or null).
sub check_body_json {
    my ($b, $res) = @_;
    return unless defined $b->response_json;
    my $got = eval { json_decode($res->{body}) };
    $got = {} unless ref $got eq 'HASH';
    for my $l (lines_of($b->response_json)) {
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or die "bad response_json line \"$l\"\n";
        Test::More::is(json_encode($got->{$k}), json_encode(json_decode($v)),
                       $b->name . ": $k is $v");
    }
}

sub check_error_log {
    my ($b, $log_off) = @_;
    return unless defined $b->no_error_log || defined $b->error_log;
    my $name = $b->name;
    # the log line of the request is written after the answer
    sleep 0.05;
    my $log = error_log_since($log_off);
    for my $l (lines_of($b->no_error_log)) {
        Test::More::unlike($log, qr/\Q$l\E/, "$name: no \"$l\" in the error log");
    }
    for my $l (lines_of($b->error_log)) {
        Test::More::ok(wait_until(sub { error_log_since($log_off) =~ /\Q$l\E/ }, 5),
                       "$name: \"$l\" in the error log");
    }
}

1;
