package Faas::Protobuf;
# Hand protobuf encoding/decoding for the tests (proto/faas.proto), so that
# the Perl side checks our C codecs without sharing their code.
use strict;
use warnings;
use Exporter 'import';
our @EXPORT = qw(pb_varint pb_field_str pb_field_int pb_read_varint pb_decode);

sub pb_varint {
    my ($v) = @_;
    my $out = '';
    while ($v >= 0x80) {
        $out .= chr(($v & 0x7f) | 0x80);
        $v = int($v / 128);
    }
    return $out . chr($v);
}

# A length-delimited field; nothing for an undefined or empty string.
sub pb_field_str {
    my ($num, $s) = @_;
    return '' unless defined $s && length $s;
    return pb_varint(($num << 3) | 2) . pb_varint(length $s) . $s;
}

# A varint field; nothing for 0 (proto3 default).
sub pb_field_int {
    my ($num, $v) = @_;
    return '' unless $v;
    return pb_varint($num << 3) . pb_varint($v);
}

sub pb_read_varint {
    my ($buf, $pos) = @_;
    my ($v, $shift) = (0, 0);
    while (1) {
        die "truncated varint" if $$pos >= length $$buf;
        my $b = ord(substr($$buf, $$pos++, 1));
        $v |= ($b & 0x7f) << $shift;
        last unless $b & 0x80;
        $shift += 7;
    }
    return $v;
}

# Generic decode: { field number => [values] } (length-delimited as bytes).
sub pb_decode {
    my ($buf) = @_;
    my %f;
    my $pos = 0;
    while ($pos < length $buf) {
        my $key = pb_read_varint(\$buf, \$pos);
        my ($num, $wt) = ($key >> 3, $key & 7);
        my $val;
        if ($wt == 0) {
            $val = pb_read_varint(\$buf, \$pos);
        } elsif ($wt == 2) {
            my $len = pb_read_varint(\$buf, \$pos);
            $val = substr($buf, $pos, $len);
            $pos += $len;
        } elsif ($wt == 1) {
            $val = substr($buf, $pos, 8); $pos += 8;
        } elsif ($wt == 5) {
            $val = substr($buf, $pos, 4); $pos += 4;
        } else {
            die "wire type $wt";
        }
        push @{ $f{$num} }, $val;
    }
    return \%f;
}

1;
