#!/usr/bin/env bash
# bench/soak/run.sh: the platform under a steady mix of functions for a long
# time, to find what only time shows (failures, memory or descriptor growth).
#
#   fast      returns at once (Python)
#   raising   raises an exception (its failures are the function's own)
#   slow      sleeps 200 ms
#   large     answers 512 KB
#   printing  prints 20 lines per call (its log is collected)
#   node      returns at once (Node.js)
#
# Each function gets CONNS closed-loop keep-alive connections over HTTP
# (faas-loadgen) for SOAK_SECONDS. After WARMUP seconds (every sandbox made,
# every cache filled) and at the end, prints the RSS and open descriptors
# of every process: nginx master and workers, the daemons, Redis, MariaDB.
# Then the answers by status and $faas_status (from the access log): the
# calls that failed without the function causing it should be zero, and
# nothing should grow between the two samples. Asserts nothing.
#
#   bench/soak/run.sh                  # SOAK_SECONDS=600 WARMUP=30 CONNS=2
#   SOAK_SECONDS=60 bench/soak/run.sh
set -euo pipefail
. "$(dirname "$0")/../loadgen/lib.sh"
SOAK_SECONDS=${SOAK_SECONDS:-600}
WARMUP=${WARMUP:-30}
CONNS=${CONNS:-2}
FUNCTIONS="fast raising slow large printing node"

bench_init soak
echo "bench/soak: $SOAK_SECONDS s, $CONNS connections per function ($FUNCTIONS), samples after $WARMUP s and at the end, ${FAAS_WORKERS:-2} nginx workers"
bench_machine
platform_start

write_fn() { # name body
    mkdir -p "$BW/fn/$1"
    cat >"$BW/fn/$1/app.py"
}
write_fn fast <<'PY'
def handler(event, context):
    return {"statusCode": 200, "body": "ok"}
PY
write_fn raising <<'PY'
def handler(event, context):
    raise ValueError("raised on purpose")
PY
write_fn slow <<'PY'
import time
def handler(event, context):
    time.sleep(0.2)
    return {"statusCode": 200, "body": "slept"}
PY
write_fn large <<'PY'
BODY = "x" * (512 * 1024)
def handler(event, context):
    return {"statusCode": 200, "body": BODY}
PY
write_fn printing <<'PY'
def handler(event, context):
    for i in range(20):
        print("line", i, "of a call that prints")
    return {"statusCode": 200, "body": "printed"}
PY
mkdir -p "$BW/fn/node"
cat >"$BW/fn/node/index.js" <<'JS'
exports.handler = async () => ({ statusCode: 200, body: "ok" });
JS
for f in fast raising slow large printing; do
    deploy_fn "soak-$f" "$BW/fn/$f" python3 app.handler --max-concurrency $((CONNS * 2))
done
deploy_fn soak-node "$BW/fn/node" nodejs index.handler --max-concurrency $((CONNS * 2))
for f in fast slow large printing node; do smoke "soak-$f"; done

# pid name, one line per process of the platform
platform_procs() {
    local c pid
    for c in nginx registry provisioner agent redis mariadb; do
        pid=$(cat "$BW/var/run/$c.pid" 2>/dev/null) || continue
        [[ -d /proc/$pid ]] || continue
        echo "$pid $c"
        if [[ $c == nginx ]]; then
            for w in $(pgrep -P "$pid"); do echo "$w nginx-$(tr -d '\0' </proc/"$w"/cmdline | sed 's/^nginx: //; s/ process.*//')"; done
        fi
    done
}
# one line: name=RSS_KB/FDS for every process
sample() {
    local pid name rss fds out=
    while read -r pid name; do
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
        fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
        out+="$name[$pid]=${rss}kB/${fds}fd "
    done < <(platform_procs)
    echo "$out"
}

pids=()
for f in $FUNCTIONS; do
    lg -c "$CONNS" -t 1 -d "$SOAK_SECONDS" --json "$BW/lg-$f.json" \
        "$PURL_HTTP/fn/soak-$f" >"$BW/lg-$f.out" 2>&1 &
    pids+=($!)
done
sleep "$WARMUP"
echo "start (after $WARMUP s): $(sample)"
echo "sandboxes at start: $(ls -d "$BW"/var/sbx/sbx/s-* 2>/dev/null | wc -l)"
for p in "${pids[@]}"; do wait "$p" || true; done
echo "end   ($SOAK_SECONDS s):  $(sample)"
echo "sandboxes at end: $(ls -d "$BW"/var/sbx/sbx/s-* 2>/dev/null | wc -l)"
bench_load
for f in $FUNCTIONS; do
    echo "soak-$f: $(grep -E 'requests [0-9]' "$BW/lg-$f.out" | sed 's/^ *//')"
done
echo "answers by function, status and \$faas_status (access log):"
awk '{ fn = st = "-"; code = "-";
       for (i = 1; i <= NF; i++) {
           if ($i ~ /^HTTP\//) code = $(i + 1);
           if ($i ~ /^fn=/) fn = substr($i, 4);
           if ($i ~ /^st=/) st = substr($i, 4);
       }
       if (fn ~ /^soak-/) n[fn " " code " " st]++ }
     END { for (k in n) print "  " k ": " n[k] }' "$BW/var/log/nginx-access.log" | sort
echo "failed not by the function (status not 200, not FUNCTION_ERROR): $(awk '/fn=soak-/ && !/st=FUNCTION_ERROR/ { for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\//) { if ($(i + 1) != 200) n++; break } } END { print n + 0 }' "$BW/var/log/nginx-access.log")"
nginx_errors
for c in provisioner agent registry; do
    echo "$c log: $(grep -c 'Z warn ' "$BW/var/log/$c.log" 2>/dev/null) warn, $(grep -c 'Z error ' "$BW/var/log/$c.log" 2>/dev/null) error lines"
    grep -E 'Z (warn|error) ' "$BW/var/log/$c.log" 2>/dev/null | cut -d' ' -f2- \
        | sed -E 's/[0-9a-f]{32}/<rid>/g; s/s-[0-9a-f]{16}/s-<id>/g' | sort | uniq -c | sort -rn | head -5 | cut -c1-200 \
        || true
done
