#!/bin/bash
# Builds the virtual machine image the qemu provisioner's tests boot:
#
#   $ATEX_VM_DIR/disk.qcow2   Debian minbase + systemd, sshd, a cloud kernel,
#                             BeakerLib; ext4 without a partition table
#   $ATEX_VM_DIR/vmlinuz      its kernel and initrd, booted with -kernel/-initrd
#   $ATEX_VM_DIR/initrd.img   (root=/dev/vda)
#   $ATEX_VM_DIR/recipe       the recipe version the files were made by
#
# ATEX_VM_DIR defaults to ${XDG_CACHE_HOME:-~/.cache}/atex/vm/<suite>, the
# qemu plugin's default location.
#
# No cloud services: at boot, the unit atex-authorized-key.service copies the
# key given on the kernel command line (atex.authorized_key=<base64 of an
# authorized_keys line>) to root's authorized_keys, before sshd starts. The
# network is systemd-networkd with DHCP on every en* interface (QEMU's
# user-mode network). BeakerLib is installed from ../shared/third-party/ by
# its own Makefile (`make install DD=<root>/usr`).
#
# Idempotent and cached: files made by this version of the recipe (see
# `recipe=` below) are left alone; missing or outdated ones are rebuilt.
# Usage:
#
#   tests/images/build-vm.sh [--force]
#
# Environment:
#   ATEX_VM_DIR          where the files go (see above)
#   ATEX_IMAGE_SOURCES   mmdebstrap MIRROR arguments (space separated); default:
#                        the host's active apt sources files
#   ATEX_IMAGE_SUITE     Debian suite, default bookworm
#   ATEX_THIRD_PARTY     directory holding beakerlib-*.tar.gz; default
#                        ../shared/third-party beside the checkout
#
# Needs root (the root file system is made as a directory, with its owners,
# and copied into ext4 by `mke2fs -d`), mmdebstrap, mke2fs, qemu-img, make
# and patch. Several callers may run it at once: a lock serialises them and
# the second finds the image built.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=${ATEX_IMAGE_SUITE:-bookworm}
out=${ATEX_VM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/atex/vm/$suite}
third_party=${ATEX_THIRD_PARTY:-$here/../../../shared/third-party}

force=0
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "build-vm.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

for tool in mmdebstrap mke2fs qemu-img make patch; do
    command -v "$tool" >/dev/null || {
        echo "build-vm.sh: $tool is missing (apt-get install -y mmdebstrap e2fsprogs qemu-utils make patch)" >&2
        exit 1
    }
done

beakerlib=$(ls "$third_party"/beakerlib-*.tar.gz 2>/dev/null | sort -V | tail -1 || true)
[[ -n $beakerlib ]] || { echo "build-vm.sh: no beakerlib-*.tar.gz in $third_party" >&2; exit 1; }

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
[[ ${#sources[@]} -gt 0 ]] || { echo "build-vm.sh: no apt sources found on the host" >&2; exit 1; }

# Give it a new value whenever what goes into the image changes.
recipe=vm-3b1c07a2e5d94f10

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

if [[ $force == 0 && -f $out/disk.qcow2 && -f $out/vmlinuz && -f $out/initrd.img &&
    $(cat "$out/recipe" 2>/dev/null) == "$recipe" ]]; then
    echo "build-vm.sh: $out exists" >&2
    exit 0
fi

if [[ $(id -u) != 0 ]]; then
    echo "build-vm.sh: building the VM image needs root (try sudo $0)" >&2
    exit 1
fi

start=$SECONDS
echo "build-vm.sh: building $out" >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/atex-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
mkdir -p "$work/beakerlib"
tar -xzf "$beakerlib" -C "$work/beakerlib" --strip-components=1

nodocs=(
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
)

# What BeakerLib needs at run time, by Debian names (its spec file lists the
# Fedora ones), and what a system under test needs for atex.
packages=systemd-sysv,udev,openssh-server,iproute2,linux-image-cloud-amd64
packages+=,bash,coreutils,sed,grep,tar,gzip,util-linux,procps,debianutils,python3,libxml2-utils,bc,time,curl

key_script='#!/bin/sh
# Installs the ssh key given on the kernel command line for root.
for word in $(cat /proc/cmdline); do
    case $word in
        atex.authorized_key=*)
            mkdir -p /root/.ssh && chmod 700 /root/.ssh
            printf "%s" "${word#atex.authorized_key=}" | base64 -d > /root/.ssh/authorized_keys
            chmod 600 /root/.ssh/authorized_keys
            ;;
    esac
done
'
key_unit='[Unit]
Description=Install the ssh key from the kernel command line
DefaultDependencies=no
After=local-fs.target
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/atex-authorized-key

[Install]
WantedBy=multi-user.target
'
network='[Match]
Name=en*

[Network]
DHCP=ipv4
'

mmdebstrap --quiet --variant=minbase --include="$packages" "${nodocs[@]}" \
    --customize-hook='echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > "$1/etc/fstab"' \
    --customize-hook='echo atex-vm > "$1/etc/hostname"' \
    --customize-hook="printf '%s' '$network' > \"\$1/etc/systemd/network/20-wired.network\"" \
    --customize-hook="printf '%s' '$key_script' > \"\$1/usr/local/sbin/atex-authorized-key\" && chmod 755 \"\$1/usr/local/sbin/atex-authorized-key\"" \
    --customize-hook="printf '%s' '$key_unit' > \"\$1/etc/systemd/system/atex-authorized-key.service\"" \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd atex-authorized-key.service' \
    --customize-hook='chroot "$1" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer' \
    --customize-hook='chroot "$1" ssh-keygen -A' \
    --customize-hook='printf "PermitRootLogin prohibit-password\nUseDNS no\n" > "$1/etc/ssh/sshd_config.d/atex.conf"' \
    --customize-hook='mkdir -p "$1/etc/systemd/system.conf.d" && printf "[Manager]\nDefaultTimeoutStopSec=10s\n" > "$1/etc/systemd/system.conf.d/atex-vm.conf"' \
    --customize-hook="make -s -C '$work/beakerlib' install DD=\"\$1/usr\" >/dev/null" \
    --customize-hook="cp \"\$1\"/boot/vmlinuz-* '$work/vmlinuz' && cp \"\$1\"/boot/initrd.img-* '$work/initrd.img'" \
    "$suite" "$work/root" "${sources[@]}"

mke2fs -q -t ext4 -L atex-root -d "$work/root" "$work/disk.raw" 3G
rm -rf "$work/root"
qemu-img convert -q -f raw -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
rm -f "$work/disk.raw"
chmod 644 "$work/vmlinuz" "$work/initrd.img" "$work/disk.qcow2"
rm -f "$out/recipe"
mv -f "$work/disk.qcow2" "$work/vmlinuz" "$work/initrd.img" "$out/"
echo "$recipe" > "$out/recipe"
echo "build-vm.sh: built $out in $((SECONDS - start)) s" >&2
