# The s3:// blob backend (common/blob_s3.c) against s3rver.
#
# 1. t/unit/blob_s3_test.c (its AddressSanitizer build, objs/asan/t/) runs
#    with the endpoint in FAAS_S3_*: round trips, 5 MB files, limits,
#    missing objects and buckets, refused keys, endpoint down, timeouts.
# 2. What it stored is checked from here, without our C code: in s3rver's
#    directory and through s3rver's HTTP API (a V2-signed ListObjects).
# 3. s3rver 3.7.1 does not verify V4 signatures (it only looks the access
#    key up), so a wrong secret cannot be provoked here; an unknown access
#    key (InvalidAccessKeyId, 403) is what the -EACCES path is tested with.
#    No fake S3 is used: the project allows no test double but MongoDB's.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Unit qw(unit_tap);
use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex hmac_sha1);
use File::Path qw(make_path);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);

my $s3 = start_s3rver();
my $tmp = work_dir() . '/blob';
make_path($tmp);
my $asan = objs_dir() . '/asan/t/blob_s3_test';
my %env = (
    FAAS_S3_ENDPOINT   => $s3->{endpoint},
    FAAS_S3_BUCKET     => $s3->{bucket},
    FAAS_S3_REGION     => $s3->{opts}{s3_region},
    FAAS_S3_ACCESS_KEY => $s3->{opts}{s3_access_key},
    FAAS_S3_SECRET_KEY => $s3->{opts}{s3_secret_key},
    FAAS_S3_DOWN_PORT  => free_port(),
    FAAS_S3_TMP        => $tmp,
);

# --- 1. the C test program --------------------------------------------------
unit_tap('blob_s3_test', env => \%env);

# --- 2. what landed in s3rver ------------------------------------------------
# The key has a space, UTF-8, "+" and "%": s3rver must have stored it under
# the decoded name, so our URL-encoding was right.
my $proof_key = "t/proof dir/\xc3\xbcn\xc3\xaf+code%key.txt";
my $proof = "$s3->{dir}/$s3->{bucket}/t/proof dir/\xc3\xbcn\xc3\xaf+code%key.txt"
          . '._S3rver_object';
is(read_file($proof), 'proof of the round trip',
   'object stored by blob_s3_test is in s3rver\'s directory under the decoded key');
ok(!-e "$s3->{dir}/$s3->{bucket}/t/big/5mb.bin._S3rver_object",
   'the deleted 5 MB object is gone from s3rver');

{
    # A V2 presigned URL (s3rver checks V2 signatures, not V4 ones).
    my $expires = time + 300;
    my $sts = "GET\n\n\n$expires\n/$s3->{bucket}";
    my $sig = encode_base64(hmac_sha1($sts, $s3->{opts}{s3_secret_key}), '');
    $sig =~ s{([^A-Za-z0-9\-_.~])}{sprintf('%%%02X', ord $1)}ge;
    my $r = HTTP::Tiny->new(timeout => 30)->get(
        "$s3->{endpoint}/$s3->{bucket}?prefix=t/"
        . "&AWSAccessKeyId=$s3->{opts}{s3_access_key}&Expires=$expires"
        . "&Signature=$sig");
    is($r->{status}, 200, 'ListObjects through s3rver\'s HTTP API')
        or diag($r->{content});
    my @keys = ($r->{content} // '') =~ m{<Key>([^<]*)</Key>}g;
    ok((grep { $_ eq $proof_key } @keys), 'the listing has the proof object')
        or diag(join(', ', @keys));
    ok(!(grep { $_ eq 't/big/5mb.bin' } @keys), 'and not the deleted one');
}

faas_finish();
