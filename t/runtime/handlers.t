# Handler names as Lambda accepts them: "file.function", "dir/file.function",
# "pkg.mod.function" (Python), "dir/file.function" (Node), with the task
# root on the import path so the function's own modules and vendored
# packages load. Each block: the runtime (lang), the handler, the task's
# files (">>> path" then its content) and what the function returns.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Runtime;
use Faas::Blocks;

for my $b (data_blocks()) {
    my ($lang, $handler, $want) = map { $b->$_ =~ s/\s+\z//r } qw(lang handler returns);
    my $rt = Faas::Runtime->start(lang => $lang, handler => $handler,
                                  files => files_of($b->files));
    my $a = $rt->invoke({});
    ok($a->{ok}, "$lang $handler: ok") or diag(explain($a), $rt->runtime_log);
    is($a->{response}{body}, JSON::PP->new->allow_nonref->encode($want),
       "$lang $handler: the right function ran");
    $rt->stop;
}

faas_finish();

__DATA__

=== TEST 1: Python, a module beside the handler's
--- lang: python
--- handler: app.handler
--- files
>>> app.py
import helper
def handler(e, c):
    return helper.tag('top')
>>> helper.py
def tag(s):
    return 'helper:' + s
--- returns: helper:top

=== TEST 2: Python, a handler in a directory, a vendored package
--- lang: python
--- handler: src/handlers/api.handler
--- files
>>> src/handlers/api.py
from vendored.lib import tag
def handler(e, c):
    return tag('nested')
>>> vendored/__init__.py
>>> vendored/lib.py
def tag(s):
    return 'vendored:' + s
--- returns: vendored:nested

=== TEST 3: Python, pkg.mod.function with a relative import
--- lang: python
--- handler: pkg.mod.handler
--- files
>>> pkg/__init__.py
>>> pkg/mod.py
from . import util
def handler(e, c):
    return util.X
>>> pkg/util.py
X = 'pkg-relative'
--- returns: pkg-relative

=== TEST 4: Python, an async handler
--- lang: python
--- handler: app.handler
--- files
>>> app.py
import asyncio
async def handler(e, c):
    await asyncio.sleep(0.001)
    return 'awaited'
--- returns: awaited

=== TEST 5: Node, a module beside the handler's
--- lang: node
--- handler: app.handler
--- files
>>> app.js
const h = require('./helper');
exports.handler = async () => h.tag('top');
>>> helper.js
exports.tag = (s) => 'helper:' + s;
--- returns: helper:top

=== TEST 6: Node, a handler in a directory, a package in node_modules
--- lang: node
--- handler: src/handlers/api.handler
--- files
>>> src/handlers/api.js
const { tag } = require('vendored');
exports.handler = async () => tag('nested');
>>> node_modules/vendored/package.json
{"name":"vendored","main":"lib.js"}
>>> node_modules/vendored/lib.js
exports.tag = (s) => 'vendored:' + s;
--- returns: vendored:nested

=== TEST 7: Node, a directory's index.js
--- lang: node
--- handler: lib.handler
--- files
>>> lib/index.js
exports.handler = async () => 'dir-index';
--- returns: dir-index
