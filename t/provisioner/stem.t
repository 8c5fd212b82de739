# Stem cells (docs/DESIGN.md section 6): once a runtime and memory size is in
# use, the provisioner keeps a generic sandbox of it ready; the first
# sandbox of another revision is that cell, specialised (its code read-only
# at /var/task, nothing of another function there, its own interpreter); a
# cell serves one revision; the pool refills; with the host full the idle
# cells go first.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $redis = start_redis();
my $r = redis_client($redis);
my $p = start_provisioner($redis, name => 'p1', memory_budget_mb => 96,
                          grace_ms => 600000);
my $run = $p->{cfg}{run_dir};

my $HANDLER = <<'PY';
import os

def handler(e, c):
    try:
        open('/var/task/x', 'w')
        ro = False
    except OSError:
        ro = True
    return {'fn': os.environ.get('AWS_LAMBDA_FUNCTION_NAME'),
            'ctx': c.function_name, 'var': os.environ.get('FN_VAR'),
            'task': sorted(os.listdir('/var/task')), 'cwd': os.getcwd(),
            'data': open('data.txt').read(), 'ro': ro, 'uid': os.getuid(),
            'hash': hash('stem')}
PY
my %code;
for my $fn (qw(a b c x)) {
    my ($k, $s) = put_code($p, $fn, 1, make_zip('handler.py' => $HANDLER,
                                                 'data.txt' => "data of $fn"));
    $code{$fn} = { code_key => $k, code_sha256 => $s };
}

sub ask {
    my ($fn, %f) = @_;
    my $rid = "$fn\@1";
    my $id = push_request($r, $p, rid => $rid, memory_mb => 32,
                          env => { FN_VAR => "var of $fn" }, %{ $code{$fn} }, %f);
    my ($k, $v) = @{ $r->blpop("faas:idle:{$rid}", "faas:err:{$rid}:$id", 30) || [] };
    $r->rpush($k, $v) if ($k // '') eq "faas:idle:{$rid}";   # leave it listed
    return ($k // '', (split /\|/, $v // '')[0]);
}
sub ready_cells { prov_log_count($p, qr/stem cell s-\w+ \(python3, 32 MB\) ready/) }
sub from_stem { prov_log_count($p, qr/sandbox \Q$_[0]\E \(\Q$_[1]\E\) idle in \d+ ms \(specialised stem cell/) }

my ($k, $sa) = ask('a');
is($k, 'faas:idle:{a@1}', 'the first function gets a fresh sandbox');
is(from_stem($sa, 'a@1'), 0, 'not from a stem cell: the pool was empty');
ok(wait_until(sub { ready_cells() >= 1 }, 30), 'a stem cell of python3, 32 MB is built');

my $sb;
($k, $sb) = ask('b');
is($k, 'faas:idle:{b@1}', 'a new function gets a sandbox');
is(from_stem($sb, 'b@1'), 1, 'specialised from the stem cell (logged)');
my $mb = json_decode(read_file("$run/sbx/$sb/meta.json"));
ok($mb->{stem} && $mb->{rid} eq 'b@1' && $mb->{handler} eq 'handler.handler',
   'its meta.json names its revision and says stem');
my $ans = prov_sbx_invoke($p, $sb, '{}');
my $out = $ans && $ans->{ok} ? json_decode($ans->{response}{body}) : {};
is($out->{fn}, 'b', 'the platform environment is the function\'s');
is($out->{ctx}, 'b', 'and so is the context');
is($out->{var}, 'var of b', 'the function\'s own environment too');
is_deeply($out->{task}, ['data.txt', 'handler.py'], 'only its own code at /var/task');
is($out->{cwd}, '/var/task', 'the working directory is the code');
is($out->{data}, 'data of b', 'relative paths find the code');
ok($out->{ro}, '/var/task is read-only');
ok($out->{uid} >= 100000, 'an unprivileged uid of its own');

ok(wait_until(sub { ready_cells() >= 2 }, 30), 'the pool refills');
my $sc;
($k, $sc) = ask('c');
is(from_stem($sc, 'c@1'), 1, 'the next new function takes the new cell');
isnt($sc, $sb, 'not the cell b took: a cell serves one function');
my $ans_c = prov_sbx_invoke($p, $sc, '{}');
my $oc = $ans_c && $ans_c->{ok} ? json_decode($ans_c->{response}{body}) : {};
is($oc->{data}, 'data of c', 'c sees its own code');
isnt($oc->{uid}, $out->{uid}, 'another uid');
isnt($oc->{hash}, $out->{hash}, 'its own interpreter: another str hash secret');
my $ans_b = prov_sbx_invoke($p, $sb, '{}');
my $ob = $ans_b && $ans_b->{ok} ? json_decode($ans_b->{response}{body}) : {};
is($ob->{data}, 'data of b', 'b still serves b');

# a second sandbox of b (the first one in use) is not taken from the pool
my $held = $r->lpop('faas:idle:{b@1}');
my $sb2;
($k, $sb2) = ask('b');
isnt($sb2, $sb, 'b gets a second sandbox');
is(from_stem($sb2, 'b@1'), 0, 'a revision\'s later sandboxes are not stem cells');

prov_cleanup($p);

# A fresh host: a (32 MB) then its stem cell (32 MB) fill 64 of 96 MB; x of
# 64 MB needs the cell's room, not a's.
$p = start_provisioner($redis, name => 'p2', memory_budget_mb => 96,
                       grace_ms => 600000);
$run = $p->{cfg}{run_dir};
for my $fn (qw(a x)) {
    my ($k2, $s2) = put_code($p, $fn, 1, make_zip('handler.py' => $HANDLER,
                                                   'data.txt' => "data of $fn"));
    $code{$fn} = { code_key => $k2, code_sha256 => $s2 };
}
$r->del('faas:idle:{a@1}', 'faas:count:{a@1}');
($k, $sa) = ask('a');
is($k, 'faas:idle:{a@1}', 'a on the second host');
ok(wait_until(sub { ready_cells() >= 1 }, 30), 'its stem cell is built');
my ($kx, $sx) = ask('x', memory_mb => 64);
is($kx, 'faas:idle:{x@1}', 'x (64 MB) fits');
ok(prov_log_count($p, qr/stem cell \S+ \(python3, 32 MB\): destroying it, the host is full/) == 1,
   'by destroying the idle stem cell first');
is(prov_log_count($p, qr/capacity: evicting/), 0, 'no sandbox of a function was evicted');
ok(-d "$run/sbx/$sa", 'a stays');
prov_cleanup($p);

# Node.js takes the same path.
$p = start_provisioner($redis, name => 'p3');
my $JS = <<'JS';
const fs = require('fs');
exports.handler = async (e, c) => ({
  fn: process.env.AWS_LAMBDA_FUNCTION_NAME, ctx: c.functionName,
  var: process.env.FN_VAR, task: fs.readdirSync('/var/task').sort(),
  cwd: process.cwd(), data: fs.readFileSync('data.txt', 'utf8'),
});
JS
for my $fn (qw(n1 n2)) {
    my ($k3, $s3) = put_code($p, $fn, 1, make_zip('handler.js' => $JS,
                                                   'data.txt' => "data of $fn"));
    $code{$fn} = { code_key => $k3, code_sha256 => $s3 };
}
sub node_cells { prov_log_count($p, qr/stem cell s-\w+ \(nodejs, 128 MB\) ready/) }
($k) = ask('n1', runtime => 'nodejs', memory_mb => 128);
is($k, 'faas:idle:{n1@1}', 'a Node.js function on the third host');
ok(wait_until(sub { node_cells() >= 1 }, 30), 'a Node.js stem cell is built');
my $sn;
($k, $sn) = ask('n2', runtime => 'nodejs', memory_mb => 128);
is(from_stem($sn, 'n2@1'), 1, 'the next Node.js function takes it');
my $an = prov_sbx_invoke($p, $sn, '{}');
my $on = $an && $an->{ok} ? json_decode($an->{response}{body}) : {};
is_deeply([@$on{qw(fn ctx var cwd data)}], ['n2', 'n2', 'var of n2', '/var/task', 'data of n2'],
          'it runs n2 with n2\'s environment and code')
    or diag(explain($an));
is_deeply($on->{task}, ['data.txt', 'handler.js'], 'only n2\'s code at /var/task');

prov_cleanup($p);
faas_finish();
