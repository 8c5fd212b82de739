package Faas::Cluster;
# A cluster on one machine, the way a user runs several hosts: worker hosts
# each in its own network namespace (a veth pair, its own address) with its
# own agent (TCP with the token), provisioner, cgroup root and run
# directory; gateways (nginx with the module) on the host side; a Redis
# master, its replica and three sentinels (Faas::Sentinel); MariaDB and the
# registry; a file:// store shared by all.
#
#   my $c = start_cluster(hosts => 3, gateways => 2, shards => 8,
#                         [start_hosts => 1]);
#   start_worker_host($c, $c->{hosts}[1]);  # a host joins later
#   $c->{hosts}[0]{ns}, {ns_ip}, {agent}, {prov}; $c->{gateways}[1]{port}
#   kill_host($c->{hosts}[0]);      # SIGKILL every process of its namespace
#   kill_gateway($c->{gateways}[0]);
#   stop_cluster($c);               # also at exit
use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path);
use POSIX ();
use Faas::Test;
use Faas::Sentinel;
use Faas::MariaDB;
use Faas::Registry qw(start_registry);
use Faas::Provisioner qw(prov_config);

our @EXPORT = qw(start_cluster stop_cluster kill_host kill_gateway
                 host_of_endpoint netns_pids start_worker_host);

my $TOKEN = 'cluster-token-0123456789';
my @CLUSTERS;
my $OWNER = $$;

sub sh { system(@_) == 0 or die "failed: @_\n" }

# 10.<net>.<i>.1 on the host side, .2 inside; <net> from the pid, so that
# two runs of the file at once do not share addresses.
sub net_octet { 20 + $$ % 200 }

sub netns_add {
    my ($i) = @_;
    my $id = run_id();
    my $n = net_octet();
    my $h = { i => $i, ns => "fx$id-w$i", hv => "fx${id}h$i", nv => "fx${id}n$i",
              host_ip => "10.$n.$i.1", ns_ip => "10.$n.$i.2" };
    system("ip netns del $h->{ns} 2>/dev/null");
    system("ip link del $h->{hv} 2>/dev/null");
    sh('ip', 'netns', 'add', $h->{ns});
    sh('ip', 'link', 'add', $h->{hv}, 'type', 'veth', 'peer', 'name', $h->{nv});
    sh('ip', 'link', 'set', $h->{nv}, 'netns', $h->{ns});
    sh('ip', 'addr', 'add', "$h->{host_ip}/24", 'dev', $h->{hv});
    sh('ip', 'link', 'set', $h->{hv}, 'up');
    sh('ip', '-n', $h->{ns}, 'addr', 'add', "$h->{ns_ip}/24", 'dev', $h->{nv});
    sh('ip', '-n', $h->{ns}, 'link', 'set', $h->{nv}, 'up');
    sh('ip', '-n', $h->{ns}, 'link', 'set', 'lo', 'up');
    sh('ip', '-n', $h->{ns}, 'route', 'add', 'default', 'via', $h->{host_ip});
    return $h;
}

sub netns_pids {
    my ($h) = @_;
    return grep { /^\d+$/ } split /\s+/, `ip netns pids $h->{ns} 2>/dev/null`;
}

# Runs in the host's network namespace only (not `ip netns exec`, which
# also remounts /sys and would hide the cgroup hierarchies).
sub in_ns { ['nsenter', "--net=/run/netns/$_[0]{ns}"] }

# A worker host's agent and provisioner; its cgroup root is
# faas-<run id>-w<i>, its uids its own range.
sub start_worker_host {
    my ($c, $h) = @_;
    my $w = work_dir();
    my $name = "w$h->{i}";
    $h->{cgroup_root} = cgroup_root() . "-$name";
    $h->{run_dir} = "$w/$name/run";
    $h->{agent_port} = $h->{agent_port} // free_port();
    make_path("$h->{run_dir}/sbx");
    my $acfg = {
        run_dir => $h->{run_dir}, cgroup_root => $h->{cgroup_root},
        runtimes_dir => faas_root() . '/runtimes', socket => "$w/$name-agent.sock",
        spool_dir => "$w/$name/spool", store_url => "file://$w/store",
        tcp_listen => "$h->{ns_ip}:$h->{agent_port}", token => $TOKEN,
        log_level => 'info',
    };
    unlink $acfg->{socket};
    $h->{agent} = start_daemon('faas-agent', $acfg, name => "$name-agent",
                               wrap => in_ns($h), wait_path => $acfg->{socket});
    $h->{endpoint} = "tcp:$h->{ns_ip}:$h->{agent_port}";
    my $pcfg = prov_config($c->{master0}, name => $name, host_id => $name,
        endpoint => $h->{endpoint}, shards => $c->{shards},
        lease_ms => $c->{lease_ms}, uid_base => 200000 + 20000 * $h->{i},
        log_level => 'info',
        cfg => { %{ $c->{sent_cfg} }, cgroup_root => $h->{cgroup_root},
                 uid_count => 20000 });
    make_path($pcfg->{run_dir}, $pcfg->{cache_dir});
    $h->{prov} = start_daemon('faas-provisioner', $pcfg, name => "$name-prov",
                              wrap => in_ns($h));
    $h->{prov}{cfg} = $pcfg;
    return $h;
}

sub gateway_conf {
    my ($c, $g) = @_;
    my $d = $g->{dir};
    my $so = objs_dir() . '/ngx_http_faas_module.so';
    return <<"CONF";
load_module $so;
user root root;
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 1024; }
http {
    access_log $d/logs/access.log;
    client_body_temp_path $d/tmp;
    faas_redis_sentinel master=$c->{sentinel}{name} $c->{sentinel}{sentinels};
    faas_shards $c->{shards};
    faas_agent_token $TOKEN;
    server {
        listen 127.0.0.1:$g->{port};
        location /fn/ { faas_function on; faas_cold_start_timeout 60s; }
    }
}
CONF
}

sub start_gateway {
    my ($c, $i) = @_;
    my $g = { i => $i, dir => work_dir() . "/gw$i", port => free_port() };
    make_path("$g->{dir}/logs", "$g->{dir}/tmp");
    write_file("$g->{dir}/nginx.conf", gateway_conf($c, $g));
    $g->{h} = spawn("gw$i", ['/usr/sbin/nginx', '-p', "$g->{dir}/", '-c',
                             "$g->{dir}/nginx.conf", '-e', "$g->{dir}/logs/error.log"]);
    wait_port($g->{port}, 15)
        or die "gateway $i did not start:\n" . (read_file("$g->{dir}/logs/error.log") // '');
    return $g;
}

sub start_cluster {
    my (%o) = @_;
    my $c = { shards => $o{shards} // 8, lease_ms => $o{lease_ms} // 1500,
              hosts => [], gateways => [] };
    push @CLUSTERS, $c;
    push @{ $c->{hosts} }, netns_add($_) for 1 .. ($o{hosts} // 3);
    # Redis and the sentinels on an address every namespace reaches
    $c->{sentinel} = start_sentinels(bind => $c->{hosts}[0]{host_ip});
    $c->{master0} = current_master($c->{sentinel});
    $c->{sent_cfg} = { redis_sentinels => $c->{sentinel}{sentinels},
                       redis_master => $c->{sentinel}{name} };
    $c->{db} = start_mariadb();
    $c->{reg} = start_registry(db => $c->{db}, redis => $c->{master0},
                               cfg => $c->{sent_cfg});
    # start_hosts => N: only the first N hosts' daemons (start_worker_host
    # starts another later)
    my $n = $o{start_hosts} // @{ $c->{hosts} };
    start_worker_host($c, $_) for @{ $c->{hosts} }[0 .. $n - 1];
    push @{ $c->{gateways} }, start_gateway($c, $_) for 1 .. ($o{gateways} // 2);
    return $c;
}

# The host whose agent endpoint an idle entry names.
sub host_of_endpoint {
    my ($c, $entry) = @_;
    my (undef, $ep) = split /\|/, $entry;
    for my $h (@{ $c->{hosts} }) {
        return $h if $h->{endpoint} && $h->{endpoint} eq ($ep // '');
    }
    return undef;
}

# The whole host dies at once: every process of its network namespace.
sub kill_host {
    my ($h) = @_;
    kill('KILL', $_) for netns_pids($h);
    proc_alive($_) for grep { $_ } @$h{qw(agent prov)};
    wait_until(sub { !netns_pids($h) }, 5);
    $_->{pid} = 0 for grep { $_ } @$h{qw(agent prov)};
}

sub kill_gateway {
    my ($g) = @_;
    stop_proc($g->{h}, 'KILL', 5);
}

# Sandboxes of a host's cgroup root (its provisioner's, dead or alive).
sub clean_host_sandboxes {
    my ($h) = @_;
    my $f = work_dir() . "/w$h->{i}-sbx.json";
    write_json($f, { run_dir => $h->{run_dir}, cgroup_root => $h->{cgroup_root},
                     runtimes_dir => faas_root() . '/runtimes' });
    system(objs_dir() . "/faas-sandbox -c $f cleanup >/dev/null 2>&1");
    for my $hier (qw(memory freezer pids cpu unified)) {
        my $root = "/sys/fs/cgroup/$hier/$h->{cgroup_root}";
        next unless -d $root;
        my @all = sort { length($b) <=> length($a) } split /\n/, `find $root -type d`;
        for my $cg (@all) {
            write_file("$cg/freezer.state", 'THAWED') if -w "$cg/freezer.state";
            kill('KILL', $_) for split /\s+/, (read_file("$cg/cgroup.procs") // '');
        }
        select(undef, undef, undef, 0.2);
        rmdir $_ for @all;
    }
}

sub stop_cluster {
    my ($c) = @_;
    return if $c->{stopped}++;
    stop_proc($_->{h}, 'QUIT', 10) for @{ $c->{gateways} };
    for my $h (@{ $c->{hosts} }) {
        stop_proc($h->{prov}, 'TERM', 10) if $h->{prov};
        stop_proc($h->{agent}, 'TERM', 10) if $h->{agent};
        kill('KILL', $_) for netns_pids($h);
        clean_host_sandboxes($h) if $h->{cgroup_root};
        system("ip netns del $h->{ns} 2>/dev/null");
        system("ip link del $h->{hv} 2>/dev/null");
    }
    stop_proc($c->{reg}) if $c->{reg};
    stop_mariadb($c->{db}) if $c->{db};
}

END {
    return unless $$ == $OWNER;
    my $status = $?;
    stop_cluster($_) for @CLUSTERS;
    $? = $status;
}

1;
