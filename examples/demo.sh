#!/usr/bin/env bash
# Builds atex and runs the demo suite in examples/demo: on podman
# containers when podman works here, else on this machine. Writes JUnit and
# HTML reports and prints where they are.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace
atex=target/release/atex
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/tests/containers.conf}

provisioner=(-p local:max=3)
if command -v podman >/dev/null && command -v mmdebstrap >/dev/null && podman info >/dev/null 2>&1 &&
    tests/images/build.sh beakerlib; then
    # Debian with BeakerLib (for the demo's BeakerLib test).
    provisioner=(-p podman:image=localhost/atex-test-beakerlib:bookworm,max=3)
else
    echo "demo: podman is not usable here; running on the local host" >&2
fi

results=atex-results/demo-$(date +%Y%m%d-%H%M%S)
echo "demo: atex run examples/demo ${provisioner[*]} -r junit -r html --reruns 2 --results $results" >&2
set +e
"$atex" run examples/demo "${provisioner[@]}" -r junit -r html --reruns 2 --results "$results"
code=$?
set -e
# Exit code 1 means some tests failed, which this suite does on purpose.
if [ "$code" -gt 1 ]; then
    echo "demo: atex run failed with exit code $code" >&2
    exit "$code"
fi
echo
echo "results:     $results/results.jsonl"
echo "JUnit XML:   $results/junit.xml"
echo "HTML report: $results/report.html"
