#!/usr/bin/env bash
# bench/chaos/run.sh: the faults of t/platform/chaos.t, longer and under
# more load, one ledger line each (bench/chaos/chaos.pl). Asserts nothing.
# Environment: PHASE (20: seconds of load before and after each fault),
# CLIENTS (6: closed-loop HTTPS clients).
set -euo pipefail
cd "$(dirname "$0")/../.."
for b in faas-registry faas-provisioner faas-agent faasctl ngx_http_faas_module.so; do
    [[ -e objs/$b ]] || { echo "bench/chaos: build first (./build.sh build)" >&2; exit 2; }
done
exec perl bench/chaos/chaos.pl "$@"
