package Faas::Setup;
# The setup that test files with real sandboxes share: skipping when the
# programs are not built, a function's metadata as the registry mirrors it
# into Redis, sandboxes made through the agent and listed idle, an agent
# serving a provisioner's sandboxes, handlers put into a provisioner's code
# store, a function created through the registry, and the execution records
# the gateway wrote.
#
#   need_programs('faas-agent');                 # skip_all unless built
#   my $agent = start_agent();
#   my @sids = warm_sandboxes($agent, $r, 'hello', $code_dir, 2);
#   fn_mirror($r, 'hello', max_concurrency => 1);
#   ...
#   my $rec = last_record($r);                   # decoded ExecutionRecord
use strict;
use warnings;
use Exporter 'import';
use Test::More ();
use Faas::Test;
use Faas::Agent;
use Faas::Protobuf qw(pb_decode);
use Faas::Provisioner qw(put_code make_zip put_revision_hash revision_fields);
use Faas::Registry qw(api py_fn);

our @EXPORT = qw(
    need_programs fn_mirror idle_key idle_entry agent_ep warm_sandboxes
    start_agent_for put_handlers exec_records last_record create_py_function
);

# Skips the whole file unless objs/<program> is built for each program, and
# objs/faas-sandbox with the runtimes.
sub need_programs {
    my (@programs) = @_;
    my @missing = grep { !-x objs_dir() . "/$_" } @programs;
    push @missing, 'faas-sandbox or the runtimes' unless have_sandboxes();
    Test::More::plan(skip_all => 'not built: ' . join(', ', @missing)) if @missing;
}

# The metadata hash faas:fn:<name> of version 1 and the hash of its revision
# faas:rev:{<name>@1}, as the registry's mirror writes them; %fields replace
# the defaults.
sub fn_mirror {
    my ($r, $name, %fields) = @_;
    my %fn = (
        rid => "$name\@1", name => $name, version => 1, owner => 'alice',
        runtime => 'python3', handler => 'handler.handler',
        code_key => "code/$name/1/x.zip", code_sha256 => 'x', memory_mb => 128,
        timeout_ms => 5000, max_concurrency => 0, keep_alive_s => 60,
        public => 1, env => '{}', keys => '', %fields);
    put_revision_hash($r, $fn{rid}, map { $_ => $fn{$_} } revision_fields());
    $r->hset("faas:fn:$name", %fn);
}

sub idle_key { "faas:idle:{$_[0]\@1}" }

sub agent_ep { "unix:$_[0]{socket}" }

# The idle-list entry of sandbox $sid on $agent: <id>|<endpoint>|-
sub idle_entry {
    my ($agent, $sid) = @_;
    return "$sid|" . agent_ep($agent) . '|-';
}

# Makes $n sandboxes of version 1 of $name running $code_dir and lists them
# on the function's idle list; returns their ids.
sub warm_sandboxes {
    my ($agent, $r, $name, $code_dir, $n) = @_;
    my @sids = map { sandbox_create($agent, function => $name, code => $code_dir) } 1 .. ($n // 1);
    $r->rpush(idle_key($name), map { idle_entry($agent, $_) } @sids);
    return @sids;
}

# An agent on the socket and run directory the provisioner $prov was
# configured with, so that it serves the sandboxes $prov makes.
sub start_agent_for {
    my ($prov, %o) = @_;
    my ($sock) = $prov->{cfg}{agent_endpoint} =~ /^unix:(.*)$/;
    return start_agent(run_dir => $prov->{cfg}{run_dir}, socket => $sock,
                       name => 'agent', %o);
}

# Puts, for each name, version 1 of a handler returning the name into the
# code store of $prov; returns { name => { code_key, code_sha256 } }.
sub put_handlers {
    my ($prov, @names) = @_;
    my %code;
    for my $fn (@names) {
        my ($k, $s) = put_code($prov, $fn, 1,
                               make_zip('handler.py' => "def handler(e, c):\n    return '$fn'\n"));
        $code{$fn} = { code_key => $k, code_sha256 => $s };
    }
    return \%code;
}

# Creates the Python function $name of alice through the registry's API
# (py_fn() in app.py, handler app.handler); returns the API's answer.
sub create_py_function {
    my ($reg, $name) = @_;
    return api($reg, 'POST', '/v1/functions', user => 'alice', json => {
        name => $name, runtime => 'python3', handler => 'app.handler',
        code => { file => 'app.py', content => py_fn() } });
}

# The decoded ExecutionRecords on faas:records, oldest first.
sub exec_records {
    my ($r) = @_;
    return map { pb_decode($_) } $r->lrange('faas:records', 0, -1);
}

sub last_record {
    my ($r) = @_;
    my ($raw) = $r->lrange('faas:records', -1, -1);
    return defined $raw ? pb_decode($raw) : undef;
}

1;
