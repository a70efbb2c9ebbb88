#!/bin/bash
# Builds the container images atex's tests use (and users may copy):
#
#   localhost/atex-test:bookworm          Debian minbase + bash (coreutils, tar)
#   localhost/atex-test-ssh:bookworm      + openssh-server, sudo; `/usr/sbin/sshd -D -e`
#                                         works as is (host keys, /run/sshd,
#                                         root login with a key)
#   localhost/atex-test-systemd:bookworm  + systemd, systemd-sysv, openssh-server;
#                                         CMD /sbin/init, for reboot tests
#   localhost/atex-test-beakerlib:bookworm
#                                         + BeakerLib (/usr/share/beakerlib) and
#                                         its runtime needs (python3 + lxml for
#                                         journal.xml), systemd, systemd-sysv:
#                                         CMD /bin/bash, or /sbin/init with the
#                                         podman plugin's `systemd` option
#
# BeakerLib is a separate program, installed from the release archive in the
# third-party directory beside the repository (`../shared/third-party/`,
# present for every developer and in CI); it is never part of this project.
#
# No registry is needed: each root file system is made by mmdebstrap from the
# host's apt sources and loaded with `podman import`.
#
# Idempotent and cached: an image that exists and was made by this version
# of the recipe (label atex.recipe, see `recipe=` below) is left alone; a
# missing or outdated one is built. Usage:
#
#   tests/images/build.sh [--force] [base|ssh|systemd|beakerlib]...   (default: all four)
#
# Environment:
#   CONTAINERS_CONF   defaults to tests/containers.conf next to this script
#   ATEX_IMAGE_SOURCES  mmdebstrap MIRROR arguments (space separated); default:
#                     the host's active apt sources files
#   ATEX_IMAGE_SUITE  Debian suite, default bookworm (it is also the tag)
#   ATEX_THIRD_PARTY  where beakerlib-1.32.tar.gz is; default: ../shared/third-party
#                     relative to the repository root
#
# Several callers (test binaries running at once) may call it together: a
# lock serialises them, and the second finds the images built.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../containers.conf}
suite=${ATEX_IMAGE_SUITE:-bookworm}

force=0
wanted=()
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        base|ssh|systemd|beakerlib) wanted+=("$arg") ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done
[[ ${#wanted[@]} -gt 0 ]] || wanted=(base ssh systemd beakerlib)

for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null || {
        echo "build.sh: $tool is missing (apt-get install -y podman runc mmdebstrap)" >&2
        exit 1
    }
done

# The host's apt sources, as mmdebstrap MIRROR arguments (a file's contents
# are pasted into the image's sources.list; deb822 files work too).
sources=()
if [[ -n ${ATEX_IMAGE_SOURCES:-} ]]; then
    read -r -a sources <<<"$ATEX_IMAGE_SOURCES"
else
    if [[ -f /etc/apt/sources.list ]] && grep -q '^[[:space:]]*deb' /etc/apt/sources.list; then
        sources+=(/etc/apt/sources.list)
    fi
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && sources+=("$f")
    done
fi
[[ ${#sources[@]} -gt 0 ]] || { echo "build.sh: no apt sources found on the host" >&2; exit 1; }

# The recipe's version, stored in the image label atex.recipe: images with
# another value are rebuilt. Give it a new value whenever what goes into an
# image changes; an image whose own recipe changed has its own value below,
# so the others are not rebuilt with it.
recipe=f9bdf6efcc7f8cfe
# The ssh image also has sudo (a non-root login user that becomes root).
recipe_ssh=5d0c2a81e3b7f469
# The BeakerLib image: its own value, with the archive's checksum appended
# (a new BeakerLib release rebuilds it).
recipe_beakerlib=3e71b0c9d48a5f26

third_party=${ATEX_THIRD_PARTY:-$here/../../../shared/third-party}
beakerlib_archive=beakerlib-1.32.tar.gz
beakerlib_sha256=bf5ea4d2aeea906f441ed2fee835629fc6bab5f6ba4d54d6cbb6dff1eddac343

exec 9>"${TMPDIR:-/tmp}/atex-test-images.lock"
flock 9

work=$(mktemp -d "${TMPDIR:-/tmp}/atex-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Leave documentation out: smaller images, faster imports.
nodocs=(
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
)

# sshd in a container: keys made at build time, privilege separation dir,
# root may log in with a key, and pam_loginuid (which needs CAP_AUDIT_CONTROL)
# must not refuse the session.
ssh_hooks=(
    --customize-hook='chroot "$1" ssh-keygen -A'
    --customize-hook='mkdir -p "$1/root/.ssh" && chmod 700 "$1/root/.ssh"'
    # mmdebstrap empties /run at the end; keep only /run/lock and /run/sshd.
    --customize-hook='find "$1/run" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} + && mkdir -p "$1/run/sshd"'
    --skip=cleanup/run
    --customize-hook='printf "PermitRootLogin prohibit-password\nUseDNS no\n" > "$1/etc/ssh/sshd_config.d/atex.conf"'
    --customize-hook='sed -i "s/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/" "$1/etc/pam.d/sshd"'
)

build() { # name includes cmd-json [mmdebstrap options...]
    local name=$1 include=$2 cmd=$3 recipe=$recipe
    shift 3
    [[ $name != atex-test-ssh ]] || recipe=$recipe_ssh
    [[ $name != atex-test-beakerlib ]] || recipe=$recipe_beakerlib-${beakerlib_sha256:0:16}
    local ref=localhost/$name:$suite
    if [[ $force == 0 ]] && podman image exists "$ref" &&
        [[ $(podman image inspect --format '{{index .Labels "atex.recipe"}}' "$ref") == "$recipe" ]]; then
        echo "build.sh: $ref exists" >&2
        return 0
    fi
    local start=$SECONDS old
    old=$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
    echo "build.sh: building $ref" >&2
    mmdebstrap --quiet --variant=minbase --include="$include" "${nodocs[@]}" \
        "$@" "$suite" "$work/$name.tar" "${sources[@]}"
    podman import --quiet --change "CMD $cmd" --change "LABEL atex.recipe=$recipe" \
        --message "atex test image: minbase + $include" \
        "$work/$name.tar" "$ref" >/dev/null
    rm -f "$work/$name.tar"
    # The outdated image is now untagged; drop it unless a container uses it.
    [[ -z $old ]] || podman image rm "$old" >/dev/null 2>&1 || true
    echo "build.sh: built $ref in $((SECONDS - start)) s" >&2
}

for what in "${wanted[@]}"; do
    case $what in
        base)
            build atex-test bash '["/bin/bash"]'
            ;;
        ssh)
            build atex-test-ssh bash,openssh-server,sudo '["/usr/sbin/sshd","-D","-e"]' \
                "${ssh_hooks[@]}"
            ;;
        systemd)
            # DefaultTimeoutStopSec: a hung unit must not stall a reboot for
            # the default 90 s.
            build atex-test-systemd bash,systemd,systemd-sysv,openssh-server '["/sbin/init"]' \
                "${ssh_hooks[@]}" \
                --customize-hook='mkdir -p "$1/etc/systemd/system.conf.d" && printf "[Manager]\nDefaultTimeoutStopSec=10s\n" > "$1/etc/systemd/system.conf.d/atex-container.conf"'
            ;;
        beakerlib)
            # BeakerLib's own Makefile installs it (`make install DD=<root>/usr`);
            # it runs here on the host (make, perl, pod2man) so the image
            # needs none of them. python-is-python3: BeakerLib looks for
            # `python` before it writes journal.xml.
            archive=$third_party/$beakerlib_archive
            [[ -f $archive ]] || {
                echo "build.sh: $archive is missing (set ATEX_THIRD_PARTY to the directory holding it)" >&2
                exit 1
            }
            echo "$beakerlib_sha256  $archive" | sha256sum --check --quiet - || {
                echo "build.sh: $archive: checksum mismatch" >&2
                exit 1
            }
            for tool in make perl pod2man; do
                command -v "$tool" >/dev/null || {
                    echo "build.sh: $tool is missing (apt-get install -y make perl)" >&2
                    exit 1
                }
            done
            mkdir -p "$work/beakerlib"
            tar -xzf "$archive" -C "$work/beakerlib" --strip-components=1
            build atex-test-beakerlib \
                bash,mawk,procps,iproute2,bc,time,libxml2-utils,python3,python-is-python3,python3-lxml,python3-six,systemd,systemd-sysv \
                '["/bin/bash"]' \
                --customize-hook="make -s -C '$work/beakerlib' install DD=\"\$1/usr\" >/dev/null" \
                --customize-hook='mkdir -p "$1/etc/systemd/system.conf.d" && printf "[Manager]\nDefaultTimeoutStopSec=10s\n" > "$1/etc/systemd/system.conf.d/atex-container.conf"'
            ;;
    esac
done
