//! The plugin's options, as users write them after `-p podman:` or in a
//! configuration file, and their defaults.

use std::{path::PathBuf, time::Duration};

use atex_plugin_api::packages::{BadPackageName, PackageSet};
use serde::{Deserialize, Deserializer};

/// The image used when none is configured: the test image that
/// `tests/images/build.sh` builds.
pub const DEFAULT_IMAGE: &str = "localhost/atex-test:bookworm";

/// When the base image is pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Never: the image must be in local storage.
    Never,
    /// Only when it is not in local storage.
    Missing,
    /// Always, before the first container (picks up a newer image).
    Always,
}

/// Options of the podman provisioner.
///
/// Lists (`run_options`, `command`) may also be given as one string, split
/// at white space (`run_options: "--network host --cap-add SYS_ADMIN"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PodmanConfig {
    /// Image to start containers from (the base of a prepared image, when
    /// `prepare` is set). Pulled once per run according to `pull`.
    pub image: String,
    /// When `start` pulls `image`: `never`, `missing` (default) or
    /// `always`. Containers themselves never pull.
    pub pull: PullPolicy,
    /// `false` pulls with `--tls-verify=false` (a plain-HTTP registry such
    /// as one on 127.0.0.1).
    pub tls_verify: bool,
    /// Packages installed into a derived image before the run; containers
    /// start from it. The image is cached, keyed by the base image's id and
    /// the package set. The entry `suite` stands for the packages the
    /// selected tests need: the host replaces it (see
    /// [`atex_plugin_api::packages`]).
    #[serde(deserialize_with = "string_or_list")]
    pub prepare: Vec<String>,
    /// Packages also installed into the prepared image when they can be
    /// (best effort); set by the host from the tests' `recommend` with
    /// `prepare: suite`.
    #[serde(deserialize_with = "string_or_list")]
    pub prepare_recommend: Vec<String>,
    /// A Containerfile built once per run (its directory is the build
    /// context); containers start from the result, or `prepare` installs on
    /// top of it. `image` is then only the platform name's default.
    pub containerfile: Option<PathBuf>,
    /// Seconds a pull or an image build may take.
    pub prepare_timeout: u64,
    /// The most containers existing at once (starting, ready or handed out).
    #[serde(alias = "max_remotes")]
    pub max: u32,
    /// Extra options for `podman run`, placed before the image.
    #[serde(deserialize_with = "string_or_list")]
    pub run_options: Vec<String>,
    /// The command that keeps the container alive. Default: `sleep
    /// infinity`, or `/sbin/init` in systemd mode.
    #[serde(deserialize_with = "opt_string_or_list")]
    pub command: Option<Vec<String>>,
    /// OCI runtime for `podman run --runtime` (e.g. `runc`). Default: the
    /// one containers.conf names. `podman exec` needs no such flag: a
    /// container remembers its runtime.
    pub runtime: Option<String>,
    /// Systemd mode, for tests that reboot: the container runs systemd as
    /// init (`--systemd=always`) with `--restart=always`, so that a reboot
    /// inside restarts the same container. A remote is handed out once
    /// `systemctl is-system-running` says `running` or `degraded`.
    pub systemd: bool,
    /// Value of the `atex.run` label on every container. Default: the run id.
    pub label: Option<String>,
    /// Platform name results are filed under. Default: the image's name and
    /// tag, e.g. `atex-test-bookworm`.
    pub platform: Option<String>,
    /// Seconds to wait for systemd to boot in systemd mode, and the longest
    /// a restarting container still counts as alive.
    pub boot_timeout: u64,
    /// Seconds any single podman command may take before it is killed.
    pub command_timeout: u64,
    /// How many times a `podman run` that failed with a known transient
    /// error is retried.
    pub retries: u32,
    /// A containers.conf(5) for the podman commands the plugin runs (it
    /// sets `CONTAINERS_CONF` for them). Default: inherited from the
    /// environment. The connection prefix does not need it.
    pub containers_conf: Option<PathBuf>,
}

impl Default for PodmanConfig {
    fn default() -> Self {
        PodmanConfig {
            image: DEFAULT_IMAGE.to_string(),
            pull: PullPolicy::Missing,
            tls_verify: true,
            prepare: Vec::new(),
            prepare_recommend: Vec::new(),
            containerfile: None,
            prepare_timeout: 1200,
            max: 4,
            run_options: Vec::new(),
            command: None,
            runtime: None,
            systemd: false,
            label: None,
            platform: None,
            boot_timeout: 120,
            command_timeout: 300,
            retries: 3,
            containers_conf: None,
        }
    }
}

impl PodmanConfig {
    /// A configuration for `image` with every other option at its default.
    pub fn for_image(image: impl Into<String>) -> Self {
        PodmanConfig {
            image: image.into(),
            ..Self::default()
        }
    }

    /// Checks values serde cannot check.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.image.trim().is_empty() {
            return Err("`image` must not be empty".into());
        }
        if self.max == 0 {
            return Err("`max` must be at least 1".into());
        }
        if self.command.as_ref().is_some_and(Vec::is_empty) {
            return Err("`command` must not be empty".into());
        }
        self.packages().map_err(|e| e.to_string())?;
        if let Some(label) = &self.label
            && (label.is_empty() || label.contains(['=', ',', '\n']))
        {
            return Err(format!(
                "`label` {label:?} must be non-empty, without `=`, `,` or newlines"
            ));
        }
        Ok(())
    }

    /// The command the container runs.
    pub(crate) fn effective_command(&self) -> Vec<String> {
        match &self.command {
            Some(c) => c.clone(),
            None if self.systemd => vec!["/sbin/init".into()],
            None => vec!["sleep".into(), "infinity".into()],
        }
    }

    /// The platform name results are filed under.
    pub(crate) fn effective_platform(&self) -> String {
        self.platform
            .clone()
            .unwrap_or_else(|| platform_from_image(&self.image))
    }

    pub(crate) fn boot_timeout(&self) -> Duration {
        Duration::from_secs(self.boot_timeout)
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout.max(1))
    }

    /// The packages of `prepare` and `prepare_recommend`, checked.
    pub(crate) fn packages(&self) -> Result<PackageSet, BadPackageName> {
        PackageSet::from_options(&self.prepare, &self.prepare_recommend)
    }

    pub(crate) fn prepare_timeout(&self) -> Duration {
        Duration::from_secs(self.prepare_timeout.max(1))
    }
}

/// `registry/path/name:tag@digest` -> `name-tag`: the last path element,
/// without a digest, with `:` replaced so the name is safe in file names
/// (tar reads `a:b` as a remote archive).
pub(crate) fn platform_from_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.replace(':', "-")
}

fn split_words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => split_words(&s),
            StringOrList::Many(v) => v,
        }
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<StringOrList>::deserialize(d)?
        .map(StringOrList::into_vec)
        .unwrap_or_default())
}

fn opt_string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Option::<StringOrList>::deserialize(d)?.map(StringOrList::into_vec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> PodmanConfig {
        match serde_yaml::from_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("{yaml}: {e}"),
        }
    }

    #[test]
    fn empty_config_gives_defaults() {
        assert_eq!(parse("{}"), PodmanConfig::default());
    }

    #[test]
    fn lists_may_be_strings() {
        let c = parse("run_options: --network host --cap-add X\ncommand: [sleep, '1000']");
        assert_eq!(c.run_options, ["--network", "host", "--cap-add", "X"]);
        assert_eq!(
            c.command,
            Some(vec!["sleep".to_string(), "1000".to_string()])
        );
        let c = parse("run_options: [--env, A=b c]\ncommand: /sbin/init --log-level=debug");
        assert_eq!(c.run_options, ["--env", "A=b c"]);
        assert_eq!(
            c.command,
            Some(vec![
                "/sbin/init".to_string(),
                "--log-level=debug".to_string()
            ])
        );
    }

    #[test]
    fn unknown_option_is_refused() {
        let e = serde_yaml::from_str::<PodmanConfig>("imgae: x").err();
        assert!(e.is_some_and(|e| e.to_string().contains("imgae")));
    }

    #[test]
    fn max_remotes_is_an_alias() {
        assert_eq!(parse("max_remotes: 7").max, 7);
        assert_eq!(parse("max: 2").max, 2);
    }

    #[test]
    fn validation() {
        assert!(parse("max: 0").validate().is_err());
        assert!(parse("image: ''").validate().is_err());
        assert!(parse("label: a=b").validate().is_err());
        assert!(parse("command: []").validate().is_err());
        assert!(parse("label: run-1").validate().is_ok());
        assert!(parse("prepare: jq 'a;b'").validate().is_err());
        assert!(parse("prepare: [-y]").validate().is_err());
        assert!(
            parse("prepare: jq python3-yaml libfoo=1.2+b1")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn pull_policies() {
        assert_eq!(PodmanConfig::default().pull, PullPolicy::Missing);
        assert_eq!(parse("pull: never").pull, PullPolicy::Never);
        assert_eq!(parse("pull: always").pull, PullPolicy::Always);
        assert!(serde_yaml::from_str::<PodmanConfig>("pull: sometimes").is_err());
        let c = parse("prepare: jq file\ncontainerfile: ci/Containerfile");
        assert_eq!(c.prepare, ["jq", "file"]);
        assert_eq!(c.containerfile, Some(PathBuf::from("ci/Containerfile")));
    }

    #[test]
    fn platform_and_command_defaults() {
        assert_eq!(
            platform_from_image("localhost/atex-test:bookworm"),
            "atex-test-bookworm"
        );
        assert_eq!(platform_from_image("quay.io/fedora/fedora:41"), "fedora-41");
        assert_eq!(platform_from_image("debian@sha256:abc"), "debian");
        assert_eq!(platform_from_image("alpine"), "alpine");
        let mut c = PodmanConfig::default();
        assert_eq!(c.effective_command(), ["sleep", "infinity"]);
        c.systemd = true;
        assert_eq!(c.effective_command(), ["/sbin/init"]);
        c.platform = Some("debian-12".into());
        assert_eq!(c.effective_platform(), "debian-12");
    }
}
