#!/usr/bin/env bash
# bench/warm/run.sh: warm throughput and latency through HTTP keep-alive and
# HTTPS, the platform against its peers, in the same run on the same machine.
#
#   faas-py     the platform: trivial Python handler (bench/peers/handler.py)
#   faas-node   the platform: trivial Node.js handler (bench/peers/handler.js)
#   uwsgi       nginx + uWSGI, the same Python handler, no isolation
#   cgi         nginx + fcgiwrap, the same handler as a CGI script
#   return200   nginx `return 200` (the ceiling)
#
# Each point: faas-loadgen, closed loop, C keep-alive connections, DURATION
# seconds measured after WARMUP seconds left out (connection set-up and TLS
# handshakes: 1024 RSA handshakes alone take a few seconds here), after a
# warm-up that creates the functions' sandboxes (up to
# SANDBOXES per function; the platform then serves every call warm).
# Prints a table and the ratios; writes bench/results/warm.csv. Asserts
# nothing. Target: faas-py >= 1.5x uwsgi.
#
#   bench/warm/run.sh
#   DURATION=10 CONNS="64 256" REPEAT=3 bench/warm/run.sh
#
# Environment: DURATION (5), WARMUP (auto: 2 s, plus 1 s per 128 HTTPS
# connections: 1024 TLS handshakes at once take several seconds here), CONNS ("64 256 1024"), PROTOS ("http https"),
# TARGETS ("faas-py faas-node uwsgi cgi return200"), SANDBOXES (8: the
# functions' max concurrency), UWSGI_PROCESSES (8: as many as sandboxes),
# FCGI_CHILDREN (4), THREADS (2: load generator threads), REPEAT (1),
# FAAS_WORKERS (2: nginx workers, the peers' nginx too).
set -euo pipefail
. "$(dirname "$0")/../loadgen/lib.sh"
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-auto}
CONNS=${CONNS:-64 256 1024}
PROTOS=${PROTOS:-http https}
TARGETS=${TARGETS:-faas-py faas-node uwsgi cgi return200}
SANDBOXES=${SANDBOXES:-8}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-1}
export UWSGI_PROCESSES=${UWSGI_PROCESSES:-$SANDBOXES} FCGI_CHILDREN=${FCGI_CHILDREN:-4}
export PEER_WORKERS=${FAAS_WORKERS:-2}

bench_init warm
echo "bench/warm: $DURATION s per point (after a warm-up: $WARMUP), connections $CONNS, $PROTOS, $SANDBOXES sandboxes per function, $UWSGI_PROCESSES uWSGI processes, $FCGI_CHILDREN fcgiwrap children, ${FAAS_WORKERS:-2} nginx workers, loadgen threads $THREADS, repeat $REPEAT"
bench_machine
platform_start
peers_start
mkdir -p "$BW/fn/py" "$BW/fn/node"
cp "$BROOT/bench/peers/handler.py" "$BW/fn/py/"
cp "$BROOT/bench/peers/handler.js" "$BW/fn/node/"
deploy_fn bench-py "$BW/fn/py" python3 handler.handler --max-concurrency "$SANDBOXES"
deploy_fn bench-node "$BW/fn/node" nodejs handler.handler --max-concurrency "$SANDBOXES"
smoke bench-py
smoke bench-node

url() { # target proto
    local base
    case $2 in
    http) base=http://127.0.0.1 ;;
    https) base=https://127.0.0.1 ;;
    esac
    case $1 in
    faas-py) echo "$base:$([[ $2 == http ]] && echo "$P_HTTP" || echo "$P_HTTPS")/fn/bench-py" ;;
    faas-node) echo "$base:$([[ $2 == http ]] && echo "$P_HTTP" || echo "$P_HTTPS")/fn/bench-node" ;;
    uwsgi) echo "$base:$([[ $2 == http ]] && echo "$PEER_HTTP_PORT" || echo "$PEER_HTTPS_PORT")/wsgi" ;;
    cgi) echo "$base:$([[ $2 == http ]] && echo "$PEER_HTTP_PORT" || echo "$PEER_HTTPS_PORT")/cgi" ;;
    return200) echo "$base:$([[ $2 == http ]] && echo "$PEER_HTTP_PORT" || echo "$PEER_HTTPS_PORT")/static" ;;
    esac
}

# warm-up: every sandbox created (SANDBOXES concurrent calls) and used
for f in bench-py bench-node; do
    lg -c "$SANDBOXES" -d 3 -t 1 --label "warm-up $f" "http://127.0.0.1:$P_HTTP/fn/$f" >"$BW/warmup-$f.txt"
    lg -c 64 -d 2 -t 1 "http://127.0.0.1:$P_HTTP/fn/$f" >>"$BW/warmup-$f.txt"
    echo "warm-up $f: $(rcli get "faas:count:{$f@1}") sandboxes, $(rcli llen "faas:idle:{$f@1}") idle; $(sed -n 2p "$BW/warmup-$f.txt" | sed 's/^ *//')"
done

CSV=$RESULTS/warm.csv
echo "run,target,proto,connections,ok_per_s,p50_ms,p95_ms,p99_ms,max_ms,requests,failed,non2xx,socket_errors,timeouts,load1" >"$CSV"
printf '\n%-3s %-10s %-5s %5s %10s %9s %9s %9s %9s %8s\n' run target proto conns '2xx/s' 'p50 ms' 'p95 ms' 'p99 ms' 'max ms' failed
for ((run = 1; run <= REPEAT; run++)); do
    for c in $CONNS; do
        for proto in $PROTOS; do
            for t in $TARGETS; do
                j=$BW/$run-$t-$proto-$c.json
                extra=()
                [[ $t == cgi ]] && extra=(--timeout 10 --drain 3)
                wu=$WARMUP
                if [[ $wu == auto ]]; then
                    wu=2
                    [[ $proto == https ]] && wu=$((2 + c / 128))
                fi
                lg -c "$c" -d "$((DURATION + wu))" --warmup "$wu" -t "$THREADS" --json "$j" --label "$t $proto c=$c" \
                    "${extra[@]}" "$(url "$t" "$proto")" >"$BW/$run-$t-$proto-$c.txt" 2>&1 || true
                if [[ ! -s $j ]]; then
                    echo "$run $t $proto $c: faas-loadgen failed: $(cat "$BW/$run-$t-$proto-$c.txt")"
                    continue
                fi
                load1=$(cut -d' ' -f1 /proc/loadavg)
                /usr/bin/python3 - "$j" "$run" "$t" "$proto" "$c" "$load1" "$CSV" <<'PY'
import json, sys
j, run, t, proto, c, load1, csv = sys.argv[1:]
s = json.load(open(j))
okps = s["ok"] / s["duration_s"]
print("%-3s %-10s %-5s %5s %10.0f %9.2f %9.2f %9.2f %9.1f %8d" % (run, t, proto, c, okps, s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"], s["failed"]))
with open(csv, "a") as f:
    f.write("%s,%s,%s,%s,%.1f,%.3f,%.3f,%.3f,%.3f,%d,%d,%d,%d,%d,%s\n" % (run, t, proto, c, okps, s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"], s["requests"], s["failed"], s["non2xx"], s["socket_errors"], s["timeouts"], load1))
PY
            done
        done
    done
done

echo
echo "ratios (2xx answers/s; over REPEAT runs: median, range)"
/usr/bin/python3 - "$CSV" <<'PY'
import csv, sys, statistics
rows = list(csv.DictReader(open(sys.argv[1])))
d = {}
for r in rows:
    d.setdefault((r["target"], r["proto"], r["connections"]), []).append(float(r["ok_per_s"]))
keys = sorted({(p, c) for (_, p, c) in d}, key=lambda k: (k[0], int(k[1])))
def ratio(a, b, p, c):
    x, y = d.get((a, p, c)), d.get((b, p, c))
    if not x or not y:
        return "-"
    rs = [u / v for u in x for v in y if v] if len(x) == 1 or len(y) == 1 else [u / v for u, v in zip(x, y) if v]
    if not rs:
        return "-"
    med = statistics.median(rs)
    return "%.2fx" % med if len(rs) == 1 else "%.2fx (%.2f-%.2f)" % (med, min(rs), max(rs))
for p, c in keys:
    print("  %-5s c=%-5s faas-py/uwsgi %s  faas-py/cgi %s  faas-py/return200 %s  faas-node/uwsgi %s  uwsgi/return200 %s" % (
        p, c, ratio("faas-py", "uwsgi", p, c), ratio("faas-py", "cgi", p, c),
        ratio("faas-py", "return200", p, c), ratio("faas-node", "uwsgi", p, c),
        ratio("uwsgi", "return200", p, c)))
tgt = []
for p, c in keys:
    x, y = d.get(("faas-py", p, c)), d.get(("uwsgi", p, c))
    if x and y:
        tgt.append((statistics.median(x) / statistics.median(y), p, c))
if tgt:
    met = [t for t in tgt if t[0] >= 1.5]
    print("target faas-py >= 1.5x uwsgi: met at %d of %d points (%s)" % (len(met), len(tgt),
          ", ".join("%s c=%s %.2fx" % (p, c, r) for r, p, c in tgt)))
PY
echo "sandboxes at the end: bench-py $(rcli get 'faas:count:{bench-py@1}'), bench-node $(rcli get 'faas:count:{bench-node@1}')"
bench_load
