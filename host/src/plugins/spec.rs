//! `NAME[:K=V,...]` plugin selections as the command line takes them.

use std::fmt;

use atex_plugin_api::packages::{PackageSet, SUITE};

/// A plugin name with its configuration, as given after `-p` or `-r`.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// The plugin's name.
    pub name: String,
    /// Options; each value is read as a YAML scalar (`4` is a number,
    /// `true` a boolean, anything else a string).
    pub options: serde_yaml::Mapping,
}

/// A malformed `NAME[:K=V,...]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad plugin selection `{text}`: {reason} (expected NAME or NAME:KEY=VALUE,KEY=VALUE)")]
pub struct PluginSpecError {
    text: String,
    reason: String,
}

impl PluginSpec {
    /// Parses `NAME` or `NAME:K=V,K=V`.
    pub fn parse(text: &str) -> Result<PluginSpec, PluginSpecError> {
        let err = |reason: &str| PluginSpecError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (name, rest) = text.split_once(':').unwrap_or((text, ""));
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err("the name must be letters, digits, - or _"));
        }
        let mut options = serde_yaml::Mapping::new();
        for pair in rest.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| err(&format!("`{pair}` has no `=`")))?;
            if key.is_empty() {
                return Err(err("an option name is empty"));
            }
            let value = match serde_yaml::from_str::<serde_yaml::Value>(value) {
                Ok(v @ (serde_yaml::Value::Bool(_) | serde_yaml::Value::Number(_))) => v,
                _ => serde_yaml::Value::String(value.to_string()),
            };
            options.insert(serde_yaml::Value::String(key.to_string()), value);
        }
        Ok(PluginSpec {
            name: name.to_string(),
            options,
        })
    }

    /// The `platform` option, which also names the provisioner's column in
    /// a run's matrix.
    pub fn platform(&self) -> Option<String> {
        match self.options.get("platform")? {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Whether the `prepare` option names the suite's packages: its value,
    /// or an entry of its list, is the word `suite`.
    pub fn wants_suite_packages(&self) -> bool {
        entries(self.options.get("prepare"))
            .iter()
            .any(|p| p == SUITE)
    }

    /// Replaces the `suite` entry of the `prepare` option by the required
    /// packages of `packages` (keeping the user's other entries), and adds
    /// its recommended ones to `prepare_recommend` — the host's side of the
    /// convention in [`atex_plugin_api::packages`]. Does nothing when
    /// [`wants_suite_packages`](Self::wants_suite_packages) is false.
    pub fn expand_suite_packages(&mut self, packages: &PackageSet) {
        if !self.wants_suite_packages() {
            return;
        }
        let mut prepare = Vec::new();
        for entry in entries(self.options.get("prepare")) {
            if entry == SUITE {
                prepare.extend(packages.packages().iter().cloned());
            } else {
                prepare.push(entry);
            }
        }
        let mut recommend = entries(self.options.get("prepare_recommend"));
        recommend.extend(packages.recommended().iter().cloned());
        let list = |v: Vec<String>| {
            serde_yaml::Value::Sequence(v.into_iter().map(serde_yaml::Value::String).collect())
        };
        self.options.insert("prepare".into(), list(prepare));
        self.options
            .insert("prepare_recommend".into(), list(recommend));
    }

    /// The options as YAML text for the plugin (empty when there are none).
    pub fn config_text(&self) -> String {
        if self.options.is_empty() {
            return String::new();
        }
        serde_yaml::to_string(&self.options).unwrap_or_default()
    }
}

/// A list option's entries: a list of scalars, or one string split at
/// white space (as plugins read such options).
fn entries(value: Option<&serde_yaml::Value>) -> Vec<String> {
    let scalar = |v: &serde_yaml::Value| match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match value {
        Some(serde_yaml::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(serde_yaml::Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
        _ => Vec::new(),
    }
}

impl fmt::Display for PluginSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_their_types() {
        let spec =
            PluginSpec::parse("podman:image=localhost/x:1,max=4,systemd=true").expect("parses");
        assert_eq!(spec.name, "podman");
        let text = spec.config_text();
        let back: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
        assert_eq!(
            back["image"],
            serde_yaml::Value::String("localhost/x:1".into())
        );
        assert_eq!(back["max"], serde_yaml::Value::Number(4.into()));
        assert_eq!(back["systemd"], serde_yaml::Value::Bool(true));
    }

    #[test]
    fn suite_in_prepare_becomes_the_suite_packages() {
        let set = PackageSet::new(["jq", "tree"]).with_recommended(["gdb"]);
        let mut spec = PluginSpec::parse("podman:prepare=suite file").expect("parses");
        assert!(spec.wants_suite_packages());
        spec.expand_suite_packages(&set);
        let back: serde_yaml::Value = serde_yaml::from_str(&spec.config_text()).expect("yaml");
        let strings = |v: &serde_yaml::Value| -> Vec<String> {
            v.as_sequence()
                .expect("a list")
                .iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        };
        assert_eq!(strings(&back["prepare"]), ["jq", "tree", "file"]);
        assert_eq!(strings(&back["prepare_recommend"]), ["gdb"]);
    }

    #[test]
    fn prepare_without_suite_is_left_alone() {
        let set = PackageSet::new(["jq"]);
        for text in ["podman:prepare=file", "podman:image=x", "local"] {
            let mut spec = PluginSpec::parse(text).expect("parses");
            let before = spec.clone();
            assert!(!spec.wants_suite_packages());
            spec.expand_suite_packages(&set);
            assert_eq!(spec, before, "{text}");
        }
    }

    #[test]
    fn plain_name_has_no_config() {
        let spec = PluginSpec::parse("local").expect("parses");
        assert!(spec.options.is_empty());
        assert_eq!(spec.config_text(), "");
    }

    #[test]
    fn malformed_selections_are_refused() {
        assert!(PluginSpec::parse("").is_err());
        assert!(PluginSpec::parse("a b").is_err());
        assert!(PluginSpec::parse("x:novalue").is_err());
        assert!(PluginSpec::parse("x:=1").is_err());
    }
}
