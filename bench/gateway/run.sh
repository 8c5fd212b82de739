#!/usr/bin/env bash
# bench/gateway/run.sh: the gateway end to end, against nginx + uWSGI and
# nginx `return 200`, in one run (see bench.pl). Prints figures, asserts
# nothing.
#
#   bench/gateway/run.sh                       # 10 s per point
#   DURATION=30 SANDBOXES=16 bench/gateway/run.sh
#
# Settings (environment): DURATION (s per point), SANDBOXES (= uWSGI
# processes, 8), NGINX_WORKERS (2), WRK_THREADS (2), CONNECTIONS ("64,256"),
# PATHS ("faas,faas-aof,uwsgi,return200"; faas-aof: faas with Redis'
# appendonly yes + appendfsync everysec, as conf/redis.conf ships it), REDIS (unix | tcp: how the gateway
# reaches Redis), FREEZER (v1 | v2), SPIN_US (the agent's spin_us),
# PERF_DIR (a perf profile of the bench's own processes per point),
# CPU_MB_PER_VCPU (the sandboxes' CPU ratio, default 1769; 1: no limit);
# METRICS_COST (1: also run the faas path with the gateway's metrics off,
# and print their cost in % of warm throughput; 0: skip);
# MODULE, AGENT, RUNTIMES: another ngx_http_faas_module.so, faas-agent and
# runtimes directory (A/B runs against an older build); MODULE_B: a second
# module measured in the same run, as the point "faas-b" (nginx restarted
# with it between points: the nginx CPU per call of both builds).
# Besides req/s and latency it prints the CPU time per request of each
# component (nginx workers, Redis, faas-agent, the sandboxes' runtimes,
# uWSGI, wrk) from /proc/<pid>/task/*/schedstat: other engineers' load on
# the machine moves req/s a lot, the CPU cost per request much less.
#
# Targets: faas throughput >= 1.5x uWSGI and faas p99 <= 10 ms at 256
# connections.
set -euo pipefail
cd "$(dirname "$0")/../.."
for b in objs/faas-agent objs/faas-sandbox objs/ngx_http_faas_module.so; do
    [[ -e $b ]] || { echo "bench/gateway: $b missing: ./build.sh build" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "bench/gateway: wrk is not installed" >&2; exit 2; }
[[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ]] \
    || { echo "bench/gateway: uwsgi-plugin-python3 is not installed" >&2; exit 2; }
exec perl bench/gateway/bench.pl
