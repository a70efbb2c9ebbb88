#!/usr/bin/env bash
# Per-test cost of a BeakerLib test next to a plain test: N tests of each
# kind run one after another on one podman container
# (localhost/atex-test-beakerlib:bookworm), durations from attempts.jsonl.
# The BeakerLib test is the smallest real one (rlJournalStart, one phase
# with one rlRun, rlJournalEnd); for scale, the same script is also timed
# when run straight in the container with `podman exec` (BeakerLib's own
# cost, no atex).
#
#   tests/bench/beakerlib-overhead.sh [N]        (default 20; ATEX=... binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20}
atex=${ATEX:-target/debug/atex}
image=localhost/atex-test-beakerlib:bookworm
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/tests/containers.conf}
tests/images/build.sh beakerlib
[ -x "$atex" ] || { echo "beakerlib-overhead: no atex at $atex (cargo build -p atex -p atex-podman)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/atex-bl-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree/.fmf"
echo 1 > "$work/tree/.fmf/version"
cat > "$work/tree/bl.sh" <<'SH'
. /usr/share/beakerlib/beakerlib.sh || exit 1
rlJournalStart
rlPhaseStartTest
rlRun true
rlPhaseEnd
rlJournalEnd
SH
{
    for i in $(seq -w "$n"); do
        printf '/plain-%s:\n    test: "true"\n' "$i"
        printf '/beakerlib-%s:\n    framework: beakerlib\n    test: bash bl.sh\n' "$i"
    done
} > "$work/tree/main.fmf"

"$atex" run "$work/tree" -p "podman:image=$image,max=1" --workers 1 \
    --results "$work/results" >"$work/run.log" 2>&1 || { cat "$work/run.log" >&2; exit 1; }

python3 - "$work/results/attempts.jsonl" <<'PY'
import json, statistics, sys
ms = {"plain": [], "beakerlib": []}
for line in open(sys.argv[1]):
    a = json.loads(line)
    ms[a["test"].lstrip("/").split("-")[0]].append(a["duration_ms"])
for kind, v in ms.items():
    print(f"{kind:<10} {len(v)} tests: median {statistics.median(v):.0f} ms, mean {statistics.mean(v):.0f} ms per test")
PY

# BeakerLib alone, without atex, in a container of the same image.
id=$(podman run -d --rm -v "$work/tree/bl.sh:/bl.sh:ro" "$image" sleep infinity)
start=$(date +%s%N)
for _ in $(seq "$n"); do
    podman exec "$id" bash -c 'export BEAKERLIB_DIR=$(mktemp -d) TESTID=1; bash /bl.sh >/dev/null 2>&1'
done
end=$(date +%s%N)
podman rm -f -t 0 "$id" >/dev/null
echo "bare BeakerLib script via podman exec: $(( (end - start) / n / 1000000 )) ms per run"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
