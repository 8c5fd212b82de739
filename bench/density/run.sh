#!/usr/bin/env bash
# bench/density/run.sh: how many idle Python sandboxes fit on a host.
#
# Deploys one function (MEMORY_MB limit, max concurrency N) whose handler
# sleeps HOLD seconds, and sends N (500) concurrent first requests: each
# finds no idle sandbox and asks the provisioner for one, so N sandboxes
# are created through the real path (gateway -> queue -> provisioner). Once
# they are all idle (frozen, listed in Redis), reports:
#   - PSS (and RSS) of every process of every sandbox, from
#     /proc/<pid>/smaps_rollup: total and per sandbox
#   - the memory cgroups' usage (charged pages, page cache and kernel memory)
#   - the host's MemFree / MemAvailable before and after, and the drop per
#     sandbox (everything: processes, tmpfs, page tables, kernel objects)
#   - how many would fit in 24 GiB, by PSS and by the MemAvailable drop
#   - the PSS, RSS and memory cgroup usage of an idle stem cell (the pool's
#     cost per cell, docs/DESIGN.md section 6), once the provisioner built one
# Asserts nothing. Writes bench/results/density.csv (one line per sandbox).
#
#   bench/density/run.sh              N=100 bench/density/run.sh
#
# Environment: N (500), MEMORY_MB (32; the provisioner's memory budget in
# conf/provisioner.json is 16384 MB, so N * MEMORY_MB must stay below it),
# HOLD (2 s), SETTLE (3 s to wait after the last sandbox is listed).
set -euo pipefail
. "$(dirname "$0")/../loadgen/lib.sh"
N=${N:-500}
MEMORY_MB=${MEMORY_MB:-32}
HOLD=${HOLD:-2}
SETTLE=${SETTLE:-3}

bench_init density
echo "bench/density: $N idle Python sandboxes (memory limit $MEMORY_MB MB each), created by $N concurrent first requests"
bench_machine
platform_start
mkdir -p "$BW/fn"
cat >"$BW/fn/handler.py" <<PY
import time
def handler(event, context):
    time.sleep($HOLD)
    return {"statusCode": 200, "body": "ok"}
PY
deploy_fn dense "$BW/fn" python3 handler.handler --max-concurrency "$N" --memory "$MEMORY_MB" --timeout 60000
meminfo() { awk -v k="$1" '$1 == k":" {print $2}' /proc/meminfo; }
free_before=$(meminfo MemFree); avail_before=$(meminfo MemAvailable)
echo "before: MemFree $((free_before / 1024)) MiB, MemAvailable $((avail_before / 1024)) MiB (platform running, no sandbox)"
t0=$(date +%s.%N)
lg -c "$N" -d 1 --drain 120 --timeout 120 -t 2 --json "$BW/burst.json" --label "$N first requests" \
    "http://127.0.0.1:$P_HTTP/fn/dense" | sed 's/^/  /'
for _ in $(seq 600); do
    idle=$(rcli llen 'faas:idle:{dense@1}')
    count=$(rcli get 'faas:count:{dense@1}')
    ((idle >= N || (idle == count && idle > 0))) && break
    sleep 0.5
done
echo "sandboxes: $idle idle, faas:count $count, after $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"
sleep "$SETTLE"
free_after=$(meminfo MemFree); avail_after=$(meminfo MemAvailable)
echo "after:  MemFree $((free_after / 1024)) MiB, MemAvailable $((avail_after / 1024)) MiB"
bench_load

CSV=$RESULTS/density.csv
rcli lrange 'faas:idle:{dense@1}' 0 -1 | cut -d'|' -f1 >"$BW/ids.txt"
/usr/bin/python3 - "$BW/ids.txt" "$BCG" "$CSV" "$avail_before" "$avail_after" "$free_before" "$free_after" <<'PY'
import sys, os
ids_file, cg, csv = sys.argv[1:4]
avail_b, avail_a, free_b, free_a = map(int, sys.argv[4:8])
ids = [l.strip() for l in open(ids_file) if l.strip()]
def rollup(pid):
    d = {}
    try:
        for l in open("/proc/%s/smaps_rollup" % pid):
            f = l.split()
            if len(f) >= 3 and f[2] == "kB":
                d[f[0].rstrip(":")] = int(f[1])
    except OSError:
        pass
    return d
def cgread(h, sid, name):
    try:
        return int(open("/sys/fs/cgroup/%s/%s/%s/%s" % (h, cg, sid, name)).read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
rows, tot_pss, tot_rss, tot_cg, nproc, states = [], 0, 0, 0, 0, {}
for sid in ids:
    try:
        pids = open("/sys/fs/cgroup/pids/%s/%s/cgroup.procs" % (cg, sid)).read().split()
    except OSError:
        pids = []
    pss = rss = 0
    for p in pids:
        r = rollup(p)
        pss += r.get("Pss", 0)
        rss += r.get("Rss", 0)
    usage = cgread("memory", sid, "memory.usage_in_bytes")
    try:
        st = open("/sys/fs/cgroup/freezer/%s/%s/freezer.state" % (cg, sid)).read().strip()
    except OSError:
        st = "?"
    states[st] = states.get(st, 0) + 1
    rows.append((sid, len(pids), pss, rss, usage // 1024, st))
    tot_pss += pss; tot_rss += rss; tot_cg += usage // 1024; nproc += len(pids)
n = len(rows)
with open(csv, "w") as f:
    f.write("sandbox,processes,pss_kib,rss_kib,memcg_usage_kib,freezer\n")
    for r in rows:
        f.write("%s,%d,%d,%d,%d,%s\n" % r)
if not n:
    print("no sandbox found"); sys.exit(0)
gib24 = 24 * 1024 * 1024  # KiB
drop = avail_b - avail_a
print("%d sandboxes, %d processes, freezer states: %s" % (n, nproc, states))
print("PSS (smaps_rollup): total %.1f MiB, per sandbox %.2f MiB   (RSS %.2f MiB per sandbox: shared pages counted in each)" % (
    tot_pss / 1024, tot_pss / n / 1024, tot_rss / n / 1024))
print("memory cgroups (usage_in_bytes, incl. page cache + kernel): total %.1f MiB, per sandbox %.2f MiB" % (tot_cg / 1024, tot_cg / n / 1024))
print("host: MemAvailable dropped %.1f MiB = %.2f MiB per sandbox; MemFree dropped %.1f MiB" % (drop / 1024, drop / n / 1024, (free_b - free_a) / 1024))
print("fit in 24 GiB: %d by PSS, %d by the MemAvailable drop (everything the host spends per sandbox)" % (
    gib24 // max(1, tot_pss // n), gib24 // max(1, drop // n) if drop > 0 else -1))
PY

# An idle stem cell (docs/DESIGN.md section 6): the function's runtime and
# memory size are now in use, so the provisioner builds one once no request
# is in progress; its memory is what the pool costs per cell.
for _ in $(seq 40); do
    grep -l '"stem":true' "$BW"/var/sbx/sbx/s-*/meta.json 2>/dev/null \
        | xargs -r grep -L '"rid"' >"$BW/stems.txt" || true
    [[ -s $BW/stems.txt ]] && break
    sleep 0.5
done
/usr/bin/python3 - "$BW/stems.txt" "$BCG" <<'PY'
import sys, os
cg = sys.argv[2]
cells = [os.path.basename(os.path.dirname(l.strip())) for l in open(sys.argv[1]) if l.strip()]
if not cells:
    print("idle stem cells: none found (stem_cells off?)")
    sys.exit(0)
for sid in cells:
    pss = rss = 0
    try:
        pids = open("/sys/fs/cgroup/pids/%s/%s/cgroup.procs" % (cg, sid)).read().split()
    except OSError:
        pids = []
    for p in pids:
        try:
            for l in open("/proc/%s/smaps_rollup" % p):
                f = l.split()
                if f[0] == "Pss:":
                    pss += int(f[1])
                elif f[0] == "Rss:":
                    rss += int(f[1])
        except OSError:
            pass
    try:
        usage = int(open("/sys/fs/cgroup/memory/%s/%s/memory.usage_in_bytes" % (cg, sid)).read())
    except (OSError, ValueError):
        usage = 0
    print("idle stem cell %s: %d processes, PSS %.2f MiB, RSS %.2f MiB, memory cgroup %.2f MiB" % (
        sid, len(pids), pss / 1024, rss / 1024, usage / 1048576))
PY
http_statuses dense
nginx_errors
