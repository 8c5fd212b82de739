#!/usr/bin/env bash
# Sandbox cold start and freeze/thaw cost, fresh path vs python3 zygote
# (create-to-ready p50/p99, the runtime process's own CPU time, RSS/PSS of
# idle sandboxes side by side). Builds nothing: run ./build.sh build first.
# Prints figures, asserts nothing.
#   bench/sandbox/run.sh [N] [--zygote|--fresh]   (default 200 sandboxes,
#                                                  both paths)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
N=200
MODES="fresh zygote"
for a in "$@"; do
    case $a in
    --zygote) MODES=zygote ;;
    --fresh) MODES=fresh ;;
    *) N=$a ;;
    esac
done
BIN=$ROOT/objs/faas-sandbox-bench
[[ -x $BIN ]] || { echo "objs/faas-sandbox-bench missing: run ./build.sh build" >&2; exit 1; }

WORK=$(mktemp -d /tmp/fsb-XXXXXX)
CG=faas-bench-$$
cleanup() {
    "$ROOT/objs/faas-sandbox" -c "$WORK/cfg.json" cleanup >/dev/null 2>&1 || true
    for h in memory pids cpu freezer unified; do
        d=/sys/fs/cgroup/$h/$CG
        [[ -d $d/.pin ]] && { echo THAWED >"$d/.pin/freezer.state" 2>/dev/null || true; rmdir "$d/.pin"; }
        [[ -d $d ]] && rmdir "$d"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

RUNTIMES=$ROOT/runtimes
if [[ -f $RUNTIMES/python/bootstrap.py ]]; then
    echo "runtime: the real python runtime ($RUNTIMES/python/bootstrap.py)"
else
    echo "runtime: runtimes/python missing: using a minimal stand-in"
    RUNTIMES=$WORK/runtimes
    mkdir -p "$RUNTIMES/python"
    cat >"$RUNTIMES/python/bootstrap.py" <<'PY'
import os, _socket
s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
s.bind(os.environ['FAAS_SOCKET']); s.listen(8)
while True:
    c, _ = s.accept()
    while True:
        h = c.recv(4)
        if len(h) < 4: break
        req = c.recv(int.from_bytes(h, 'big'))
        out = b'{"id":"ready","ok":true,"pong":true}'
        c.sendall(len(out).to_bytes(4, 'big') + out)
    c.close()
PY
fi
mkdir -p "$WORK/code"
printf 'def handler(event, context):\n    return {"ok": True}\n' >"$WORK/code/handler.py"
cat >"$WORK/cfg.json" <<JSON
{"run_dir": "$WORK/run", "cgroup_root": "$CG", "runtimes_dir": "$RUNTIMES",
 "python": "/usr/bin/python3", "uid_base": 300000, "uid_count": 1000}
JSON
echo "machine: $(nproc) vCPU, kernel $(uname -r); $(uptime)"
declare -A OUT
for m in $MODES; do
    echo "--- $m path"
    if [[ $m == zygote ]]; then
        OUT[$m]=$("$BIN" -c "$WORK/cfg.json" --code "$WORK/code" -n "$N" --keep 10 --zygote --freeze-n 0)
    else
        OUT[$m]=$("$BIN" -c "$WORK/cfg.json" --code "$WORK/code" -n "$N" --keep 10)
    fi
    echo "${OUT[$m]}"
done
if [[ -n ${OUT[fresh]:-} && -n ${OUT[zygote]:-} ]]; then
    # field N of the line starting with $2 in mode $1's output
    fig() { awk -v k="$2" -v f="$3" 'index($0, k) == 1 { print $f }' <<<"${OUT[$1]}"; }
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
    echo "--- fresh vs zygote (ratio = zygote / fresh); $(uptime)"
    printf '%-34s %10s %10s %7s\n' "" fresh zygote ratio
    row() {
        local f z
        f=$(fig fresh "$2" "$3"); z=$(fig zygote "$2" "$3")
        printf '%-34s %10s %10s %7s\n' "$1" "$f" "$z" "$(ratio "$z" "$f")"
    }
    row "create-to-ready p50 ms" "create-to-ready" 4
    row "create-to-ready p99 ms" "create-to-ready" 8
    row "runtime on-CPU at ready p50 ms" "runtime process at ready" 8
    row "idle sandbox RSS kB" "memory per sandbox" 7
    row "idle sandbox PSS kB" "memory per sandbox" 10
    awk 'index($0, "zygote process:") == 1' <<<"${OUT[zygote]}"
fi
# reference: a bare interpreter start on this machine right now
py_ms() {
    local t0 t1 i all=()
    for i in $(seq 1 20); do
        t0=$(date +%s%N); /usr/bin/python3 -I -S -c pass; t1=$(date +%s%N)
        all+=($(( (t1 - t0) / 1000 )))
    done
    printf '%s\n' "${all[@]}" | sort -n | sed -n 10p
}
echo "reference: bare '/usr/bin/python3 -I -S -c pass' p50 $(( $(py_ms) / 1000 )) ms; load average $(cut -d' ' -f1-3 /proc/loadavg)"
