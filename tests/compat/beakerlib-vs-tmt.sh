#!/bin/bash
# Runs the BeakerLib tests in tests/compat/beakerlib with tmt itself and with
# atex, on the same podman image (localhost/atex-test-beakerlib:bookworm),
# and compares per test: the overall result, the sub-results (name and
# result) and the names of the files kept with the test's result. Prints a
# table and exits 1 when they differ beyond the differences documented in
# docs/fmf-compatibility.md (tmt's failures.yaml, which atex does not make).
#
#   tests/compat/beakerlib-vs-tmt.sh    (tmt from PATH, TMT=... another;
#                                        KEEP=1 keeps both runs' directories)
#
# Needs podman, tmt (`pip install tmt`) and a built atex (target/debug, or
# ATEX=...). tmt's prepare step is skipped: it would look for a `beakerlib`
# package, which Debian has not; the image has BeakerLib installed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
tmt=${TMT:-tmt}
atex=${ATEX:-$repo/target/debug/atex}
image=localhost/atex-test-beakerlib:bookworm
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/tests/containers.conf}

command -v "$tmt" >/dev/null || { echo "beakerlib-vs-tmt: no tmt (pip install tmt, or TMT=path)" >&2; exit 2; }
[ -x "$atex" ] || { echo "beakerlib-vs-tmt: no atex at $atex (cargo build -p atex -p atex-podman)" >&2; exit 2; }
"$repo/tests/images/build.sh" beakerlib

work=$(mktemp -d "${TMPDIR:-/tmp}/atex-bl-compat.XXXXXX")
[ -n "${KEEP:-}" ] && echo "beakerlib-vs-tmt: keeping $work" >&2 || trap 'rm -rf "$work"' EXIT
cp -r "$here/beakerlib" "$work/tree"

start=$SECONDS
(cd "$work/tree" && "$tmt" run --id "$work/tmt" --skip prepare -a >"$work/tmt.log" 2>&1) || true
tmt_s=$((SECONDS - start))
[ -f "$work/tmt/plan/execute/results.yaml" ] || { cat "$work/tmt.log" >&2; echo "beakerlib-vs-tmt: tmt wrote no results" >&2; exit 2; }
start=$SECONDS
"$atex" run "$work/tree" --plan /plan -p "podman:image=$image" --results "$work/atex" >"$work/atex.log" 2>&1 || true
atex_s=$((SECONDS - start))
[ -f "$work/atex/results.jsonl" ] || { cat "$work/atex.log" >&2; echo "beakerlib-vs-tmt: atex wrote no results" >&2; exit 2; }
echo "tmt run: ${tmt_s} s, atex run: ${atex_s} s (the same 5 tests on the same image)"

# tmt's own Python has a YAML parser.
py=$(head -1 "$(command -v "$tmt")" | sed -n 's/^#!//p')
[ -x "${py%% *}" ] || py=python3
$py - "$work/tmt/plan/execute/results.yaml" "$work/atex/results.jsonl" <<'PY'
import json, os, sys
try:
    from yaml import safe_load
except ImportError:  # tmt itself uses ruamel.yaml
    from ruamel.yaml import YAML
    safe_load = YAML(typ="safe").load

# Files tmt keeps that atex does not make (see docs/fmf-compatibility.md).
TMT_ONLY = {"failures.yaml"}

tmt = {}
for r in safe_load(open(sys.argv[1])):
    files = sorted(os.path.basename(p) for p in r.get("log", []))
    subs = [(s["name"], s["result"]) for s in r.get("subresult", [])]
    tmt[r["name"]] = (r["result"], subs, [f for f in files if f not in TMT_ONLY])

atex = {}
for line in open(sys.argv[2]):
    platform, status, test, sub, files, note = json.loads(line)
    own = atex.setdefault(test, [None, [], []])
    if sub is None:
        own[0] = status
        own[2] = sorted(os.path.basename(f) for f in files)
    else:
        own[1].append((sub, status))

bad = 0
for name in sorted(set(tmt) | set(atex)):
    t = tmt.get(name, (None, [], []))
    a = tuple(atex.get(name, (None, [], [])))
    same = [t[i] == a[i] for i in range(3)]
    ok = all(same)
    bad += not ok
    print(f"{'same' if ok else 'DIFF'}  {name:<20} result tmt={t[0]} atex={a[0]}")
    if not same[1]:
        print(f"      sub-results tmt={t[1]}\n                  atex={a[1]}")
    if not same[2]:
        print(f"      files tmt={t[2]}\n            atex={a[2]}")
print(f"{len(set(tmt) | set(atex)) - bad} of {len(set(tmt) | set(atex))} tests the same")
sys.exit(1 if bad else 0)
PY
