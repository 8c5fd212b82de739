package Faas::Blocks;
# Test::Base blocks for table tests: the __DATA__ of the test file, read
# the way Test::Nginx files are, for runners that are not nginx requests
# (zip archives, uploads, ...). Faas::Nginx runs its blocks through here too.
#
#   for my $b (data_blocks()) {
#       my $zip = $b->zip;                   # undef when the block has none
#       like($err, qr/${\ $b->error_like}/, $b->name . ': reason');
#   }
#   __DATA__
#   === TEST 1: an absolute path
#   --- zip eval
#   make_zip([ '/etc/x' => 'x' ])
#   --- error_like
#   absolute path not allowed
#
# A section reads as its text, trimmed to end in one newline (Test::Base's
# default filters); "chomp" takes that newline away. The "eval" filter runs
# the text as Perl in the test file's package (main), so the file's own
# variables and helpers can build a section's value. block_defaults() gives
# sections that a block lacks a value, like a Test::Nginx block
# preprocessor that fills in a common config.
use strict;
use warnings;
use Exporter 'import';
use Test::Base ();
use Faas::Test ();

# Test::Base takes the filters of a block from <its class>::Filter, and
# accepts only objects of the class last imported.
package Faas::Blocks::Base;
use parent -norequire, 'Test::Base';

package Faas::Blocks::Base::Filter;
use parent -norequire, 'Test::Base::Filter';

sub eval {
    my ($self, $code) = @_;
    my @v = CORE::eval("package main; no strict; $code");
    die "eval of a section of \"" . $self->current_block->name . "\" failed: $@" if $@;
    return @v;
}

package Faas::Blocks::TB;
BEGIN { Faas::Blocks::Base->import() }

package Faas::Blocks;

our @EXPORT = qw(data_blocks block_defaults lines_of edit_config files_of);

my %DEFAULTS;

# Sections that every block without its own has, e.g.
# block_defaults(http_config => $HTTP, config => $CONFIG).
sub block_defaults { %DEFAULTS = (%DEFAULTS, @_) }

# The blocks of the calling script's __DATA__.
sub data_blocks {
    my $data = do { no strict 'refs'; local $/; my $fh = \*{'main::DATA'}; <$fh> };
    my $tb = Faas::Blocks::Base->new;
    $tb->spec_string($data);
    return map { bless { blk => $_ }, 'Faas::Blocks::Block' } $tb->blocks;
}

# The non-empty lines of a section, without their outer blank space.
sub lines_of {
    my ($s) = @_;
    return grep { length } map { s/^\s+|\s+$//gr } split /\n/, ($s // '');
}

# The files of a section that holds several: each starts with a line
# ">>> path" and runs to the next such line. Returns { path => content }.
sub files_of {
    my ($text) = @_;
    my (undef, @parts) = split /^>>> (\S+)\n/m, $text // '';
    return { @parts };
}

# A copy of the config hash $cfg with the block's changes: "set", a JSON
# object of keys to set, and "delete", names of keys to remove.
sub edit_config {
    my ($cfg, $b) = @_;
    my %c = %$cfg;
    delete @c{ split ' ', $b->delete } if defined $b->delete;
    %c = (%c, %{ Faas::Test::json_decode($b->set) }) if defined $b->set;
    return \%c;
}

package Faas::Blocks::Block;
our $AUTOLOAD;

sub name { $_[0]{blk}->name }

sub has { defined $_[0]->section($_[1]) }

# A section's value; block_defaults' value, or undef, when the block has no
# such section.
sub section {
    my ($self, $name) = @_;
    my $blk = $self->{blk};
    return $DEFAULTS{$name} unless $blk->can($name);
    my $v = scalar $blk->$name;
    return $v // $DEFAULTS{$name};
}

sub AUTOLOAD {
    my $self = shift;
    (my $n = $AUTOLOAD) =~ s/.*:://;
    return if $n eq 'DESTROY';
    return $self->section($n);
}

1;
