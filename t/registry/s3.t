# The registry with an S3 code store (s3rver): code lands at
# code/<name>/<version>/<sha256>.zip, logs are read back from it, and a store
# outage fails the upload cleanly with nothing registered.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;
use Faas::Setup;

my $db = start_mariadb();
my $redis = start_redis();
my $r = redis_client($redis);
my $s3 = start_s3rver();
my $reg = start_registry(db => $db, redis => $redis, cfg => {
    store_url => "s3://$s3->{bucket}", %{ $s3->{opts} } });
my $dbh = mariadb_dbh($db, 'faas');

sub s3_objects {
    my ($prefix) = @_;
    my @f;
    my $root = "$s3->{dir}/$s3->{bucket}";
    require File::Find;
    File::Find::find(sub { push @f, $File::Find::name if -f $_ && /\._S3rver_object$/ }, $root)
        if -d $root;
    return sort grep { index($_, "$root/$prefix") == 0 } @f;
}

my $res = create_py_function($reg, 's3fn');
is($res->{status}, 201, 'created with the S3 store') or diag explain $res;
my $key = $res->{json}{code_key};
my @obj = s3_objects($key);
is(scalar @obj, 1, "object $key is in the bucket");
is(substr(read_file($obj[0]), 0, 2), 'PK', 'and is a zip');

# Logs come from the same store: put one through S3 and read it back.
my $rid = 'a' x 32;
$r->rpush('faas:records', exec_record(request_id => $rid, function => 's3fn',
    version => 1, user => 'alice', log_key => "logs/s3fn/2024-01-01/$rid.log",
    timestamp_ms => 1_704_067_200_000));
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'record drained');
# (s3rver takes anonymous requests; the registry itself signs with SigV4.)
system('curl', '-sf', '-o', '/dev/null', '-X', 'PUT', '--data-binary', 'hello from s3',
       "$s3->{endpoint}/$s3->{bucket}/logs/s3fn/2024-01-01/$rid.log") == 0
    or diag 'curl PUT failed';
$res = api($reg, 'GET', "/v1/functions/s3fn/executions/$rid/logs", user => 'alice');
is($res->{status}, 200, 'logs read from S3');
is($res->{body}, 'hello from s3', 'verbatim');

# Store down: 503, nothing registered, nothing mirrored.
stop_proc($s3);
$res = create_py_function($reg, 'nostore');
is($res->{status}, 503, 'store down: 503');
is($dbh->selectrow_array("SELECT COUNT(*) FROM functions WHERE name = 'nostore'"), 0,
   'no function row');
is($dbh->selectrow_array("SELECT COUNT(*) FROM versions WHERE name = 'nostore'"), 0,
   'no version row');
ok(!$r->exists('faas:fn:nostore'), 'no mirror');
$res = api($reg, 'PUT', '/v1/functions/s3fn/code', user => 'alice',
           body => make_zip([ 'app.py' => py_fn('v2') ]));
is($res->{status}, 503, 'new code with the store down: 503');
is(api($reg, 'GET', '/v1/functions/s3fn', user => 'alice')->{json}{version}, 1,
   'the current version is unchanged');

$s3 = start_s3rver(port => $s3->{port}, dir => $s3->{dir});
$res = api($reg, 'DELETE', '/v1/functions/s3fn', user => 'alice');
is($res->{status}, 200, 'delete');
is_deeply([ s3_objects('code/s3fn/') ], [], 'code removed from the bucket');

stop_proc($reg);
faas_finish();
