//! The `qemu` provisioner: transient virtual machines on this machine.
//!
//! Every VM boots a base image through its own copy-on-write qcow2 overlay
//! (the image itself is never written), with user-mode networking and the
//! guest's ssh port forwarded to a free port on 127.0.0.1. The kernel and
//! initrd are given to QEMU directly (`-kernel`/`-initrd`, `root=/dev/vda`).
//!
//! # The ssh key
//!
//! The provisioner makes an ed25519 key pair in its state directory and
//! puts the public key on the kernel command line
//! (`atex.authorized_key=<base64 of an authorized_keys line>`); a unit in
//! the image (`tests/images/build-vm.sh` makes one) copies it to root's
//! `authorized_keys` before sshd starts. No cloud-init, no extra disk. A
//! guest reboot keeps the key (same command line).
//!
//! # Snapshot restore
//!
//! With `snapshot` (the default) the first VM that is needed is a template:
//! it boots once, and when ssh works and systemd has finished booting it
//! is paused, its state is saved to a file (a QMP migration to
//! `exec:cat > FILE`) and it quits. Every VM handed out
//! after that gets a new overlay on the template's disk and starts from the
//! saved state (`-incoming`, then `cont` over QMP), which on a 2-core machine without KVM takes
//! about 2-3 s to working ssh instead of 25-40 s for a boot. Restored VMs
//! share the template's ssh host keys, machine id and boot id; their clock
//! is set from the host's when ssh first works.
//!
//! # Prepared disks
//!
//! With `prepare` (e.g. `prepare=suite`, which the host turns into the
//! packages the selected tests require), the first VM that is needed boots
//! the base image through an overlay, installs the packages over ssh, and
//! powers off; that overlay, kept in `prepare_dir` as `KEY.qcow2`, becomes
//! the disk every VM of the run (and the snapshot template) starts from.
//! KEY hashes the base image (its path, size and modification time), the
//! package set and the install script
//! ([`atex_plugin_api::packages::PackageSet::key`]), so the next run with
//! the same image and packages boots from the cached disk without
//! installing anything. The disk is written under a temporary name and
//! renamed when complete: a failed or interrupted installation leaves
//! nothing in the cache. The prepared disk refers to the base image by its
//! absolute path; rebuilding the base image changes its key.
//!
//! # Processes
//!
//! Every VM is a QEMU child process in its own process group, started with
//! `-pidfile` in the state directory and two markers on its command line:
//! `-fw_cfg name=opt/atex/run,string=<run id or label>` and
//! `-fw_cfg name=opt/atex/provisioner,string=<token>`. `release` kills one;
//! `stop` (which atex calls on SIGINT/SIGTERM) kills all of them, those
//! still booting included, and removes the state directory. After a run
//! killed with SIGKILL, [`remove_leftovers`] finds the run's processes by
//! their marker and kills them.
//!
//! # Options
//!
//! | option         | default | meaning |
//! |----------------|---------|---------|
//! | `image`        | `~/.cache/atex/vm/bookworm/disk.qcow2` | base disk image (qcow2 or raw), never written |
//! | `kernel`       | `vmlinuz` beside the image | kernel for `-kernel` |
//! | `initrd`       | `initrd.img` beside the image, if present | initrd for `-initrd` |
//! | `append`       | none | extra kernel command line words |
//! | `memory`       | 512 | guest memory, MiB |
//! | `cpus`         | 1 | virtual CPUs |
//! | `max`          | 2 | VMs existing at once |
//! | `accel`        | `auto` | `auto`, `kvm` or `tcg`; `auto` boots a probe under KVM and uses TCG when it makes no progress within 10 s |
//! | `tb_size`      | 128 | TCG translation cache, MiB |
//! | `platform`     | the image's name (its directory's when it is `disk.*`) | platform results are filed under |
//! | `snapshot`     | true | restore VMs from a saved template instead of booting each |
//! | `boot_timeout` | 300 | seconds until ssh must work after a boot, restore or guest reboot |
//! | `user`         | `root` | user atex logs in as |
//! | `label`        | the run id | value of the run marker |
//! | `qemu`         | `qemu-system-x86_64` | the QEMU binary |
//! | `qemu_options` | none | extra QEMU arguments |
//! | `state_dir`    | `$TMPDIR/atex-qemu` | where overlays, saved states, pid files and sockets go |
//! | `prepare`      | none | packages installed once into a cached prepared disk every VM starts from; `suite`: the selected tests' packages |
//! | `prepare_recommend` | none | packages also installed into it when they can be (best effort) |
//! | `prepare_timeout` | 1800 | seconds the installation may take |
//! | `prepare_dir`  | `~/.cache/atex/vm/prepared` | where prepared disks are kept between runs |
//!
//! # Liveness and reboots
//!
//! `alive()` is true while the QEMU process runs: a guest reboot keeps the
//! process (and the forwarded port), so the host reconnects once sshd is up
//! again; a guest that powers off ends QEMU and is no longer alive.

#![deny(clippy::unwrap_used)]

mod cleanup;
mod config;
mod provisioner;
mod qmp;
mod vm;

pub use cleanup::{QemuProcess, list_processes, remove_leftovers, remove_leftovers_in};
pub use config::{Accel, QemuConfig, default_image, default_prepare_dir, default_state_root};
pub use provisioner::{CancelFn, QemuProvisioner, QemuRemote};

/// The firmware config name carrying the run marker on QEMU command lines.
pub const RUN_MARKER: &str = "opt/atex/run";
/// The firmware config name carrying the provisioner's token.
pub const PROVISIONER_MARKER: &str = "opt/atex/provisioner";

/// What went wrong starting or handling a VM.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QemuError {
    /// A program could not be started.
    #[error("cannot run {program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        message: String,
    },
    /// A step failed.
    #[error("{what}: {message}")]
    Failed {
        /// What was being done.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// A VM did not become reachable in time.
    #[error("{vm}: {message}")]
    Timeout {
        /// The VM's name.
        vm: String,
        /// What did not happen in time.
        message: String,
    },
    /// A file operation failed.
    #[error("{0}")]
    Io(String),
    /// The provisioner was stopped or the run cancelled.
    #[error("{0}")]
    Stopped(String),
}

/// The options above, for `atex plugin info` (keep the two in step: a
/// workspace test compares them).
const OPTIONS: &[atex_plugin_api::sdk::OptionSpec] = {
    use atex_plugin_api::sdk::OptionSpec;
    &[
        OptionSpec::new(
            "image",
            "path",
            "~/.cache/atex/vm/bookworm/disk.qcow2",
            "Base disk image (qcow2 or raw), never written.",
        ),
        OptionSpec::new(
            "kernel",
            "path",
            "vmlinuz beside the image",
            "Kernel for -kernel.",
        ),
        OptionSpec::new(
            "initrd",
            "path",
            "initrd.img beside the image, if present",
            "Initrd for -initrd.",
        ),
        OptionSpec::new("append", "string", "", "Extra kernel command line words."),
        OptionSpec::new("memory", "MiB", "512", "Guest memory, MiB."),
        OptionSpec::new("cpus", "integer", "1", "Virtual CPUs."),
        OptionSpec::new("max", "integer", "2", "VMs existing at once."),
        OptionSpec::new(
            "accel",
            "auto|kvm|tcg",
            "auto",
            "Auto, kvm or tcg; auto boots a probe under KVM and uses TCG when it makes no progress within 10 s.",
        ),
        OptionSpec::new("tb_size", "MiB", "128", "TCG translation cache, MiB."),
        OptionSpec::new(
            "platform",
            "string",
            "the image's name (its directory's when it is disk.*)",
            "Platform results are filed under.",
        ),
        OptionSpec::new(
            "snapshot",
            "bool",
            "true",
            "Restore VMs from a saved template instead of booting each.",
        ),
        OptionSpec::new(
            "boot_timeout",
            "seconds",
            "300",
            "Seconds until ssh must work after a boot, restore or guest reboot.",
        ),
        OptionSpec::new("user", "string", "root", "User atex logs in as."),
        OptionSpec::new("label", "string", "the run id", "Value of the run marker."),
        OptionSpec::new("qemu", "path", "qemu-system-x86_64", "The QEMU binary."),
        OptionSpec::new(
            "qemu_options",
            "list of strings, or a string",
            "",
            "Extra QEMU arguments.",
        ),
        OptionSpec::new(
            "state_dir",
            "path",
            "$TMPDIR/atex-qemu",
            "Where overlays, saved states, pid files and sockets go.",
        ),
        OptionSpec::new(
            "prepare",
            "list of strings, or a string",
            "",
            "Packages installed once into a cached prepared disk every VM starts from; suite: the selected tests' packages.",
        ),
        OptionSpec::new(
            "prepare_recommend",
            "list of strings, or a string",
            "",
            "Packages also installed into it when they can be (best effort).",
        ),
        OptionSpec::new(
            "prepare_timeout",
            "seconds",
            "1800",
            "Seconds the installation may take.",
        ),
        OptionSpec::new(
            "prepare_dir",
            "path",
            "~/.cache/atex/vm/prepared",
            "Where prepared disks are kept between runs.",
        ),
    ]
};

atex_plugin_api::export_plugin! {
    name: "qemu",
    version: env!("CARGO_PKG_VERSION"),
    description: "transient QEMU virtual machines, restored from a saved running state",
    provisioner: QemuProvisioner::new,
    options: OPTIONS,
}
