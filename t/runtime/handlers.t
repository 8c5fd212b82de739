# Handler names as Lambda accepts them: "file.function", "dir/file.function",
# "pkg.mod.function" (Python), "dir/file.function" (Node), with the task
# root on the import path so the function's own modules and vendored
# packages load.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Runtime;

my @cases = (
    [ python => 'app.handler', {
        'app.py' => "import helper\ndef handler(e, c):\n    return helper.tag('top')\n",
        'helper.py' => "def tag(s):\n    return 'helper:' + s\n" }, 'helper:top' ],
    [ python => 'src/handlers/api.handler', {
        'src/handlers/api.py' => "from vendored.lib import tag\ndef handler(e, c):\n    return tag('nested')\n",
        'vendored/__init__.py' => '',
        'vendored/lib.py' => "def tag(s):\n    return 'vendored:' + s\n" }, 'vendored:nested' ],
    [ python => 'pkg.mod.handler', {
        'pkg/__init__.py' => '',
        'pkg/mod.py' => "from . import util\ndef handler(e, c):\n    return util.X\n",
        'pkg/util.py' => "X = 'pkg-relative'\n" }, 'pkg-relative' ],
    [ python => 'app.handler', {
        'app.py' => "import asyncio\nasync def handler(e, c):\n    await asyncio.sleep(0.001)\n    return 'awaited'\n" },
      'awaited' ],
    [ node => 'app.handler', {
        'app.js' => "const h = require('./helper');\nexports.handler = async () => h.tag('top');\n",
        'helper.js' => "exports.tag = (s) => 'helper:' + s;\n" }, 'helper:top' ],
    [ node => 'src/handlers/api.handler', {
        'src/handlers/api.js' => "const { tag } = require('vendored');\nexports.handler = async () => tag('nested');\n",
        'node_modules/vendored/package.json' => '{"name":"vendored","main":"lib.js"}',
        'node_modules/vendored/lib.js' => "exports.tag = (s) => 'vendored:' + s;\n" }, 'vendored:nested' ],
    [ node => 'lib.handler', {
        'lib/index.js' => "exports.handler = async () => 'dir-index';\n" }, 'dir-index' ],
);

for my $case (@cases) {
    my ($lang, $handler, $files, $want) = @$case;
    my $rt = Faas::Runtime->start(lang => $lang, handler => $handler, files => $files);
    my $a = $rt->invoke({});
    ok($a->{ok}, "$lang $handler: ok") or diag(explain($a), $rt->runtime_log);
    is($a->{response}{body}, JSON::PP->new->allow_nonref->encode($want),
       "$lang $handler: the right function ran");
    $rt->stop;
}

faas_finish();
