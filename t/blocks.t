# The block reader of the table tests (Faas::Blocks): sections as text,
# "eval" run in the test file's package, defaults for missing sections,
# several files in one section, a config edited by a block.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Blocks;

our $word = 'from main';
sub shout { uc $_[0] }
block_defaults(colour => "grey\n");

my @b = data_blocks();
is(scalar @b, 3, 'three blocks');
is($b[0]->name, 'TEST 1: plain sections', 'the name is the title line');
is($b[0]->text, "two\nlines\n", 'a section is its text, ending in one newline');
is($b[0]->single, 'one', 'a one-line section has no newline');
is($b[0]->colour, "grey\n", 'a missing section takes its default');
is($b[1]->colour, "red\n", "... but not a block's own one");
ok(!defined $b[0]->nothing, 'a section no block has is undef');
ok($b[1]->has('flag') && !$b[0]->has('flag'), 'an empty section is there');
is($b[1]->value, 'FROM MAIN', 'eval runs in main, with its variables and subs');
is_deeply([ lines_of($b[0]->text) ], ['two', 'lines'], 'lines_of');
is_deeply(files_of($b[2]->files), { 'a/b.txt' => "first\nfile\n", 'empty' => '', 'c' => "x\n" },
          'files_of: ">>> path" lines start files');
is_deeply(edit_config({ keep => 1, drop => 2, old => 3 }, $b[2]),
          { keep => 1, old => 'new', added => [1] }, 'edit_config: delete, then set');
faas_finish();

__DATA__

=== TEST 1: plain sections
--- text
two
lines
--- single: one

=== TEST 2: eval and flags
--- value eval
shout($word)
--- colour
red
--- flag

=== TEST 3: files and a config change
--- files
>>> a/b.txt
first
file
>>> empty
>>> c
x
--- delete: drop
--- set
{"old": "new", "added": [1]}
