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
# and, from the provisioner's log, its own create time. Writes
# bench/results/cold.csv. Asserts nothing. Target: p50 <= 40 ms.
#
#   bench/cold/run.sh                 N=50 RUNTIME=nodejs bench/cold/run.sh
#
# Environment: N (200), RUNTIME (python3 | nodejs), DEPLOY_JOBS (4).
set -euo pipefail
. "$(dirname "$0")/../loadgen/lib.sh"
N=${N:-200}
RUNTIME=${RUNTIME:-python3}
DEPLOY_JOBS=${DEPLOY_JOBS:-4}

bench_init cold
echo "bench/cold: $N distinct fresh functions ($RUNTIME), one call each, sequential"
bench_machine
platform_start
mkdir -p "$BW/fn"
if [[ $RUNTIME == nodejs ]]; then
    cp "$BROOT/bench/peers/handler.js" "$BW/fn/"
else
    cp "$BROOT/bench/peers/handler.py" "$BW/fn/"
fi
export -f faasctl
export BW P_HTTPS RUNTIME
t0=$(date +%s.%N)
seq -f 'cold-%03g' 1 "$N" | xargs -P "$DEPLOY_JOBS" -I{} bash -c \
    'faasctl deploy "$BW/fn" --name {} --runtime "$RUNTIME" --handler handler.handler --public >/dev/null 2>>"$BW/deploy.err" || echo "deploy {} failed" >&2'
echo "deployed $N functions in $(echo "$(date +%s.%N) - $t0" | bc) s ($DEPLOY_JOBS at a time)"
bench_load

CSV=$RESULTS/cold$([[ $RUNTIME == nodejs ]] && echo -nodejs || true).csv
: >"$BW/calls.txt"
for ((i = 1; i <= N; i++)); do
    fn=$(printf 'cold-%03d' "$i")
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
    n=$(mysql_q "SELECT COUNT(*) FROM executions WHERE function LIKE 'cold-%'" 2>/dev/null || echo 0)
    ((n >= N)) && break
    sleep 0.5
done
mysql_q "SELECT request_id, start_type, status, cold_start_us, duration_us, total_us FROM executions WHERE function LIKE 'cold-%'" >"$BW/records.txt" || true
grep -o '(cold-[0-9]*@1) idle in [0-9]* ms (create [0-9]* ms)' "$BW/var/log/provisioner.log" >"$BW/prov.txt" || true

/usr/bin/python3 - "$BW/calls.txt" "$BW/records.txt" "$BW/prov.txt" "$CSV" <<'PY'
import sys, re, math
calls = [l.split() for l in open(sys.argv[1])]
recs = {}
for l in open(sys.argv[2]):
    f = l.split()
    if len(f) >= 6:
        recs[f[0]] = {"start": f[1], "status": f[2], "cold": int(f[3]), "dur": int(f[4]), "total": int(f[5])}
prov = [tuple(map(int, m.groups())) for m in (re.search(r"idle in (\d+) ms \(create (\d+) ms\)", l) for l in open(sys.argv[3])) if m]

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
    idle = [p[0] for p in prov]
    cr = [p[1] for p in prov]
    print("  provisioner: pop -> idle-listed p50 %d ms p99 %d ms, of which faas_sandbox_create p50 %d ms p99 %d ms (%d sandboxes)" % (
        pct(idle, 50), pct(idle, 99), pct(cr, 50), pct(cr, 99), len(prov)))
p50 = pct(client, 50)
print("target: cold start p50 <= 40 ms: %s (%.1f ms)" % ("met" if p50 <= 40 else "NOT met, +%.1f ms" % (p50 - 40), p50))
with open(sys.argv[4], "w") as f:
    f.write("function,http,client_ms,start,request_id,cold_start_ms,duration_ms,total_ms\n")
    for c in calls:
        r = recs.get(c[4])
        f.write("%s,%s,%.3f,%s,%s,%s,%s,%s\n" % (c[0], c[1], float(c[2]) * 1000, c[3], c[4],
                "%.3f" % (r["cold"] / 1000) if r else "", "%.3f" % (r["dur"] / 1000) if r else "",
                "%.3f" % (r["total"] / 1000) if r else ""))
PY
nginx_errors
