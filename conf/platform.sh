#!/usr/bin/env bash
# conf/platform.sh: start / stop the whole platform on this host.
#
#   conf/platform.sh run     start Redis, MariaDB, faas-registry, faas-agent,
#                            faas-provisioner and nginx under $FAAS_VAR,
#                            deploy the examples, print how to call them
#   conf/platform.sh stop    stop all of it (and destroy the sandboxes)
#   conf/platform.sh status  one line per component
#
# `./build.sh run` installs what is missing, builds, then calls this script;
# the end-to-end tests call it directly with another FAAS_VAR and free ports.
# Idempotent: a component that is already running is left alone. Needs root
# (sandboxes use namespaces and cgroups); creates the system user and group
# `faas` (nginx's workers) when missing.
#
# Environment (all optional):
#   FAAS_VAR          state directory (default <repo>/var): conf/, run/ (pid
#                     files, sockets), log/, data/, store/, sbx/, tls/, secrets/
#   FAAS_OBJS         build output (default <repo>/objs)
#   FAAS_LISTEN       nginx listen address (default 127.0.0.1)
#   FAAS_HTTPS_PORT   default 8443      FAAS_HTTP_PORT   default 8080
#   FAAS_REDIS_PORT   default 16379     FAAS_MYSQL_PORT  default 13306
#   FAAS_CGROUP_ROOT  cgroup name under each hierarchy (default faas)
#   FAAS_HOST_ID      provisioner host id (default: the short host name)
#   FAAS_SHARDS       provisioning shards (default 64)
#   FAAS_WORKERS      nginx worker_processes (default auto)
#   FAAS_EXAMPLES     1 (default): deploy the example functions; 0: do not
#   FAAS_STEM_CELLS   the provisioner's stem_cells (default "auto"; 0: off)
#   FAAS_START_TIMEOUT seconds to wait for each component (default 60)
#   FAAS_AGENT_METRICS, FAAS_PROV_METRICS, FAAS_REGISTRY_METRICS  host:port
#                     where each daemon serves /metrics (default: none)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONF_SRC=$ROOT/conf
VAR=${FAAS_VAR:-$ROOT/var}
OBJS=${FAAS_OBJS:-$ROOT/objs}
LISTEN=${FAAS_LISTEN:-127.0.0.1}
HTTPS_PORT=${FAAS_HTTPS_PORT:-8443}
HTTP_PORT=${FAAS_HTTP_PORT:-8080}
REDIS_PORT=${FAAS_REDIS_PORT:-16379}
MYSQL_PORT=${FAAS_MYSQL_PORT:-13306}
CGROUP_ROOT=${FAAS_CGROUP_ROOT:-faas}
HOST_ID=${FAAS_HOST_ID:-$(hostname -s 2>/dev/null || echo host1)}
SHARDS=${FAAS_SHARDS:-64}
WORKERS=${FAAS_WORKERS:-auto}
EXAMPLES=${FAAS_EXAMPLES:-1}
STEM_CELLS=${FAAS_STEM_CELLS:-'"auto"'}
START_TIMEOUT=${FAAS_START_TIMEOUT:-60}
AGENT_METRICS=${FAAS_AGENT_METRICS:-}
PROV_METRICS=${FAAS_PROV_METRICS:-}
REGISTRY_METRICS=${FAAS_REGISTRY_METRICS:-}
REDIS=127.0.0.1:$REDIS_PORT
NGINX=/usr/sbin/nginx
MODULE=$VAR/nginx/modules/ngx_http_faas_module.so

# Components in start order; stop goes the other way.
COMPONENTS=(redis mariadb registry agent provisioner nginx)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'platform: %s\n' "$*" >&2; exit 1; }

pidfile() { echo "$VAR/run/$1.pid"; }
logfile() {
    case $1 in
    nginx) echo "$VAR/log/nginx-error.log" ;;
    *) echo "$VAR/log/$1.log" ;;
    esac
}
# The command name of each component's process (checked against
# /proc/PID/comm, at most 15 characters, so a recycled pid is not mistaken
# for ours; not /proc/PID/exe: Debian's redis-server is a symlink).
exe_of() {
    case $1 in
    redis) echo redis-server ;;
    mariadb) echo mariadbd ;;
    registry) echo faas-registry ;;
    agent) echo faas-agent ;;
    provisioner) echo faas-provisioner ;;
    nginx) echo nginx ;;
    esac
}

# Prints the pid of a running component, or fails.
running_pid() {
    local f pid comm want
    f=$(pidfile "$1")
    [[ -f $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    want=$(exe_of "$1")
    [[ $comm == "${want:0:15}" ]] || return 1
    echo "$pid"
}

# A component that did not come up: name it, point at its log, show its end.
start_failed() {
    local name=$1 why=$2 log
    log=$(logfile "$name")
    printf 'platform: %s failed to start: %s\n' "$name" "$why" >&2
    printf 'platform: its log is %s' "$log" >&2
    [[ -f $VAR/log/$name.out && $VAR/log/$name.out != "$log" ]] \
        && printf ' (stdout/stderr: %s)' "$VAR/log/$name.out" >&2
    printf '\n' >&2
    for f in "$log" "$VAR/log/$name.out"; do
        [[ -s $f ]] || continue
        printf -- '--- last lines of %s ---\n' "$f" >&2
        tail -n 15 "$f" >&2
    done
    printf 'platform: the components started so far keep running; '"\
"'`%s stop` stops them\n' "$0" >&2
    exit 1
}

# Runs argv in its own session, output to log/<name>.out; records the pid.
launch() {
    local name=$1 i
    shift
    # a binary being relinked by a concurrent build is briefly not
    # executable: give it a moment rather than failing the start
    for ((i = 0; i < 50; i++)); do
        [[ -x $1 ]] || [[ $1 != */* ]] && break
        sleep 0.1
    done
    : >"$VAR/log/$name.out"
    setsid "$@" </dev/null >>"$VAR/log/$name.out" 2>&1 &
    echo $! >"$(pidfile "$name")"
}

# wait_for NAME CHECK...: polls CHECK every 0.1 s while the process lives.
wait_for() {
    local name=$1 pid
    shift
    pid=$(<"$(pidfile "$name")")
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            start_failed "$name" "the process exited"
        fi
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    start_failed "$name" "not ready after ${START_TIMEOUT}s"
}

sock_accepts() {
    /usr/bin/python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])' "$1"
}

# Every readiness check has its own timeout: a wrong listener must not hang us.
redis_ping() { [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping) == PONG ]]; }

mysql_root() { mariadb --no-defaults --connect-timeout=5 --socket="$VAR/run/mysqld.sock" -u root "$@"; }

# --- preparation -------------------------------------------------------------

# A secret made once, kept across runs (var/secrets/<name>, mode 0600).
secret() {
    local f=$VAR/secrets/$1
    if [[ ! -s $f ]]; then
        (umask 077 && openssl rand -hex "${2:-32}" >"$f")
    fi
    tr -d '\n' <"$f"
}

# The system user and group nginx's workers run as (nginx.conf `user faas
# faas;`); the agent's and the registry's sockets are group faas.
faas_user() {
    getent group faas >/dev/null || groupadd --system faas \
        || die "groupadd faas failed"
    getent passwd faas >/dev/null \
        || useradd --system --gid faas --no-create-home \
                   --home-dir /nonexistent --shell /usr/sbin/nologin faas \
        || die "useradd faas failed"
}

prepare() {
    (($(id -u) == 0)) || die "run needs root (sandboxes use namespaces and cgroups)"
    faas_user
    local b
    for b in faas-registry faas-provisioner faas-agent faas-sandbox faasctl \
             ngx_http_faas_module.so _faas_zygote.so; do
        [[ -e $OBJS/$b ]] || die "$OBJS/$b is missing: build first (./build.sh build)"
    done
    [[ -x $NGINX ]] || die "$NGINX is missing: ./build.sh deps installs it"
    mkdir -p "$VAR"/{conf,run,log,data/redis,data/mysql,store,cache,sbx,spool,tmp,tls,nginx/tmp}
    (umask 077 && mkdir -p "$VAR/secrets")
    chmod 700 "$VAR/secrets"

    JWT_SECRET_FILE=$VAR/secrets/jwt.secret
    secret jwt.secret 32 >/dev/null
    MASTER_KEY=$(secret master.key 32)
    KEY_DIGEST_SECRET=$(secret key-digest.secret 32)
    MYSQL_PASSWORD=$(secret mysql.password 16)

    if [[ ! -s $VAR/tls/cert.pem || ! -s $VAR/tls/key.pem ]]; then
        say "generating a self-signed certificate in $VAR/tls/"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
            -subj /CN=localhost \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -keyout "$VAR/tls/key.pem" -out "$VAR/tls/cert.pem" \
            >"$VAR/log/openssl.out" 2>&1 \
            || { cat "$VAR/log/openssl.out" >&2; die "openssl req failed"; }
        chmod 600 "$VAR/tls/key.pem"
    fi

    # nginx loads a private copy of the module: a rebuild writes
    # objs/ngx_http_faas_module.so in place, and a running nginx whose
    # mapped .so changes under it crashes (every new worker too). The copy
    # is replaced by a rename, so a running nginx keeps its old inode.
    mkdir -p "$VAR/nginx/modules"
    cp "$OBJS/ngx_http_faas_module.so" "$VAR/nginx/modules/.faas.so.tmp"
    mv -f "$VAR/nginx/modules/.faas.so.tmp" "$MODULE"

    local t
    for t in nginx.conf registry.json provisioner.json agent.json redis.conf my.cnf; do
        render "$CONF_SRC/$t" >"$VAR/conf/$t.tmp"
        chmod 600 "$VAR/conf/$t.tmp"
        mv "$VAR/conf/$t.tmp" "$VAR/conf/$t"
    done
    # faas-sandbox (used by `stop` to destroy what is left) reads these keys.
    render /dev/stdin >"$VAR/conf/sandbox.json" <<'EOF'
{ "run_dir": "@VAR@/sbx", "cgroup_root": "@CGROUP_ROOT@",
  "runtimes_dir": "@ROOT@/runtimes" }
EOF
}

# Replaces the @NAME@ placeholders of a template.
render() {
    sed -e "s|@ROOT@|$ROOT|g" -e "s|@VAR@|$VAR|g" -e "s|@OBJS@|$OBJS|g" \
        -e "s|@MODULE@|$MODULE|g" \
        -e "s|@LISTEN@|$LISTEN|g" -e "s|@HTTPS_PORT@|$HTTPS_PORT|g" \
        -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@REDIS_PORT@|$REDIS_PORT|g" \
        -e "s|@REDIS@|$REDIS|g" -e "s|@MYSQL_PORT@|$MYSQL_PORT|g" \
        -e "s|@CGROUP_ROOT@|$CGROUP_ROOT|g" -e "s|@HOST_ID@|$HOST_ID|g" \
        -e "s|@SHARDS@|$SHARDS|g" -e "s|@WORKERS@|$WORKERS|g" \
        -e "s|@STEM_CELLS@|$STEM_CELLS|g" \
        -e "s|@MASTER_KEY@|$MASTER_KEY|g" \
        -e "s|@KEY_DIGEST_SECRET@|$KEY_DIGEST_SECRET|g" \
        -e "s|@MYSQL_PASSWORD@|$MYSQL_PASSWORD|g" \
        -e "s|@AGENT_METRICS@|$AGENT_METRICS|g" \
        -e "s|@PROV_METRICS@|$PROV_METRICS|g" \
        -e "s|@REGISTRY_METRICS@|$REGISTRY_METRICS|g" "$1"
}

# --- one start function per component ------------------------------------------

start_redis() {
    launch redis redis-server "$VAR/conf/redis.conf"
    wait_for redis redis_ping
}

start_mariadb() {
    if [[ ! -d $VAR/data/mysql/mysql ]]; then
        say "creating the MariaDB datadir $VAR/data/mysql"
        mariadb-install-db --no-defaults --datadir="$VAR/data/mysql" \
            --user=root --skip-test-db >"$VAR/log/mariadb-install.out" 2>&1 \
            || start_failed mariadb "mariadb-install-db failed (see $VAR/log/mariadb-install.out)"
    fi
    launch mariadb mariadbd --defaults-file="$VAR/conf/my.cnf"
    wait_for mariadb mysql_root -e 'SELECT 1'
    # the registry's database and user (idempotent; the password is kept
    # in step with var/secrets/mysql.password)
    mysql_root -e "CREATE DATABASE IF NOT EXISTS faas;
        CREATE USER IF NOT EXISTS 'faas'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
        ALTER USER 'faas'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
        GRANT ALL ON faas.* TO 'faas'@'localhost';" \
        >>"$VAR/log/mariadb.out" 2>&1 \
        || start_failed mariadb "cannot create the faas database and user"
}

start_registry() {
    rm -f "$VAR/run/registry.sock"
    # no libmongoc shared-memory counters (see conf/systemd/faas-registry.service)
    MONGOC_DISABLE_SHM=1 launch registry "$OBJS/faas-registry" -c "$VAR/conf/registry.json"
    wait_for registry sock_accepts "$VAR/run/registry.sock"
}

start_agent() {
    rm -f "$VAR/run/agent.sock"
    launch agent "$OBJS/faas-agent" -c "$VAR/conf/agent.json"
    wait_for agent sock_accepts "$VAR/run/agent.sock"
}

provisioner_up() {
    [[ -n $(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" zscore faas:prov:hosts "$HOST_ID") ]]
}

start_provisioner() {
    launch provisioner "$OBJS/faas-provisioner" -c "$VAR/conf/provisioner.json"
    wait_for provisioner provisioner_up
}

nginx_up() {
    curl -sf --max-time 5 --cacert "$VAR/tls/cert.pem" "https://localhost:$HTTPS_PORT/healthz" \
        --resolve "localhost:$HTTPS_PORT:${LISTEN/0.0.0.0/127.0.0.1}"
}

start_nginx() {
    if ! "$NGINX" -t -q -p "$VAR/nginx/" -c "$VAR/conf/nginx.conf" \
            -e "$VAR/log/nginx-error.log" >"$VAR/log/nginx.out" 2>&1; then
        start_failed nginx "nginx -t refused $VAR/conf/nginx.conf"
    fi
    launch nginx "$NGINX" -p "$VAR/nginx/" -c "$VAR/conf/nginx.conf" \
        -e "$VAR/log/nginx-error.log"
    wait_for nginx nginx_up
}

# --- the examples ------------------------------------------------------------

faasctl() {
    FAAS_URL=https://localhost:$HTTPS_PORT FAAS_CACERT=$VAR/tls/cert.pem \
    FAAS_JWT_SECRET_FILE=$JWT_SECRET_FILE FAAS_SUBJECT=demo FAAS_TOKEN= \
        "$OBJS/faasctl" "$@"
}

deploy_examples() {
    local rc=0
    faasctl info hello-python >/dev/null 2>&1 || rc=$?
    if ((rc == 4)); then
        faasctl deploy "$CONF_SRC/examples/python" --name hello-python \
            --runtime python3 --handler app.handler --env GREETING=Hello \
            >/dev/null || die "deploying the Python example failed"
    elif ((rc != 0)); then
        faasctl info hello-python >&2 || true
        die "the management API does not answer (see $VAR/log/nginx-error.log and $VAR/log/registry.log)"
    fi
    rc=0
    faasctl info hello-node >/dev/null 2>&1 || rc=$?
    if ((rc == 4)); then
        faasctl deploy "$CONF_SRC/examples/node" --name hello-node \
            --runtime nodejs --handler index.handler --public \
            >/dev/null || die "deploying the Node.js example failed"
    elif ((rc != 0)); then
        die "faasctl info hello-node failed (exit $rc)"
    fi
}

print_usage() {
    local url=https://localhost:$HTTPS_PORT rel_var=$VAR rel_objs=$OBJS
    # shorter lines when run from the repository, as ./build.sh run is
    [[ $PWD == "$ROOT" ]] && rel_var=${VAR#"$ROOT"/} && rel_objs=${OBJS#"$ROOT"/}
    cat >"$VAR/faasctl.env" <<EOF
export FAAS_URL=$url
export FAAS_CACERT=$VAR/tls/cert.pem
export FAAS_JWT_SECRET_FILE=$JWT_SECRET_FILE
export FAAS_SUBJECT=demo
EOF
    cat <<EOF

The platform is up ($url and http://localhost:$HTTP_PORT; state in $VAR).

A development token (HS256, subject "demo", valid 1 h):
    $rel_objs/faasctl token --secret-file $rel_var/secrets/jwt.secret --subject demo

The Python example (private: the owner's token is needed):
    curl --cacert $rel_var/tls/cert.pem "$url/fn/hello-python?name=you" -H "Authorization: Bearer \$($rel_objs/faasctl token --secret-file $rel_var/secrets/jwt.secret --subject demo)"

The Node.js example (public):
    curl --cacert $rel_var/tls/cert.pem $url/fn/hello-node/some/path -d 'any body'

faasctl with these settings:
    . $rel_var/faasctl.env
    $rel_objs/faasctl ls
    $rel_objs/faasctl invoke hello-python --data '{"name":"faasctl"}'
    $rel_objs/faasctl executions hello-python

Logs: $VAR/log/.  Stop everything: ./build.sh stop
EOF
}

# --- verbs ------------------------------------------------------------------

run() {
    prepare
    local c pid
    for c in "${COMPONENTS[@]}"; do
        if pid=$(running_pid "$c"); then
            say "$c is already running (pid $pid)"
            continue
        fi
        say "starting $c"
        "start_$c"
    done
    if [[ $EXAMPLES == 1 ]]; then
        deploy_examples
    fi
    print_usage
}

# SIGTERM, then SIGKILL after $2 seconds.
stop_one() {
    local name=$1 grace=$2 pid i
    if ! pid=$(running_pid "$name"); then
        rm -f "$(pidfile "$name")"
        return 0
    fi
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name did not stop within ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$(pidfile "$name")"
}

stop() {
    [[ -d $VAR/run ]] || { say "nothing to stop in $VAR"; return 0; }
    stop_one nginx 15
    stop_one provisioner 20
    stop_one agent 20
    # sandboxes are no daemon's children: destroy what is left
    if [[ -f $VAR/conf/sandbox.json && -x $OBJS/faas-sandbox ]]; then
        "$OBJS/faas-sandbox" -c "$VAR/conf/sandbox.json" cleanup \
            >>"$VAR/log/sandbox-cleanup.out" 2>&1 \
            || say "faas-sandbox cleanup failed, see $VAR/log/sandbox-cleanup.out"
    fi
    # and the (empty) cgroup roots, the permanently frozen pin included
    local h
    for h in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
        [[ -d $h ]] || continue
        [[ -f $h/.pin/freezer.state ]] && echo THAWED >"$h/.pin/freezer.state" 2>/dev/null
        find "$h" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
        rmdir "$h" 2>/dev/null || say "$h is not empty: left in place"
    done
    stop_one registry 20
    stop_one mariadb 60
    stop_one redis 10
    rm -f "$VAR/run/registry.sock" "$VAR/run/agent.sock"
    say "stopped"
}

status() {
    local c pid rc=0
    for c in "${COMPONENTS[@]}"; do
        if pid=$(running_pid "$c"); then
            printf '%-12s running (pid %s)\n' "$c" "$pid"
        else
            printf '%-12s stopped\n' "$c"
            rc=3
        fi
    done
    return $rc
}

case ${1:-} in
run) run ;;
stop) stop ;;
status) status ;;
*)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
