#!/usr/bin/env bash
# How a run scales with the number of jobs: no-op tests on the local
# provisioner (8 workers), on one platform and on three (three local
# provisioners with different `platform` options, so every test runs three
# times). For each size it prints the wall time, atex's own CPU time (user
# + system of the atex process and its in-process plugins, not of the
# tests it starts; from ATEX_SELF_USAGE), its peak RSS, and the slope
# between consecutive sizes: memory per job and CPU per job.
#
#   tests/bench/scale.sh [SIZES...]        default: 2000 10000 50000
#
# PLATFORMS="1 3" (default) chooses the runs; ATEX=path uses another binary
# (default: target/release/atex, built here). Targets: memory slope
# <= 2 KB per job, time linear. Each test directory inherits shared
# metadata (summary, require, tags, environment, contact) from the root, as
# in a real suite.
#
# Measured with a release build on the 2-core machine this was developed
# on, at load average 10-15 (the run itself), after packing the tests as
# they are discovered, streaming summary.json and checking packages once
# per system (numbers before those changes: 10.6-11.1 KB per job at 1,000
# to 6,000 jobs on one platform, 1.0-1.5 ms of atex CPU per job):
#   platforms jobs   wall ms/job  atex cpu ms/job  peak MB  KB/job
#   1          2000  13.1         0.92              19.8     -
#   1         10000  14.3         0.92              37.4     2.30
#   1         50000  17.1         0.95             113.5     2.00
#   3          6000  14.9         1.14              24.0     -
#   3         30000  14.9         1.03              50.9     1.17
#   3        150000  17.9         1.10             171.3     1.05
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(2000 10000 50000)
platforms=${PLATFORMS:-1 3}
workers=${WORKERS:-8}

if [ -z "${ATEX:-}" ]; then
    cargo build --release --quiet -p atex --bin atex
    cargo build --release --quiet -p atex-local
    ATEX=${CARGO_TARGET_DIR:-$PWD/target}/release/atex
fi

work=$(mktemp -d /tmp/atex-scale-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

generate() { # DIR N
    local dir=$1 n=$2
    mkdir -p "$dir/.fmf" "$dir/tests"
    echo 1 > "$dir/.fmf/version"
    cat > "$dir/main.fmf" <<'YAML'
summary: Generated scale benchmark suite
description: |
    Every test here does nothing; the run measures what atex itself
    spends per test.
contact: [Bench Person <bench@example.com>]
component: [bench]
test: "true"
duration: 5m
require: [bash, coreutils]
tag: [generated, noop]
environment:
    SUITE: scale
    LEVEL: "1"
YAML
    python3 - "$dir/tests" "$n" <<'PY'
import os, sys
base, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(base, f"test-{i:06d}")
    os.mkdir(d)
    with open(os.path.join(d, "main.fmf"), "w") as f:
        f.write(f"summary: No-op test number {i}\ntag+: [group-{i % 10}]\ntier: {i % 3}\n")
PY
}

printf '%-9s %-7s %8s %10s %10s %10s %11s %11s\n' \
    platforms jobs wall_s ms/job cpu_s cpu_ms/job peak_MB KB/job
for np in $platforms; do
    provs=()
    if [ "$np" = 1 ]; then
        provs=(-p "local:max=$workers")
    else
        for i in $(seq 1 "$np"); do provs+=(-p "local:max=$workers,platform=p$i"); done
    fi
    prev_jobs='' prev_kb=''
    for n in "${sizes[@]}"; do
        tree=$work/tree-$n
        [ -d "$tree" ] || generate "$tree" "$n"
        out=$work/results-$np-$n
        t0=$(date +%s.%N)
        code=0
        ATEX_SELF_USAGE=$work/usage.json "$ATEX" run "$tree" "${provs[@]}" \
            --workers "$workers" --results "$out" --history "$work/history-$np-$n.json" \
            > "$work/run.log" 2>&1 || code=$?
        t1=$(date +%s.%N)
        if [ "$code" != 0 ]; then
            echo "atex run exited $code on $n tests x $np platforms:" >&2
            tail -20 "$work/run.log" >&2
            exit 1
        fi
        jobs=$((n * np))
        got=$(wc -l < "$out/results.jsonl")
        [ "$got" = "$jobs" ] || { echo "expected $jobs results, got $got" >&2; exit 1; }
        read -r cpu kb < <(python3 -c 'import json,sys; u=json.load(open(sys.argv[1])); print(u["user_s"]+u["sys_s"], u["maxrss_kb"])' "$work/usage.json")
        slope_kb='-' slope_cpu='-'
        if [ -n "$prev_jobs" ]; then
            slope_kb=$(python3 -c "print(f'{($kb - $prev_kb) * 1024 / 1000 / ($jobs - $prev_jobs):.2f}')")
        fi
        printf '%-9s %-7s %8.1f %10.2f %10.2f %10.3f %11.1f %11s\n' \
            "$np" "$jobs" "$(echo "$t1 - $t0" | bc)" "$(echo "($t1 - $t0) * 1000 / $jobs" | bc -l)" \
            "$cpu" "$(echo "$cpu * 1000 / $jobs" | bc -l)" "$(echo "$kb / 1024" | bc -l)" "$slope_kb"
        prev_jobs=$jobs prev_kb=$kb
        rm -rf "$out"
    done
done
echo "KB/job: peak RSS growth per added job from the previous size (1 KB = 1000 bytes)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
