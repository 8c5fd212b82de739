# faas-registry refuses a bad configuration at start, with a clear reason
# naming the key (unknown keys too).
# Each block changes a configuration that is good but for its unreachable
# MySQL (set: a JSON object of keys, delete: key names) and gives the reason
# the registry must log (error_like).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Registry;
use Faas::Blocks;

my $base = registry_config(db => { port => free_port() }, redis => { addr => '127.0.0.1:1' },
                           cfg => { mysql_start_wait_s => 1, mysql_timeout_s => 1 });
my $n = 0;
for my $b (data_blocks()) {
    my $what = $b->name;
    my $h = start_daemon('faas-registry', edit_config($base, $b), name => 'cfg' . ++$n);
    ok(wait_until(sub { !proc_alive($h) }, 20), "$what: exits");
    isnt($h->{status}, 0, "$what: with a failure status");
    my $re = $b->error_like =~ s/\n\z//r;
    like(read_file($h->{log}) // '', qr/$re/, "$what: says why");
}

my $h = spawn('noargs', [ objs_dir() . '/faas-registry' ]);
ok(wait_until(sub { !proc_alive($h) }, 10), 'no -c: exits');
like(read_file($h->{log}), qr/usage: faas-registry -c/, 'usage');

faas_finish();

__DATA__

=== TEST 1: no master key
--- delete: master_key
--- error_like
master_key is required

=== TEST 2: short master key
--- set
{"master_key": "ababababababababababababababababababababababababababababababab"}
--- error_like
master_key must be 64 hex

=== TEST 3: no digest secret
--- delete: key_digest_secret
--- error_like
key_digest_secret is required

=== TEST 4: weak digest secret
--- set
{"key_digest_secret": "short"}
--- error_like
at least 16 characters

=== TEST 5: wrongly typed key
--- set
{"mysql_port": "x"}
--- error_like
mysql_port must be

=== TEST 6: limit out of range
--- set
{"records_batch": 0}
--- error_like
config: records_batch is out of range: must be 1\.\.10000

=== TEST 7: no socket
--- delete: socket
--- error_like
socket is required

=== TEST 8: bad redis address
--- set
{"redis": "nocolon"}
--- error_like
redis must be host:port

=== TEST 9: MySQL unreachable at start
--- error_like
schema migrations: .*mysql connect

=== TEST 10: unknown key (a typo)
--- set
{"records_bacth": 10}
--- error_like
config: unknown key "records_bacth"

=== TEST 10b: admin_subjects is a known key (the start goes on to MySQL)
--- set
{"admin_subjects": ["ops@example.com"]}
--- error_like
schema migrations: .*mysql connect

=== TEST 11: negative upload limit
--- set
{"max_upload_bytes": -1}
--- error_like
config: max_upload_bytes is out of range: must be 1024\.\.

=== TEST 12: port out of range
--- set
{"mysql_port": 70000}
--- error_like
config: mysql_port is out of range: must be 1\.\.65535
