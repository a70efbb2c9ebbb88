#!/usr/bin/env bash
# The project's one test command: installs what the tests need when it is
# missing, then checks formatting, lints, docs, builds everything and runs
# every test. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# --- system packages -------------------------------------------------------
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v xmllint >/dev/null || need+=(libxml2-utils)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v chromium >/dev/null || need+=(chromium)
# The qemu provisioner's tests and their VM image (tests/images/build-vm.sh).
command -v mke2fs >/dev/null || need+=(e2fsprogs)
command -v make >/dev/null || need+=(make)
# BeakerLib's `make install` (test images) builds its man pages.
command -v pod2man >/dev/null || need+=(perl)
command -v patch >/dev/null || need+=(patch)
# The podman plugin's pull tests serve images from a local registry.
command -v docker-registry >/dev/null || need+=(docker-registry)
# tmt itself, for the side-by-side tests, goes into a virtualenv.
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# QEMU in two steps: qemu-system-x86 may remove a newer qemu-utils (e.g.
# from backports) it conflicts with; asked for afterwards, apt picks the
# qemu-utils that matches.
for pair in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils; do
    if ! command -v "${pair%%:*}" >/dev/null; then
        say "installing ${pair#*:}"
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        [ ${#need[@]} -gt 0 ] || { $SUDO apt-get update -qq; need+=(updated); }
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pair#*:}" >/dev/null
    fi
done

# Podman on these machines needs runc and lowered ulimits.
export CONTAINERS_CONF="$PWD/tests/containers.conf"

# --- static checks ---------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

say "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# --- build -----------------------------------------------------------------
say "cargo build --workspace --lib --bins --examples"
# The tests run the binary, the plugin libraries and the examples.
cargo build --workspace --lib --bins --examples --quiet

if [ -x tests/images/build.sh ]; then
    say "test images"
    tests/images/build.sh
fi
if [ -x tests/images/build-vm.sh ]; then
    say "VM image"
    # Needs root; cached, so a no-op when the image is up to date.
    if [ "$(id -u)" -ne 0 ]; then sudo tests/images/build-vm.sh; else tests/images/build-vm.sh; fi
fi

# tmt, for the tests that compare with it (TMT tells them where it is).
tmt_venv="${XDG_CACHE_HOME:-$HOME/.cache}/atex/tmt-venv"
if ! "$tmt_venv/bin/tmt" --version >/dev/null 2>&1; then
    say "tmt (pip, into $tmt_venv)"
    rm -rf "$tmt_venv"
    python3 -m venv "$tmt_venv"
    "$tmt_venv/bin/pip" install --quiet tmt
fi
export TMT="$tmt_venv/bin/tmt"

# --- tests -----------------------------------------------------------------
say "tests"
cargo nextest run --workspace --no-fail-fast --profile ci
