#!/usr/bin/env bash
# Benchmark discovery of a plan with 3 remote sections: cold (empty git
# cache: ls-remote, shallow fetch and checkout of each repository, in
# parallel) against cached (the same plan again), and cached with the
# server stopped (offline).
#
# usage: tests/bench/remote-discover.sh [ATEX_BINARY]
#   ATEX_BINARY  default: target/release/atex if built, else target/debug/atex
# Env: TESTS per repository (default 300), COMMITS of history each (default
# 20), RUNS of each measurement (default 5; the median wall time is
# printed), TMT=path/to/tmt to time `tmt run discover` on the same plan.
#
# The repositories are served by `git daemon` on 127.0.0.1 (a free port),
# the sections use the git protocol with a tag, a branch and a commit ref.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
atex=${1:-}
if [ -z "$atex" ]; then
    atex=$target/release/atex
    [ -x "$atex" ] || atex=$target/debug/atex
fi
[ -x "$atex" ] || { echo "no atex binary at $atex (cargo build -p atex)" >&2; exit 2; }
tests=${TESTS:-300}
commits=${COMMITS:-20}
runs=${RUNS:-5}

work=$(mktemp -d /tmp/atex-remote-bench.XXXXXX)
daemon_pid=
cleanup() {
    [ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

g() { git -c user.name=bench -c user.email=bench@atex.invalid -c init.defaultBranch=main "$@"; }

make_repo() { # NAME
    local dir=$work/served/$1 i c
    mkdir -p "$dir/.fmf"
    echo 1 > "$dir/.fmf/version"
    g -C "$dir" init -q
    for ((c = 1; c <= commits; c++)); do
        for ((i = 1; i <= tests; i++)); do
            mkdir -p "$dir/tests/t$i"
            printf 'summary: test %s of %s\ntest: ./run.sh\nduration: 5m\ntag: [c%s]\n' "$i" "$1" "$c" \
                > "$dir/tests/t$i/main.fmf"
            printf '#!/bin/bash\n# revision %s\necho %s %s\n' "$c" "$1" "$i" > "$dir/tests/t$i/run.sh"
        done
        g -C "$dir" add -A
        g -C "$dir" commit -q -m "revision $c"
    done
    g -C "$dir" tag -a v1 -m v1
}

echo "generating 3 repositories of $tests tests, $commits commits each..." >&2
for r in alpha beta gamma; do make_repo "$r"; done
gamma_commit=$(git -C "$work/served/gamma" rev-parse HEAD)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$(git --exec-path)/git-daemon" --reuseaddr --export-all --listen=127.0.0.1 --port="$port" \
    --base-path="$work/served" "$work/served" >/dev/null 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done

plan=$work/plan
mkdir -p "$plan/.fmf"
echo 1 > "$plan/.fmf/version"
cat > "$plan/plan.fmf" <<YAML
discover:
  - name: alpha
    how: fmf
    url: git://127.0.0.1:$port/alpha
    ref: v1
  - name: beta
    how: fmf
    url: git://127.0.0.1:$port/beta
    ref: main
  - name: gamma
    how: fmf
    url: git://127.0.0.1:$port/gamma
    ref: $gamma_commit
execute:
    how: tmt
YAML

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
discover() { # CACHE
    XDG_CACHE_HOME=$1 "$atex" discover "$plan" --plan /plan > "$work/out.txt"
}

cold=()
for ((r = 1; r <= runs; r++)); do
    rm -rf "$work/cache"
    t0=$(now); discover "$work/cache"; t1=$(now)
    cold+=("$(echo "$t1 - $t0" | bc)")
done
count=$(wc -l < "$work/out.txt")
warm=()
for ((r = 1; r <= runs; r++)); do
    t0=$(now); discover "$work/cache"; t1=$(now)
    warm+=("$(echo "$t1 - $t0" | bc)")
done
kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=
offline=()
for ((r = 1; r <= runs; r++)); do
    t0=$(now); discover "$work/cache" 2>"$work/err.txt"; t1=$(now)
    offline+=("$(echo "$t1 - $t0" | bc)")
done
[ "$(wc -l < "$work/out.txt")" = "$count" ] || { echo "offline discovery lost tests" >&2; exit 1; }

printf 'atex %s: %s tests from 3 remote sections (%s tests x %s commits per repository)\n' \
    "$("$atex" --version 2>/dev/null | head -1)" "$count" "$tests" "$commits"
printf '  cold (empty cache)        median %.3f s of %s\n' "$(printf '%s\n' "${cold[@]}" | median)" "$runs"
printf '  cached (server up)        median %.3f s of %s\n' "$(printf '%s\n' "${warm[@]}" | median)" "$runs"
printf '  cached (server stopped)   median %.3f s of %s\n' "$(printf '%s\n' "${offline[@]}" | median)" "$runs"
du -sh "$work/cache" | awk '{print "  cache size " $1}'

if [ -n "${TMT:-}" ]; then
    "$(git --exec-path)/git-daemon" --reuseaddr --export-all --listen=127.0.0.1 --port="$port" \
        --base-path="$work/served" "$work/served" >/dev/null 2>&1 &
    daemon_pid=$!
    sleep 0.5
    t0=$(now)
    (cd "$plan" && "$TMT" run --scratch -i "$work/tmt-run" discover plan --name '^/plan$' >/dev/null 2>&1)
    t1=$(now)
    printf '  tmt run discover          %.3f s (one run; tmt clones every time)\n' "$(echo "$t1 - $t0" | bc)"
fi
