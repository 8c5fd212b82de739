# bench/loadgen/lib.sh: sourced by bench/{warm,ramp,cold,density}/run.sh.
#
# bench_init NAME        work dir $BW (/tmp/fb-NAME-PID), results dir, a
#                        snapshot of objs/ (so a rebuild by someone else does
#                        not change, or crash, the binaries under test), the
#                        descriptor limit raised, cleanup at exit
# bench_machine          one block describing the machine and its load
# bench_load             one line: `uptime` now
# platform_start         conf/platform.sh run (exactly what `./build.sh run`
#                        calls) with its state under $BW/var, free loopback
#                        ports, its own cgroup root; no examples
# faasctl ARGS...        objs/faasctl against that platform (admin subject)
# deploy_fn NAME DIR RUNTIME HANDLER [faasctl deploy options...]
# lg ARGS...             faas-loadgen
# jget FILE KEY          a number from a faas-loadgen --json file
set -uo pipefail
BROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RESULTS=$BROOT/bench/results
PLATFORM_UP=0
PEERS_UP=0

bench_cleanup() {
    local rc=$?
    if ((PEERS_UP)); then
        "$BROOT/bench/peers/peers.sh" stop "$BW/peers" >/dev/null 2>&1 || true
    fi
    if ((PLATFORM_UP)); then
        platform_sh stop >"$BW/platform-stop.out" 2>&1 || cat "$BW/platform-stop.out" >&2
        # the cgroup root the platform's daemons made (the pin cgroup too)
        local h d
        for h in memory freezer pids cpu unified; do
            d=/sys/fs/cgroup/$h/$BCG
            [[ -d $d ]] || continue
            [[ -f $d/.pin/freezer.state ]] && echo THAWED >"$d/.pin/freezer.state" 2>/dev/null
            find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
            rmdir "$d" 2>/dev/null
        done
    fi
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "bench: kept $BW" >&2
    else
        rm -rf "$BW"
    fi
    exit $rc
}

bench_init() {
    BNAME=$1
    BW=/tmp/fb-$BNAME-$$
    BCG=faas-bench-$BNAME-$$
    mkdir -p "$BW/objs" "$RESULTS"
    trap bench_cleanup EXIT
    trap 'echo "bench/$BNAME: stopped: line $LINENO: $BASH_COMMAND failed" >&2' ERR
    trap 'exit 130' INT TERM
    local b
    # (_faas_zygote.so: the provisioner's python3 zygotes load it from
    # next to the provisioner's binary)
    for b in faas-registry faas-provisioner faas-agent faas-sandbox faasctl \
             ngx_http_faas_module.so faas-loadgen _faas_zygote.so; do
        [[ -e $BROOT/objs/$b ]] || { echo "bench/$BNAME: objs/$b missing: ./build.sh build" >&2; exit 2; }
        cp "$BROOT/objs/$b" "$BW/objs/$b.tmp" && mv "$BW/objs/$b.tmp" "$BW/objs/$b"
    done
    LOADGEN=$BW/objs/faas-loadgen
    # 2,000 client connections + as many in nginx + the upstream ones
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

bench_load() {
    echo "load: $(uptime | sed 's/^ *//')"
}

bench_machine() {
    echo "machine: $(nproc) vCPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "software: $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'), $(/usr/bin/python3 --version), node $(/usr/bin/node --version), uwsgi $(uwsgi --version 2>/dev/null), OpenSSL $(openssl version | cut -d' ' -f2)"
    echo "build: $(cd "$BROOT" && git rev-parse --short HEAD 2>/dev/null) + working tree as of $(date -u -r "$BROOT/objs/ngx_http_faas_module.so" +%FT%TZ) (module); run at $(date -u +%FT%TZ)"
    bench_load
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

platform_sh() {
    FAAS_VAR=$BW/var FAAS_OBJS=$BW/objs FAAS_HTTPS_PORT=$P_HTTPS FAAS_HTTP_PORT=$P_HTTP \
    FAAS_REDIS_PORT=$P_REDIS FAAS_MYSQL_PORT=$P_MYSQL FAAS_CGROUP_ROOT=$BCG \
    FAAS_HOST_ID=bench-$$ FAAS_WORKERS=${FAAS_WORKERS:-2} FAAS_SHARDS=${FAAS_SHARDS:-8} \
    FAAS_EXAMPLES=0 "$BROOT/conf/platform.sh" "$@"
}

platform_start() {
    P_HTTPS=$(free_port); P_HTTP=$(free_port); P_REDIS=$(free_port); P_MYSQL=$(free_port)
    PLATFORM_UP=1
    if ! platform_sh run >"$BW/platform-run.out" 2>&1; then
        echo "bench/$BNAME: the platform did not start:" >&2
        tail -n 30 "$BW/platform-run.out" >&2
        exit 1
    fi
    PURL_HTTP=http://127.0.0.1:$P_HTTP
    PURL_HTTPS=https://127.0.0.1:$P_HTTPS
}

rcli() { redis-cli -h 127.0.0.1 -p "$P_REDIS" "$@"; }

faasctl() {
    FAAS_URL=https://localhost:$P_HTTPS FAAS_CACERT=$BW/var/tls/cert.pem \
    FAAS_JWT_SECRET_FILE=$BW/var/secrets/jwt.secret FAAS_SUBJECT=bench FAAS_TOKEN= \
        "$BW/objs/faasctl" "$@"
}

deploy_fn() {
    local name=$1 dir=$2 rt=$3 handler=$4
    shift 4
    faasctl deploy "$dir" --name "$name" --runtime "$rt" --handler "$handler" --public "$@" \
        >"$BW/deploy.out" 2>&1 || { echo "bench/$BNAME: deploy $name failed:" >&2; cat "$BW/deploy.out" >&2; exit 1; }
}

peers_start() {
    PEERS_UP=1
    "$BROOT/bench/peers/peers.sh" start "$BW/peers" || exit 1
    # shellcheck disable=SC1091
    . "$BW/peers/peers.env"
}

lg() { "$LOADGEN" "$@"; }

jget() {
    /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# smoke NAME: one call of function NAME must answer 200, else stop here
# (a half-edited build under test gives nonsense figures, not a benchmark).
smoke() {
    local out code
    out=$(curl -s -m 60 -w '\n%{http_code}' "http://127.0.0.1:$P_HTTP/fn/$1") || true
    code=${out##*$'\n'}
    if [[ $code != 200 ]]; then
        echo "bench/$BNAME: /fn/$1 answers $code: ${out%$'\n'*}" >&2
        echo "bench/$BNAME: the build under test does not work; no figures" >&2
        exit 1
    fi
}

# nginx_errors: the platform's nginx error log, error lines grouped
nginx_errors() {
    local f=$BW/var/log/nginx-error.log
    echo "nginx error log: $(grep -c '\[error\]\|\[alert\]\|\[crit\]\|\[emerg\]' "$f" 2>/dev/null) error/alert/crit lines, $(grep -c '\[warn\]' "$f" 2>/dev/null) warn lines"
    grep '\[warn\]\|\[error\]\|\[alert\]\|\[crit\]\|\[emerg\]' "$f" 2>/dev/null \
        | sed -E 's/^[0-9\/]+ [0-9:]+ //; s/[0-9]+#[0-9]+: (\*[0-9]+ )?//; s/[0-9a-f]{32}/<rid>/g; s/s-[0-9a-f]{16}/s-<id>/g; s/, client:.*//; s/(unix:|127\.0\.0\.1:)[^ ]*/\1.../g' \
        | sort | uniq -c | sort -rn | head -8 | cut -c1-220 || true   # none: grep fails
}

# http_statuses FN: the platform's access log, answers to /fn/FN by status
http_statuses() {
    echo "access log /fn/$1 by status: $(awk -v p="/fn/$1" '$0 ~ p {for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\//) {print $(i + 1); break}}' "$BW/var/log/nginx-access.log" 2>/dev/null | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')"
}
