#!/usr/bin/env bash
# bench/cold/run.sh: cold start through the whole platform.
#
# Deploys N (200) distinct functions (fresh revisions: no sandbox, code
# never fetched by the provisioner), then calls each once, one after the
# other, over HTTP (curl; a new connection each). Prints p50/p99 of the
# client's request-to-answer time, and splits each call with its execution
# record (MySQL `executions`, drained by the registry from faas:records):
#   provisioning      cold_start_us: the gateway's wait for a sandbox
#                     (queue push, provisioner pop, code fetch + unzip,
#                     namespaces, cgroups, runtime start, ping, RPUSH)
#   first invocation  duration_us: the agent's call (thaw, handler, freeze)
#   gateway rest      total_us - both: metadata, Redis, agent round trip
# and, from the provisioner's log, its own work: pop -> idle-listed, and for
# a sandbox made from a stem cell (docs/DESIGN.md section 6) the
# specialisation and the handler import within it; "queue wait" is the
# gateway's wait minus the provisioner's work (queue push, BLMOVE, RPUSH).
# Runs twice on the same platform: with the stem cell pool (stem_cells
# "auto") and without (the provisioner restarted with stem_cells 0), each
# over N functions of its own. New functions arrive PACE_MS apart (the pool
# is refilled in the background while no request is in progress, one cell
# at a time: back-to-back first calls drain it, and the refill rate is then
# the limit). Writes bench/results/cold[-nodejs]-{pool,nopool}.csv.
# Asserts nothing. Targets with the pool: Python p50 <= 5 ms, p99 <= 15 ms;
# Node.js p50 <= 15 ms, p99 <= 30 ms (the provisioning and first call).
#
#   bench/cold/run.sh                 N=50 RUNTIME=nodejs bench/cold/run.sh
#
# Environment: N (200), RUNTIME (python3 | nodejs), DEPLOY_JOBS (4),
# PACE_MS (300), POOL (both | on | off).
set -euo pipefail
. "$(dirname "$0")/../loadgen/lib.sh"
N=${N:-200}
RUNTIME=${RUNTIME:-python3}
DEPLOY_JOBS=${DEPLOY_JOBS:-4}
PACE_MS=${PACE_MS:-300}
POOL=${POOL:-both}

bench_init cold
echo "bench/cold: $N distinct fresh functions ($RUNTIME), one call each, sequential"
bench_machine
platform_start
# One pass: N new functions named cold-<tag>-NNN, one first call each.
cold_pass() {
    local tag=$1
    echo "--- pass: $tag"
mkdir -p "$BW/fn"
if [[ $RUNTIME == nodejs ]]; then
    cp "$BROOT/bench/peers/handler.js" "$BW/fn/"
else
    cp "$BROOT/bench/peers/handler.py" "$BW/fn/"
fi
export -f faasctl
export BW P_HTTPS RUNTIME
t0=$(date +%s.%N)
seq -f "cold-$tag-%03g" 1 "$N" | xargs -P "$DEPLOY_JOBS" -I{} bash -c \
    'faasctl deploy "$BW/fn" --name {} --runtime "$RUNTIME" --handler handler.handler --public >/dev/null 2>>"$BW/deploy.err" || echo "deploy {} failed" >&2'
echo "deployed $N functions in $(echo "$(date +%s.%N) - $t0" | bc) s ($DEPLOY_JOBS at a time)"
bench_load

CSV=$RESULTS/cold$([[ $RUNTIME == nodejs ]] && echo -nodejs || true)-$tag.csv
: >"$BW/calls.txt"
for ((i = 1; i <= N; i++)); do
    fn=$(printf "cold-$tag-%03d" "$i")
    sleep "$(echo "$PACE_MS / 1000" | bc -l)"
    # code, total s, start type, request id
    curl -s -o /dev/null -D "$BW/h.txt" -m 60 -w '%{http_code} %{time_total}' \
        "http://127.0.0.1:$P_HTTP/fn/$fn" >"$BW/w.txt" || true
    read -r code tt <"$BW/w.txt" || true
    st=$(sed -n 's/^X-Faas-Start: *\([a-z]*\).*/\1/ip' "$BW/h.txt")
    rid=$(sed -n 's/^X-Faas-Request-Id: *\([0-9a-f]*\).*/\1/ip' "$BW/h.txt")
    echo "$fn $code $tt ${st:--} ${rid:--}" >>"$BW/calls.txt"
done
bench_load

# the records reach MySQL through the registry's drain
mysql_q() { mariadb --no-defaults --socket="$BW/var/run/mysqld.sock" -u root -N -B faas -e "$1"; }
for _ in $(seq 60); do
    n=$(mysql_q "SELECT COUNT(*) FROM executions WHERE function LIKE 'cold-$tag-%'" 2>/dev/null || echo 0)
    ((n >= N)) && break
    sleep 0.5
done
mysql_q "SELECT request_id, start_type, status, cold_start_us, duration_us, total_us FROM executions WHERE function LIKE 'cold-$tag-%'" >"$BW/records.txt" || true
grep -o "(cold-$tag-[0-9]*@1) idle in .*" "$BW/var/log/provisioner.log" >"$BW/prov.txt" || true

/usr/bin/python3 - "$BW/calls.txt" "$BW/records.txt" "$BW/prov.txt" "$CSV" <<'PY'
import sys, re, math
calls = [l.split() for l in open(sys.argv[1])]
recs = {}
for l in open(sys.argv[2]):
    f = l.split()
    if len(f) >= 6:
        recs[f[0]] = {"start": f[1], "status": f[2], "cold": int(f[3]), "dur": int(f[4]), "total": int(f[5])}
prov = {}
for l in open(sys.argv[3]):
    m = re.search(r"\((\S+)@1\) idle in (\d+) ms \((create|specialised stem cell in) (\d+) ms(?:, import ([\d.]+) ms)?\)", l)
    if m:
        prov[m.group(1)] = (int(m.group(2)), int(m.group(4)), m.group(3) != "create", float(m.group(5) or 0))

def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[max(0, math.ceil(len(v) * p / 100) - 1)]

ok = [c for c in calls if c[1] == "200"]
starts = {}
for c in calls:
    starts[c[3]] = starts.get(c[3], 0) + 1
client = [float(c[2]) * 1000 for c in ok]
print("calls: %d, answered 200: %d, start types: %s" % (len(calls), len(ok), ", ".join("%s=%d" % kv for kv in sorted(starts.items()))))
bad = [c for c in calls if c[1] != "200"]
if bad:
    print("  not 200: " + ", ".join("%s:%s" % (c[0], c[1]) for c in bad[:10]))
print("request -> answer (client, curl time_total): p50 %.1f ms  p99 %.1f ms  min %.1f  max %.1f" % (
    pct(client, 50), pct(client, 99), min(client or [0]), max(client or [0])))
matched = [recs[c[4]] for c in ok if c[4] in recs]
cold = [r["cold"] / 1000 for r in matched]
dur = [r["dur"] / 1000 for r in matched]
tot = [r["total"] / 1000 for r in matched]
rest = [(r["total"] - r["cold"] - r["dur"]) / 1000 for r in matched]
print("execution records matched: %d" % len(matched))
if matched:
    print("  provisioning (cold_start_us):    p50 %6.1f ms  p99 %6.1f ms" % (pct(cold, 50), pct(cold, 99)))
    print("  first invocation (duration_us):  p50 %6.1f ms  p99 %6.1f ms" % (pct(dur, 50), pct(dur, 99)))
    print("  gateway rest (total - both):     p50 %6.1f ms  p99 %6.1f ms" % (pct(rest, 50), pct(rest, 99)))
    print("  gateway total (total_us):        p50 %6.1f ms  p99 %6.1f ms" % (pct(tot, 50), pct(tot, 99)))
if prov:
    idle = [p[0] for p in prov.values()]
    cr = [p[1] for p in prov.values() if not p[2]]
    sp = [p[1] for p in prov.values() if p[2]]
    imp = [p[3] for p in prov.values() if p[2]]
    print("  provisioner: pop -> idle-listed p50 %d ms p99 %d ms (%d sandboxes, %d from stem cells)" % (
        pct(idle, 50), pct(idle, 99), len(prov), len(sp)))
    if cr:
        print("    fresh: faas_sandbox_create    p50 %6.1f ms  p99 %6.1f ms" % (pct(cr, 50), pct(cr, 99)))
    if sp:
        print("    stem: specialisation          p50 %6.1f ms  p99 %6.1f ms" % (pct(sp, 50), pct(sp, 99)))
        print("    stem: of which handler import p50 %6.1f ms  p99 %6.1f ms" % (pct(imp, 50), pct(imp, 99)))
    wait = []
    for c in ok:
        r, pv = recs.get(c[4]), prov.get(c[0])
        if r and pv:
            wait.append(r["cold"] / 1000 - pv[0])
    if wait:
        print("  queue wait (cold_start - provisioner's pop -> idle): p50 %6.1f ms  p99 %6.1f ms" % (pct(wait, 50), pct(wait, 99)))
    pf = [r["cold"] / 1000 + r["dur"] / 1000 for r in matched]
    if pf:
        print("  provisioning + first call:       p50 %6.1f ms  p99 %6.1f ms" % (pct(pf, 50), pct(pf, 99)))
with open(sys.argv[4], "w") as f:
    f.write("function,http,client_ms,start,request_id,cold_start_ms,duration_ms,total_ms\n")
    for c in calls:
        r = recs.get(c[4])
        f.write("%s,%s,%.3f,%s,%s,%s,%s,%s\n" % (c[0], c[1], float(c[2]) * 1000, c[3], c[4],
                "%.3f" % (r["cold"] / 1000) if r else "", "%.3f" % (r["dur"] / 1000) if r else "",
                "%.3f" % (r["total"] / 1000) if r else ""))
PY
}

# Restarts the provisioner with FAAS_STEM_CELLS=$1 (the platform re-renders
# its configuration; the running components are left alone).
prov_restart() {
    local pid
    pid=$(cat "$BW/var/run/provisioner.pid")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    FAAS_STEM_CELLS=$1 platform_sh run >"$BW/platform-rerun.out" 2>&1
}

if [[ $POOL == off ]]; then
    prov_restart 0
fi
if [[ $POOL != off ]]; then
    cold_pass pool
fi
if [[ $POOL == both ]]; then
    prov_restart 0
    cold_pass nopool
fi
nginx_errors
