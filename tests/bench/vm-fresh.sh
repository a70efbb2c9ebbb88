#!/usr/bin/env bash
# Time to a fresh VM with the qemu provisioner: a cold boot (snapshot=false)
# against a restore from the saved template (snapshot=true), and the time
# from `atex run` to the first test started with 2 VMs. N destructive tests
# that do nothing make atex ask for a fresh VM for each; the times come
# from the plugin's own log lines ("vm-N booted in X ms", "restored in").
#
#   tests/bench/vm-fresh.sh [N]          (default N=3)
#
# Builds the plugin and the VM image when needed. Runs at most 2 VMs at
# once. accel=auto: on machines where KVM does not work this is TCG.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-3}

cargo build -q -p atex --bins -p atex-qemu --lib
tests/images/build-vm.sh
plugins=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$plugins" "$work"' EXIT
ln -s "$PWD/target/debug/libatex_qemu.so" "$plugins/"

mkdir -p "$work/tree/.fmf"
echo 1 >"$work/tree/.fmf/version"
for i in $(seq "$n"); do
    printf '/t%02d:\n    test: "true"\n    tag: [destructive]\n' "$i"
done >"$work/tree/main.fmf"

now_ms() { date +%s%3N; }

# run NAME OPTIONS WORKERS: runs the suite, keeps the log.
run() {
    local name=$1 opts=$2 workers=$3 start
    start=$(now_ms)
    RUST_LOG=warn,atex::plugin=info target/debug/atex run "$work/tree" \
        --plugin-dir "$plugins" -p "qemu:$opts,label=bench-$name-$$" \
        --workers "$workers" --results "$work/out-$name" --plain \
        >/dev/null 2>"$work/$name.log" || true
    echo "$start" >"$work/$name.start"
}

# Milliseconds from the lines "... <what> in <ms> ms", one per line.
times() { grep -o "$1 in [0-9]* ms" "$2" | grep -o '[0-9]*' || true; }

stats() { # label, numbers on stdin
    sort -n | awk -v label="$1" '{ a[NR] = $1; s += $1 }
        END { if (NR == 0) { printf "%-34s  (none)\n", label; exit }
              printf "%-34s  n=%d  min %.1f s  median %.1f s  max %.1f s\n",
                     label, NR, a[1] / 1000, a[int((NR + 1) / 2)] / 1000, a[NR] / 1000 }'
}

echo "== cold boots (snapshot=false, max=1)" >&2
run cold "snapshot=false,max=1" 1
echo "== snapshot restores (snapshot=true, max=1)" >&2
run warm "snapshot=true,max=1" 1
echo "== first test with 2 VMs (snapshot=true, max=2)" >&2
run two "snapshot=true,max=2" 2

first_start() { # ms from atex start to the first attempt's start
    python3 - "$work/out-$1/attempts.jsonl" "$(cat "$work/$1.start")" <<'EOF'
import json, sys
starts = [json.loads(l)["started_unix_ms"] for l in open(sys.argv[1])]
print(min(starts) - int(sys.argv[2]))
EOF
}

accel=$(grep -o "using TCG\|KVM works" "$work/cold.log" | head -1 || true)
echo
echo "fresh VM, $(nproc) cores, ${accel:-accel as configured}:"
times booted "$work/cold.log" | stats "cold boot to working ssh"
times "template booted and saved" "$work/warm.log" | stats "template boot + state save"
times restored "$work/warm.log" | stats "restore to working ssh"
first_start cold | stats "atex start to first test, cold"
first_start warm | stats "atex start to first test, snapshot"
first_start two | stats "... with 2 VMs (snapshot)"
times restored "$work/two.log" | stats "restore with 2 VMs at once"
