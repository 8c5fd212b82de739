#!/usr/bin/env bash
# bench/ramp/run.sh: the seed's load test against the whole platform.
#
# 1. closed loop: a ramp from 0 to PEAK concurrent keep-alive connections in
#    UP seconds and back to 0 in DOWN seconds, each connection a "virtual
#    user" that sends a request, reads the answer, waits THINK seconds and
#    goes on. The function is deployed just before, so the run starts with
#    no sandbox at all and its cold starts are included.
# 2. open loop: OPEN_RATE requests/s for OPEN_SECONDS on another fresh
#    function (latency from the moment each request was due).
# 3. capacity (PHASES=capacity, not run by default): the seed's yardstick,
#    the highest open-loop rate (up to PEAK connections) that keeps p95 <=
#    31 ms with no failed request, on a warm function: each rate of RATES
#    for CAP_SECONDS, after a warm-up at the first one; stops at the first
#    rate that misses.
#
# 3. steps (PHASES=steps): closed loop in steps of STEP seconds each,
#    50 -> 200 -> 500 -> 1,000 -> 2,000 -> 1,000 -> 200 connections, no
#    think time, on a fresh function of max concurrency STEPS_MAXC (256).
#
# Reported per phase: total requests, failed requests (every non-2xx and
# every socket error or timeout), success %, p50/p95/p99 latency, peak
# requests/s, sandboxes created. Per-second CSVs and PNG plots (gnuplot) go
# to bench/results/ramp-{closed,open}.{csv,png}. Asserts nothing.
# Targets: zero failed requests, p95 <= 31 ms (the seed: 169 failed of
# 2.36 million, p95 31.16 ms).
#
#   bench/ramp/run.sh
#   UP=300 DOWN=300 THINK=0.5 bench/ramp/run.sh
#
#   PHASES=steps STEP=6 bench/ramp/run.sh
#
# Environment: PEAK (2000), UP (60), DOWN (60), THINK (1.0 s), PROTO (https
# or http), MAXC (64: the function's max concurrency, i.e. at most this many
# sandboxes), OPEN_RATE (1000), OPEN_SECONDS (60), PHASES ("closed open"),
# THREADS (2), TIMEOUT (30 s per request), RATES ("1000 1250 1500 1750 2000
# 2500 3000"), CAP_SECONDS (20), STEP (6 s), STEPS ("50 200 500 1000 2000
# 1000 200"), STEPS_MAXC (256).
set -euo pipefail
. "$(dirname "$0")/../loadgen/lib.sh"
PEAK=${PEAK:-2000}
UP=${UP:-60}
DOWN=${DOWN:-60}
THINK=${THINK:-1.0}
PROTO=${PROTO:-https}
MAXC=${MAXC:-64}
OPEN_RATE=${OPEN_RATE:-1000}
OPEN_SECONDS=${OPEN_SECONDS:-60}
PHASES=${PHASES:-closed open}
THREADS=${THREADS:-2}
TIMEOUT=${TIMEOUT:-30}
RATES=${RATES:-1000 1250 1500 1750 2000 2500 3000}
CAP_SECONDS=${CAP_SECONDS:-20}
STEP=${STEP:-6}
STEPS=${STEPS:-50 200 500 1000 2000 1000 200}
STEPS_MAXC=${STEPS_MAXC:-256}

bench_init ramp
echo "bench/ramp: closed loop 0 -> $PEAK -> 0 connections in $UP+$DOWN s (think $THINK s), open loop $OPEN_RATE/s for $OPEN_SECONDS s; $PROTO; max concurrency $MAXC; loadgen threads $THREADS"
bench_machine
platform_start
mkdir -p "$BW/fn"
cp "$BROOT/bench/peers/handler.py" "$BW/fn/"
# "0:50,6:50,6:200,12:200,..." for loadgen --schedule: steps, not slopes
step_schedule() {
    local t=0 c out=""
    for c in $STEPS; do
        out+="$t:$c,$((t + STEP)):$c,"
        t=$((t + STEP))
    done
    echo "${out%,}"
}
base() { [[ $PROTO == https ]] && echo "https://127.0.0.1:$P_HTTPS" || echo "http://127.0.0.1:$P_HTTP"; }

created() { # sandboxes the provisioner listed for function $1 so far
    grep -c "($1@1) idle in" "$BW/var/log/provisioner.log" 2>/dev/null || true
}

report() { # phase json csv fn
    local phase=$1 j=$2 csv=$3 fn=$4
    /usr/bin/python3 - "$j" "$phase" "$(created "$fn")" "$(rcli get "faas:count:{$fn@1}")" "$(rcli llen "faas:idle:{$fn@1}")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
phase, made, count, idle = sys.argv[2:]
print("%s: requests %d, failed %d (non-2xx %d, socket errors %d, timeouts %d, unsent %d), success %.4f%%" % (
    phase, s["requests"], s["failed"], s["non2xx"], s["socket_errors"], s["timeouts"], s["unsent"], s["success_pct"]))
print("  latency p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.1f ms" % (
    s["p50_ms"], s["p95_ms"], s["p99_ms"], s["p999_ms"], s["max_ms"]))
print("  requests/s: mean %.0f, peak %d in one second; sandboxes created %s (faas:count %s, idle at the end %s)" % (
    s["rps"], s["peak_rps"], made, count, idle))
print("  status: %s" % json.dumps(s["status"]))
failed = {k: v for k, v in sorted(s["status"].items()) if not k.startswith("2") and v}
for k in ("socket_errors", "timeouts", "unsent"):
    if s[k]:
        failed[k] = s[k]
print("  failed by status: %s" % (", ".join("%s %d" % kv for kv in failed.items()) or "none"))
print("  targets: zero failed %s; p95 <= 31 ms %s (%.2f ms)" % (
    "met" if s["failed"] == 0 else "NOT met (%d failed)" % s["failed"],
    "met" if s["p95_ms"] <= 31 else "NOT met, +%.1f ms" % (s["p95_ms"] - 31), s["p95_ms"]))
PY
}

plot() { # csv png title y2col y2label
    gnuplot -e "csv='$1'; out='$2'; title='$3'; y2col=$4; y2lab='$5'" "$BROOT/bench/ramp/plot.gp" 2>"$BW/gnuplot.err" \
        || { echo "gnuplot failed: $(cat "$BW/gnuplot.err")"; return 0; }
    echo "  plot: ${2#"$BROOT"/}"
}

capacity() { # fn: each rate in turn, the best that meets the SLO
    local fn=$1 rate best=0 j
    lg -R "${RATES%% *}" -c "$PEAK" -d 10 -t "$THREADS" --timeout "$TIMEOUT" \
        "$(base)/fn/$fn" >/dev/null # warm-up: the sandboxes it needs
    for rate in $RATES; do
        j=$BW/capacity-$rate.json
        lg -R "$rate" -c "$PEAK" -d "$CAP_SECONDS" -t "$THREADS" --timeout "$TIMEOUT" \
            --json "$j" --label "capacity $rate/s" "$(base)/fn/$fn" >/dev/null
        if /usr/bin/python3 - "$j" "$rate" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ok = s["failed"] == 0 and s["p95_ms"] <= 31
print("  %5s/s: sent %.0f/s, failed %d, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms: %s" % (
    sys.argv[2], s["rps"], s["failed"], s["p50_ms"], s["p95_ms"], s["p99_ms"],
    "meets" if ok else "misses"))
sys.exit(0 if ok else 1)
PY
        then best=$rate; else break; fi
        bench_load
    done
    echo "capacity at the SLO (p95 <= 31 ms, no failed request, $PROTO, up to $PEAK connections): $best requests/s"
}

for phase in $PHASES; do
    fn=ramp-$phase
    if [[ $phase == capacity ]]; then
        deploy_fn "$fn" "$BW/fn" python3 handler.handler --max-concurrency "$MAXC"
        echo
        echo "--- capacity ($(date -u +%T)): rates $RATES, $CAP_SECONDS s each"
        capacity "$fn"
        continue
    fi
    maxc=$MAXC
    [[ $phase == steps ]] && maxc=$STEPS_MAXC
    deploy_fn "$fn" "$BW/fn" python3 handler.handler --max-concurrency "$maxc"
    echo
    echo "--- $phase loop ($(date -u +%T), no sandbox of $fn yet: faas:count $(rcli get "faas:count:{$fn@1}"))"
    bench_load
    csv=$RESULTS/ramp-$phase.csv
    j=$BW/ramp-$phase.json
    # one line a second: live + pending sandboxes, idle ones, queued
    # provisioning requests (to read the plot's stalls against)
    scsv=$RESULTS/ramp-$phase-sandboxes.csv
    (
        echo "second,count,idle,load1"
        s=0
        while kill -0 $$ 2>/dev/null; do
            echo "$s,$(rcli get "faas:count:{$fn@1}" 2>/dev/null),$(rcli llen "faas:idle:{$fn@1}" 2>/dev/null),$(cut -d' ' -f1 /proc/loadavg)"
            sleep 1
            s=$((s + 1))
        done
    ) >"$scsv" &
    sampler=$!
    if [[ $phase == steps ]]; then
        lg --schedule "$(step_schedule)" -t "$THREADS" --timeout "$TIMEOUT" \
            --csv "$csv" --json "$j" --label "ramp steps" \
            "$(base)/fn/$fn" | sed 's/^/  /'
        report "closed loop in steps of $STEP s: ${STEPS// /->}" "$j" "$csv" "$fn"
        plot "$csv" "$RESULTS/ramp-steps.png" \
            "closed loop, ${STEPS// /->} connections, $STEP s each, $PROTO, from no sandbox" 3 connections
    elif [[ $phase == closed ]]; then
        lg --schedule "0:0,$UP:$PEAK,$((UP + DOWN)):0" --think "$THINK" -t "$THREADS" \
            --timeout "$TIMEOUT" --csv "$csv" --json "$j" --label "ramp closed" \
            "$(base)/fn/$fn" | sed 's/^/  /'
        report "closed loop 0->$PEAK->0" "$j" "$csv" "$fn"
        plot "$csv" "$RESULTS/ramp-closed.png" \
            "closed loop, 0 -> $PEAK -> 0 connections (think $THINK s), $PROTO, from no sandbox" 3 connections
    else
        lg -R "$OPEN_RATE" -c "$PEAK" -d "$OPEN_SECONDS" -t "$THREADS" --timeout "$TIMEOUT" \
            --csv "$csv" --json "$j" --label "open loop" "$(base)/fn/$fn" | sed 's/^/  /'
        report "open loop $OPEN_RATE/s" "$j" "$csv" "$fn"
        plot "$csv" "$RESULTS/ramp-open.png" \
            "open loop, $OPEN_RATE requests/s, $PROTO, from no sandbox" 3 "connections"
    fi
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    echo "  sandboxes over time: ${scsv#"$BROOT"/}"
    bench_load
done
echo
for phase in $PHASES; do http_statuses "ramp-$phase"; done
nginx_errors
echo "provisioner log: $(grep -c ' idle in ' "$BW/var/log/provisioner.log" 2>/dev/null) sandboxes listed; warnings/errors:"
grep -iE ' (warn|error|err) ' "$BW/var/log/provisioner.log" 2>/dev/null | sed -E 's/^[^ ]+ //; s/[0-9a-f]{32}/<rid>/g; s/s-[0-9a-f]{16}/s-<id>/g' \
    | sort | uniq -c | sort -rn | head -5 | cut -c1-220 || true
