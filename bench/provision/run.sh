#!/usr/bin/env bash
# bench/provision: request-to-idle-listed latency of a new sandbox of a
# cached revision (p50/p99 over 200, one at a time), and sandboxes created
# per second with create_concurrency 8 (200 requests queued at once).
# Targets on the 2-vCPU machine: p50 <= 45 ms, >= 60 sandboxes/s.
#   bench/provision/run.sh [--zygote=function|shared|off]   (default function,
#   the provisioner's default)
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -x objs/faas-provisioner && -x objs/faas-sandbox ]] || {
    echo "bench/provision: build first (./build.sh build)" >&2; exit 2; }
exec perl bench/provision/bench.pl "$@"
