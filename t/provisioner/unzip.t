# The code cache's unzip (provisioner/code_cache.c, through the AddressSanitizer
# build of faas-provision-tool): directories and modes kept, unsafe archives
# refused with a reason.
use lib 't/lib';
use Test::More;
use Faas::Test;
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

my ($rc, $err, $dir) = unzip(zip_of(<<'PY'));
z.writestr('handler.py', 'x = 1\n')
z.writestr('lib/', '')
z.writestr('lib/pkg/mod.py', 'y = 2\n')
i = zipfile.ZipInfo('bin/tool.sh'); i.create_system = 3
i.external_attr = (stat.S_IFREG | 0o755) << 16
z.writestr(i, '#!/bin/sh\n')
PY
is($rc, 0, 'a normal archive unpacks') or diag($err);
is(read_file("$dir/lib/pkg/mod.py"), "y = 2\n", 'nested files');
is((stat("$dir/handler.py"))[2] & 07777, 0644, 'files are 0644');
is((stat("$dir/bin/tool.sh"))[2] & 07777, 0755, 'executables stay executable');
is((stat("$dir/lib"))[2] & 07777, 0755, 'directories are 0755');

my @bad = (
    [ "z.writestr('/etc/evil', 'x')\n", qr/unsafe entry name/, 'absolute path' ],
    [ "z.writestr('a/../../evil', 'x')\n", qr/unsafe entry name/, '".." inside a path' ],
    [ "z.writestr('a.py', 'x')\nz.writestr('a.py', 'y')\n", qr/already exists/, 'duplicate entry' ],
    [ "i = zipfile.ZipInfo('l'); i.create_system = 3\ni.external_attr = (stat.S_IFLNK | 0o777) << 16\nz.writestr(i, '/etc/passwd')\n",
      qr/symlink or special file/, 'symlink' ],
    [ "i = zipfile.ZipInfo('fifo'); i.create_system = 3\ni.external_attr = (stat.S_IFIFO | 0o644) << 16\nz.writestr(i, '')\n",
      qr/symlink or special file/, 'fifo' ],
);
for my $b (@bad) {
    ($rc, $err) = unzip(zip_of($b->[0]));
    is($rc, 1, "$b->[2]: refused");
    like($err, $b->[1], "$b->[2]: reason") or diag($err);
}
ok(!-e "$w/../evil" && !-e '/etc/evil', 'nothing written outside');

write_file("$w/trunc.zip", substr(read_file(zip_of("z.writestr('a.py', 'x' * 10000)\n")), 0, 60));
($rc, $err) = unzip("$w/trunc.zip");
is($rc, 1, 'a truncated archive is refused');
like($err, qr/not a valid zip archive/, 'with a reason');
faas_finish();
