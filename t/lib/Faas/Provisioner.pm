package Faas::Provisioner;
# Test helpers for faas-provisioner: its config, starting it, a hand-made
# ProvisionRequest encoder, the revision hash faas:rev:{rid} the registry
# writes, the gateway's shard function, pushing requests the way the gateway
# does (INCR faas:count, RPUSH faas:prov:q:<shard>), zips and the code store.
#
#   my $p = start_provisioner($redis, name => 'p1', shards => 4);
#   my ($key, $sha) = put_code($p, 'echo', 1, make_zip('handler.py' => $src));
#   my $rq = push_request($r, $p, rid => 'echo@1', code_key => $key, ...);
#   my ($k, $v) = $r->blpop("faas:idle:{echo\@1}", "faas:err:{echo\@1}:$rq", 30);
use strict;
use warnings;
use Faas::Protobuf;
use JSON::PP ();
use Exporter 'import';
use File::Path qw(make_path);
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(time);
use Faas::Test;

our @EXPORT = qw(
    pb_provision_request put_revision put_revision_hash revision_fields
    crc16 shard_of start_provisioner prov_config
    push_request provision_wait new_request_id make_zip make_zip_py put_code put_blob
    prov_cleanup prov_held_shards prov_sandboxes idle_entries
    prov_log_count prov_sbx_invoke prov_log_ms prov_zombies
    launch_provisioner redis_handle_at redis_start_at
);

# ProvisionRequest (proto/faas.proto) from a hash of its fields (rid,
# origin_request_id, enqueued_ms; others are ignored: the provisioner reads
# them from faas:rev:{rid}).
sub pb_provision_request {
    my (%r) = @_;
    return pb_field_str(1, $r{rid}) . pb_field_str(4, $r{origin_request_id})
         . pb_field_int(13, $r{enqueued_ms});
}

# The fields of faas:rev:{rid} (docs/DESIGN.md section 4).
sub revision_fields {
    qw(runtime handler code_key code_sha256 memory_mb timeout_ms keep_alive_s env owner)
}

# Writes faas:rev:{$rid} with the given fields, as they are (strings). An
# HSET, never a DEL first: a provisioner may be reading it.
sub put_revision_hash {
    my ($r, $rid, %f) = @_;
    my %h = map { defined $f{$_} ? ($_ => $f{$_}) : () } revision_fields();
    $r->hset("faas:rev:{$rid}", %h) if %h;
}

# faas:rev:{rid} as the registry writes it, from push_request's fields:
# put_revision($r, rid => 'f@1', code_key => .., code_sha256 => ..,
#              [runtime, handler, memory_mb, timeout_ms, keep_alive_s,
#              env (a hash ref), owner]). Missing numbers are left out (the
# provisioner's defaults apply).
sub put_revision {
    my ($r, %f) = @_;
    my %h = (runtime => 'python3', handler => 'handler.handler', owner => 'alice', %f);
    $h{env} = JSON::PP->new->canonical->encode($f{env} || {});
    put_revision_hash($r, $f{rid}, %h);
}

# CRC16-CCITT (XMODEM), the one Redis Cluster uses.
sub crc16 {
    my ($s) = @_;
    my $crc = 0;
    for my $c (unpack('C*', $s)) {
        $crc ^= $c << 8;
        for (1 .. 8) {
            $crc = ($crc & 0x8000) ? (($crc << 1) ^ 0x1021) : ($crc << 1);
            $crc &= 0xffff;
        }
    }
    return $crc;
}

# The gateway's primary shard of a rid with $n shards.
sub shard_of {
    my ($rid, $n) = @_;
    my $p = crc16($rid) % 16384;
    return int($p * $n / 16384);
}

sub new_request_id { join '', map { sprintf '%04x', int(rand(65536)) } 1 .. 8 }

sub prov_config {
    my ($redis, %o) = @_;
    my $w = work_dir();
    my $name = $o{name} // 'prov';
    my $cfg = {
        host_id        => $o{host_id} // $name,
        agent_endpoint => $o{endpoint} // "unix:$w/$name-agent.sock",
        run_dir        => $o{run_dir} // "$w/$name/run",
        cache_dir      => $o{cache_dir} // "$w/$name/cache",
        cgroup_root    => cgroup_root(),
        runtimes_dir   => faas_root() . '/runtimes',
        store_url      => $o{store_url} // "file://$w/store",
        redis          => $redis->{addr},
        shards         => $o{shards} // 8,
        lease_ms       => $o{lease_ms} // 1500,
        reconcile_ms   => $o{reconcile_ms} // 300,
        reconcile_grace_ms => $o{grace_ms} // 2000,
        keep_alive_s   => $o{keep_alive_s} // 600,
        code_gc_s      => $o{code_gc_s} // 3600,
        memory_budget_mb => $o{memory_budget_mb} // 16384,
        create_concurrency => $o{create_concurrency} // 4,
        uid_base       => $o{uid_base} // 100000,
        log_level      => $o{log_level} // 'debug',
        %{ $o{cfg} || {} },
    };
    return $cfg;
}

# Starts objs/faas-provisioner; returns the daemon handle with {cfg},
# {name}. Waits until it has heartbeaten into faas:prov:hosts.
sub start_provisioner {
    my ($redis, %o) = @_;
    my $cfg = $o{config} // prov_config($redis, %o);
    my $name = $o{name} // 'prov';
    make_path($cfg->{run_dir}, $cfg->{cache_dir});
    # FAAS_PROV_ASAN=1 runs the AddressSanitizer build of the daemon.
    my %exe = $ENV{FAAS_PROV_ASAN} ? (exe => objs_dir() . '/asan/faas-provisioner') : ();
    my $h = start_daemon('faas-provisioner', $cfg, name => $name, %exe);
    $h->{cfg} = $cfg;
    $h->{pname} = $name;
    my $r = redis_client($redis);
    wait_until(sub { defined $r->zscore('faas:prov:hosts', $cfg->{host_id}) }, 15)
        or die "$name did not heartbeat, see $h->{log}:\n" . (read_file($h->{log}) // '');
    return $h;
}

# Starts objs/faas-provisioner like start_provisioner, without waiting for
# it to reach Redis (which may be down).
sub launch_provisioner {
    my ($redis, %o) = @_;
    my $cfg = prov_config($redis, %o);
    my $name = $o{name} // 'prov';
    make_path($cfg->{run_dir}, $cfg->{cache_dir});
    my $h = start_daemon('faas-provisioner', $cfg, name => $name);
    $h->{cfg} = $cfg;
    $h->{pname} = $name;
    return $h;
}

# A Redis handle for 127.0.0.1:$port with no server behind it (yet).
sub redis_handle_at {
    my ($port) = @_;
    return { port => $port, host => '127.0.0.1', addr => "127.0.0.1:$port" };
}

# Starts an empty Redis on $redis's port (it was down or was killed);
# returns the handle of the new server (kill_proc stops it).
sub redis_start_at {
    my ($redis) = @_;
    my $n = ($redis->{starts} // 0) + 1;
    my $h = spawn("redis-$redis->{port}-$n", [
        'redis-server', '--port', $redis->{port}, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--dir', work_dir(),
        '--daemonize', 'no', '--loglevel', 'warning',
    ]);
    wait_port($redis->{port}) or die "redis did not start, see $h->{log}";
    @$h{qw(port host addr starts)} = (@$redis{qw(port host addr)}, $n);
    return $h;
}

# Pushes one ProvisionRequest like the gateway does, after writing the
# revision's hash like the registry does (put_revision; not with no_rev);
# returns its request id.
# push_request($r, $prov, rid => 'f@1', code_key => .., code_sha256 => ..,
#              handler => .., [runtime, memory_mb, keep_alive_s, shard,
#              origin_request_id, env, no_incr, no_rev])
sub push_request {
    my ($r, $prov, %f) = @_;
    $f{origin_request_id} //= new_request_id();
    $f{enqueued_ms} //= int(time * 1000);
    put_revision($r, %f) unless $f{no_rev};
    my $shard = $f{shard} // shard_of($f{rid}, $prov->{cfg}{shards});
    $r->incr("faas:count:{$f{rid}}") unless $f{no_incr};
    $r->rpush("faas:prov:q:$shard", pb_provision_request(%f));
    return $f{origin_request_id};
}

# push_request, then waits (30 s) for the outcome of that request: its idle
# entry (the list may hold others) or the reason on its error key. Returns
# (entry, undef) or (undef, reason).
sub provision_wait {
    my ($r, $prov, %f) = @_;
    my $id = push_request($r, $prov, %f);
    my ($entry, $err);
    wait_until(sub {
        ($entry) = grep { (split /\|/)[2] eq $id } idle_entries($r, $f{rid});
        $err = $r->lpop("faas:err:{$f{rid}}:$id");
        return $entry || $err;
    }, 30);
    return ($entry, $entry ? undef : $err // 'no outcome within 30 s');
}

# A zip of %files (name => content) made by Python's zipfile; returns the
# path. $o{raw} entries are written with the given external attributes.
sub make_zip_py {
    my ($path, $script) = @_;
    my $w = work_dir();
    write_file("$w/mkzip.py", $script);
    system('/usr/bin/python3', "$w/mkzip.py", $path) == 0 or die "mkzip failed";
    return $path;
}

my $ZIPN = 0;
sub make_zip {
    my (%files) = @_;
    my $w = work_dir();
    my $path = "$w/code-" . (++$ZIPN) . ".zip";
    my $py = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\n";
    for my $n (sort keys %files) {
        my $f = "$w/zipsrc-$ZIPN-" . length($n) . "-" . unpack('H*', $n);
        write_file($f, $files{$n});
        $py .= "z.write(" . json_encode($f) . ", " . json_encode($n) . ")\n";
    }
    $py .= "z.close()\n";
    return make_zip_py($path, $py);
}

# Stores the file at code/<name>/<version>/<sha256>.zip in $prov's store
# (through objs/faas-provision-tool, i.e. common/blob); returns (key, sha).
sub put_code {
    my ($prov, $name, $version, $zip) = @_;
    my $sha = sha256_hex(read_file($zip));
    my $key = "code/$name/$version/$sha.zip";
    put_blob($prov, $key, $zip);
    return ($key, $sha);
}

sub put_blob {
    my ($prov, $key, $file) = @_;
    system(objs_dir() . '/faas-provision-tool', '-c', $prov->{config},
           'put-code', $key, $file) == 0 or die "put-code $key failed";
}

# The faas-sandbox config of $prov's host (written once).
sub sbx_tool_config {
    my ($prov) = @_;
    my $f = work_dir() . "/$prov->{pname}-sbx.json";
    write_json($f, { run_dir => $prov->{cfg}{run_dir},
                     cgroup_root => cgroup_root(),
                     runtimes_dir => $prov->{cfg}{runtimes_dir} });
    return $f;
}

# Invokes sandbox $id of $prov's host straight through its runtime
# (faas-sandbox invoke: thaw, one call, freeze), as an agent would; returns
# the runtime's answer (decoded) or undef.
sub prov_sbx_invoke {
    my ($prov, $id, $event) = @_;
    my $cfg = sbx_tool_config($prov);
    open(my $fh, '-|', objs_dir() . '/faas-sandbox', '-c', $cfg, 'invoke', $id,
         $event // '{}', '--timeout-ms', '10000') or return undef;
    my $out = do { local $/; <$fh> };
    close $fh;
    return undef if $? != 0;
    return eval { json_decode($out) };
}

# Epoch ms of the first line of $h's log matching $re, or undef.
sub prov_log_ms {
    my ($h, $re) = @_;
    for my $l (split /\n/, read_file($h->{log}) // '') {
        next unless $l =~ $re;
        my ($y, $mo, $d, $H, $M, $S, $ms) =
            $l =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d+)Z/ or next;
        require Time::Local;
        return Time::Local::timegm($S, $M, $H, $d, $mo - 1, $y) * 1000 + $ms;
    }
    return undef;
}

# Zombie processes whose parent is $pid: list of "pid (comm)".
sub prov_zombies {
    my ($pid) = @_;
    my @z;
    opendir(my $dh, '/proc') or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        my $st = read_file("/proc/$p/stat") // next;
        my ($comm, $state, $ppid) = $st =~ /^\d+ \((.*)\) (\S) (\d+)/s or next;
        push @z, "$p ($comm)" if $state eq 'Z' && $ppid == $pid;
    }
    closedir $dh;
    return @z;
}

# Destroys every sandbox of $prov's host (faas-sandbox cleanup) after the
# daemon is stopped, so faas_finish finds nothing left.
sub prov_cleanup {
    my ($prov) = @_;
    stop_proc($prov) if $prov->{pid};
    my $f = sbx_tool_config($prov);
    system(objs_dir() . '/faas-sandbox', '-c', $f, 'cleanup');
}

# Shards whose lease names $host_id.
sub prov_held_shards {
    my ($r, $host_id, $shards) = @_;
    return grep { ($r->get("faas:prov:lease:$_") // '') eq $host_id } 0 .. $shards - 1;
}

# Ids of the functions' sandboxes with a run directory on $prov's host:
# stem cells no function took yet (meta.json "stem", no "rid") are not
# counted (docs/DESIGN.md section 6).
sub prov_sandboxes {
    my ($prov) = @_;
    my $d = "$prov->{cfg}{run_dir}/sbx";
    opendir(my $dh, $d) or return ();
    my @ids = sort grep { /^s-[0-9a-f]{16}$/ } readdir $dh;
    closedir $dh;
    return grep {
        my $m = eval { json_decode(read_file("$d/$_/meta.json") // '') };
        !($m && $m->{stem} && !defined $m->{rid});
    } @ids;
}

sub idle_entries {
    my ($r, $rid) = @_;
    my @l = $r->lrange("faas:idle:{$rid}", 0, -1);
    return @l;
}

# How many log lines of $h match $re.
sub prov_log_count {
    my ($h, $re) = @_;
    my $log = read_file($h->{log}) // '';
    my $n = () = $log =~ /$re/g;
    return $n;
}

1;
