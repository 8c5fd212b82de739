# faas-registry refuses a bad configuration at start, with a clear reason.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Registry;

my $n = 0;
sub refused {
    my ($change, $re, $what) = @_;
    my $cfg = registry_config(db => { port => free_port() }, redis => { addr => '127.0.0.1:1' },
                              cfg => { mysql_start_wait_s => 1, mysql_timeout_s => 1 });
    $change->($cfg);
    my $h = start_daemon('faas-registry', $cfg, name => 'cfg' . ++$n);
    ok(wait_until(sub { !proc_alive($h) }, 20), "$what: exits");
    isnt($h->{status}, 0, "$what: with a failure status");
    like(read_file($h->{log}) // '', $re, "$what: says why");
}

refused(sub { delete $_[0]{master_key} }, qr/master_key is required/, 'no master key');
refused(sub { $_[0]{master_key} = 'ab' x 31 }, qr/master_key must be 64 hex/, 'short master key');
refused(sub { delete $_[0]{key_digest_secret} }, qr/key_digest_secret is required/,
        'no digest secret');
refused(sub { $_[0]{key_digest_secret} = 'short' }, qr/at least 16 characters/,
        'weak digest secret');
refused(sub { $_[0]{mysql_port} = 'x' }, qr/mysql_port must be/, 'wrongly typed key');
refused(sub { $_[0]{records_batch} = 0 }, qr/out of range/, 'limit out of range');
refused(sub { delete $_[0]{socket} }, qr/socket is required/, 'no socket');
refused(sub { $_[0]{redis} = 'nocolon' }, qr/redis must be host:port/, 'bad redis address');
refused(sub { 1 }, qr/schema migrations: .*mysql connect/, 'MySQL unreachable at start');

my $h = spawn('noargs', [ objs_dir() . '/faas-registry' ]);
ok(wait_until(sub { !proc_alive($h) }, 10), 'no -c: exits');
like(read_file($h->{log}), qr/usage: faas-registry -c/, 'usage');

faas_finish();
