//! Options of the testing-farm provisioner.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use atex_plugin_api::PluginError;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{RetryPolicy, Secret};

/// The public Testing Farm API.
pub const DEFAULT_API_URL: &str = "https://api.testing-farm.io";

/// Where the caller's public address is looked up by default (the public
/// ranch needs it for its ingress rule).
pub const DEFAULT_SOURCE_CIDR_URL: &str = "https://ipv4.icanhazip.com";

/// Artifact types Testing Farm installs during provisioning.
pub const ARTIFACT_TYPES: &[&str] = &[
    "fedora-koji-build",
    "fedora-copr-build",
    "redhat-brew-build",
    "repository",
    "repository-file",
];

/// The most machines one provisioner holds at once (as upstream).
pub const ABSOLUTE_MAX: u32 = 50;

/// Options, as given with `-p testing-farm:KEY=VALUE,...` or a YAML file.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct TestingFarmConfig {
    /// API base URL; default `$TESTING_FARM_API_URL`, else the public one.
    pub api_url: Option<String>,
    /// API token; default `$TESTING_FARM_API_TOKEN`.
    pub token: Option<Secret>,
    /// Compose to install, e.g. `Fedora-Rawhide` (required).
    pub compose: Option<String>,
    /// Architecture.
    pub arch: String,
    /// Infrastructure pool to force.
    pub pool: Option<String>,
    /// Hardware requirements (a mapping, TF's `hardware`).
    pub hardware: Option<Value>,
    /// Kickstart settings (a mapping, TF's `kickstart`).
    pub kickstart: Option<Value>,
    /// Environment variables of the request (visible in the API).
    pub variables: BTreeMap<String, String>,
    /// Secret variables of the request (masked by the API).
    pub secrets: BTreeMap<String, Secret>,
    /// Cloud tags for the machines.
    pub tags: BTreeMap<String, String>,
    /// Lifetime of each request in minutes, queue time included.
    pub timeout: u32,
    /// Machines held at once (reserving, ready or in use).
    #[serde(alias = "max_remotes")]
    pub max: u32,
    /// Failed reservations replaced before giving up (per provisioner).
    pub retries: u32,
    /// SSH port of the machines (22; another one behind a gateway).
    pub port: u16,
    /// Skip TF's guest setup (`settings.pipeline.skip_guest_setup`).
    pub skip_guest_setup: bool,
    /// CIDR allowed to reach public-ranch machines (an ingress rule);
    /// detected through `source_cidr_url` when not given.
    pub source_cidr: Option<String>,
    /// URL answering the caller's public address as text.
    pub source_cidr_url: Option<String>,
    /// The user's private ssh key (its public key from `KEY.pub` or
    /// `ssh-keygen -y`); default a key generated per run.
    pub ssh_key: Option<PathBuf>,
    /// Artifacts installed during provisioning: a list of mappings
    /// (`type`, `id`, optional `packages`, `install`, `order`) or of
    /// `TYPE:ID` strings, or one string of space-separated `TYPE:ID`.
    pub artifacts: Option<Value>,
    /// TF's `tmt` settings of the environment (`context`, `environment`,
    /// `extra_args`), a mapping passed as it is.
    pub tmt: Option<Value>,
    /// A script TF runs on the guest right after provisioning
    /// (`settings.provisioning.post_install_script`).
    pub post_install_script: Option<String>,
    /// Seconds between reads of pipeline.log (artifacts server, not the
    /// API) while a request runs and its guest is not ready yet.
    pub log_interval: f64,
    /// Platform results are filed under; default `COMPOSE@ARCH`.
    pub platform: Option<String>,
    /// Seconds between polls of one request (state and pipeline.log).
    pub poll_interval: f64,
    /// Smallest gap in seconds between two API calls of this provisioner.
    pub min_interval: f64,
    /// Seconds to wait for ssh once TF says the guest is ready.
    pub ssh_timeout: f64,
    /// Attempts of one HTTP call before it counts as failed.
    pub http_attempts: u32,
    /// First backoff in seconds between attempts (doubles, capped at 60).
    pub http_backoff: f64,
    /// Seconds one HTTP exchange may take.
    pub http_timeout: f64,
}

impl Default for TestingFarmConfig {
    fn default() -> Self {
        TestingFarmConfig {
            api_url: None,
            token: None,
            compose: None,
            arch: "x86_64".into(),
            pool: None,
            hardware: None,
            kickstart: None,
            variables: BTreeMap::new(),
            secrets: BTreeMap::new(),
            tags: BTreeMap::new(),
            timeout: 60,
            max: 3,
            retries: 10,
            port: 22,
            skip_guest_setup: false,
            source_cidr: None,
            source_cidr_url: None,
            ssh_key: None,
            artifacts: None,
            tmt: None,
            post_install_script: None,
            log_interval: 1.0,
            platform: None,
            poll_interval: 5.0,
            min_interval: 0.1,
            ssh_timeout: 600.0,
            http_attempts: 12,
            http_backoff: 1.0,
            http_timeout: 30.0,
        }
    }
}

impl fmt::Debug for TestingFarmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestingFarmConfig")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("compose", &self.compose)
            .field("arch", &self.arch)
            .field("pool", &self.pool)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("max", &self.max)
            .field("retries", &self.retries)
            .field("port", &self.port)
            .field("ssh_key", &self.ssh_key)
            .field("artifacts", &self.artifacts)
            .finish_non_exhaustive()
    }
}

fn seconds(name: &str, v: f64, min: f64) -> Result<Duration, PluginError> {
    if !v.is_finite() || v < min {
        return Err(PluginError::config(format!(
            "testing-farm: `{name}` must be a number of seconds, at least {min}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Raw options.
    pub raw: TestingFarmConfig,
    /// API base URL.
    pub api_url: String,
    /// Compose.
    pub compose: String,
    /// Platform name.
    pub platform: String,
    /// Poll interval of one request.
    pub poll: Duration,
    /// ssh wait.
    pub ssh_timeout: Duration,
    /// HTTP retry policy.
    pub policy: RetryPolicy,
    /// Artifacts for the request's environment (TF's JSON form).
    pub artifacts: Vec<Value>,
    /// Interval of pipeline.log reads while waiting for the guest.
    pub log_interval: Duration,
}

/// One artifact from its compact form `TYPE:ID` (`repository:URL` keeps
/// the URL's own colons).
fn compact_artifact(text: &str) -> Result<Value, PluginError> {
    let (kind, id) = text.split_once(':').unwrap_or((text, ""));
    checked_artifact(kind.trim(), id.trim(), serde_json::Map::new())
}

fn checked_artifact(
    kind: &str,
    id: &str,
    mut rest: serde_json::Map<String, Value>,
) -> Result<Value, PluginError> {
    if !ARTIFACT_TYPES.contains(&kind) {
        return Err(PluginError::config(format!(
            "testing-farm: `artifacts`: unknown type {kind:?} (one of {})",
            ARTIFACT_TYPES.join(", ")
        )));
    }
    if id.is_empty() {
        return Err(PluginError::config(format!(
            "testing-farm: `artifacts`: {kind} needs an id, as in {kind}:ID"
        )));
    }
    rest.insert("type".into(), Value::String(kind.into()));
    rest.insert("id".into(), Value::String(id.into()));
    Ok(Value::Object(rest))
}

/// The `artifacts` option in TF's form: a list of `{type, id, ...}`.
pub fn parse_artifacts(v: Option<&Value>) -> Result<Vec<Value>, PluginError> {
    let items: Vec<&Value> = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => {
            return s.split_whitespace().map(compact_artifact).collect();
        }
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Object(_)) => vec![v.unwrap_or(&Value::Null)],
        Some(_) => {
            return Err(PluginError::config(
                "testing-farm: `artifacts` must be a list, or a string of TYPE:ID items",
            ));
        }
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => compact_artifact(s),
            Value::Object(m) => {
                let text = |k: &str| match m.get(k) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => String::new(),
                };
                let (kind, id) = (text("type"), text("id"));
                let mut rest = m.clone();
                for (k, v) in m {
                    let ok = match k.as_str() {
                        "type" | "id" => true,
                        "packages" => v
                            .as_array()
                            .is_some_and(|p| p.iter().all(Value::is_string)),
                        "install" => v.is_boolean(),
                        "order" => v.is_u64(),
                        _ => false,
                    };
                    if !ok {
                        return Err(PluginError::config(format!(
                            "testing-farm: `artifacts`: bad key `{k}` (type, id, packages: [..], install: bool, order: int)"
                        )));
                    }
                }
                rest.remove("type");
                rest.remove("id");
                checked_artifact(&kind, &id, rest)
            }
            _ => Err(PluginError::config(
                "testing-farm: `artifacts` items are mappings or TYPE:ID strings",
            )),
        })
        .collect()
}

impl TestingFarmConfig {
    /// Checks values and fills in defaults from the environment.
    pub fn validate(self) -> Result<Settings, PluginError> {
        let compose = self
            .compose
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| {
                PluginError::config(
                    "testing-farm: `compose` is required, e.g. -p testing-farm:compose=Fedora-Rawhide",
                )
            })?;
        let api_url = self
            .api_url
            .clone()
            .or_else(|| std::env::var("TESTING_FARM_API_URL").ok())
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(PluginError::config(format!(
                "testing-farm: `api_url` must be an http(s) URL, not {api_url:?}"
            )));
        }
        if self.max == 0 || self.max > ABSOLUTE_MAX {
            return Err(PluginError::config(format!(
                "testing-farm: `max` must be between 1 and {ABSOLUTE_MAX}"
            )));
        }
        if self.timeout == 0 {
            return Err(PluginError::config(
                "testing-farm: `timeout` (minutes) must be at least 1",
            ));
        }
        if self.port == 0 {
            return Err(PluginError::config("testing-farm: `port` must not be 0"));
        }
        if self.http_attempts == 0 {
            return Err(PluginError::config(
                "testing-farm: `http_attempts` must be at least 1",
            ));
        }
        for (name, v) in [
            ("hardware", &self.hardware),
            ("kickstart", &self.kickstart),
            ("tmt", &self.tmt),
        ] {
            if v.as_ref().is_some_and(|v| !v.is_object()) {
                return Err(PluginError::config(format!(
                    "testing-farm: `{name}` must be a mapping"
                )));
            }
        }
        let poll = seconds("poll_interval", self.poll_interval, 0.05)?;
        let min_interval = seconds("min_interval", self.min_interval, 0.0)?;
        let ssh_timeout = seconds("ssh_timeout", self.ssh_timeout, 1.0)?;
        let backoff = seconds("http_backoff", self.http_backoff, 0.0)?;
        let http_timeout = seconds("http_timeout", self.http_timeout, 0.5)?;
        let log_interval = seconds("log_interval", self.log_interval, 0.05)?;
        let artifacts = parse_artifacts(self.artifacts.as_ref())?;
        if let Some(url) = &self.source_cidr_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(PluginError::config(format!(
                "testing-farm: `source_cidr_url` must be an http(s) URL, not {url:?}"
            )));
        }
        let platform = self
            .platform
            .clone()
            .unwrap_or_else(|| format!("{compose}@{}", self.arch));
        Ok(Settings {
            api_url,
            compose,
            platform,
            poll,
            ssh_timeout,
            policy: RetryPolicy {
                attempts: self.http_attempts,
                backoff,
                backoff_max: Duration::from_secs(60).max(backoff),
                min_interval,
                http_timeout,
            },
            artifacts,
            log_interval,
            raw: self,
        })
    }

    /// The token from the options or `$TESTING_FARM_API_TOKEN`.
    pub fn token(&self) -> Option<Secret> {
        self.token
            .clone()
            .filter(|t| !t.expose().is_empty())
            .or_else(|| {
                std::env::var("TESTING_FARM_API_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty())
                    .map(Secret::new)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<TestingFarmConfig, serde_yaml::Error> {
        serde_yaml::from_str(yaml)
    }

    #[test]
    fn defaults_and_required_compose() {
        let c = parse("{}").expect("parses");
        assert_eq!(c.max, 3);
        assert_eq!(c.port, 22);
        let err = c.validate().expect_err("compose is required");
        assert!(err.message.contains("compose"), "{err}");
        let s = parse("compose: Fedora-Rawhide\napi_url: http://127.0.0.1:9\n")
            .expect("parses")
            .validate()
            .expect("valid");
        assert_eq!(s.platform, "Fedora-Rawhide@x86_64");
        assert_eq!(s.api_url, "http://127.0.0.1:9");
    }

    #[test]
    fn unknown_options_and_bad_values_are_refused() {
        assert!(parse("nope: 1").is_err());
        let bad = parse("compose: x\nmax: 0\n").expect("parses");
        assert!(bad.validate().is_err());
        let bad = parse("compose: x\nhardware: 3\n").expect("parses");
        assert!(bad.validate().is_err());
    }

    #[test]
    fn artifacts_in_both_forms() {
        let s = parse(
            "compose: x\nartifacts: fedora-koji-build:123 repository:https://example.org/repo\n",
        )
        .expect("parses")
        .validate()
        .expect("valid");
        assert_eq!(
            s.artifacts,
            vec![
                serde_json::json!({"type": "fedora-koji-build", "id": "123"}),
                serde_json::json!({"type": "repository", "id": "https://example.org/repo"}),
            ]
        );
        let s = parse(
            "compose: x\nartifacts:\n- {type: fedora-copr-build, id: '1784470:fedora-32-x86_64', packages: [a], install: false, order: 30}\n- redhat-brew-build:77\n",
        )
        .expect("parses")
        .validate()
        .expect("valid");
        assert_eq!(s.artifacts[0]["id"], "1784470:fedora-32-x86_64");
        assert_eq!(s.artifacts[0]["order"], 30);
        assert_eq!(s.artifacts[1]["type"], "redhat-brew-build");
        for bad in [
            "nope:1",
            "repository",
            "[{type: repository}]",
            "[{type: repository, id: x, colour: red}]",
        ] {
            let err = parse(&format!("compose: x\nartifacts: {bad}\n"))
                .expect("parses")
                .validate()
                .expect_err(bad);
            assert!(err.message.contains("`artifacts`"), "{err}");
        }
    }

    #[test]
    fn token_is_redacted_in_debug() {
        let c =
            parse("compose: x\ntoken: very-secret\nsecrets: {A: also-secret}\n").expect("parses");
        let text = format!("{c:?}");
        assert!(!text.contains("very-secret") && !text.contains("also-secret"));
        let s = c.validate().expect("valid");
        let text = format!("{s:?}");
        assert!(!text.contains("very-secret") && !text.contains("also-secret"));
    }
}
