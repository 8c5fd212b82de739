# Error paths: each gives a clear one-line reason and leaves nothing behind.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Sandbox;

my $cfg = sandbox_config();
my $code = write_handler(work_dir() . '/code', "def handler(e, c):\n    return 1\n");

sub nothing_left {
    my ($what) = @_;
    my (undef, $list) = sbx($cfg, 'list');
    is($list, '', "$what: no sandbox listed");
    my @dirs = grep { !/\/\.(root|uid|stem)$/ } glob("$cfg->{run_dir}/sbx/* $cfg->{run_dir}/sbx/.*[a-z]");
    push @dirs, glob("$cfg->{run_dir}/sbx/.stem/*");   # stem cells' /var/task
    is_deeply(\@dirs, [], "$what: no run dir");
    my @slots = glob("$cfg->{run_dir}/sbx/.uid/*");
    is_deeply(\@slots, [], "$what: uid slot released");
    my @cgs = grep { -d $_ && !/\/\.pin$/ } map { glob("/sys/fs/cgroup/$_/$cfg->{cgroup_root}/*") }
              qw(memory pids cpu freezer unified);
    is_deeply(\@cgs, [], "$what: no cgroup");
}

# a runtime that dies at start: its stderr is in the error
my ($rc, $id, $err) = sbx_create($cfg, code => $code, env => ['TEST_RUNTIME_FAIL=1']);
is($rc, 1, 'create fails when the runtime exits at start');
like($err, qr/runtime exited at start/, 'the error says the runtime exited');
like($err, qr/failing on purpose at start/, "the error carries the runtime's stderr");
unlike($err, qr/\n./, 'the reason is one line');
nothing_left('runtime exit');

# a runtime that binds its socket, then dies before listening
($rc, $id, $err) = sbx_create($cfg, code => $code, env => ['TEST_RUNTIME_BIND_EXIT=1'],
                              'ready-timeout' => 60000);
is($rc, 1, 'create fails when the runtime dies after binding');
like($err, qr/runtime exited after binding|runtime exited at start/, "the error says so ($err)");
like($err, qr/exiting after bind/, "with the runtime's output");
nothing_left('exit after bind');

# a runtime whose ping answer is wrong
($rc, $id, $err) = sbx_create($cfg, code => $code, env => ['TEST_RUNTIME_BAD_PING=1']);
is($rc, 1, 'create fails when the ping answer is not a pong');
like($err, qr/ping: unexpected answer/, "the error says so ($err)");
nothing_left('bad ping');

# a runtime that never gets ready
my $slow = write_handler(work_dir() . '/slow', "import time\ntime.sleep(60)\ndef handler(e, c):\n    return 1\n");
($rc, $id, $err) = sbx_create($cfg, code => $slow, 'ready-timeout' => 1500);
is($rc, 1, 'create fails when the runtime is not ready in time');
like($err, qr/not ready in time/, "the error says why ($err)");
nothing_left('readiness timeout');

# a handler module that does not even parse: the test runtime dies at import
my $broken = write_handler(work_dir() . '/broken', "def handler(e, c)\n    return 1\n");
($rc, $id, $err) = sbx_create($cfg, code => $broken);
is($rc, 1, 'create fails for a runtime that crashes on import');
like($err, qr/SyntaxError/, 'the error carries the traceback tail');
nothing_left('import crash');

# bad specs
($rc, $id, $err) = sbx_create($cfg, code => work_dir() . '/no-such-dir');
is($rc, 1, 'missing code dir refused');
like($err, qr/code dir .*no-such-dir.*No such file or directory/, "clear error ($err)");
write_file(work_dir() . '/a-file', "x");
($rc, $id, $err) = sbx_create($cfg, code => work_dir() . '/a-file');
is($rc, 1, 'code dir that is a file refused');
like($err, qr/Not a directory/, 'clear error');
($rc, $id, $err) = sbx_create($cfg, code => $code, runtime => 'ruby');
is($rc, 1, 'unknown runtime refused');
like($err, qr/unknown runtime ruby/, 'clear error');
($rc, $id, $err) = sbx_create($cfg, code => $code, runtime => 'nodejs');
is($rc, 1, 'runtime without a bootstrap refused');
like($err, qr/bootstrap .*node\/bootstrap\.js/, "clear error ($err)");
($rc, $id, $err) = sbx_create($cfg, code => $code, function => 'Bad_Name');
is($rc, 1, 'invalid function name refused');
like($err, qr/invalid function name/, 'clear error');
($rc, $id, $err) = sbx_create($cfg, code => $code, handler => 'nodot');
is($rc, 1, 'handler without a dot refused');
like($err, qr/FILE\.FUNCTION/, 'clear error');
($rc, $id, $err) = sbx_create($cfg, code => $code, memory => 4);
is($rc, 1, 'absurd memory limit refused');
nothing_left('bad specs');

# ids are used in paths: anything but s-<16 hex> is refused
for my $bad ('../../etc', 's-ABCDEF0123456789', 's-0123', 's-0123456789abcdef0', '', 'x-0123456789abcdef') {
    my ($drc, $derr) = sbx_destroy($cfg, $bad);
    is($drc, 1, "destroy refuses id '$bad'");
    like($derr, qr/invalid sandbox id/, 'with a clear error');
}
my ($drc) = sbx_destroy($cfg, 's-0123456789abcdef');
is($drc, 0, 'destroying a valid but absent id succeeds');
my ($src, undef, $serr) = sbx($cfg, 'state', 's-0123456789abcdef');
is($src, 1, 'state of an absent sandbox fails');
my ($irc, undef, $ierr) = sbx($cfg, 'invoke', 's-0123456789abcdef');
is($irc, 1, 'invoke of an absent sandbox fails');
($irc, undef, $ierr) = sbx($cfg, 'invoke', '../x');
like($ierr, qr/invalid sandbox id/, 'invoke refuses an invalid id');

# a bad config
write_json(work_dir() . '/bad.json', { run_dir => work_dir() . '/run', runtimes_dir => '/x', freezer => 'v3' });
my ($brc, undef, $berr) = sbx({ file => work_dir() . '/bad.json' }, 'list');
is($brc, 1, 'a bad freezer setting is refused');
like($berr, qr/freezer/, 'clear error');

faas_finish();
