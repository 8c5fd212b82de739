#!/usr/bin/env bash
# bench/warm/profile.sh: where the CPU goes on the warm path, the platform
# against uWSGI. Runs TARGET (faas-py, uwsgi or return200) at C
# connections for DURATION s under `perf record -a -g` (the whole machine:
# both vCPUs, every process), then prints CPU time per request by process
# (comm) and the hottest symbols. Not part of `./build.sh bench` (perf is
# heavy); run by hand when bench/warm misses its target.
#
#   bench/warm/profile.sh                      # faas-py and uwsgi, c=64, http
#   TARGETS=faas-py C=256 PROTO=https bench/warm/profile.sh
set -euo pipefail
. "$(dirname "$0")/../loadgen/lib.sh"
TARGETS=${TARGETS:-faas-py uwsgi}
C=${C:-64}
PROTO=${PROTO:-http}
DURATION=${DURATION:-8}
SANDBOXES=${SANDBOXES:-8}
export UWSGI_PROCESSES=${UWSGI_PROCESSES:-$SANDBOXES}
command -v perf >/dev/null || { echo "bench/warm/profile.sh: perf is not installed" >&2; exit 2; }
bench_init profile
bench_machine
platform_start
peers_start
mkdir -p "$BW/fn/py"
cp "$BROOT/bench/peers/handler.py" "$BW/fn/py/"
deploy_fn bench-py "$BW/fn/py" python3 handler.handler --max-concurrency "$SANDBOXES"
smoke bench-py
lg -c "$SANDBOXES" -d 3 "http://127.0.0.1:$P_HTTP/fn/bench-py" >/dev/null
for t in $TARGETS; do
    case $t in
    faas-py) port=$([[ $PROTO == http ]] && echo "$P_HTTP" || echo "$P_HTTPS"); path=/fn/bench-py ;;
    uwsgi) port=$([[ $PROTO == http ]] && echo "$PEER_HTTP_PORT" || echo "$PEER_HTTPS_PORT"); path=/wsgi ;;
    return200) port=$([[ $PROTO == http ]] && echo "$PEER_HTTP_PORT" || echo "$PEER_HTTPS_PORT"); path=/static ;;
    esac
    echo
    echo "=== $t $PROTO c=$C, $DURATION s under perf record -a -g"
    bench_load
    perf record -a -g -F 999 -o "$BW/$t.perf" -- \
        "$LOADGEN" -c "$C" -d "$DURATION" -t 2 --json "$BW/$t.json" "$PROTO://127.0.0.1:$port$path" \
        >"$BW/$t.lg" 2>"$BW/$t.perf.err"
    sed -n 2,4p "$BW/$t.lg"
    n=$(jget "$BW/$t.json" ok)
    echo "CPU per 2xx answer, by process (both vCPUs; perf samples at 999 Hz):"
    perf report -i "$BW/$t.perf" --no-children --sort comm --stdio 2>/dev/null \
        | awk -v n="$n" -v d="$DURATION" '/^ +[0-9.]+%/ {pct=$1; sub("%","",pct); comm=$2;
              printf "  %-18s %6.2f%%  %7.1f us/answer\n", comm, pct, pct/100*2*d*1e6/n}' | head -14 || true
    echo "hottest symbols:"
    perf report -i "$BW/$t.perf" --no-children --sort comm,dso,sym --stdio 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -25 | sed 's/^/  /' || true
done
bench_load
