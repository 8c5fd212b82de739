package Faas::Http;
# The answer of an HTTP/1.1 server read to the end (Connection: close), as
# the tests' clients see it: {status, headers (lower-case names, repeated
# ones joined with ", "), body (chunked encoding undone)}.
use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(http_parse);

sub http_parse {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return { status => 0, error => 'no answer', raw => $raw } unless defined $head;
    my @lines = split /\r\n/, $head;
    my ($status) = (shift(@lines) // '') =~ m{^HTTP/\d\.\d (\d+)};
    my %hdr;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $hdr{lc $k} = exists $hdr{lc $k} ? "$hdr{lc $k}, $v" : $v;
    }
    $body //= '';
    $body = unchunk($body) if ($hdr{'transfer-encoding'} // '') =~ /chunked/i;
    return { status => $status // 0, headers => \%hdr, body => $body };
}

sub unchunk {
    my ($in) = @_;
    my $out = '';
    while ($in =~ s/^([0-9a-fA-F]+)\r\n//) {
        my $n = hex $1;
        last if $n == 0;
        $out .= substr($in, 0, $n);
        substr($in, 0, $n + 2) = '';
    }
    return $out;
}

1;
