# The python3 zygote itself (sandbox/zygote.c, zygote_ext.c,
# runtimes/python/zygote.py): start/status/stop, the --zygote
# option and the "zygote" config key, the fresh path as the fallback when
# the zygote is dead, stopped or unusable (and its restart in the
# background), that zygote-made sandboxes outlive their zygote, that no
# function's environment ever reaches the zygote's memory, bad input.
# The isolation, limits and lifecycle of zygote-made sandboxes are
# zygote_isolation.t, zygote_limits.t and zygote_lifecycle.t.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Sandbox;
use File::Copy qw(copy);

my $code = write_handler(work_dir() . '/code', <<'PY');
import os
def handler(event, context):
    return {'pid': os.getpid(), 'uid': os.getuid(),
            'secret': os.environ.get('MY_SECRET'),
            'cmdline': open('/proc/self/cmdline', 'rb').read().rstrip(b'\0').decode(),
            'environ_has_secret': b'MY_SECRET=' in open('/proc/self/environ', 'rb').read()}
PY

sub meta_of {
    my ($cfg, $id) = @_;
    return json_decode(read_file("$cfg->{run_dir}/sbx/$id/meta.json") // 'null');
}

sub result {
    my ($ans) = @_;
    return undef unless $ans && $ans->{ok};
    return json_decode($ans->{response}{body});
}

# gone, or a zombie waiting for its parent
sub gone {
    my ($pid) = @_;
    return 1 unless kill(0, $pid);
    return (read_file("/proc/$pid/stat") // '') =~ /\) Z/ ? 1 : 0;
}

sub zstatus {
    my ($cfg) = @_;
    my ($rc, $out, $err) = sbx($cfg, 'zygote', 'status');
    chomp $out;
    return $rc == 0 ? $out : undef;
}

# Finds $needle in the readable private memory of $pid (root reads
# /proc/PID/mem). Returns 1 if found, 0 if not, undef if unreadable.
sub memory_has {
    my ($pid, $needle) = @_;
    open(my $maps, '<', "/proc/$pid/maps") or return undef;
    open(my $mem, '<:raw', "/proc/$pid/mem") or return undef;
    my $scanned = 0;
    while (my $line = <$maps>) {
        my ($from, $to, $perm, $path) =
            $line =~ /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/ or next;
        next unless $perm =~ /^r/;
        next if $path =~ /\[(vvar|vsyscall|vvar_vclock)\]/;
        my ($a, $b) = (hex $from, hex $to);
        next if $b - $a > (256 << 20);
        sysseek($mem, $a, 0) or next;
        my $buf = '';
        my $n = sysread($mem, $buf, $b - $a);
        next unless $n;
        $scanned += $n;
        return 1 if index($buf, $needle) >= 0;
    }
    return $scanned > 0 ? 0 : undef;
}

my $cfg = sandbox_config(name => 'z', runtime => 'real', zygote => 1,
                         no_zygote_start => 1);
my $fresh_cfg = sandbox_config(name => 'plain', runtime => 'real', zygote => 0);

# --- bad input ---------------------------------------------------------------
{
    my $bad = { %$cfg, file => work_dir() . '/bad.json' };
    my %json = map { $_ => $cfg->{$_} } grep { $_ ne 'file' } keys %$cfg;
    $json{zygote} = 'yes';
    write_json($bad->{file}, \%json);
    my ($rc, undef, $err) = sbx($bad, 'list');
    is($rc, 1, q{a "zygote" that is neither a mode nor a boolean is refused});
    chomp $err;
    like($err, qr{zygote must be "off", "shared", "function" or a boolean}, "with a clear error ($err)");
    ($rc, undef, $err) = sbx($cfg, 'zygote', 'bogus');
    is($rc, 1, 'an unknown zygote command fails');
    like($err, qr/usage/, 'and prints the usage');
}
{
    my ($rc, undef, $err) = sbx($cfg, 'zygote', 'status');
    is($rc, 1, 'status fails while no zygote runs');
    chomp $err;
    like($err, qr/zygote: connect/, "saying it cannot connect ($err)");
    ($rc, undef, $err) = sbx($cfg, 'zygote', 'stop');
    is($rc, 0, 'stopping a zygote that does not run succeeds');
}
{
    # a runtimes dir without zygote.py: no zygote, the fresh path works
    my $rt = work_dir() . '/rt-nozygote';
    write_file("$rt/python/$_", read_file(real_runtime_dir() . "/python/$_"))
        for qw(bootstrap.py faas_runtime.py);
    my $nz = sandbox_config(name => 'nz', runtime => 'real', zygote => 1,
                            no_zygote_start => 1);
    $nz->{runtimes_dir} = $rt;
    my %json = map { $_ => $nz->{$_} } grep { $_ ne 'file' } keys %$nz;
    write_json($nz->{file}, \%json);
    my ($rc, undef, $err) = sbx($nz, 'zygote', 'start');
    is($rc, 1, 'zygote start fails without the runtime\'s zygote.py');
    chomp $err;
    like($err, qr/zygote script .*zygote\.py/, "naming the missing file ($err)");
    my ($crc, $id, $cerr) = sbx_create($nz, code => $code, any_path => 1);
    is($crc, 0, 'create with "zygote": true still works (fresh path)') or diag($cerr);
    ok(!meta_of($nz, $id)->{zygote}, 'meta.json: not made by a zygote');
    is((sbx_destroy($nz, $id))[0], 0, 'destroyed');
    ok(!defined zstatus($nz), 'no zygote was left running');
}

# --- the fresh path stays the default -----------------------------------------
{
    my $id = sbx_create($fresh_cfg, code => $code);
    like($id, qr/^s-/, 'created without the zygote option');
    my $z = meta_of($fresh_cfg, $id)->{zygote};
    ok(defined $z && !$z, 'meta.json says "zygote": false by default');
    is((sbx_destroy($fresh_cfg, $id))[0], 0, 'destroyed');
}

# --- start, status, create through it -----------------------------------------
my ($rc, $zpid, $err) = sbx($cfg, 'zygote', 'start');
is($rc, 0, 'zygote start succeeds') or diag($err);
chomp $zpid;
like($zpid, qr/^\d+$/, 'and prints the zygote\'s pid');
is(zstatus($cfg), $zpid, 'status answers with the same pid');
like(read_file("/proc/$zpid/cmdline") // '', qr{/python3\0-I\0-S\0.*zygote\.py\0},
     'the zygote is python3 -I -S zygote.py');
($rc, my $again, $err) = sbx($cfg, 'zygote', 'start');
chomp $again;
is($rc, 0, 'starting it again succeeds');
is($again, $zpid, 'and finds the running zygote');

my ($crc, $id1, $cerr) = sbx_create($fresh_cfg, code => $code, any_path => 1);
ok(!meta_of($fresh_cfg, $id1)->{zygote}, 'a config without "zygote" ignores the zygote');
sbx_destroy($fresh_cfg, $id1);

my $secret = 'zz-secret-' . join('', map { int rand 10 } 1 .. 24);
($crc, $id1, $cerr) = sbx_create($cfg, code => $code, env => ["MY_SECRET=$secret"]);
is($crc, 0, 'create through the zygote') or diag($cerr);
my $m1 = meta_of($cfg, $id1);
my ($a, $e) = sbx_invoke($cfg, $id1, {});
my $r = result($a) or diag($e);
is($r->{pid}, 1, 'the zygote-made runtime is pid 1 of its namespace');
is($r->{uid}, $m1->{uid}, 'and runs as the sandbox uid');
is($r->{secret}, $secret, 'it has its function\'s environment');
is($r->{cmdline}, "/usr/bin/python3\0-I\0-S\0/opt/faas/runtimes/python/bootstrap.py",
   '/proc/self/cmdline is that of a fresh runtime (no host path)');
ok($r->{environ_has_secret}, '/proc/self/environ is the function\'s');
my $ppid = (split /\s+/, ((read_file("/proc/$m1->{pid}/stat") // '') =~ s/.*\)//sr))[2];
is($ppid, $zpid, 'its parent is the zygote (which reaps it)');
is(memory_has($zpid, $cfg->{run_dir} . '/sbx/.zygote/python.sock'), 1,
   '(the memory scan finds what the zygote does hold: its socket path)');
is(memory_has($zpid, $secret), 0,
   'the function\'s environment never reached the zygote\'s memory');

# the tool's --zygote option on a config without the key: no zygote runs
# for that run_dir yet, so the first create is fresh and starts one
{
    my @args = ('create', '--function', 'fn', '--version', 1, '--runtime',
                'python3', '--handler', 'handler.handler', '--code', $code,
                '--zygote');
    my ($crc2, $id2, $cerr2) = sbx($fresh_cfg, @args);
    chomp $id2;
    is($crc2, 0, 'create --zygote succeeds') or diag($cerr2);
    ok(!meta_of($fresh_cfg, $id2)->{zygote}, 'the first one the fresh way');
    my $p;
    ok(wait_until(sub { $p = zstatus($fresh_cfg); defined $p }, 30),
       'and a zygote was started for its run_dir');
    my ($crc3, $id3, $cerr3) = sbx($fresh_cfg, @args);
    chomp $id3;
    is($crc3, 0, 'create --zygote again') or diag($cerr3);
    ok(meta_of($fresh_cfg, $id3)->{zygote}, 'goes through that zygote');
    sbx_destroy($fresh_cfg, $_) for $id2, $id3;
    is((sbx($fresh_cfg, 'zygote', 'stop'))[0], 0, 'stopped');
    ok(wait_until(sub { gone($p) }, 10), 'its process is gone');
}

# another runtimes dir, same run_dir: the zygote refuses, fresh path
{
    my $rt = work_dir() . '/rt-copy';
    for my $f (qw(bootstrap.py faas_runtime.py zygote.py)) {
        write_file("$rt/python/$f", read_file(real_runtime_dir() . "/python/$f"));
    }
    my $other = { %$cfg, file => work_dir() . '/other.json', runtimes_dir => $rt };
    my %json = map { $_ => $other->{$_} } grep { $_ ne 'file' } keys %$other;
    write_json($other->{file}, \%json);
    my ($orc, $oid, $oerr) = sbx_create($other, code => $code, any_path => 1);
    is($orc, 0, 'a config with another runtimes_dir still creates') or diag($oerr);
    ok(!meta_of($other, $oid)->{zygote}, 'but not through this zygote');
    sbx_destroy($other, $oid);
}

# a new runtime deployed (a file the zygote loaded changes): the zygote
# exits instead of serving the old one; the fresh path meanwhile
{
    my $rt = work_dir() . '/rt-deploy';
    for my $f (qw(bootstrap.py faas_runtime.py zygote.py)) {
        write_file("$rt/python/$f", read_file(real_runtime_dir() . "/python/$f"));
    }
    my $dc = sandbox_config(name => 'deploy', runtime => 'real', zygote => 1,
                            no_zygote_start => 1);
    $dc->{runtimes_dir} = $rt;
    my %json = map { $_ => $dc->{$_} } grep { $_ ne 'file' } keys %$dc;
    write_json($dc->{file}, \%json);
    my ($src, $p1) = sbx($dc, 'zygote', 'start');
    chomp $p1;
    is($src, 0, 'a zygote for a copy of the runtime');
    my ($drc, $d1) = sbx_create($dc, code => $code);
    ok(meta_of($dc, $d1)->{zygote}, 'serves creates');
    my $t = time + 5;
    utime($t, $t, "$rt/python/faas_runtime.py");
    my ($drc2, $d2, $derr2) = sbx_create($dc, code => $code, any_path => 1);
    is($drc2, 0, 'create after faas_runtime.py changed succeeds') or diag($derr2);
    ok(!meta_of($dc, $d2)->{zygote}, 'the fresh way: the zygote holds the old runtime');
    ok(wait_until(sub { gone($p1) }, 10), 'the stale zygote exited');
    my ($drc3, $d3) = sbx_create($dc, code => $code, any_path => 1);
    my $p2;
    ok(wait_until(sub { $p2 = zstatus($dc); defined $p2 }, 30), 'a new zygote was started');
    my ($drc4, $d4) = sbx_create($dc, code => $code);
    is($drc4, 0, 'and serves the next create');
    sbx_destroy($dc, $_) for $d1, $d2, $d3, $d4;
    is((sbx($dc, 'zygote', 'stop'))[0], 0, 'stopped');
    ok(wait_until(sub { gone($p2) }, 10), 'its process is gone');
}

# node cannot fork: nodejs sandboxes stay on the fresh path
SKIP: {
    skip 'no node runtime', 2 unless -x '/usr/bin/node' && -f real_runtime_dir() . '/node/bootstrap.js';
    my $js = work_dir() . '/js';
    write_file("$js/index.js", "exports.handler = async () => ({ok: true});\n");
    my ($nrc, $nid, $nerr) = sbx_create($cfg, code => $js, runtime => 'nodejs',
                                        handler => 'index.handler', any_path => 1);
    is($nrc, 0, 'a nodejs sandbox with "zygote": true') or diag($nerr);
    ok(!meta_of($cfg, $nid)->{zygote}, 'is made the fresh way');
    sbx_destroy($cfg, $nid);
}

# --- what the runtime sees is what a fresh one sees -----------------------------
{
    my $probe = write_handler(work_dir() . '/probe', <<'PY');
import sys, os, random, time
def handler(event, context):
    fr = sys.modules.get('faas_runtime')
    st = {}
    for line in open('/proc/self/status'):
        k, _, v = line.partition(':')
        if k in ('Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd',
                 'CapAmb', 'NoNewPrivs', 'Seccomp', 'SigBlk', 'SigIgn'):
            st[k] = v.strip()
    return {'path': sys.path, 'argv': sys.argv, 'orig_argv': sys.orig_argv,
            'executable': sys.executable, 'flags': list(sys.flags),
            'env': dict(os.environ), 'cwd': os.getcwd(), 'pid': os.getpid(),
            'runtime_file': fr and fr.__file__, 'log_max': fr and fr.LOG_MAX,
            'main_file': sys.modules['__main__'].__file__,
            'status': st, 'fds': sorted(os.listdir('/proc/self/fd')),
            'umask': os.umask(0o22), 'sid_is_me': os.getsid(0) == os.getpid(),
            'encoding': [sys.getfilesystemencoding(), sys.stdout.encoding],
            'tz': time.tzname, 'random': random.random(),
            'zygote_module': '_faas_zygote' in sys.modules}
PY
    my @env = ('TZ=UTC', 'X=1');
    my %got;
    for my $c ([fresh => $fresh_cfg], [zygote => $cfg]) {
        my ($name, $conf) = @$c;
        my ($prc, $pid_, $perr) = sbx_create($conf, code => $probe, env => \@env, any_path => 1);
        is($prc, 0, "probe sandbox ($name)") or diag($perr);
        ok(!!meta_of($conf, $pid_)->{zygote} == ($name eq 'zygote'), "made the $name way");
        my ($pa, $pe) = sbx_invoke($conf, $pid_, {});
        $got{$name} = result($pa) or diag($pe);
        sbx_destroy($conf, $pid_);
    }
    my ($f, $z) = @got{qw(fresh zygote)};
    isnt($f->{random}, $z->{random}, 'random is seeded per sandbox');
    delete $_->{random} for $f, $z;
    ok(!$z->{zygote_module}, 'the zygote\'s extension module is not in sys.modules');
    is($z->{runtime_file}, '/opt/faas/runtimes/python/faas_runtime.py',
       'faas_runtime.__file__ is the sandbox path');
    is_deeply($z, $f, 'sys.path, argv, orig_argv, executable, flags, environ, '
              . 'cwd, /proc/self/status, fds, umask, session, encodings, TZ: '
              . 'as in a fresh sandbox');
}

# --- the zygote wedged (SIGSTOP): the request times out, fresh path, and
# the wedged zygote is killed so that the next create starts another -------
kill('STOP', $zpid);
($crc, my $id3, $cerr) = sbx_create($cfg, code => $code, any_path => 1);
is($crc, 0, 'create while the zygote is stopped succeeds') or diag($cerr);
ok(!meta_of($cfg, $id3)->{zygote}, 'the fresh way, after the zygote timed out');
ok(wait_until(sub { gone($zpid) }, 10), 'the wedged zygote was killed');
my @sbx = grep { /^s-/ } split /\n/, (sbx($cfg, 'list'))[1];
is_deeply([sort @sbx], [sort ($id1, $id3)], 'no sandbox appeared from the abandoned request');
my $procs3 = read_file(cg_file($cfg, 'freezer', $id3, 'cgroup.procs')) // '';
is(scalar(() = $procs3 =~ /\d+/g), 1, 'the rebuilt sandbox holds one process');
($a, $e) = sbx_invoke($cfg, $id3, {});
ok(result($a), 'the fresh-path sandbox answers') or diag($e);
sbx_destroy($cfg, $id3);
($crc, $id3, $cerr) = sbx_create($cfg, code => $code, any_path => 1);
is($crc, 0, 'the next create succeeds (and starts a zygote)') or diag($cerr);
sbx_destroy($cfg, $id3);
ok(wait_until(sub { my $p = zstatus($cfg); defined $p && ($zpid = $p) }, 30),
   'a new zygote answers');

# --- the zygote dies: detected, restarted, the fresh path meanwhile ----------
kill('KILL', $zpid);
ok(wait_until(sub { gone($zpid) }, 10), 'the zygote is killed');
($a, $e) = sbx_invoke($cfg, $id1, {});
ok(result($a), 'a zygote-made sandbox outlives its zygote') or diag($e);
($crc, my $id4, $cerr) = sbx_create($cfg, code => $code, any_path => 1);
is($crc, 0, 'create right after the zygote died succeeds') or diag($cerr);
ok(!meta_of($cfg, $id4)->{zygote}, 'through the fresh path');
my $zpid2;
ok(wait_until(sub { $zpid2 = zstatus($cfg); defined $zpid2 }, 30),
   'a new zygote was started in the background');
isnt($zpid2, $zpid, 'with another pid');
($crc, my $id5, $cerr) = sbx_create($cfg, code => $code);
is($crc, 0, 'the next create goes through the new zygote') or diag($cerr);
($a, $e) = sbx_invoke($cfg, $id5, {});
ok(result($a), 'and answers') or diag($e);

# --- stop; cleanup also stops it ---------------------------------------------
($rc, undef, $err) = sbx($cfg, 'zygote', 'stop');
is($rc, 0, 'zygote stop succeeds') or diag($err);
ok(!defined zstatus($cfg), 'no zygote answers after stop');
ok(wait_until(sub { gone($zpid2) }, 10), 'its process is gone');
($a, $e) = sbx_invoke($cfg, $id5, {});
ok(result($a), 'its sandboxes live on') or diag($e);
($rc, $zpid, $err) = sbx($cfg, 'zygote', 'start');
chomp $zpid;
is($rc, 0, 'started again') or diag($err);
($rc, undef, $err) = sbx($cfg, 'cleanup');
is($rc, 0, 'cleanup succeeds') or diag($err);
ok(!defined zstatus($cfg), 'cleanup stopped the zygote');
ok(wait_until(sub { gone($zpid) }, 10), 'its process is gone');
is((sbx($cfg, 'list'))[1], '', 'cleanup destroyed every sandbox');
ok(wait_until(sub { gone($m1->{pid}) }, 10), 'the zygote-made runtimes are gone');

faas_finish();
