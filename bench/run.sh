#!/usr/bin/env bash
# Runs the benchmarks (all, or the ones named: sandbox agent provision gateway
# warm ramp cold density) and keeps each one's output in
# bench/results/<name>.txt. Benchmarks print figures; they assert nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
names=("$@")
if ((${#names[@]} == 0)); then
    for d in bench/*/; do
        d=${d%/}; d=${d#bench/}
        [[ -x bench/$d/run.sh ]] && names+=("$d")
    done
fi
for n in "${names[@]}"; do
    if [[ ! -x bench/$n/run.sh ]]; then
        echo "bench: no benchmark named $n" >&2
        exit 2
    fi
    echo "=== bench/$n ($(date -u +%FT%TZ), $(nproc) vCPUs, $(uname -r))"
    out=bench/results/$n.txt
    # RUNTIME=nodejs bench/run.sh cold: beside the python3 figures
    [[ $n == cold && ${RUNTIME:-python3} == nodejs ]] && out=bench/results/cold-nodejs.txt
    bench/$n/run.sh 2>&1 | tee "$out"
done
