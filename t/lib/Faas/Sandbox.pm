package Faas::Sandbox;
# Helpers for the sandbox tests (t/sandbox/): a config for objs/faas-sandbox
# under work_dir(), a tiny stand-alone Python runtime (so these tests do not
# depend on runtimes), and wrappers around the tool.
#
#   my $cfg = sandbox_config(runtime => 'test');   # or 'real'
#   my $id  = sbx_create($cfg, code => $dir, handler => 'h.handler');
#   my $ans = sbx_invoke($cfg, $id, {k => 1});     # decoded JSON or undef
#
# Zygote mode (sandbox_config(zygote => 1), or FAAS_SANDBOX_ZYGOTE=1 in the
# environment, which the t/sandbox/zygote_*.t files set before running the
# fresh-path test files unchanged): the config says "zygote": true, a
# zygote is started in the foreground (`faas-sandbox zygote run`, stopped
# with the other servers by faas_finish), and sbx_create asserts that each
# sandbox was made by the zygote, not by the fresh fallback.
use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path);
use Faas::Test;
use JSON::PP ();

our @EXPORT = qw(
    sandbox_config sbx sbx_create sbx_invoke sbx_destroy write_handler
    cg_file real_runtime_dir zygote_mode sbx_zygote_run sbx_result
    for_each_runtime
);

sub zygote_mode { $ENV{FAAS_SANDBOX_ZYGOTE} ? 1 : 0 }
# Stem mode (FAAS_SANDBOX_STEM=1, set by the t/sandbox/stem_*.t files):
# sbx_create makes a stem cell and specialises it (`create --stem`), and
# asserts that the sandbox is one (meta.json "stem").
sub stem_mode { $ENV{FAAS_SANDBOX_STEM} ? 1 : 0 }

my $MAIN_PID = $$;

# A one-file runtime following the runtime protocol of docs/DESIGN.md section 5, enough for the tests:
# imports FAAS_HANDLER from /var/task before binding FAAS_SOCKET, answers
# pings and invokes (the handler's return value is the "response").
# A stem cell (FAAS_STEM=1) imports nothing until its "specialise" frame,
# which sets the function's environment, enters /var/task and imports.
my $TEST_RUNTIME = <<'PY';
import os, sys, struct, socket, json, importlib, traceback
sys.path.insert(0, os.environ['FAAS_TASK_ROOT'])

def load():
    mod_name, fn_name = os.environ['FAAS_HANDLER'].rsplit('.', 1)
    if os.environ.get('TEST_RUNTIME_FAIL'):
        sys.stderr.write('test runtime: failing on purpose at start\n')
        sys.exit(3)
    return getattr(importlib.import_module(mod_name), fn_name)

stem = os.environ.get('FAAS_STEM') == '1'
fn = None if stem else load()
path = os.environ['FAAS_SOCKET']
try:
    os.unlink(path)
except FileNotFoundError:
    pass
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
if os.environ.get('TEST_RUNTIME_BIND_EXIT'):
    sys.stderr.write('test runtime: exiting after bind\n')
    sys.exit(4)
srv.listen(8)

def recv_all(c, n):
    b = b''
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            return None
        b += d
    return b

while True:
    c, _ = srv.accept()
    while True:
        h = recv_all(c, 4)
        if h is None:
            break
        req = json.loads(recv_all(c, struct.unpack('>I', h)[0]))
        if req.get('ping') and os.environ.get('TEST_RUNTIME_BAD_PING'):
            ans = {'id': req['id'], 'ok': False}
        elif req.get('ping'):
            ans = {'id': req['id'], 'ok': True, 'pong': True}
        elif 'specialise' in req and stem:
            stem = False
            os.environ.update(req['specialise']['env'])
            os.chdir(os.environ['FAAS_TASK_ROOT'])
            fn = load()
            ans = {'id': req['id'], 'ok': True, 'specialised': True,
                   'import_ms': 0, 'init_error': None}
        else:
            try:
                ans = {'id': req['id'], 'ok': True,
                       'response': fn(req.get('event'), req.get('context'))}
            except Exception as e:
                ans = {'id': req['id'], 'ok': False,
                       'error': {'type': type(e).__name__, 'message': str(e),
                                 'trace': traceback.format_exc()}}
        out = json.dumps(ans).encode()
        c.sendall(struct.pack('>I', len(out)) + out)
    c.close()
PY

sub real_runtime_dir { faas_root() . '/runtimes' }

# Writes <work>/<name>.json for faas-sandbox. runtime => 'test' (default)
# uses the tiny runtime above, 'real' the project's runtimes.
sub sandbox_config {
    my (%o) = @_;
    my $work = work_dir();
    my $name = $o{name} // 'sandbox';
    my $rt = $o{runtime} // 'test';
    my $zygote = $o{zygote} // zygote_mode();
    my $rtdir;
    if ($rt eq 'real') {
        $rtdir = real_runtime_dir();
    } else {
        $rtdir = "$work/runtimes";
        # written once: a zygote running from it exits when it changes
        write_same("$rtdir/python/bootstrap.py", $TEST_RUNTIME);
        # the zygote belongs to the runtime directory: ship the real one
        write_same("$rtdir/python/zygote.py",
                   read_file(real_runtime_dir() . '/python/zygote.py'))
            if $zygote;
    }
    my $cfg = {
        # one zygote per run_dir (it serves one runtimes_dir)
        run_dir      => $zygote ? "$work/run-$name" : "$work/run",
        cgroup_root  => cgroup_root(),
        runtimes_dir => $rtdir,
        python       => '/usr/bin/python3',
        uid_base     => $o{uid_base} // 200000,
        uid_count    => $o{uid_count} // 1000,
        freezer      => $o{freezer} // 'v1',
        %{ $o{extra} || {} },    # more keys, as given
    };
    $cfg->{zygote} = JSON::PP::true() if $zygote;
    my $file = "$work/$name.json";
    write_json($file, $cfg);
    my $ret = { file => $file, %$cfg };
    sbx_zygote_run($ret) if $zygote && !$o{no_zygote_start};
    return $ret;
}

# write_file unless the file already holds exactly that.
sub write_same {
    my ($file, $content) = @_;
    my $have = -f $file ? read_file($file) : undef;
    write_file($file, $content) unless defined $have && $have eq $content;
}

# Starts `faas-sandbox -c CFG zygote run` (a tracked server: faas_finish
# stops it) and waits until the zygote answers. Returns its handle.
sub sbx_zygote_run {
    my ($cfg) = @_;
    my $bin = $ENV{FAAS_SANDBOX_BIN} // objs_dir() . '/faas-sandbox';
    (my $name = $cfg->{file}) =~ s{.*/|\.json$}{}g;
    sbx($cfg, 'init');
    my $h = spawn("zygote-$name", [$bin, '-c', $cfg->{file}, 'zygote', 'run']);
    my $ok = wait_until(sub { (sbx($cfg, 'zygote', 'status'))[0] == 0 }, 30);
    die "the zygote of $cfg->{file} does not answer: "
        . (read_file($h->{log}) // '') unless $ok;
    return $h;
}

# Runs objs/faas-sandbox -c CFG @args. Returns (exit code, stdout, stderr).
sub sbx {
    my ($cfg, @args) = @_;
    my $bin = $ENV{FAAS_SANDBOX_BIN} // objs_dir() . '/faas-sandbox';
    my $out = work_dir() . "/sbx-out.$$";
    my $errf = work_dir() . "/sbx-err.$$";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', $out) or POSIX::_exit(127);
        open(STDERR, '>', $errf) or POSIX::_exit(127);
        exec($bin, '-c', $cfg->{file}, @args) or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $rc = $? >> 8;
    my ($o, $e) = (read_file($out) // '', read_file($errf) // '');
    unlink $out, $errf;
    return ($rc, $o, $e);
}

# Creates a sandbox; returns its id or dies with the tool's message.
sub sbx_create {
    my ($cfg, %o) = @_;
    my @args = ('create', '--function', $o{function} // 'fn',
                '--version', $o{version} // 1,
                '--runtime', $o{runtime} // 'python3',
                '--handler', $o{handler} // 'handler.handler',
                '--code', $o{code});
    for my $k (qw(memory timeout pids tmp ready-timeout)) {
        push @args, "--$k", $o{$k} if defined $o{$k};
    }
    push @args, '--env', $_ for @{ $o{env} || [] };
    push @args, '--stem' if stem_mode() && !$o{any_path};
    my ($rc, $out, $err) = sbx($cfg, @args);
    chomp $out;
    if (stem_mode() && $rc == 0 && !$o{any_path}) {
        my $m = eval { json_decode(read_file("$cfg->{run_dir}/sbx/$out/meta.json")) };
        if ($$ == $MAIN_PID) {
            Test::More::ok($m && $m->{stem} && $m->{rid}, "sandbox $out is a specialised stem cell");
        } elsif (!($m && $m->{stem})) {    # a forked test process: no TAP
            sbx($cfg, 'destroy', $out);
            ($rc, $out, $err) = (1, '', "sandbox $out is not a stem cell");
        }
    }
    if ($cfg->{zygote} && $rc == 0 && !$o{any_path}) {
        my $m = eval { json_decode(read_file("$cfg->{run_dir}/sbx/$out/meta.json")) };
        if ($$ == $MAIN_PID) {
            Test::More::ok($m && $m->{zygote}, "sandbox $out was made by the zygote");
        } elsif (!($m && $m->{zygote})) {    # a forked test process: no TAP
            sbx($cfg, 'destroy', $out);
            ($rc, $out, $err) = (1, '', "sandbox $out was not made by the zygote");
        }
    }
    return wantarray ? ($rc, $out, $err) : $out;
}

# Invokes; returns the decoded answer, or undef and the error text.
sub sbx_invoke {
    my ($cfg, $id, $event, @opt) = @_;
    my ($rc, $out, $err) = sbx($cfg, 'invoke', $id,
                               json_encode($event // {}), @opt);
    return (undef, $err) if $rc != 0;
    my $ans = eval { json_decode($out) };
    return ($ans, $err);
}

sub sbx_destroy {
    my ($cfg, $id) = @_;
    my ($rc, undef, $err) = sbx($cfg, 'destroy', $id);
    return ($rc, $err);
}

# write_handler($dir, $python_source): <dir>/handler.py
sub write_handler {
    my ($dir, $src) = @_;
    make_path($dir);
    write_file("$dir/handler.py", $src);
    return $dir;
}

# The handler's return value in an sbx_invoke answer (the real runtime
# maps a plain dict to statusCode 200 with a JSON body), or undef when the
# invoke failed.
sub sbx_result {
    my ($ans) = @_;
    return undef unless $ans && $ans->{ok};
    my $r = $ans->{response};
    return json_decode($r->{body}) if ref $r eq 'HASH' && exists $r->{statusCode};
    return $r;
}

# for_each_runtime($python_source, sub { my ($rt, $cfg, $code) = @_; ... }):
# runs the body with the test runtime and, when runtimes/python exists,
# with the real one; each gets its own config (cfg-<rt>) and the handler
# written to <work>/code-<rt>/handler.py.
sub for_each_runtime {
    my ($src, $body) = @_;
    my @runtimes = ('test');
    push @runtimes, 'real' if -f real_runtime_dir() . '/python/bootstrap.py';
    for my $rt (@runtimes) {
        Test::More::note("runtime: $rt");
        my $cfg = sandbox_config(name => "cfg-$rt", runtime => $rt);
        my $code = write_handler(work_dir() . "/code-$rt", $src);
        $body->($rt, $cfg, $code);
    }
}

# cg_file($cfg, 'freezer', $id, 'freezer.state') -> path
sub cg_file {
    my ($cfg, $hier, $id, $file) = @_;
    return "/sys/fs/cgroup/$hier/$cfg->{cgroup_root}/$id/$file";
}

1;
