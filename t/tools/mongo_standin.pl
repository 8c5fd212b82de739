#!/usr/bin/perl
# mongo_standin.pl: a MongoDB wire-protocol stand-in for the registry tests.
#
# THIS IS THE ONLY TEST DOUBLE IN THE PROJECT. Every other test runs against
# the real thing (Redis, MariaDB, nginx, s3rver, our daemons); no MongoDB
# server can be installed on this machine (not in Debian 12, no network
# beyond apt and npm), so the registry's MongoDB path (mongo-c-driver) is
# tested against this small server instead. It speaks just enough of the
# protocol for that driver: OP_QUERY (the legacy handshake) and OP_MSG with
# document sequences, and the commands hello/isMaster, ping, buildInfo,
# insert (with duplicate _id -> write error 11000, like a unique index),
# find (equality, $lt/$lte/$gt/$gte/$in, $or, sort, limit; one batch), delete
# (by filter, every match), endSessions and killCursors. It is not a database: no auth, no indexes, no getMore.
#
#   mongo_standin.pl --port N --dump FILE
#
# Whatever is written is kept in FILE as JSON ({"db.coll": [doc, ...]}),
# rewritten after every insert (atomically) and loaded again at start, so
# tests read what the client wrote and the stand-in can be restarted.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use Getopt::Long;
use Time::HiRes qw(time);

my ($port, $dump) = (27017, undef);
GetOptions('port=i' => \$port, 'dump=s' => \$dump) or die "usage\n";
$| = 1;

my $JSON = JSON::PP->new->canonical->utf8;
my %COLL;     # "db.coll" => [ doc (D), ... ]
my %IDS;      # "db.coll" => { _id string => 1 }

# --- BSON -----------------------------------------------------------------
# Documents decode to bless([[key, value], ...], 'D'), arrays to
# bless([...], 'A'), scalars to bless([type, value], 'S') so that they
# encode back with the type the client chose.

sub S { bless [@_], 'S' }

sub dec_cstring {
    my ($buf, $pos) = @_;
    my $end = index($$buf, "\0", $$pos);
    die "bad cstring" if $end < 0;
    my $s = substr($$buf, $$pos, $end - $$pos);
    $$pos = $end + 1;
    return $s;
}

sub dec_doc {
    my ($buf, $pos, $as_array) = @_;
    my $start = $$pos;
    my $len = unpack('l<', substr($$buf, $$pos, 4));
    my $end = $start + $len - 1;
    $$pos += 4;
    my @pairs;
    while ($$pos < $end) {
        my $t = ord(substr($$buf, $$pos++, 1));
        my $k = dec_cstring($buf, $pos);
        my $v;
        if ($t == 0x01) { $v = S(1, unpack('d<', substr($$buf, $$pos, 8))); $$pos += 8 }
        elsif ($t == 0x02 || $t == 0x0D || $t == 0x0E) {
            my $n = unpack('l<', substr($$buf, $$pos, 4));
            $v = S($t, substr($$buf, $$pos + 4, $n - 1));
            $$pos += 4 + $n;
        }
        elsif ($t == 0x03) { $v = dec_doc($buf, $pos) }
        elsif ($t == 0x04) { $v = dec_doc($buf, $pos, 1) }
        elsif ($t == 0x05) {
            my $n = unpack('l<', substr($$buf, $$pos, 4));
            $v = S(5, [ ord(substr($$buf, $$pos + 4, 1)), substr($$buf, $$pos + 5, $n) ]);
            $$pos += 5 + $n;
        }
        elsif ($t == 0x07) { $v = S(7, substr($$buf, $$pos, 12)); $$pos += 12 }
        elsif ($t == 0x08) { $v = S(8, ord(substr($$buf, $$pos, 1))); $$pos += 1 }
        elsif ($t == 0x09 || $t == 0x11 || $t == 0x12) {
            $v = S($t, unpack('q<', substr($$buf, $$pos, 8))); $$pos += 8;
        }
        elsif ($t == 0x0A || $t == 0x06 || $t == 0x7F || $t == 0xFF) { $v = S($t, undef) }
        elsif ($t == 0x10) { $v = S(0x10, unpack('l<', substr($$buf, $$pos, 4))); $$pos += 4 }
        elsif ($t == 0x13) { $v = S(0x13, substr($$buf, $$pos, 16)); $$pos += 16 }
        else { die sprintf("unsupported BSON type 0x%02x", $t) }
        push @pairs, [ $k, $v ];
    }
    $$pos = $end + 1;
    return $as_array ? bless([ map { $_->[1] } @pairs ], 'A') : bless(\@pairs, 'D');
}

sub enc_value {
    my ($k, $v) = @_;
    if (ref $v eq 'D') { return "\x03$k\0" . enc_doc($v) }
    if (ref $v eq 'A') {
        my $i = 0;
        return "\x04$k\0" . enc_doc(bless([ map { [ $i++, $_ ] } @$v ], 'D'));
    }
    my ($t, $x) = @$v;
    return "\x01$k\0" . pack('d<', $x) if $t == 1;
    return chr($t) . "$k\0" . pack('l<', length($x) + 1) . "$x\0"
        if $t == 2 || $t == 0x0D || $t == 0x0E;
    return "\x05$k\0" . pack('l<', length $x->[1]) . chr($x->[0]) . $x->[1] if $t == 5;
    return "\x07$k\0$x" if $t == 7;
    return "\x08$k\0" . chr($x ? 1 : 0) if $t == 8;
    return chr($t) . "$k\0" . pack('q<', $x) if $t == 0x09 || $t == 0x11 || $t == 0x12;
    return chr($t) . "$k\0" if $t == 0x0A || $t == 0x06 || $t == 0x7F || $t == 0xFF;
    return "\x10$k\0" . pack('l<', $x) if $t == 0x10;
    return "\x13$k\0$x" if $t == 0x13;
    die "cannot encode type $t";
}

sub enc_doc {
    my ($d) = @_;
    my $body = join('', map { enc_value($_->[0], $_->[1]) } @$d);
    return pack('l<', length($body) + 5) . $body . "\0";
}

sub get {
    my ($d, $k) = @_;
    for (@$d) { return $_->[1] if $_->[0] eq $k }
    return undef;
}

sub str { S(2, $_[0]) }
sub i32 { S(0x10, $_[0]) }
sub i64 { S(0x12, $_[0]) }
sub dbl { S(1, $_[0]) }
sub doc { my @kv = @_; my @p; push @p, [ splice(@kv, 0, 2) ] while @kv; bless \@p, 'D' }

# Plain Perl value of a BSON value (for JSON dumps and comparisons).
sub plain {
    my ($v) = @_;
    return { map { ($_->[0] => plain($_->[1])) } @$v } if ref $v eq 'D';
    return [ map { plain($_) } @$v ] if ref $v eq 'A';
    my ($t, $x) = @$v;
    return $x ? JSON::PP::true : JSON::PP::false if $t == 8;
    return unpack('H*', $x) if $t == 7;
    return { '$binary' => unpack('H*', $x->[1]) } if $t == 5;
    return $x + 0 if $t == 1 || $t == 0x10 || $t == 0x12 || $t == 0x09;
    return $x;
}

# Back from JSON (on load): numbers become int64 or double, strings strings.
sub from_plain {
    my ($v) = @_;
    if (ref $v eq 'HASH') {
        return bless([ map { [ $_, from_plain($v->{$_}) ] } sort keys %$v ], 'D');
    }
    return bless([ map { from_plain($_) } @$v ], 'A') if ref $v eq 'ARRAY';
    return S(8, $v ? 1 : 0) if JSON::PP::is_bool($v);
    return S(0x0A, undef) unless defined $v;
    my $flags = B::svref_2object(\$v)->FLAGS;
    if ($flags & (B::SVp_IOK() | B::SVp_NOK()) && !($flags & B::SVp_POK())) {
        return $v == int($v) ? i64($v) : dbl($v);
    }
    return str($v);
}
use B;

# --- storage --------------------------------------------------------------

sub save {
    return unless $dump;
    my %out = map { ($_ => [ map { plain($_) } @{ $COLL{$_} } ]) } keys %COLL;
    open(my $fh, '>', "$dump.tmp") or die "dump: $!";
    print $fh $JSON->encode(\%out);
    close $fh;
    rename("$dump.tmp", $dump) or die "rename: $!";
}

sub load {
    return unless $dump && -f $dump;
    open(my $fh, '<', $dump) or die;
    local $/;
    my $data = $JSON->decode(<$fh>);
    close $fh;
    for my $ns (keys %$data) {
        for my $d (@{ $data->{$ns} }) {
            my $doc = from_plain($d);
            push @{ $COLL{$ns} }, $doc;
            $IDS{$ns}{ plain(get($doc, '_id')) } = 1;
        }
    }
}

# --- commands -------------------------------------------------------------

sub hello {
    return doc(helloOk => S(8, 1), ismaster => S(8, 1), isWritablePrimary => S(8, 1),
               maxBsonObjectSize => i32(16777216), maxMessageSizeBytes => i32(48000000),
               maxWriteBatchSize => i32(100000), localTime => S(9, int(time * 1000)),
               minWireVersion => i32(0), maxWireVersion => i32(13),
               readOnly => S(8, 0), ok => dbl(1));
}

sub cmp_values {
    my ($a, $b) = @_;
    my ($pa, $pb) = (plain($a), plain($b));
    my $num = !ref($pa) && !ref($pb) && defined $pa && defined $pb
              && $a->[0] != 2 && $b->[0] != 2;
    return $num ? $pa <=> $pb : ("" . ($pa // '')) cmp ("" . ($pb // ''));
}

sub matches {
    my ($doc, $filter) = @_;
    for my $f (@$filter) {
        my ($k, $cond) = @$f;
        if ($k eq '$or') {
            return 0 unless grep { matches($doc, $_) } @$cond;
            next;
        }
        my $v = get($doc, $k);
        if (ref $cond eq 'D' && @$cond && $cond->[0][0] =~ /^\$/) {
            for my $c (@$cond) {
                return 0 unless defined $v;
                if ($c->[0] eq '$in') {
                    return 0 unless grep { cmp_values($v, $_) == 0 } @{ $c->[1] };
                    next;
                }
                my $r = cmp_values($v, $c->[1]);
                return 0 if ($c->[0] eq '$lt' && !($r < 0)) || ($c->[0] eq '$lte' && !($r <= 0))
                         || ($c->[0] eq '$gt' && !($r > 0)) || ($c->[0] eq '$gte' && !($r >= 0))
                         || ($c->[0] eq '$eq' && $r != 0);
                die "unsupported operator $c->[0]\n" if $c->[0] !~ /^\$(lt|lte|gt|gte|eq)$/;
            }
        } else {
            return 0 unless defined $v && cmp_values($v, $cond) == 0;
        }
    }
    return 1;
}

sub command {
    my ($cmd, $seqs) = @_;
    my $name = $cmd->[0][0];
    my $db = plain(get($cmd, '$db') // str('admin'));
    if ($name =~ /^(hello|isMaster|ismaster)$/) { return hello() }
    if ($name eq 'ping' || $name eq 'endSessions' || $name eq 'killCursors') {
        return doc(ok => dbl(1));
    }
    if ($name eq 'buildInfo' || $name eq 'buildinfo') {
        return doc(version => str('5.0.0-standin'), ok => dbl(1));
    }
    if ($name eq 'insert') {
        my $ns = "$db." . plain($cmd->[0][1]);
        my @docs = @{ $seqs->{documents} || [] };
        push @docs, @{ get($cmd, 'documents') || [] };
        my ($n, @errors) = (0);
        for my $i (0 .. $#docs) {
            my $id = get($docs[$i], '_id');
            my $key = defined $id ? plain($id) : undef;
            if (defined $key && $IDS{$ns}{$key}) {
                push @errors, doc(index => i32($i), code => i32(11000),
                                  errmsg => str("E11000 duplicate key error collection: $ns index: _id_ dup key: { _id: \"$key\" }"));
                my $ordered = get($cmd, 'ordered');
                last if !$ordered || plain($ordered);
                next;
            }
            $IDS{$ns}{$key} = 1 if defined $key;
            push @{ $COLL{$ns} }, $docs[$i];
            $n++;
        }
        save();
        print "insert $ns n=$n dup=" . scalar(@errors) . "\n";
        return doc(n => i32($n), @errors ? (writeErrors => bless([@errors], 'A')) : (),
                   ok => dbl(1));
    }
    if ($name eq 'delete') {
        my $ns = "$db." . plain($cmd->[0][1]);
        my @dels = @{ $seqs->{deletes} || [] };
        push @dels, @{ get($cmd, 'deletes') || [] };
        my $n = 0;
        for my $d (@dels) {
            my $q = get($d, 'q') // doc();
            my @keep;
            for my $x (@{ $COLL{$ns} || [] }) {
                if (matches($x, $q)) {
                    my $id = get($x, '_id');
                    delete $IDS{$ns}{ plain($id) } if defined $id;
                    $n++;
                } else {
                    push @keep, $x;
                }
            }
            $COLL{$ns} = \@keep;
        }
        save();
        print "delete $ns n=$n\n";
        return doc(n => i32($n), ok => dbl(1));
    }
    if ($name eq 'find') {
        my $ns = "$db." . plain($cmd->[0][1]);
        my $filter = get($cmd, 'filter') // doc();
        my @out = grep { matches($_, $filter) } @{ $COLL{$ns} || [] };
        if (my $sort = get($cmd, 'sort')) {
            @out = sort {
                my $r = 0;
                for my $s (@$sort) {
                    my ($va, $vb) = (get($a, $s->[0]), get($b, $s->[0]));
                    $r = cmp_values($va // str(''), $vb // str(''));
                    $r = -$r if plain($s->[1]) < 0;
                    last if $r;
                }
                $r;
            } @out;
        }
        my $limit = get($cmd, 'limit');
        $limit = $limit ? abs(plain($limit)) : 0;
        @out = @out[0 .. $limit - 1] if $limit && @out > $limit;
        return doc(cursor => doc(firstBatch => bless([@out], 'A'), id => i64(0),
                                 ns => str($ns)), ok => dbl(1));
    }
    return doc(ok => dbl(0), errmsg => str("no such command: '$name'"), code => i32(59),
               codeName => str('CommandNotFound'));
}

# --- wire protocol ---------------------------------------------------------

my $REQ_ID = 1;

sub handle_message {
    my ($msg) = @_;
    my ($len, $id, $to, $op) = unpack('l<4', $msg);
    my $pos = 16;
    if ($op == 2004) {      # OP_QUERY: the legacy handshake
        $pos += 4;
        my $ns = dec_cstring(\$msg, \$pos);
        $pos += 8;
        my $q = dec_doc(\$msg, \$pos);
        # A wrapped query ({$query: {...}}) carries the command inside.
        my $inner = get($q, '$query');
        $q = $inner if $inner && ref $inner eq 'D';
        my $reply = command($q, {});
        my $body = pack('l<q<l<l<', 0, 0, 0, 1) . enc_doc($reply);
        return pack('l<4', 16 + length $body, $REQ_ID++, $id, 1) . $body;
    }
    if ($op == 2013) {      # OP_MSG
        my $flags = unpack('L<', substr($msg, $pos, 4));
        $pos += 4;
        my $end = length($msg) - (($flags & 1) ? 4 : 0);
        my ($cmd, %seqs);
        while ($pos < $end) {
            my $kind = ord(substr($msg, $pos++, 1));
            if ($kind == 0) {
                $cmd = dec_doc(\$msg, \$pos);
            } elsif ($kind == 1) {
                my $slen = unpack('l<', substr($msg, $pos, 4));
                my $send = $pos + $slen;
                $pos += 4;
                my $ident = dec_cstring(\$msg, \$pos);
                push @{ $seqs{$ident} }, dec_doc(\$msg, \$pos) while $pos < $send;
            } else {
                die "unknown OP_MSG section kind $kind";
            }
        }
        my $reply = eval { command($cmd, \%seqs) }
            // doc(ok => dbl(0), errmsg => str("stand-in: $@"), code => i32(2));
        my $body = pack('L<', 0) . "\0" . enc_doc($reply);
        # moreToCome (bit 1): the client expects no answer.
        return '' if $flags & 2;
        return pack('l<4', 16 + length $body, $REQ_ID++, $id, 2013) . $body;
    }
    die "unsupported opcode $op";
}

load();
my $server = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                   Listen => 64, ReuseAddr => 1, Proto => 'tcp')
    or die "listen $port: $!";
print "mongo stand-in listening on 127.0.0.1:$port\n";
$SIG{TERM} = $SIG{INT} = sub { exit 0 };
my $sel = IO::Select->new($server);
my %buf;
while (1) {
    for my $fh ($sel->can_read(1)) {
        if ($fh == $server) {
            my $c = $server->accept or next;
            binmode $c;
            $sel->add($c);
            $buf{$c} = '';
            next;
        }
        my $n = sysread($fh, my $chunk, 1 << 20);
        if (!$n) {
            $sel->remove($fh);
            delete $buf{$fh};
            close $fh;
            next;
        }
        $buf{$fh} .= $chunk;
        while (length($buf{$fh}) >= 4) {
            my $len = unpack('l<', $buf{$fh});
            last if length($buf{$fh}) < $len;
            my $msg = substr($buf{$fh}, 0, $len, '');
            my $out = eval { handle_message($msg) };
            if (!defined $out) {
                print "error: $@";
                $sel->remove($fh);
                delete $buf{$fh};
                close $fh;
                last;
            }
            my $off = 0;
            while ($off < length $out) {
                my $w = syswrite($fh, $out, length($out) - $off, $off);
                last unless $w;
                $off += $w;
            }
        }
    }
}
