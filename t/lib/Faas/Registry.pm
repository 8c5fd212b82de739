package Faas::Registry;
# Test helpers for faas-registry: start it against the test's MariaDB and
# Redis with a file:// store, talk HTTP/1.1 to its Unix socket (as nginx
# would, with X-Faas-User already set), build zip files (good and evil).
#
#   my $reg = start_registry(db => $db, redis => $redis, cfg => {...});
#   my $r = api($reg, 'POST', '/v1/functions', user => 'alice', json => {...});
#   $r->{status}, $r->{json}, $r->{body}
use strict;
use warnings;
use Faas::Protobuf;
use Exporter 'import';
use IO::Socket::UNIX;
use MIME::Base64 qw(encode_base64);
use Archive::Zip qw(:ERROR_CODES :CONSTANTS);
use Faas::Test;
use Faas::Http;

our @EXPORT = qw(start_registry registry_config api make_zip b64 py_fn
                 restart_redis_same_port exec_record
                 start_mongo_standin mongo_docs same_ms_pages);

sub registry_config {
    my (%o) = @_;
    my $w = work_dir();
    my $cfg = {
        socket => "$w/registry.sock",
        mysql_host => '127.0.0.1', mysql_port => $o{db}{port} + 0,
        mysql_user => 'root', mysql_database => 'faas',
        mysql_timeout_s => 3,
        store_url => "file://$w/store",
        redis => $o{redis}{addr},
        master_key => '00112233445566778899aabbccddeeff'
                      . '00112233445566778899aabbccddeeff',
        key_digest_secret => 'test-digest-secret-0123456789',
        admin_subject => 'admin',
        max_upload_bytes => 2 * 1024 * 1024,
        max_zip_entries => 50,
        max_unzipped_bytes => 8 * 1024 * 1024,
        records_batch => 100,
        records_interval_ms => 100,
        records_lock_ms => 2000,
        mirror_repair_interval_ms => 60000,
        syntax_check_timeout_ms => 10000,
        python => '/usr/bin/python3', node => '/usr/bin/node',
        tmp_dir => $w,
        log_level => 'debug',
        %{ $o{cfg} || {} },
    };
    return $cfg;
}

sub start_registry {
    my (%o) = @_;
    my $cfg = registry_config(%o);
    unlink $cfg->{socket};
    # FAAS_REGISTRY_ASAN=1 runs the AddressSanitizer build instead.
    my $exe = $ENV{FAAS_REGISTRY_ASAN} ? objs_dir() . '/asan/faas-registry' : undef;
    my $h = start_daemon('faas-registry', $cfg, name => $o{name} // 'registry',
                         wait_path => $cfg->{socket}, timeout => 60,
                         ($exe ? (exe => $exe) : ()));
    $h->{socket} = $cfg->{socket};
    $h->{cfg} = $cfg;
    return $h;
}

# One request, Connection: close. Returns {status, headers, body, json}.
sub api {
    my ($reg, $method, $path, %o) = @_;
    my $body = $o{body};
    my %hdr = %{ $o{headers} || {} };
    if (exists $o{json}) {
        $body = json_encode($o{json});
        $hdr{'Content-Type'} = 'application/json';
    }
    $hdr{'X-Faas-User'} = $o{user} if defined $o{user};
    my $s = IO::Socket::UNIX->new(Peer => $reg->{socket}, Type => SOCK_STREAM,
                                  Timeout => 30)
        or return { status => 0, error => "connect: $!" };
    my $req = "$method $path HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n";
    $req .= "$_: $hdr{$_}\r\n" for sort keys %hdr;
    $req .= 'Content-Length: ' . length($body // '') . "\r\n\r\n";
    $req .= $body // '';
    binmode $s;
    local $SIG{PIPE} = 'IGNORE';   # a 413 may close before the body is sent
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($s, $req, 65536, $off);
        last unless $n;   # the server may answer (413) before reading all
        $off += $n;
    }
    my $resp = '';
    while (1) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }
    close $s;
    my $r = http_parse($resp);
    return $r unless $r->{headers};
    $r->{json} = eval { json_decode($r->{body}) }
        if ($r->{headers}{'content-type'} // '') =~ /json/;
    return $r;
}

# Stops a Redis started by start_redis() and starts a new, empty one on the
# same port (what a Redis restart without persistence looks like).
my $REDIS_GEN = 0;
sub restart_redis_same_port {
    my ($h) = @_;
    stop_proc($h) if $h->{pid};
    my $dir = work_dir() . "/redis-$h->{port}";
    my $p = spawn("redis-$h->{port}-" . ++$REDIS_GEN, [
        'redis-server', '--port', $h->{port}, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--dir', $dir,
        '--daemonize', 'no', '--loglevel', 'warning',
    ]);
    wait_port($h->{port}) or die "redis did not restart, see $p->{log}";
    $p->{$_} = $h->{$_} for qw(port host addr password);
    return $p;
}

# The MongoDB wire-protocol stand-in (t/tools/mongo_standin.pl, the only
# test double of the project: no MongoDB server can be installed here).
# $o{port} restarts it on a known port; its data survives in $h->{dump}.
sub start_mongo_standin {
    my (%o) = @_;
    my $port = $o{port} // free_port();
    my $dump = work_dir() . "/mongo-$port.json";
    my $h = spawn("mongo-standin-$port-" . ++$REDIS_GEN,
                  [ $^X, faas_root() . '/t/tools/mongo_standin.pl',
                    '--port', $port, '--dump', $dump ]);
    wait_port($port, 15) or die "mongo stand-in did not start, see $h->{log}";
    $h->{port} = $port;
    $h->{dump} = $dump;
    $h->{uri} = "mongodb://127.0.0.1:$port/faas?serverSelectionTimeoutMS=2000"
                . '&connectTimeoutMS=2000&socketTimeoutMS=5000';
    return $h;
}

# Documents the stand-in holds for "db.collection".
sub mongo_docs {
    my ($h, $ns) = @_;
    my $s = read_file($h->{dump});
    return [] unless defined $s;
    return json_decode($s)->{$ns} // [];
}

sub b64 { encode_base64($_[0], '') }

# make_zip([name => content, ...], attrs => {name => {mode => 0120777,
# encrypted => 1, stored => 1}}): built by Python's zipfile (Debian's
# /usr/bin/python3), names kept verbatim; "encrypted" sets the encryption
# flag in both headers (the data stays clear, which is all a check can see).
my $MKZIP = <<'PY';
import io, json, sys, zipfile, base64, struct, warnings
warnings.simplefilter('ignore')
spec = json.load(sys.stdin)
buf = io.BytesIO()
enc = []
with zipfile.ZipFile(buf, 'w') as z:
    for e in spec:
        zi = zipfile.ZipInfo(e['name'], (2024, 1, 1, 0, 0, 0))
        zi.compress_type = zipfile.ZIP_STORED if e.get('stored') else zipfile.ZIP_DEFLATED
        zi.create_system = 3
        zi.external_attr = (e.get('mode') or 0o100644) << 16
        z.writestr(zi, base64.b64decode(e['data']))
        if e.get('encrypted'):
            zi.flag_bits |= 1
            enc.append(zi.header_offset)
data = bytearray(buf.getvalue())
for off in enc:
    flags = struct.unpack_from('<H', data, off + 6)[0] | 1
    struct.pack_into('<H', data, off + 6, flags)
sys.stdout.buffer.write(bytes(data))
PY

sub make_zip {
    my ($files, %o) = @_;
    my @spec;
    my @f = @$files;
    while (@f) {
        my ($name, $content) = splice(@f, 0, 2);
        my $a = ($o{attrs} || {})->{$name} || {};
        push @spec, { name => $name, data => b64($content),
                      map { ($_ => $a->{$_}) } keys %$a };
    }
    my $w = work_dir();
    write_file("$w/mkzip.py", $MKZIP);
    write_file("$w/mkzip.json", json_encode(\@spec));
    my $out = `/usr/bin/python3 $w/mkzip.py < $w/mkzip.json`;
    die "mkzip failed" if $?;
    return $out;
}

# ExecutionRecord (proto/faas.proto) encoded by hand: field => number/type.
my %REC = (
    request_id => [1, 's'], function => [2, 's'], version => [3, 'v'],
    user => [4, 's'], start_type => [5, 'v'], status => [6, 'v'],
    http_status => [7, 'v'], duration_us => [8, 'v'], total_us => [9, 'v'],
    cold_start_us => [10, 'v'], memory_bytes => [11, 'v'], log_key => [12, 's'],
    agent_host => [13, 's'], timestamp_ms => [14, 'v'], sandbox_id => [15, 's'],
    trace_id => [16, 's'],
);
sub exec_record {
    my (%f) = @_;
    my $out = '';
    for my $k (sort { $REC{$a}[0] <=> $REC{$b}[0] } keys %f) {
        my ($num, $type) = @{ $REC{$k} or die "no field $k" };
        if ($type eq 's') {
            $out .= pb_varint($num << 3 | 2) . pb_varint(length $f{$k}) . $f{$k};
        } else {
            $out .= pb_varint($num << 3) . pb_varint($f{$k});
        }
    }
    return $out;
}

# Creates function $name (owner alice), queues @records (all of one
# millisecond) on faas:records and pages through its executions 3 at a
# time. Returns (drained within 30 s, [request ids in page order]).
sub same_ms_pages {
    my ($reg, $r, $name, @records) = @_;
    api($reg, 'POST', '/v1/functions', user => 'alice', json => {
        name => $name, runtime => 'python3', handler => 'app.handler',
        code => { file => 'app.py', content => py_fn() } });
    $r->rpush('faas:records', $_) for @records;
    my $drained = wait_until(sub { $r->llen('faas:records') == 0 }, 30);
    my (@ids, $cur);
    for (1 .. 10) {
        my $res = api($reg, 'GET', "/v1/functions/$name/executions?limit=3"
                                   . ($cur ? "&before=$cur" : ''), user => 'alice');
        push @ids, map { $_->{request_id} } @{ $res->{json}{executions} };
        last unless defined($cur = $res->{json}{next_before});
    }
    return ($drained, \@ids);
}

sub py_fn {
    my ($msg) = @_;
    $msg //= 'hello';
    return "def handler(event, context):\n    return {'msg': '$msg'}\n";
}

1;
