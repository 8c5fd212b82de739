package Faas::MariaDB;
# A private MariaDB server for one test file: its own datadir under
# work_dir(), a free loopback port and a Unix socket, no grant tables (any
# user connects as root without a password). Stopped by faas_finish() like
# every spawned server; restart_mariadb() stops and starts it on the same
# port and datadir (for outage tests).
#
#   my $db = start_mariadb();
#   my $dbh = mariadb_dbh($db, 'faas');
#   stop_mariadb($db); restart_mariadb($db);
use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path);
use Faas::Test;

our @EXPORT = qw(start_mariadb stop_mariadb restart_mariadb mariadb_dbh);

sub spawn_server {
    my ($h) = @_;
    my $p = spawn("mariadb-$h->{port}", [
        'mariadbd', '--no-defaults', "--datadir=$h->{datadir}",
        "--socket=$h->{socket}", "--port=$h->{port}",
        '--bind-address=127.0.0.1', '--user=root', '--skip-grant-tables',
        '--innodb-buffer-pool-size=32M', '--skip-log-bin',
        '--innodb-flush-log-at-trx-commit=2', '--performance-schema=OFF',
        "--pid-file=$h->{dir}/mariadb.pid", '--skip-name-resolve',
        '--max-connections=200', "--tmpdir=$h->{dir}/tmp",
    ]);
    $h->{proc} = $p;
    $h->{pid} = $p->{pid};
    my $ok = wait_until(sub {
        return 0 unless proc_alive($p);
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $h->{port}, Proto => 'tcp', Timeout => 1);
        return 0 unless $s;
        close $s;
        # The port opens a little before the server accepts queries.
        my $dbh = eval { mariadb_dbh($h) };
        return $dbh ? 1 : 0;
    }, 60, 0.1);
    die "mariadbd did not start, see $p->{log}:\n" . (read_file($p->{log}) // '')
        unless $ok;
    return $h;
}

sub start_mariadb {
    my (%o) = @_;
    my $dir = work_dir() . '/mariadb';
    make_path($dir);
    my $h = {
        dir => $dir, datadir => "$dir/data", socket => "$dir/mysqld.sock",
        port => $o{port} // free_port(), host => '127.0.0.1',
    };
    my $log = "$dir/install.log";
    # A private tmpdir: the shared /tmp holds other servers' temporary
    # tables, and a name clash there once failed an install.
    make_path("$dir/tmp");
    system("mariadb-install-db --no-defaults --datadir=$h->{datadir}"
           . " --tmpdir=$dir/tmp"
           . " --auth-root-authentication-method=normal --skip-test-db"
           . " --user=root >$log 2>&1") == 0
        or die "mariadb-install-db failed:\n" . (read_file($log) // '');
    return spawn_server($h);
}

sub stop_mariadb {
    my ($h) = @_;
    stop_proc($h->{proc}, 'TERM', 60);
}

sub restart_mariadb {
    my ($h) = @_;
    stop_mariadb($h) if $h->{proc} && $h->{proc}{pid};
    return spawn_server($h);
}

# A DBI handle (DBD::MariaDB) on the server, optionally on a database.
sub mariadb_dbh {
    my ($h, $db) = @_;
    require DBI;
    my $dsn = "DBI:MariaDB:host=127.0.0.1;port=$h->{port}"
              . ($db ? ";database=$db" : '');
    return DBI->connect($dsn, 'root', '', { RaiseError => 1, PrintError => 0,
                                            AutoCommit => 1 });
}

1;
