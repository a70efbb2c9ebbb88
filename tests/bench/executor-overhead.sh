#!/usr/bin/env bash
# Per-test overhead of the executor, side by side with upstream atex 1.2:
# 100 tests that do nothing, run one after another on one local remote and
# on one podman container. Prints milliseconds per test for each.
#
#   tests/bench/executor-overhead.sh [N]
#
# Needs python3.12 (upstream atex requires it; pyenv's is found too), rsync
# and python3 in upstream's container image (upstream needs both on the
# system under test; atex needs neither). The upstream image is built here
# once and cached as localhost/atex-bench-upstream:bookworm-python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-100}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/tests/containers.conf}

command -v rsync >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null
tests/images/build.sh base

py=
for c in "$(command -v python3.12 || true)" "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    # pyenv's shim exists even where it cannot run 3.12: try each.
    if [ -n "$c" ] && [ -x "$c" ] && "$c" -c pass 2>/dev/null; then py=$c; break; fi
done
[ -n "$py" ] || { echo "python3.12 not found (upstream atex 1.2 needs it)" >&2; exit 1; }
venv=${TMPDIR:-/tmp}/atex-bench-upstream-venv
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -c 'import atex' 2>/dev/null || "$venv/bin/pip" install -q 'atex==1.2'

image=localhost/atex-bench-upstream:bookworm-python3
if ! podman image exists "$image"; then
    sources=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && grep -q . "$f" && sources+=("$f")
    done
    tmp=$(mktemp -d)
    mmdebstrap --quiet --variant=minbase --include=bash,python3,rsync bookworm "$tmp/img.tar" "${sources[@]}"
    podman import --quiet --change 'CMD ["sleep","infinity"]' "$tmp/img.tar" "$image" >/dev/null
    rm -rf "$tmp"
fi

cargo build --release --quiet -p atex --example executor-overhead
bin=target/release/examples/executor-overhead

echo "== local host"
"$bin" local "$n"
"$venv/bin/python" tests/bench/upstream_executor.py local "$n"

echo "== one podman container"
"$bin" podman localhost/atex-test:bookworm "$n"
id=$(podman run -d --rm --label atex.test=executor-overhead "$image" sleep infinity)
trap 'podman rm -f -t 0 "$id" >/dev/null 2>&1 || true' EXIT
"$venv/bin/python" tests/bench/upstream_executor.py runc "$id" "$n"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
