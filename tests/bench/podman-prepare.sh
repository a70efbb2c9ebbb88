#!/usr/bin/env bash
# What `prepare` saves: a suite of N tests (default 20) that each require
# the same 3 packages, run on 4 podman containers
#   1. without prepare: each container installs the packages (apt-get
#      update + install) before its first test,
#   2. with prepare=suite and no cached image: one build of the packages
#      the tests require, then every container starts with them present,
#   3. with prepare again: the cached image is reused (no build).
# Prints the wall time of each run and the prepared image's id before and
# after the third run.
#
#   tests/bench/podman-prepare.sh [N]
#
# Needs network access to the Debian mirror the test image uses. Removes
# the prepared images of the test image (label atex.base) before run 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/tests/containers.conf}
image=localhost/atex-test:bookworm
packages="tree jq file"

tests/images/build.sh base
cargo build --quiet -p atex --bin atex
cargo build --quiet -p atex-podman --lib
atex=$PWD/target/debug/atex

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
suite=$work/suite
mkdir -p "$suite/.fmf"
echo 1 >"$suite/.fmf/version"
{
    echo "require: [${packages// /, }]"
    echo "duration: 5m"
    echo "test: command -v tree && command -v jq && file --version"
    for i in $(seq -w 1 "$n"); do
        echo "/t$i: {}"
    done
} >"$suite/main.fmf"

run() { # NAME EXTRA_OPTIONS
    local start end code
    start=$(date +%s.%N)
    set +e
    "$atex" run "$suite" -p "podman:image=$image,max=4$2" --workers 4 \
        --results "$work/$1" >"$work/$1.log" 2>&1
    code=$?
    set -e
    end=$(date +%s.%N)
    if [ "$code" -ne 0 ]; then
        echo "$1: atex run exited with $code; last lines:" >&2
        tail -20 "$work/$1.log" >&2
        exit 1
    fi
    awk -v n="$1" -v s="$start" -v e="$end" 'BEGIN { printf "%-28s %6.1f s\n", n, e - s }'
}

prepared() {
    podman images -q --no-trunc --filter label=atex.prepared \
        --filter "label=atex.base=$image"
}

echo "== $n tests requiring [$packages] on 4 containers"
run without-prepare ""
ids=$(prepared)
[ -z "$ids" ] || podman rmi $ids >/dev/null
run prepare-build ",prepare=suite"
first=$(prepared)
run prepare-cached ",prepare=suite"
second=$(prepared)
echo "prepared image: ${first#sha256:} (after build), ${second#sha256:} (after the cached run)"
[ "$first" = "$second" ] || { echo "the cached run built a new image" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
