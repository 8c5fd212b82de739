# The code cache's unzip (provisioner/code_cache.c, through the AddressSanitizer
# build of faas-provision-tool): directories and modes kept, unsafe archives
# refused with a reason. Each block is an archive, written by the Python of
# its zip_py section (z: the open zipfile.ZipFile; truncate_to cuts the
# file), and what unzip must do with it: exit_code, error_like (its
# stderr), modes ("path mode" lines) and contents ("path: line" lines).
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Blocks;
use Faas::Provisioner;

my $tool = objs_dir() . '/asan/faas-provision-tool';
$tool = objs_dir() . '/faas-provision-tool' unless -x $tool;
plan skip_all => 'faas-provision-tool is not built' unless -x $tool;
$ENV{ASAN_OPTIONS} //= 'detect_leaks=1:exitcode=23';

my $w = work_dir();
my $n = 0;
sub zip_of {
    my ($body) = @_;
    my $path = "$w/z" . (++$n) . '.zip';
    make_zip_py($path, "import sys, zipfile, stat, warnings\nwarnings.simplefilter('ignore')\nz = zipfile.ZipFile(sys.argv[1], 'w')\n"
                       . $body . "z.close()\n");
}
sub unzip {
    my ($zip) = @_;
    my $dir = "$w/out" . $n;
    my $err = `$tool unzip $zip $dir 2>&1`;
    return ($? >> 8, $err, $dir);
}

for my $b (data_blocks()) {
    my $name = $b->name;
    my $zip = zip_of($b->zip_py);
    if (defined $b->truncate_to) {
        write_file($zip, substr(read_file($zip), 0, $b->truncate_to));
    }
    my ($rc, $err, $dir) = unzip($zip);
    is($rc, $b->exit_code =~ s/\s+//gr, "$name: exit code") or diag($err);
    if (defined $b->error_like) {
        my $re = $b->error_like =~ s/\n\z//r;
        like($err, qr/$re/, "$name: reason") or diag($err);
    }
    for (lines_of($b->modes)) {
        my ($path, $mode) = split ' ';
        is((stat("$dir/$path"))[2] & 07777, oct($mode), "$name: $path is $mode");
    }
    for (lines_of($b->contents)) {
        my ($path, $line) = /^([^:]+):\s*(.*)$/;
        is(read_file("$dir/$path"), "$line\n", "$name: $path holds \"$line\"");
    }
}
ok(!-e "$w/../evil" && !-e '/etc/evil', 'nothing written outside');

# The unpacking child runs as nobody (its own log line says so); what it
# wrote is given back to the daemon's uid before it is used.
{
    my $zip = zip_of("z.writestr('handler.py', 'x = 1\\n')\n");
    my ($rc, $err, $dir) = unzip($zip);
    is($rc, 0, 'unzip as nobody') or diag($err);
    my $nobody = getpwnam('nobody');
    like($err, qr/unpacking into \S+ as uid $nobody\b/,
         'the child that ran libzip is not root');
    is((stat("$dir/handler.py"))[4], $>, 'the file is the daemon\'s after');
    is((stat($dir))[2] & 07777, 0755, 'the directory is 0755 after');
}

# A zip bomb whose headers lie about its size (8 MiB of zeros said to be
# 1000 bytes) passes the size check on the headers; the child's
# RLIMIT_FSIZE stops the write.
{
    my $zip = zip_of(<<'PY');
z.writestr('big', b'\0' * (8 << 20), zipfile.ZIP_DEFLATED)
PY
    my $b = read_file($zip);
    substr($b, 22, 4) = pack('V', 1000);
    my $cd = index($b, "PK\x01\x02");
    substr($b, $cd + 24, 4) = pack('V', 1000);
    write_file($zip, $b);
    my $dir = "$w/bomb";
    my $err = `$tool unzip $zip $dir 1048576 2>&1`;
    is($? >> 8, 1, 'the bomb is refused');
    like($err, qr/entry "big" is larger than the file size limit/,
         'by the file size limit') or diag($err);
    ok(-s "$dir/big" <= 1048576, 'no more than the limit was written');
}
faas_finish();

__DATA__

=== TEST 1: a normal archive unpacks, nested files, modes 0644 and 0755
--- zip_py
z.writestr('handler.py', 'x = 1\n')
z.writestr('lib/', '')
z.writestr('lib/pkg/mod.py', 'y = 2\n')
i = zipfile.ZipInfo('bin/tool.sh'); i.create_system = 3
i.external_attr = (stat.S_IFREG | 0o755) << 16
z.writestr(i, '#!/bin/sh\n')
--- exit_code: 0
--- contents
lib/pkg/mod.py: y = 2
--- modes
handler.py 0644
bin/tool.sh 0755
lib 0755

=== TEST 2: absolute path
--- zip_py
z.writestr('/etc/evil', 'x')
--- exit_code: 1
--- error_like
unsafe entry name

=== TEST 3: ".." inside a path
--- zip_py
z.writestr('a/../../evil', 'x')
--- exit_code: 1
--- error_like
unsafe entry name

=== TEST 4: duplicate entry
--- zip_py
z.writestr('a.py', 'x')
z.writestr('a.py', 'y')
--- exit_code: 1
--- error_like
already exists

=== TEST 5: symlink
--- zip_py
i = zipfile.ZipInfo('l'); i.create_system = 3
i.external_attr = (stat.S_IFLNK | 0o777) << 16
z.writestr(i, '/etc/passwd')
--- exit_code: 1
--- error_like
symlink or special file

=== TEST 6: fifo
--- zip_py
i = zipfile.ZipInfo('fifo'); i.create_system = 3
i.external_attr = (stat.S_IFIFO | 0o644) << 16
z.writestr(i, '')
--- exit_code: 1
--- error_like
symlink or special file

=== TEST 7: a truncated archive
--- zip_py
z.writestr('a.py', 'x' * 10000)
--- truncate_to: 60
--- exit_code: 1
--- error_like
not a valid zip archive
