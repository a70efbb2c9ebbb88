//! Images ready to test: the base image pulled once per run, and derived
//! images holding a suite's packages, built once and cached.
//!
//! The parts that do not depend on podman (the package set, its cache key
//! and install script) are [`atex_plugin_api::packages`], shared with any
//! provisioner that can snapshot a system.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

pub use atex_plugin_api::packages::PackageSet;

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
                packages.packages().len() + packages.recommended().len()
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
