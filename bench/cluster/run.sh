#!/usr/bin/env bash
# bench/cluster/run.sh: the cluster on one machine (t/lib/Faas/Cluster.pm):
# throughput with 1, 2 and 3 worker hosts (sandboxes and calls per host),
# then a ledger per fault (a worker host, a gateway, the Redis master
# killed under load): requests, failed, seconds to recover, records missing.
# Asserts nothing. Environment: SECONDS_PER_PHASE (20), CONCURRENCY (8).
set -euo pipefail
cd "$(dirname "$0")/../.."
for b in faas-provisioner faas-agent faas-registry ngx_http_faas_module.so; do
    [[ -e objs/$b ]] || { echo "bench/cluster: build first (./build.sh build)" >&2; exit 2; }
done
exec perl bench/cluster/bench.pl "$@"
