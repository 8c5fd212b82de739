#!/usr/bin/env bash
# Sandbox cold start and freeze/thaw cost. Builds nothing: run
# ./build.sh build first. Prints figures, asserts nothing.
#   bench/sandbox/run.sh [N]      (default 200 sandboxes)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
N=${1:-200}
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

RUNTIMES=$ROOT/provisioner/runtimes
if [[ -f $RUNTIMES/python/bootstrap.py ]]; then
    echo "runtime: the real python runtime ($RUNTIMES/python/bootstrap.py)"
else
    echo "runtime: provisioner/runtimes/python missing: using a minimal stand-in"
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
echo "machine: $(nproc) vCPU, kernel $(uname -r)"
"$BIN" -c "$WORK/cfg.json" --code "$WORK/code" -n "$N"
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
