#!/usr/bin/env bash
# bench/gateway/autoscale.sh: the platform left to scale by itself, as users
# run it, against nginx + uWSGI with the same handler, in one run.
#
# For each protocol (HTTP, HTTPS) and each connection count (64, 256):
#   faas-new   a NEW function (deployed just before the point, so no
#              sandbox exists when wrk starts), max_concurrency 64, the
#              gateway's default scale-out policy (faas_scale_patience,
#              docs/DESIGN.md section 10); the whole platform as
#              conf/platform.sh runs it (bench/loadgen/lib.sh)
#   faas       the same function right after, with the sandboxes the
#              policy left (the ratios use this point)
#   uwsgi-N    nginx + uWSGI with as many processes as CPUs (bench/peers)
#   uwsgi-8    the same with 8 processes
# Prints req/s, p50/p99, sandboxes created since the deploy (faas:count:{rid}
# and the provisioner's "idle in" lines), CPU per request by component (from
# /proc/<pid>/task/*/schedstat), faas/uWSGI ratios, p99 at 256 connections
# next to uWSGI's, and the machine's load. Asserts nothing.
#
#   bench/gateway/autoscale.sh
#   DURATION=5 CONNECTIONS=64 PROTOS=http bench/gateway/autoscale.sh
#
# Environment: DURATION (s per point, 10), CONNECTIONS ("64,256"), PROTOS
# ("http https"), MAXC (the function's max_concurrency, 64), WRK_THREADS (2).
# Targets: faas/uWSGI >= 0.9x autoscaled, p99 at 256
# connections no worse than uWSGI's.
set -euo pipefail
. "$(dirname "$0")/../loadgen/lib.sh"
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64,256}
PROTOS=${PROTOS:-http https}
MAXC=${MAXC:-64}
THREADS=${WRK_THREADS:-2}
NCPU=$(nproc)
command -v wrk >/dev/null || { echo "bench/gateway: wrk is not installed" >&2; exit 2; }

bench_init autoscale
trap 'peers_stop' EXIT
echo "bench/gateway/autoscale: $DURATION s per point, connections $CONNECTIONS, $PROTOS, max_concurrency $MAXC, wrk -t$THREADS, uWSGI with $NCPU and 8 processes"
bench_machine
platform_start
mkdir -p "$BW/fn"
cp "$BROOT/bench/peers/handler.py" "$BW/fn/"

# two peers: uWSGI with as many processes as CPUs, and with 8
peers_stop() {
    local rc=$? n
    for n in "$NCPU" 8; do
        "$BROOT/bench/peers/peers.sh" stop "$BW/peers-$n" >/dev/null 2>&1 || true
    done
    set +e
    (exit "$rc")
    bench_cleanup
}
declare -A PEER_HTTP PEER_HTTPS PEER_NGINX PEER_UWSGI
for n in "$NCPU" 8; do
    UWSGI_PROCESSES=$n "$BROOT/bench/peers/peers.sh" start "$BW/peers-$n"
    # shellcheck disable=SC1090
    . "$BW/peers-$n/peers.env"
    PEER_HTTP[$n]=$PEER_HTTP_PORT
    PEER_HTTPS[$n]=$PEER_HTTPS_PORT
    PEER_NGINX[$n]=$NGINX_PID
    PEER_UWSGI[$n]=$UWSGI_PID
done

# The pids of a process and all its descendants (up to 5 levels).
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { pp[$1] = $2 }
        END { in_[root] = 1
              for (k = 0; k < 5; k++) for (p in pp) if (pp[p] in in_) in_[p] = 1
              for (p in in_) if (p in pp) print p }'
}

# The pids in the platform's sandbox cgroups (the sandboxes' runtimes).
sandbox_pids() {
    cat /sys/fs/cgroup/pids/"$BCG"/*/cgroup.procs 2>/dev/null || true
}

# "pid component cpu-ns" lines (ns: all threads) for this point's
# processes; the sandboxes' pids are taken out of the daemons' process trees
# (the provisioner's zygotes fork them). Deltas are taken per pid, each pid
# counted in the component it belongs to at the end, so a sandbox created
# during the run counts from its birth.
COMPONENTS=(nginx redis agent provisioner sandboxes peer-nginx uwsgi)
pid_cpu() { # peer-n
    local n=$1 sbx c p t ns sum
    sbx=$(sandbox_pids | sort -u)
    declare -A pids
    for c in nginx redis agent provisioner; do
        pids[$c]=$(tree_pids "$(cat "$BW/var/run/$c.pid")" | sort -u | comm -23 - <(echo "$sbx"))
    done
    pids[sandboxes]=$sbx
    pids[peer-nginx]=$(tree_pids "${PEER_NGINX[$n]}")
    pids[uwsgi]=$(tree_pids "${PEER_UWSGI[$n]}")
    for c in "${COMPONENTS[@]}"; do
        for p in ${pids[$c]}; do
            sum=0
            for t in /proc/"$p"/task/*/schedstat; do
                [[ -r $t ]] || continue
                read -r ns _ <"$t" 2>/dev/null || continue
                sum=$((sum + ns))
            done
            echo "$p $c $sum"
        done
    done
}

to_ms() { # wrk's "1.23ms" / "850.00us" / "1.20s"
    awk -v v="$1" 'BEGIN { n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000
        printf "%.2f", n }'
}

# point NAME URL PEER PROTO CONNS [FN]: one wrk run; prints its line,
# appends it to $BW/points and its CPU per request to $BW/cpu.
point() {
    local name=$1 url=$2 n=$3 proto=$4 conns=$5 fn=${6:-}
    local before after out rps p50 p99 reqs non2xx errs wrkcpu made count
    before=$(pid_cpu "$n")
    out=$(perl -e 'system @ARGV; my @t = times; printf STDERR "wrk-cpu %.0f\n", ($t[2] + $t[3]) * 1e9' \
          -- wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --latency "$url" 2>&1)
    after=$(pid_cpu "$n")
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$out")
    errs=$(sed -n 's/^ *Socket errors: *//p' <<<"$out")
    wrkcpu=$(sed -n 's/^wrk-cpu //p' <<<"$out")
    made=-; count=-
    if [[ -n $fn ]]; then
        count=$(rcli get "faas:count:{$fn@1}")
        made=$(grep -c "($fn@1) idle in" "$BW/var/log/provisioner.log" 2>/dev/null || true)
    fi
    printf "%-6s %-9s %6d %10.0f %8.2f %8.2f %7s %10s %8d %6s%s\n" "$proto" "$name" "$conns" \
        "${rps:-0}" "$p50" "$p99" "${made:-0}" "${count:-0}" "${non2xx:-0}" \
        "$(cut -d' ' -f1 /proc/loadavg)" "${errs:+  socket errors: $errs}"
    echo "$proto $name $conns ${rps:-0} $p99" >>"$BW/points"
    # CPU per request (us) by component; for faas the peer's processes are
    # idle (and the reverse), so each line keeps only its own path's
    awk -v r="${reqs:-0}" -v w="${wrkcpu:-0}" -v tag="$proto $name $conns" '
        NR == FNR { b[$1] = $3; next }
        { d[$2] += $3 - ($1 in b ? b[$1] : 0) }
        END { printf "%s", tag
              for (i = 1; i <= split("nginx redis agent provisioner sandboxes peer-nginx uwsgi", c, " "); i++)
                  printf " %s", r ? d[c[i]] / r / 1000 : 0
              printf " %s\n", r ? w / r / 1000 : 0 }' <(echo "$before") <(echo "$after") >>"$BW/cpu"
}

echo
printf "%-6s %-9s %6s %10s %8s %8s %7s %10s %8s %6s\n" proto path conns requests/s 'p50 ms' \
    'p99 ms' created faas:count non-2xx load
IFS=, read -r -a CONNS <<<"$CONNECTIONS"
: >"$BW/points"; : >"$BW/cpu"
for proto in $PROTOS; do
    for c in "${CONNS[@]}"; do
        fn=auto-$proto-$c
        deploy_fn "$fn" "$BW/fn" python3 handler.handler --max-concurrency "$MAXC"
        if [[ $proto == https ]]; then base=https://127.0.0.1:$P_HTTPS; else base=http://127.0.0.1:$P_HTTP; fi
        point faas-new "$base/fn/$fn" "$NCPU" "$proto" "$c" "$fn"
        point faas "$base/fn/$fn" "$NCPU" "$proto" "$c" "$fn"
        for n in "$NCPU" 8; do
            if [[ $proto == https ]]; then port=${PEER_HTTPS[$n]}; else port=${PEER_HTTP[$n]}; fi
            point "uwsgi-$n" "$proto://127.0.0.1:$port/wsgi" "$n" "$proto" "$c"
        done
    done
done

echo
echo "CPU per request (us, all threads of each component's processes; faas: platform nginx .. sandboxes; uwsgi-N: peer nginx + uWSGI)"
printf "%-6s %-9s %6s %8s %8s %8s %8s %9s %8s %8s %8s %8s\n" proto path conns nginx redis agent \
    provisnr sandboxes p-nginx uwsgi wrk total
awk '{ if ($2 ~ /^faas/) { $9 = 0; $10 = 0 } else { for (i = 4; i <= 8; i++) $i = 0 }
       t = 0; for (i = 4; i <= 11; i++) t += $i
       printf "%-6s %-9s %6d %8.1f %8.1f %8.1f %8.1f %9.1f %8.1f %8.1f %8.1f %8.1f\n",
           $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, t }' "$BW/cpu"

echo
echo "ratios (faas / uWSGI, same protocol and connections)"
awk -v ncpu="$NCPU" '
    { rps[$1 " " $2 " " $3] = $4; p99[$1 " " $2 " " $3] = $5; if (!seen[$1 " " $3]++) k[++n] = $1 " " $3 }
    END { for (i = 1; i <= n; i++) {
              split(k[i], a, " "); f = a[1] " faas " a[2]
              u1 = a[1] " uwsgi-" ncpu " " a[2]; u8 = a[1] " uwsgi-8 " a[2]
              printf "  %-5s %3d conns: faas/uwsgi-%d %.2fx, faas/uwsgi-8 %.2fx; p99 faas %.2f ms, uwsgi-%d %.2f ms, uwsgi-8 %.2f ms\n",
                  a[1], a[2], ncpu, rps[u1] ? rps[f] / rps[u1] : 0, rps[u8] ? rps[f] / rps[u8] : 0,
                  p99[f], ncpu, p99[u1], p99[u8] } }' "$BW/points"
echo "targets: faas/uWSGI >= 0.9x autoscaled; p99 at 256 connections <= uWSGI's (same run)"
bench_load
nginx_errors || true
