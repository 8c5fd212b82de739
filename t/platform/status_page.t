# The live status page (faas_status_page) in headless Chromium (Debian's
# chromium): the platform, calls made by the test (a cold one, warm ones,
# function errors), then the page loaded for a few seconds: its screenshot is
# saved under t/servroot and the numbers in its DOM, filled in by its script,
# must be the calls made.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Platform;

for my $b (qw(faas-registry faas-provisioner faas-agent faasctl ngx_http_faas_module.so)) {
    plan skip_all => "objs/$b is not built" unless -e objs_dir() . "/$b";
}
plan skip_all => 'needs root (sandboxes)' unless $> == 0;
plan skip_all => 'needs chromium (Debian package)' unless -x '/usr/bin/chromium';

faasctl_env(map { ($_ => undef) } qw(FAAS_URL FAAS_TOKEN FAAS_CACERT
    FAAS_JWT_SECRET_FILE FAAS_SUBJECT FAAS_KEY FAAS_UNIX_SOCKET));

my $w = work_dir();
my $p = start_platform(examples => 0);
is($p->{run}{rc}, 0, 'platform up') or BAIL_OUT($p->{run}{err});
faasctl_env(FAAS_URL => $p->{url}, FAAS_CACERT => $p->{cacert},
            FAAS_JWT_SECRET_FILE => $p->{secret}, FAAS_SUBJECT => 'alice');

mkdir "$w/fn";
write_file("$w/fn/app.py", <<'PY');
def handler(event, context):
    if event.get("rawPath") == "/fail":
        raise ValueError("boom")
    return {"statusCode": 200, "body": "ok"}
PY
my $x = faasctl('deploy', "$w/fn", '--name', 'page', '--runtime', 'python3',
                '--handler', 'app.handler', '--public');
is($x->{rc}, 0, 'deploy') or diag $x->{err};

my ($ok, $fail) = (7, 2);
my @st = map { https($p, 'GET', '/fn/page/a')->{status} } 1 .. $ok;
push @st, https($p, 'GET', '/fn/page/fail')->{status} for 1 .. $fail;
is_deeply(\@st, [(200) x $ok, (502) x $fail], "$ok answers, $fail function errors");

# Chromium: the page after 3 s of polling (its DOM, then a screenshot)
my $url = "http://127.0.0.1:$p->{http_port}/status";
my $shots = faas_root() . '/t/servroot';
mkdir $shots;
my @chrome = ('chromium', '--headless', '--no-sandbox', '--disable-gpu',
              '--virtual-time-budget=3000', "--user-data-dir=$w/chromium");
my $dom = `@chrome --dump-dom '$url' 2>/dev/null`;
like($dom, qr/<tr data-fn="page">/, 'the page shows the function') or diag $dom;
my ($row) = $dom =~ m{(<tr data-fn="page">.*?</tr>)}s;
$row //= '';
my %cell = $row =~ m{<td class="(\w+)">([^<]*)</td>}g;
is($cell{calls}, $ok + $fail, 'calls: the calls made');
is($cell{errors}, $fail, 'errors: the function errors');
is($cell{cold}, sprintf('%.1f', 100 / ($ok + $fail)), 'cold %: one of them');
is($cell{busy}, 0, 'busy: none now');
like($cell{p50} // '', qr/^\d+\.\d$/, 'p50: a number');
like($cell{p99} // '', qr/^\d+\.\d$/, 'p99: a number');
ok(($cell{p99} // 0) >= ($cell{p50} // 0), 'p99 >= p50');
like($cell{rate} // '', qr/^\d+\.\d$/, 'rate: a number');
like($row, qr/<canvas/, 'a sparkline');

my $png = "$shots/status_page.png";
unlink $png;
system("@chrome --screenshot=$png --window-size=1200,400 '$url' >/dev/null 2>&1");
ok(-s $png, "screenshot saved ($png)");

is(stop_platform($p)->{rc}, 0, 'platform stopped');
faas_finish();
