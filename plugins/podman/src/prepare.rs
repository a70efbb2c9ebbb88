//! Images ready to test: the base image pulled once per run, and derived
//! images holding a suite's packages, built once and cached.
//!
//! The parts that do not depend on podman ([`PackageSet`]: the cache key
//! and the install script) serve any provisioner that can snapshot a
//! system: install once, snapshot, start every system from the snapshot.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    config::PullPolicy,
    podman::{PodmanError, Runner, args, run_logged},
};

/// Label on every image atex prepared: the cache key.
pub const PREPARED_LABEL: &str = "atex.prepared";
/// Label on a prepared image: the image it was built from, as configured.
pub const BASE_LABEL: &str = "atex.base";
/// Repository of the images built for `prepare`, tagged with the key.
pub const PREPARED_REPO: &str = "localhost/atex-prepared";

/// A set of packages to install before a run: sorted, without duplicates,
/// so that the same set in any order gives the same key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageSet(Vec<String>);

impl PackageSet {
    /// The set of `packages`.
    pub fn new<I, S>(packages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut v: Vec<String> = packages.into_iter().map(Into::into).collect();
        v.sort();
        v.dedup();
        PackageSet(v)
    }

    /// The packages, sorted.
    pub fn packages(&self) -> &[String] {
        &self.0
    }

    /// Whether there is nothing to install.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The cache key of this set installed on the image with id `base_id`:
    /// 16 hex digits, stable across runs and builds of atex. Another base
    /// image, another set or another install script gives another key.
    pub fn key(&self, base_id: &str) -> String {
        let mut h = Fnv64::new();
        h.write(b"atex-prepare-v1\0");
        h.write(base_id.as_bytes());
        // A changed script (a new atex) builds anew.
        h.write(b"\0");
        h.write(self.install_script().as_bytes());
        for p in &self.0 {
            h.write(b"\0");
            h.write(p.as_bytes());
        }
        format!("{:016x}", h.finish())
    }

    /// A POSIX shell script installing the set with whichever of dnf, yum,
    /// apt-get, zypper or apk the system has; it fails when a package
    /// cannot be installed. Package names are not quoted: callers check
    /// them (the podman plugin refuses anything but package-name
    /// characters).
    pub fn install_script(&self) -> String {
        let p = self.0.join(" ");
        format!(
            "set -e; \
             if command -v dnf >/dev/null 2>&1; then dnf -y install {p}; dnf clean all; \
             elif command -v yum >/dev/null 2>&1; then yum -y install {p}; yum clean all; \
             elif command -v apt-get >/dev/null 2>&1; then apt-get update; \
             DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {p}; \
             elif command -v zypper >/dev/null 2>&1; then zypper --non-interactive install {p}; \
             elif command -v apk >/dev/null 2>&1; then apk add {p}; \
             else echo 'no known package manager (dnf, yum, apt-get, zypper, apk)' >&2; exit 1; fi"
        )
    }
}

/// FNV-1a, 64 bits: a hash whose value never changes between Rust
/// releases (std's hashers make no such promise), good enough for a cache
/// key.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// How `start` makes the image containers run from: the runner, the limit
/// of one pull or build, and the host's cancel flag.
pub(crate) struct Preparer<'a> {
    pub runner: &'a Runner,
    pub timeout: Duration,
    pub cancelled: &'a dyn Fn() -> bool,
    /// Unique to the provisioner: names temporary files.
    pub token: &'a str,
}

impl Preparer<'_> {
    fn logged(&self, a: &[String], what: &str) -> Result<String, PodmanError> {
        run_logged(
            a,
            what,
            self.timeout,
            self.runner.containers_conf.as_deref(),
            self.cancelled,
        )
        .map(|o| o.stdout)
    }

    /// Whether `image` is in local storage.
    pub fn exists(&self, image: &str) -> Result<bool, PodmanError> {
        match self.runner.run(&args(["image", "exists", image])) {
            Ok(_) => Ok(true),
            Err(PodmanError::Failed { code: Some(1), .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Pulls `image` as `policy` says (once: the caller runs this in
    /// `start`, before any container). Progress goes to the log.
    pub fn pull(
        &self,
        image: &str,
        policy: PullPolicy,
        tls_verify: bool,
    ) -> Result<(), PodmanError> {
        let present = self.exists(image)?;
        let wanted = match policy {
            PullPolicy::Never if !present => {
                return Err(PodmanError::ImageMissing {
                    image: image.to_string(),
                    command: format!("podman image exists {image}"),
                    message: "no such image".into(),
                });
            }
            PullPolicy::Never => false,
            PullPolicy::Missing => !present,
            PullPolicy::Always => true,
        };
        if !wanted {
            return Ok(());
        }
        let mut a = args(["pull"]);
        if !tls_verify {
            a.push("--tls-verify=false".into());
        }
        a.push(image.to_string());
        match self.logged(&a, &format!("pulling {image}")) {
            Ok(_) => Ok(()),
            Err(PodmanError::Failed { message, .. }) => Err(PodmanError::PullFailed {
                image: image.to_string(),
                message,
            }),
            Err(e) => Err(e),
        }
    }

    /// The full id of a local image.
    pub fn image_id(&self, image: &str) -> Result<String, PodmanError> {
        let out = self
            .runner
            .run(&args(["image", "inspect", "--format", "{{.Id}}", image]))?;
        Ok(out.stdout.lines().next().unwrap_or("").trim().to_string())
    }

    /// Id of the image labelled `atex.prepared=<key>`, if there is one.
    fn find_prepared(&self, key: &str) -> Result<Option<String>, PodmanError> {
        let out = self.runner.run(&args([
            "images",
            "--no-trunc",
            "--quiet",
            "--filter",
            &format!("label={PREPARED_LABEL}={key}"),
        ]))?;
        Ok(out
            .stdout
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|id| id.strip_prefix("sha256:").unwrap_or(id).to_string()))
    }

    /// The image with `packages` installed on `base` (named `base_name` in
    /// its label): the cached one when its key matches, else a new build.
    /// Returns its id and whether it was built now.
    pub fn prepared(
        &self,
        base: &str,
        base_name: &str,
        packages: &PackageSet,
    ) -> Result<(String, bool), PodmanError> {
        let base_id = self.image_id(base)?;
        let key = packages.key(&base_id);
        if let Some(id) = self.find_prepared(&key)? {
            tracing::info!(
                target: "atex_podman",
                "prepared image {PREPARED_REPO}:{key} ({} package(s) on {base_name}) is cached",
                packages.packages().len()
            );
            return Ok((id, false));
        }
        // The script is a file of the context, so that a failed step is
        // named by a short line.
        let dir = TempDir::new(self.token)?;
        let script = dir.0.join("atex-prepare.sh");
        fs::write(&script, packages.install_script() + "\n")
            .map_err(|e| self.io_error(&script, e))?;
        let file = dir.0.join("Containerfile");
        fs::write(
            &file,
            format!(
                "FROM {base_id}\nCOPY atex-prepare.sh /tmp/atex-prepare.sh\n\
                 RUN sh /tmp/atex-prepare.sh && rm -f /tmp/atex-prepare.sh\n"
            ),
        )
        .map_err(|e| self.io_error(&file, e))?;
        let tag = format!("{PREPARED_REPO}:{key}");
        let id = self.build(&file, &dir.0, &key, base_name, &tag, false)?;
        Ok((id, true))
    }

    /// Builds a user's Containerfile (its directory is the context); the
    /// image is labelled `atex.prepared=containerfile-<key of its path>` so
    /// that it is listed and removed with the prepared images.
    pub fn containerfile(&self, file: &Path) -> Result<String, PodmanError> {
        let file = fs::canonicalize(file).map_err(|e| self.io_error(file, e))?;
        let context = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let key = PackageSet::default().key(&file.to_string_lossy());
        let tag = format!("localhost/atex-containerfile:{key}");
        let base = file.display().to_string();
        self.build(
            &file,
            &context,
            &format!("containerfile-{key}"),
            &base,
            &tag,
            true,
        )
    }

    /// `podman build` of `file` tagged `tag`, labelled `atex.prepared=key`
    /// and `atex.base=base`; returns the image id.
    fn build(
        &self,
        file: &Path,
        context: &Path,
        key: &str,
        base: &str,
        tag: &str,
        layers: bool,
    ) -> Result<String, PodmanError> {
        let what = format!("building {tag}");
        let labels = [
            format!("{PREPARED_LABEL}={key}"),
            format!("{BASE_LABEL}={base}"),
        ];
        let dir = TempDir::new(self.token)?;
        let iidfile = dir.0.join("iid");
        // `--network=host`: the package manager reaches the same mirrors
        // (and proxies) as the host. Without layers no intermediate image
        // (carrying the labels) is left behind by a failed step.
        let mut a = args(["build", "--pull=never", "--network=host", "--force-rm"]);
        a.push(format!("--layers={layers}"));
        a.push("--file".into());
        a.push(file.display().to_string());
        for l in labels {
            a.push("--label".into());
            a.push(l);
        }
        a.extend(args(["--tag", tag, "--iidfile"]));
        a.push(iidfile.display().to_string());
        a.push(context.display().to_string());
        match run_logged(
            &a,
            &what,
            self.timeout,
            self.runner.containers_conf.as_deref(),
            self.cancelled,
        ) {
            Ok(_) => {}
            Err(PodmanError::Failed {
                command, message, ..
            }) => {
                tracing::debug!(target: "atex_podman", "failed: {command}");
                return Err(PodmanError::PrepareFailed {
                    base: base.to_string(),
                    message,
                });
            }
            Err(e) => return Err(e),
        }
        let id = fs::read_to_string(&iidfile).map_err(|e| self.io_error(&iidfile, e))?;
        let id = id.trim();
        Ok(id.strip_prefix("sha256:").unwrap_or(id).to_string())
    }

    fn io_error(&self, path: &Path, e: std::io::Error) -> PodmanError {
        PodmanError::PrepareFailed {
            base: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(token: &str) -> Result<Self, PodmanError> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "atex-podman-{token}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).map_err(|e| PodmanError::PrepareFailed {
            base: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_ignores_order_and_duplicates() {
        let a = PackageSet::new(["jq", "file", "jq"]);
        let b = PackageSet::new(["file", "jq"]);
        assert_eq!(a, b);
        assert_eq!(a.key("abc"), b.key("abc"));
        assert_eq!(a.key("abc").len(), 16);
    }

    #[test]
    fn the_key_changes_with_the_base_or_the_set() {
        let a = PackageSet::new(["jq", "file"]);
        assert_ne!(a.key("abc"), a.key("abd"));
        assert_ne!(a.key("abc"), PackageSet::new(["jq"]).key("abc"));
        // Names are separated: ["ab", "c"] is not ["a", "bc"].
        assert_ne!(
            PackageSet::new(["ab", "c"]).key("x"),
            PackageSet::new(["a", "bc"]).key("x")
        );
    }

    #[test]
    fn the_key_is_stable() {
        // FNV-1a's published value for "a": the cache survives a new atex
        // build or Rust release.
        let mut h = Fnv64::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_script_names_every_package() {
        let s = PackageSet::new(["jq", "file"]).install_script();
        assert!(s.contains("apt-get install -y --no-install-recommends file jq"));
        assert!(s.contains("dnf -y install file jq"));
    }
}
