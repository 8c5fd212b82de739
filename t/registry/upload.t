# Upload validation: every bad archive is refused with its own message and
# leaves nothing anywhere (store, MySQL, Redis). Each block is an archive
# (its zip section, Perl) and the message it is refused with (error_like);
# also_as_new_version: it is refused as well as the code of a new version.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Find;
use POSIX ();
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;
use Faas::Blocks;

my $db = start_mariadb();
my $redis = start_redis();
my $r = redis_client($redis);
my $reg = start_registry(db => $db, redis => $redis, cfg => {
    max_upload_bytes => 2 * 1024 * 1024, max_zip_entries => 20,
    max_unzipped_bytes => 3 * 1024 * 1024 });
my $store = work_dir() . '/store';
my $dbh = mariadb_dbh($db, 'faas');

sub store_files {
    my @f;
    find(sub { push @f, $File::Find::name if -f $_ }, $store) if -d $store;
    return sort @f;
}

# Python rewrites sizes in both headers: a zip that lies about its contents.
sub lying_zip {
    my ($zip, $size) = @_;
    my $w = work_dir();
    write_file("$w/lie.zip", $zip);
    system('/usr/bin/python3', '-c', <<'PY', "$w/lie.zip", $size) == 0 or die;
import struct, sys
p, size = sys.argv[1], int(sys.argv[2])
d = bytearray(open(p, 'rb').read())
i = d.find(b'PK\x03\x04')
struct.pack_into('<I', d, i + 22, size)
j = d.find(b'PK\x01\x02')
struct.pack_into('<I', d, j + 24, size)
open(p, 'wb').write(bytes(d))
PY
    return read_file("$w/lie.zip");
}

# Deterministic, poorly compressible bytes (ratio ~1).
sub noise {
    my ($n, $seed) = @_;
    my $s = '';
    my $x = $seed // 12345;
    while (length($s) < $n) {
        $x = ($x * 1103515245 + 12345) % 2147483648;
        $s .= pack('N', $x);
    }
    return substr($s, 0, $n);
}

# The blocks' zip sections are built from these.
our $ok_py = py_fn();
our $good = make_zip([ 'app.py' => $ok_py ]);
my $stored_good = make_zip([ 'app.py' => $ok_py ], attrs => { 'app.py' => { stored => 1 } });
(our $crc_bad = $stored_good) =~ s/return \{'msg'/return \{'MSG'/;

my @blocks = data_blocks();
for my $b (@blocks) {
    my $what = $b->name;
    my $res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
        name => 'bad', runtime => 'python3', handler => 'app.handler',
        code => { zip => b64($b->zip) } });
    is($res->{status}, 400, "$what: 400");
    is($res->{json}{error}{code}, 'bad_code', "$what: code bad_code");
    like($res->{json}{error}{message} // '', error_re($b), "$what: its own message")
        or diag explain $res;
}

sub error_re {
    my ($b) = @_;
    my $re = $b->error_like =~ s/\n\z//r;
    return qr/$re/s;
}

my $res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'badjs', runtime => 'nodejs', handler => 'index.handler',
    code => { file => 'index.js', content => "exports.handler = async (e => 1;\n" } });
is($res->{status}, 400, 'node syntax error: 400');
like($res->{json}{error}{message}, qr/syntax error in index\.js: .*SyntaxError/s,
     '... node --check says why');
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'badjs', runtime => 'nodejs', handler => 'index.handler',
    code => { zip => b64(make_zip([ 'index.py' => $ok_py ])) } });
like($res->{json}{error}{message}, qr/not in the archive/,
     'nodejs handler needs a .js/.mjs/.cjs file');

is_deeply([ store_files() ], [], 'nothing in the store after the rejections');
is($dbh->selectrow_array('SELECT COUNT(*) FROM functions'), 0, 'no function row');
is($dbh->selectrow_array('SELECT COUNT(*) FROM versions'), 0, 'no version row');
is_deeply([ $r->keys('faas:fn:*') ], [], 'no mirror');

# A good upload then a bad new version: the old one stays current.
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'good', runtime => 'python3', handler => 'app.handler',
    code => { zip => b64($good) } });
is($res->{status}, 201, 'a good zip is accepted');
my @before = store_files();
is(scalar @before, 1, 'one zip stored');
for my $b (grep { $_->has('also_as_new_version') } @blocks) {
    $res = api($reg, 'PUT', '/v1/functions/good/code', user => 'alice', body => $b->zip);
    is($res->{status}, 400, 'PUT code, ' . $b->name . ': 400');
    like($res->{json}{error}{message}, error_re($b), '... with its message');
}
is_deeply([ store_files() ], \@before, 'the store is unchanged');
is($dbh->selectrow_array('SELECT COUNT(*) FROM versions'), 1, 'still one version');
is($r->hget('faas:fn:good', 'rid'), 'good@1', 'mirror unchanged');

# Nested modules and .mjs handlers are found.
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'nested', runtime => 'python3', handler => 'pkg/mod.handler',
    code => { zip => b64(make_zip([ 'pkg/mod.py' => $ok_py, 'pkg/__init__.py' => '' ])) } });
is($res->{status}, 201, 'handler in a subdirectory');
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'esm', runtime => 'nodejs', handler => 'index.handler',
    code => { zip => b64(make_zip([ 'index.mjs' => "export const handler = async () => 1;\n" ])) } });
is($res->{status}, 201, 'ES module handler (.mjs)') or diag explain $res;

# The syntax check is bounded by its timeout.
stop_proc($reg);
$reg = start_registry(db => $db, redis => $redis, cfg => {
    syntax_check_timeout_ms => 100, max_upload_bytes => 2 * 1024 * 1024,
    max_unzipped_bytes => 30 * 1024 * 1024 });
my $slow = join('', map { "v$_ = [$_, $_ + 1, ($_ * 3) % 7, '$_']\n" } 1 .. 150_000);
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'slow', runtime => 'python3', handler => 'app.handler',
    code => { zip => b64(make_zip([ 'app.py' => $ok_py . $slow ])) } });
is($res->{status}, 400, 'slow syntax check: 400');
like($res->{json}{error}{message}, qr/syntax check of app\.py timed out after 100 ms/,
     '... timed out');
ok(!(grep { m{/faas-registry-} } glob(work_dir() . '/*')),
   'extraction directories are removed');

# The syntax check has its own address space: a 100 MB literal (which
# py_compile turns into gigabytes) is refused quickly, the registry stays.
stop_proc($reg);
$reg = start_registry(db => $db, redis => $redis, cfg => {
    syntax_check_memory_mb => 256, syntax_check_timeout_ms => 30000,
    max_upload_bytes => 2 * 1024 * 1024, max_zip_ratio => 1_000_000,
    max_unzipped_bytes => 200 * 1024 * 1024 });
my $huge = b64(make_zip([ 'app.py' => $ok_py . 'x = "' . ('a' x (100 << 20)) . "\"\n" ]));
my $t0 = time;
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'huge', runtime => 'python3', handler => 'app.handler',
    code => { zip => $huge } });
note('refused in ' . (time - $t0) . ' s');
is($res->{status}, 400, '100 MB literal: 400');
like($res->{json}{error}{message} // '',
     qr/syntax check of app\.py ran out of memory \(limit 256 MiB\)/,
     '... the check ran out of its memory') or diag explain $res;
ok(time - $t0 < 25, '... before its timeout');
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'after', runtime => 'python3', handler => 'app.handler',
    code => { zip => b64($good) } });
is($res->{status}, 201, 'the registry still takes a good upload');

# syntax_check_concurrency 1: a check started while another runs waits for
# it, then runs (the slow one times out after 4 s, which leaves the second
# one's own check room on a loaded machine).
stop_proc($reg);
$reg = start_registry(db => $db, redis => $redis, cfg => {
    syntax_check_concurrency => 1, syntax_check_timeout_ms => 4000,
    max_upload_bytes => 2 * 1024 * 1024,
    max_unzipped_bytes => 30 * 1024 * 1024 });
my $slow_zip = b64(make_zip([ 'app.py' => $ok_py . $slow ]));
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    api($reg, 'POST', '/v1/functions', user => 'alice', json => {
        name => 'slow2', runtime => 'python3', handler => 'app.handler',
        code => { zip => $slow_zip } });
    POSIX::_exit(0);      # not the parent's END blocks
}
select(undef, undef, undef, 0.5);
$t0 = time;
$res = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'second', runtime => 'python3', handler => 'app.handler',
    code => { zip => b64($good) } });
my $waited = time - $t0;
waitpid($pid, 0);
is($res->{status}, 201, 'a check beyond syntax_check_concurrency waits, then runs')
    or diag explain $res;
ok($waited >= 1, "... after the one ahead of it ($waited s)");

stop_proc($reg);
faas_finish();

__DATA__

=== TEST 1: not a zip
--- zip eval
'this is not a zip file at all' x 10
--- error_like
not a valid zip archive

=== TEST 2: truncated zip
--- zip eval
substr($good, 0, length($good) - 10)
--- error_like
not a valid zip archive

=== TEST 3: absolute name
--- zip eval
make_zip([ 'app.py' => $ok_py, '/etc/cron.d/x' => 'x' ])
--- error_like
absolute path not allowed: \/etc\/cron\.d\/x
--- also_as_new_version

=== TEST 4: dot-dot
--- zip eval
make_zip([ 'app.py' => $ok_py, 'lib/../../x.py' => 'x' ])
--- error_like
"\.\." in entry name not allowed

=== TEST 5: backslash
--- zip eval
make_zip([ 'app.py' => $ok_py, 'lib\\x.py' => 'x' ])
--- error_like
backslash in entry name not allowed

=== TEST 6: symlink
--- zip eval
make_zip([ 'app.py' => $ok_py, 'passwd' => '/etc/passwd' ],
         attrs => { passwd => { mode => 0120777 } })
--- error_like
symbolic link not allowed: passwd
--- also_as_new_version

=== TEST 7: device file
--- zip eval
make_zip([ 'app.py' => $ok_py, 'dev' => '' ], attrs => { dev => { mode => 0020666 } })
--- error_like
special file not allowed: dev

=== TEST 8: encrypted entry
--- zip eval
make_zip([ 'app.py' => $ok_py, 'secret.py' => 'x = 1' ],
         attrs => { 'secret.py' => { encrypted => 1 } })
--- error_like
encrypted entry not allowed: secret\.py

=== TEST 9: too many entries
--- zip eval
make_zip([ 'app.py' => $ok_py, map { ("f$_.txt" => "$_") } 1 .. 20 ])
--- error_like
too many entries \(21, at most 20\)

=== TEST 10: over the uncompressed cap
--- zip eval
make_zip([ 'app.py' => $ok_py,
           'a.hex' => unpack('H*', noise(600_000, 1)),
           'b.hex' => unpack('H*', noise(600_000, 2)),
           'c.hex' => unpack('H*', noise(450_000, 3)) ])
--- error_like
uncompressed size exceeds 3145728 bytes

=== TEST 11: headers that lie about the size
--- zip eval
lying_zip(make_zip([ 'big.py' => ('#' x 3_500_000) . "\n", 'app.py' => $ok_py ]), 100)
--- error_like
uncompressed size exceeds|expands more than|corrupt

=== TEST 12: compression bomb
--- zip eval
make_zip([ 'app.py' => $ok_py, 'zeros' => "\0" x 2_500_000 ])
--- error_like
zeros expands more than 100 times \(compression bomb\)
--- also_as_new_version

=== TEST 13: duplicate entry
--- zip eval
make_zip([ 'app.py' => $ok_py, 'app.py' => 'x = 2' ])
--- error_like
zip: duplicate entry name

=== TEST 14: bad CRC
--- zip eval
$crc_bad
--- error_like
corrupt entry app\.py

=== TEST 15: handler file missing
--- zip eval
make_zip([ 'main.py' => $ok_py ])
--- error_like
handler app\.handler: its file is not in the archive

=== TEST 16: python syntax error
--- zip eval
make_zip([ 'app.py' => "def handler(e, c)\n    return 1\n" ])
--- error_like
syntax error in app\.py: .*SyntaxError
