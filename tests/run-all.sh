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
command -v docker-registry >/dev/null || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

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

# --- tests -----------------------------------------------------------------
say "tests"
cargo nextest run --workspace --no-fail-fast --profile ci
