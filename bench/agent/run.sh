#!/usr/bin/env bash
# bench/agent/run.sh: faas-agent throughput and latency.
#
# Creates SANDBOXES (default 8) Python sandboxes with a trivial handler, starts
# faas-agent on a Unix socket, and runs faas-invoke at concurrency 1 and 64,
# once for each freeze_after_idle_ms of FREEZE (default "0 20": 0 thaws and
# freezes the sandbox around every call, 20 keeps it thawed while calls keep
# coming; the agent is restarted between the two). Prints invocations/s and
# p50/p99 latency as measured by the client (request written -> answer read).
#
#   bench/agent/run.sh                 # N1=20000 calls at c=1, N64=100000 at c=64
#   SANDBOXES=16 N64=500000 PIN0=1 bench/agent/run.sh
#
# Targets: p50 <= 100 us at c=1, >= 15,000/s at c=64. Each point is run with
# two events: `{}` and the ~820-byte event the gateway makes for a plain GET
# (so event handling shows), with the processes free to use every vCPU;
# PIN0=1 adds the same runs with everything pinned to vCPU 0. The agent's
# and the runtimes' CPU time per call is printed next to each figure.
# faas-invoke lends each request a free sandbox (like the gateway's idle
# list), so at c=64 at most SANDBOXES calls run in the agent at once; the
# other requests wait in the client, and their wait counts in the latency.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OBJS=$ROOT/objs
SANDBOXES=${SANDBOXES:-8}
N1=${N1:-20000}
N64=${N64:-100000}
PIN0=${PIN0:-0}
# A/B runs: another faas-agent binary and runtimes directory
AGENT=${AGENT:-$OBJS/faas-agent}
RUNTIMES=${RUNTIMES:-$ROOT/runtimes}
CONNS=${CONNS:-8}
SPIN_US=${SPIN_US:-0}   # the agent's spin_us (poll for a lone call's answer)
FREEZE=${FREEZE:-0 20}  # the agent's freeze_after_idle_ms, one pass each
PERF=${PERF:-0}         # 1: perf profile of the agent at c=64 (top functions)

for b in faas-agent faas-invoke faas-sandbox; do
    [[ -x $OBJS/$b ]] || { echo "bench/agent: $OBJS/$b missing: ./build.sh build" >&2; exit 2; }
done

W=/tmp/fb-agent-$$
CG=faas-bench-$$
mkdir -p "$W/run/sbx" "$W/code"
AGENT_PID=
cleanup() {
    [[ -n $AGENT_PID ]] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
    "$OBJS/faas-sandbox" -c "$W/sandbox.json" cleanup >/dev/null 2>&1 || true
    for h in memory freezer pids cpu unified; do
        d=/sys/fs/cgroup/$h/$CG
        [[ -d $d ]] || continue
        [[ -f $d/.pin/freezer.state ]] && echo THAWED >"$d/.pin/freezer.state" 2>/dev/null || true
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
        rmdir "$d" 2>/dev/null || true
    done
    rm -rf "$W"
}
trap cleanup EXIT

cat >"$W/code/handler.py" <<'PY'
def handler(event, context):
    return {"statusCode": 200, "body": "ok"}
PY
chmod 755 "$W/code"; chmod 644 "$W/code/handler.py"
cat >"$W/sandbox.json" <<JSON
{"run_dir": "$W/run", "cgroup_root": "$CG", "runtimes_dir": "$RUNTIMES"}
JSON

"$OBJS/faas-sandbox" -c "$W/sandbox.json" init
IDS=()
for ((i = 0; i < SANDBOXES; i++)); do
    IDS+=("$("$OBJS/faas-sandbox" -c "$W/sandbox.json" create --function bench \
        --version 1 --runtime python3 --handler handler.handler --code "$W/code")")
done
LIST=$(IFS=,; echo "${IDS[*]}")

echo "agent $AGENT, runtimes $RUNTIMES"
# start_agent FREEZE_AFTER_IDLE_MS: a fresh agent, warmed up (connections to
# every runtime, caches); the previous one is stopped (its runtime
# connections closed, so the new agent can connect).
start_agent() {
    if [[ -n $AGENT_PID ]]; then
        kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
        AGENT_PID=
    fi
    rm -f "$W/agent.sock"
    cat >"$W/agent.json" <<JSON
{"run_dir": "$W/run", "cgroup_root": "$CG", "socket": "$W/agent.sock",
 "log_level": "warn", "log_file": "$W/agent.log", "spin_us": $SPIN_US,
 "freeze_after_idle_ms": $1}
JSON
    "$AGENT" -c "$W/agent.json" &
    AGENT_PID=$!
    for _ in $(seq 100); do [[ -S $W/agent.sock ]] && break; sleep 0.05; done
    "$OBJS/faas-invoke" -a "unix:$W/agent.sock" -s "$LIST" -f bench -n 2000 -c "$SANDBOXES" -q >/dev/null 2>&1
}

# pin CPUS: the agent, every sandbox process and the client on those vCPUs.
# Cross-vCPU wake-ups cost ~35 us each in this VM (docs/DESIGN.md section 12), and a
# call has four of them (client -> agent -> runtime -> agent -> client).
PIN=all
pin() {
    local cpus=$1 id p
    PIN=$cpus
    taskset -p -c "$cpus" "$AGENT_PID" >/dev/null
    for id in "${IDS[@]}"; do
        for p in $(cat "/sys/fs/cgroup/pids/$CG/$id/cgroup.procs"); do
            taskset -p -c "$cpus" "$p" >/dev/null
        done
    done
}

# The event nginx makes for `GET /fn/bench/` (what bench/gateway sends).
cat >"$W/event.json" <<'JSON'
{"version":"2.0","routeKey":"$default","rawPath":"/","rawQueryString":"","headers":{"host":"127.0.0.1:45757"},"queryStringParameters":null,"multiValueQueryStringParameters":null,"requestContext":{"accountId":"anonymous","apiId":"bench","domainName":"127.0.0.1:45757","http":{"method":"GET","path":"/","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":""},"requestId":"0123456789abcdef0123456789abcdef","routeKey":"$default","stage":"$default","time":"27/Nov/2025:00:00:00 +0000","timeEpoch":1764201600000,"httpMethod":"GET","path":"/","resourcePath":"/","identity":{"sourceIp":"127.0.0.1","userAgent":""},"requestTimeEpoch":1764201600000},"body":null,"isBase64Encoded":false,"resource":"/","path":"/","httpMethod":"GET","multiValueHeaders":{"host":["127.0.0.1:45757"]},"pathParameters":null,"stageVariables":null}
JSON

# CPU time (ns) and times scheduled in (wake-ups, less sensitive to the
# machine's load than time) of the agent and of every sandbox process:
# "agent_ns sandboxes_ns agent_runs sandboxes_runs"
cpu_ns() {
    local f p t ns runs sum=0 agent=0 arun=0 srun=0
    for t in /proc/$AGENT_PID/task/*/schedstat; do
        read -r ns _ runs <"$t"
        agent=$((agent + ns)); arun=$((arun + runs))
    done
    for f in /sys/fs/cgroup/pids/$CG/*/cgroup.procs; do
        for p in $(cat "$f"); do
            for t in /proc/$p/task/*/schedstat; do
                read -r ns _ runs <"$t" 2>/dev/null || continue
                sum=$((sum + ns)); srun=$((srun + runs))
            done
        done
    done
    echo "$agent $sum $arun $srun"
}

run() {
    local c=$1 n=$2 k=$3 evname=$4 before after
    local evarg=()
    [[ $evname == gateway ]] && evarg=(-E "$W/event.json")
    local perf_pid=
    if [[ $PERF == 1 && $c -gt 1 ]]; then
        perf record -q -g -o "$W/perf.data" -p "$AGENT_PID" 2>/dev/null &
        perf_pid=$!
    fi
    before=$(cpu_ns)
    taskset -c "$PIN_CLIENT" "$OBJS/faas-invoke" -a "unix:$W/agent.sock" -s "$LIST" -f bench \
        "${evarg[@]}" -n "$n" -c "$c" -k "$k" -q 2>/dev/null | tail -1 >"$W/out.json"
    after=$(cpu_ns)
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
        echo "--- perf: agent, freeze_after_idle_ms $FAI, c=$c $evname (self %, top 25)"
        perf report -q -i "$W/perf.data" --no-children --stdio -g none \
            --percent-limit 0.8 2>/dev/null | head -25
    fi
    /usr/bin/python3 -c '
import json, sys
s = json.loads(open(sys.argv[1]).read())
b = [int(x) for x in sys.argv[4].split()]
a = [int(x) for x in sys.argv[5].split()]
n = max(1, s["invocations"])
print("idle-freeze %-3s c=%-3d %-7s %7d calls %6.0f/s  p50 %5d us  p99 %6d us  agent %5.1f us %4.2f runs/call  runtime %5.1f us %4.2f runs/call  %s  cpus %s  load %s" % (
    sys.argv[6], s["concurrency"], sys.argv[3], s["invocations"], s["per_second"], s["p50_us"], s["p99_us"],
    (a[0] - b[0]) / n / 1000, (a[2] - b[2]) / n,
    (a[1] - b[1]) / n / 1000, (a[3] - b[3]) / n,
    json.dumps(s["statuses"]), sys.argv[2], open("/proc/loadavg").read().split()[0]))' \
        "$W/out.json" "$PIN" "$evname" "$before" "$after" "$FAI"
}
ALL=0-$(($(nproc) - 1))
echo "faas-agent bench: $SANDBOXES python sandboxes, freeze_after_idle_ms: $FREEZE, spin_us $SPIN_US ($(nproc) vCPUs, load $(cut -d' ' -f1 /proc/loadavg))"
for FAI in $FREEZE; do
    start_agent "$FAI"
    PIN_CLIENT=$ALL
    pin "$ALL"
    for ev in empty gateway; do
        run 1 "$N1" 1 $ev
        run 64 "$N64" "$CONNS" $ev
    done
    if [[ $PIN0 == 1 ]]; then
        PIN_CLIENT=0
        pin 0
        for ev in empty gateway; do
            run 1 "$N1" 1 $ev
            run 64 "$N64" "$CONNS" $ev
        done
    fi
done
