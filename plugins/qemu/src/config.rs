//! The plugin's options, as users write them after `-p qemu:` or in a
//! configuration file, and their defaults.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use atex_plugin_api::packages::{BadPackageName, PackageSet};
use serde::{Deserialize, Deserializer};

/// Which accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM when `/dev/kvm` opens and a probe guest boots under it within
    /// a few seconds; TCG otherwise.
    #[default]
    Auto,
    /// KVM, untested: a KVM that makes no progress shows as a boot timeout.
    Kvm,
    /// TCG, QEMU's emulator: works everywhere, slower.
    Tcg,
}

/// Options of the qemu provisioner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QemuConfig {
    /// The base disk image (qcow2 or raw). It is never written: every VM
    /// gets a copy-on-write overlay. Default: [`default_image`].
    pub image: Option<PathBuf>,
    /// Kernel booted with `-kernel`. Default: `vmlinuz` beside the image.
    pub kernel: Option<PathBuf>,
    /// Initrd for `-initrd`. Default: `initrd.img` beside the image, when
    /// it exists.
    pub initrd: Option<PathBuf>,
    /// Extra kernel command line words, after `root=/dev/vda rw console=ttyS0`.
    pub append: Option<String>,
    /// Guest memory in MiB.
    pub memory: u32,
    /// Virtual CPUs per VM.
    pub cpus: u32,
    /// The most VMs existing at once (booting, ready or handed out; the
    /// snapshot template counts while it boots).
    #[serde(alias = "max_remotes")]
    pub max: u32,
    /// `auto`, `kvm` or `tcg`.
    pub accel: Accel,
    /// TCG translation cache in MiB (`-accel tcg,tb-size=`); QEMU's own
    /// default (1 GiB) makes every VM about 1 GB bigger.
    pub tb_size: u32,
    /// Platform name results are filed under. Default: the image's name
    /// (its directory's name when the file is called `disk.*`).
    pub platform: Option<String>,
    /// Boot one template VM, save its running state, and restore every VM
    /// handed out from it instead of booting it.
    pub snapshot: bool,
    /// Seconds a boot (or a restore, or a guest reboot) may take until ssh
    /// answers.
    pub boot_timeout: u64,
    /// User atex logs in as; the key is installed for root.
    pub user: String,
    /// Value of the run marker on every QEMU command line. Default: the run id.
    pub label: Option<String>,
    /// The QEMU binary.
    pub qemu: String,
    /// Extra QEMU arguments (list, or one string split at spaces).
    #[serde(deserialize_with = "string_or_list")]
    pub qemu_options: Vec<String>,
    /// Directory for overlays, saved states, pid files and sockets.
    /// Default: `$TMPDIR/atex-qemu`.
    pub state_dir: Option<PathBuf>,
    /// Packages installed once into a prepared disk (an overlay on `image`,
    /// cached) that every VM then starts from. The entry `suite` stands for
    /// the packages the selected tests need: the host replaces it (see
    /// [`atex_plugin_api::packages`]).
    #[serde(deserialize_with = "string_or_list")]
    pub prepare: Vec<String>,
    /// Packages also installed into the prepared disk when they can be
    /// (best effort); set by the host from the tests' `recommend` with
    /// `prepare: suite`.
    #[serde(deserialize_with = "string_or_list")]
    pub prepare_recommend: Vec<String>,
    /// Seconds the package installation of `prepare` may take.
    pub prepare_timeout: u64,
    /// Where prepared disks are kept between runs. Default:
    /// `prepared/` beside the default image's directory
    /// (`~/.cache/atex/vm/prepared`).
    pub prepare_dir: Option<PathBuf>,
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            image: None,
            kernel: None,
            initrd: None,
            append: None,
            memory: 512,
            cpus: 1,
            max: 2,
            accel: Accel::Auto,
            tb_size: 128,
            platform: None,
            snapshot: true,
            boot_timeout: 300,
            user: "root".into(),
            label: None,
            qemu: "qemu-system-x86_64".into(),
            qemu_options: Vec::new(),
            state_dir: None,
            prepare: Vec::new(),
            prepare_recommend: Vec::new(),
            prepare_timeout: 1800,
            prepare_dir: None,
        }
    }
}

/// The image `tests/images/build-vm.sh` builds:
/// `${XDG_CACHE_HOME:-$HOME/.cache}/atex/vm/bookworm/disk.qcow2`.
pub fn default_image() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("atex/vm/bookworm/disk.qcow2")
}

/// Where prepared disks go by default:
/// `${XDG_CACHE_HOME:-$HOME/.cache}/atex/vm/prepared`.
pub fn default_prepare_dir() -> PathBuf {
    default_image()
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("/tmp"), Path::to_path_buf)
        .join("prepared")
}

/// Where state directories go by default.
pub fn default_state_root() -> PathBuf {
    std::env::temp_dir().join("atex-qemu")
}

/// Whether `s` can be the run marker (it goes into a QEMU option value and
/// a directory name).
pub(crate) fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+@".contains(&b))
        && !s.starts_with('.')
}

impl QemuConfig {
    /// A configuration for `image` with every other option at its default.
    pub fn for_image(image: impl Into<PathBuf>) -> Self {
        QemuConfig {
            image: Some(image.into()),
            ..Self::default()
        }
    }

    /// Checks values serde cannot check.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max == 0 {
            return Err("`max` must be at least 1".into());
        }
        if self.memory < 128 {
            return Err("`memory` must be at least 128 (MiB)".into());
        }
        if self.cpus == 0 {
            return Err("`cpus` must be at least 1".into());
        }
        if self.boot_timeout == 0 {
            return Err("`boot_timeout` must be at least 1".into());
        }
        if self.user.is_empty()
            || self.user.starts_with('-')
            || !self
                .user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(format!("`user` {:?} is not a valid user name", self.user));
        }
        if let Some(label) = &self.label
            && !valid_label(label)
        {
            return Err(format!(
                "`label` {label:?} must be letters, digits and `-_.:+@` only"
            ));
        }
        if let Some(a) = &self.append
            && a.contains(['\n', '"'])
        {
            return Err("`append` must not contain newlines or double quotes".into());
        }
        if self.prepare_timeout == 0 {
            return Err("`prepare_timeout` must be at least 1".into());
        }
        self.packages().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The packages of `prepare` and `prepare_recommend`, checked.
    pub fn packages(&self) -> Result<PackageSet, BadPackageName> {
        PackageSet::from_options(&self.prepare, &self.prepare_recommend)
    }

    /// Where prepared disks are kept.
    pub fn effective_prepare_dir(&self) -> PathBuf {
        self.prepare_dir.clone().unwrap_or_else(default_prepare_dir)
    }

    /// The base image in effect.
    pub fn effective_image(&self) -> PathBuf {
        self.image.clone().unwrap_or_else(default_image)
    }

    /// The kernel in effect.
    pub(crate) fn effective_kernel(&self) -> PathBuf {
        self.kernel
            .clone()
            .unwrap_or_else(|| beside(&self.effective_image(), "vmlinuz"))
    }

    /// The initrd in effect, if any.
    pub(crate) fn effective_initrd(&self) -> Option<PathBuf> {
        match &self.initrd {
            Some(p) => Some(p.clone()),
            None => Some(beside(&self.effective_image(), "initrd.img")).filter(|p| p.exists()),
        }
    }

    /// The platform name results are filed under.
    pub(crate) fn effective_platform(&self) -> String {
        self.platform
            .clone()
            .unwrap_or_else(|| platform_from_image(&self.effective_image()))
    }

    pub(crate) fn boot_timeout(&self) -> Duration {
        Duration::from_secs(self.boot_timeout)
    }
}

fn beside(file: &Path, name: &str) -> PathBuf {
    file.parent().unwrap_or(Path::new(".")).join(name)
}

/// `.../bookworm/disk.qcow2` -> `bookworm`, `.../fedora-41.qcow2` ->
/// `fedora-41`.
pub(crate) fn platform_from_image(image: &Path) -> String {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = if stem == "disk" || stem.is_empty() {
        image
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(stem)
    } else {
        stem
    };
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "qemu".into()
    } else {
        clean
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<StringOrList>::deserialize(d)? {
        Some(StringOrList::One(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(StringOrList::Many(v)) => v,
        None => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> QemuConfig {
        match serde_yaml::from_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("{yaml}: {e}"),
        }
    }

    #[test]
    fn empty_config_gives_defaults() {
        let c = parse("{}");
        assert_eq!(c, QemuConfig::default());
        assert_eq!((c.memory, c.cpus, c.max, c.tb_size), (512, 1, 2, 128));
        assert!(c.snapshot);
        assert_eq!(c.accel, Accel::Auto);
    }

    #[test]
    fn options_parse() {
        let c = parse(
            "image: /x/f41.qcow2\naccel: tcg\nsnapshot: false\nmemory: 1024\ncpus: 2\nqemu_options: -cpu max",
        );
        assert_eq!(c.accel, Accel::Tcg);
        assert!(!c.snapshot);
        assert_eq!(c.qemu_options, ["-cpu", "max"]);
        assert_eq!(c.effective_platform(), "f41");
        assert_eq!(c.effective_kernel(), PathBuf::from("/x/vmlinuz"));
        assert_eq!(parse("accel: kvm").accel, Accel::Kvm);
        assert!(serde_yaml::from_str::<QemuConfig>("accel: xen").is_err());
        assert!(serde_yaml::from_str::<QemuConfig>("imgae: x").is_err());
    }

    #[test]
    fn validation() {
        assert!(parse("max: 0").validate().is_err());
        assert!(parse("memory: 64").validate().is_err());
        assert!(parse("label: a,b").validate().is_err());
        assert!(parse("label: a b").validate().is_err());
        assert!(parse("user: -oProxy").validate().is_err());
        assert!(parse("label: 20261126-130000-42").validate().is_ok());
    }

    #[test]
    fn platform_names() {
        assert_eq!(
            platform_from_image(Path::new("/c/atex/vm/bookworm/disk.qcow2")),
            "bookworm"
        );
        assert_eq!(
            platform_from_image(Path::new("fedora 41.qcow2")),
            "fedora-41"
        );
    }
}
