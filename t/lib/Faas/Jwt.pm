package Faas::Jwt;
# Keys and tokens for the JWT tests: key pairs made by openssl under
# work_dir(), and tokens signed with HS256 or RS256/RS512.
#
#   my ($pem, $pub) = key_pair('rsa');          # <work>/rsa.pem, <work>/rsa.pub
#   my $t = jwt_rs({ alg => 'RS256' }, { sub => 'alice' }, $pem, 'sha256');
use strict;
use warnings;
use Exporter 'import';
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use Faas::Test;

our @EXPORT = qw(key_pair b64url jwt_hs jwt_rs);

# An RSA (2048 bits) or EC (P-256) key pair at <work>/<name>.pem and .pub.
sub key_pair {
    my ($name, $type) = @_;
    my $w = work_dir();
    my $opt = ($type // 'RSA') eq 'EC' ? 'ec_paramgen_curve:P-256' : 'rsa_keygen_bits:2048';
    system('openssl genpkey -algorithm ' . ($type // 'RSA')
           . " -pkeyopt $opt -out $w/$name.pem 2>/dev/null") == 0
        or die "openssl genpkey failed";
    system("openssl pkey -in $w/$name.pem -pubout -out $w/$name.pub 2>/dev/null") == 0
        or die "openssl pkey failed";
    return ("$w/$name.pem", "$w/$name.pub");
}

sub b64url { encode_base64url($_[0]) }

sub signing_input {
    my ($hdr, $claims) = @_;
    return b64url(json_encode($hdr)) . '.' . b64url(json_encode($claims));
}

# A token signed with HMAC-SHA256 under $key.
sub jwt_hs {
    my ($hdr, $claims, $key) = @_;
    my $in = signing_input($hdr, $claims);
    return "$in." . b64url(hmac_sha256($in, $key));
}

# A token signed by openssl with the private key $pem and digest $dgst
# (sha256, sha512).
sub jwt_rs {
    my ($hdr, $claims, $pem, $dgst) = @_;
    my $in = signing_input($hdr, $claims);
    my $f = work_dir() . '/jwt-in';
    write_file($f, $in);
    my $sig = `openssl dgst -$dgst -sign $pem $f`;
    die "openssl dgst failed" unless $? == 0;
    return "$in." . b64url($sig);
}

1;
