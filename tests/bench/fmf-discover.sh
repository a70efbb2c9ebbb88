#!/usr/bin/env bash
# Benchmark FMF discovery: `atex discover` against python fmf 1.7.0 on
# generated trees of 1,000 and 10,000 tests (each test its own directory
# with main.fmf; a root main.fmf with shared keys and an adjust rule).
#
# usage: tests/bench/fmf-discover.sh [ATEX_BINARY] [SIZES...]
#   ATEX_BINARY  default: target/release/atex (build with
#                `cargo build --release -p atex`)
#   SIZES        default: 1000 10000
# atex runs RUNS times (default 5; the median wall time is printed), python
# fmf once. Python fmf is measured when `python3 -c 'import fmf'` works
# (`pip install fmf==1.7.0`); set NO_PYTHON=1 to skip it.
# Targets (2 cores): 10,000 tests in < 0.35 s wall and < 30 MB peak RSS.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
atex=${1:-${CARGO_TARGET_DIR:-$repo/target}/release/atex}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000)
runs=${RUNS:-5}
[ -x "$atex" ] || { echo "no atex binary at $atex (cargo build --release -p atex)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is needed (apt-get install time)" >&2; exit 2; }

work=$(mktemp -d /tmp/atex-fmf-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

generate() { # DIR N
    local dir=$1 n=$2
    mkdir -p "$dir/.fmf" "$dir/tests"
    echo 1 > "$dir/.fmf/version"
    cat > "$dir/main.fmf" <<'YAML'
summary: Generated benchmark suite
duration: 10m
require: [bash, coreutils]
tag: [generated]
environment:
    SUITE: bench
adjust:
  - when: distro == fedora
    tag+: [fedora]
    environment+:
        DISTRO: fedora
  - when: arch != x86_64
    enabled: false
YAML
    python3 - "$dir/tests" "$n" <<'PY'
import os, sys
base, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(base, f"test-{i:05d}")
    os.mkdir(d)
    with open(os.path.join(d, "main.fmf"), "w") as f:
        f.write(f"summary: Test number {i}\ntest: ./test.sh {i}\ntag+: [group-{i % 10}]\n"
                f"tier: {i % 3}\nduration: {1 + i % 5}m\n")
PY
}

measure() { # LABEL CMD...  (RUNS times; prints the median wall time and the largest peak RSS)
    local label=$1; shift
    local out="$work/out" err="$work/time" walls=() rss_max=0 count wall rss
    for _ in $(seq "$runs"); do
        /usr/bin/time -v "$@" > "$out" 2> "$err"
        wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$err")
        # m:ss.cc to seconds
        walls+=("$(echo "$wall" | awk -F: '{ printf "%.2f", $1 * 60 + $2 }')")
        rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$err")
        [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    done
    if [ "$(head -c1 "$out")" = "{" ]; then count=$(grep -c '"source_dir"' "$out" || true); else count=$(wc -l < "$out"); fi
    local median
    median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    printf '%-14s %-6s wall %5s s (median of %s: %s)  peak RSS %6.1f MB  (%s tests)\n' \
        "$label" "$n" "$median" "${#walls[@]}" "${walls[*]}" "$(echo "$rss_max / 1024" | bc -l)" "$count"
}

python_discover='
import sys, fmf
tree = fmf.Tree(sys.argv[1])
tree.adjust(fmf.Context(distro="fedora-40", arch="x86_64"))
for node in tree.prune():
    d = node.data
    if "test" in d and d.get("enabled", True) and not d.get("manual") and not d.get("story"):
        print(node.name)
'

have_python=0
if [ -z "${NO_PYTHON:-}" ] && python3 -c 'import fmf' 2>/dev/null; then have_python=1; fi

for n in "${sizes[@]}"; do
    tree="$work/tree-$n"
    generate "$tree" "$n"
    # Warm the page cache the same way for both.
    cat "$tree"/tests/*/main.fmf > /dev/null
    measure "atex" "$atex" discover "$tree" -c distro=fedora-40 -c arch=x86_64
    measure "atex --json" "$atex" discover "$tree" -c distro=fedora-40 -c arch=x86_64 --json
    if [ $have_python = 1 ]; then
        runs=1 measure "python fmf" python3 -c "$python_discover" "$tree"
    fi
done
