#!/usr/bin/env bash
# Where the host's CPU goes per test: N no-op tests (each requiring two
# installed packages, as a suite that inherits `require` does) run on the
# local provisioner with 8 workers under `perf record`, which follows atex
# and every process it starts. Prints, per test:
#   - CPU of atex itself (ATEX_SELF_USAGE) and of the whole process tree
#     (perf stat's task-clock: atex, the agent shells, the tests, ...);
#   - that CPU split by process name (perf samples);
#   - the programs executed (exec events), counted per test;
#   - atex's own hottest functions (perf report, self time).
#
#   tests/bench/per-test-cpu.sh [N]          default N: 500
#
# ATEX=path uses another binary (default: target/release/atex, built here).
# Needs perf (Debian: linux-perf). Writes nothing outside a temporary
# directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-500}
workers=${WORKERS:-8}
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 1; }

if [ -z "${ATEX:-}" ]; then
    cargo build --release --quiet -p atex --bin atex
    cargo build --release --quiet -p atex-local
    ATEX=${CARGO_TARGET_DIR:-$PWD/target}/release/atex
fi

work=$(mktemp -d /tmp/atex-cpu-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree=$work/tree
mkdir -p "$tree/.fmf" "$tree/tests"
echo 1 > "$tree/.fmf/version"
cat > "$tree/main.fmf" <<'YAML'
summary: Generated no-op suite
test: "true"
duration: 5m
require: [bash, coreutils]
YAML
for i in $(seq -w 1 "$n"); do
    mkdir "$tree/tests/t$i"
    echo "summary: no-op $i" > "$tree/tests/t$i/main.fmf"
done

run() { # OUT-DIR, then the command prefix
    local out=$1; shift
    ATEX_SELF_USAGE=$work/usage.json "$@" "$ATEX" run "$tree" -p "local:max=$workers" \
        --workers "$workers" --results "$out" --history "$work/history.json" -q \
        > "$work/run.log" 2>&1 || { tail -20 "$work/run.log" >&2; exit 1; }
    local got
    got=$(wc -l < "$out/results.jsonl")
    [ "$got" = "$n" ] || { echo "expected $n results, got $got" >&2; exit 1; }
}

# 1. CPU totals, without sampling (first: can perf count here at all).
perf stat -x, -e task-clock -o "$work/stat.csv" -- true ||
    { echo "perf cannot count here (kernel.perf_event_paranoid?)" >&2; exit 1; }
t0=$(date +%s.%N)
run "$work/r1" perf stat -x, -e task-clock -o "$work/stat.csv" --
t1=$(date +%s.%N)
tree_ms=$(awk -F, '/task-clock/ {print $1}' "$work/stat.csv")
self_ms=$(python3 -c 'import json,sys; u=json.load(open(sys.argv[1])); print((u["user_s"]+u["sys_s"])*1000)' "$work/usage.json")
echo "== $n no-op tests, local provisioner, $workers workers"
printf 'wall            %8.2f ms/test\n' "$(echo "($t1 - $t0) * 1000 / $n" | bc -l)"
printf 'atex itself     %8.3f ms CPU/test\n' "$(echo "$self_ms / $n" | bc -l)"
printf 'whole tree      %8.3f ms CPU/test (atex + agents + wrappers + tests)\n' "$(echo "$tree_ms / $n" | bc -l)"

# 2. Samples of the whole tree, with exec events.
run "$work/r2" perf record -q -F 2000 -g -o "$work/perf.data" --
echo "== CPU by process name (share of samples; ms/test from the whole tree's CPU)"
perf report -i "$work/perf.data" --no-children --sort comm --stdio -q 2>/dev/null |
    awk -v total="$tree_ms" -v n="$n" 'NF >= 2 && $1 ~ /%$/ {
        p = $1; sub(/%/, "", p); name = $2
        if (p + 0 >= 0.5) printf "  %-22s %6.1f%%  %7.3f ms/test\n", name, p, p / 100 * total / n }'
echo "== programs executed per test"
perf script -i "$work/perf.data" --show-task-events -F comm,pid 2>/dev/null |
    awk '/PERF_RECORD_COMM exec/ { name = $NF; sub(/:.*/, "", name); count[$(NF)]++ }
         END { for (c in count) print count[c], c }' |
    sed -E 's/ ([^ ]*):[0-9]+\/[0-9]+$/ \1/' |
    awk -v n="$n" '{ c[$2] += $1; t += $1 } END {
        for (k in c) if (c[k] / n >= 0.05) printf "  %-22s %6.2f\n", k, c[k] / n
        printf "  %-22s %6.2f\n", "(all)", t / n }' | sort -k2 -rn
echo "== atex's own hottest functions (self time, share of atex's samples; all its threads)"
comms=$(perf report -i "$work/perf.data" --no-children --sort comm --stdio -q 2>/dev/null |
    awk 'NF >= 2 && $2 ~ /^atex/ { print $2 }' | paste -sd,)
perf report -i "$work/perf.data" --no-children --comms "$comms" --percentage relative \
    --sort dso,sym --stdio -q 2>/dev/null |
    awk 'NF >= 2 && $1 ~ /%$/' | head -25 | cut -c1-150 | sed 's/^/  /'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
