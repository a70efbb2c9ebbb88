//! The tmt model on top of fmf node data: [`Test`] (the L1 test keys with
//! tmt's defaults and normalisation, e.g. durations like `5m`, `1h 30m`,
//! `*2`) and [`Plan`] (discover sections, environment, prepare, finish).
//! Turning nodes into these is [`super::discover`]'s job.

use std::{path::PathBuf, time::Duration};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::pyval;

/// The default test duration (tmt `DEFAULT_TEST_DURATION_L1`).
pub const DEFAULT_DURATION: &str = "5m";

/// A test: a leaf node with `test`, with its tmt metadata.
///
/// The typed fields are read from [`Test::metadata`] at discovery; after
/// editing `metadata`, call [`Test::refresh`] to read them again (or edit
/// the typed fields directly).
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// Full name, e.g. `/tests/smoke` (prefixed with `/<section>` for named
    /// discover sections).
    pub name: String,
    /// Absolute directory of the last `.fmf` file that defined the test
    /// (the tree root for nodes without a source).
    pub source_dir: PathBuf,
    /// The test's directory relative to the tree root (`.` for the root).
    pub source_rel: PathBuf,
    /// The shell command (`test`).
    pub test: String,
    /// tmt `path`: as given, else `/` + the source directory relative to the
    /// tree root.
    pub path: String,
    /// `duration`, parsed with tmt's syntax (default 5m).
    pub duration: Duration,
    /// `environment`, values converted as tmt does (Python `str()`).
    pub environment: IndexMap<String, String>,
    /// Package names from `require` (the string entries).
    pub require: Vec<String>,
    /// Every `require` entry as written (strings, library and file dicts).
    pub require_raw: Vec<Value>,
    /// Package names from `recommend`.
    pub recommend: Vec<String>,
    /// Every `recommend` entry as written.
    pub recommend_raw: Vec<Value>,
    /// `tag` as a list.
    pub tag: Vec<String>,
    /// `tier` as text (`None` when unset or null).
    pub tier: Option<String>,
    /// `order` (default 50).
    pub order: i64,
    /// `tty` (default false).
    pub tty: bool,
    /// `extra-priority`, when it is a number.
    pub extra_priority: Option<i64>,
    /// `result` (default `respect`).
    pub result: String,
    /// `enabled` (default true).
    pub enabled: bool,
    /// The node's whole data after inheritance and adjust.
    pub metadata: Map<String, Value>,
    /// Index of the plan's discover section the test comes from (0 for
    /// the default plan).
    pub section: usize,
}

/// Why test or plan metadata is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetadataError(pub String);

fn listlike(v: Option<&Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    listlike(v).iter().map(pyval::py_str).collect()
}

/// An `environment` value (a mapping, or a list of mappings merged in
/// order) with values converted by Python `str()`.
pub fn environment(v: Option<&Value>) -> Result<IndexMap<String, String>, MetadataError> {
    let mut env = IndexMap::new();
    let mut add = |m: &Map<String, Value>| {
        for (k, v) in m {
            env.insert(k.clone(), pyval::py_str(v));
        }
    };
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => add(m),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::Object(m) => add(m),
                    _ => {
                        return Err(MetadataError(
                            "'environment' list items must be mappings".into(),
                        ));
                    }
                }
            }
        }
        Some(_) => return Err(MetadataError("'environment' must be a mapping".into())),
    }
    Ok(env)
}

/// Parse a tmt duration (`5m`, `1h 30m`, `2d`, `90`, `5m*2`, `*2`) into
/// seconds, as `tmt.utils.duration_to_seconds`: the sum of the time
/// tokens times the product of the multipliers, rounded up; multipliers
/// alone apply to the default 5m.
pub fn parse_duration(text: &str) -> Result<Duration, MetadataError> {
    let bad = || MetadataError(format!("invalid duration '{text}'"));
    // `5m15m` -> `5m 15m`; then tokens separated by whitespace.
    let mut spaced = String::with_capacity(text.len() + 4);
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        spaced.push(c);
        if matches!(c, 's' | 'm' | 'h' | 'd')
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
        {
            spaced.push(' ');
        }
    }
    let s: Vec<char> = spaced
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    if s.is_empty() {
        return Err(bad());
    }
    let mut i = 0;
    let mut total: f64 = 0.0;
    let mut factor: f64 = 1.0;
    let mut any_time = false;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && s[*i] == ' ' {
            *i += 1;
        }
    };
    while i < s.len() {
        skip_ws(&mut i);
        if i >= s.len() {
            break;
        }
        if s[i] == '*' {
            i += 1;
            skip_ws(&mut i);
            let start = i;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(bad());
            }
            if i < s.len() && s[i] == '.' {
                i += 1;
                let frac = i;
                while i < s.len() && s[i].is_ascii_digit() {
                    i += 1;
                }
                if i == frac {
                    return Err(bad());
                }
            }
            let num: String = s[start..i].iter().collect();
            factor *= num.parse::<f64>().map_err(|_| bad())?;
        } else if s[i].is_ascii_digit() {
            let start = i;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            let num: f64 = s[start..i]
                .iter()
                .collect::<String>()
                .parse()
                .map_err(|_| bad())?;
            skip_ws(&mut i);
            let unit = match s.get(i) {
                Some('s') => 1.0,
                Some('m') => 60.0,
                Some('h') => 3600.0,
                Some('d') => 86400.0,
                _ => 0.0,
            };
            if unit > 0.0 {
                i += 1;
                total += num * unit;
            } else {
                total += num;
            }
            any_time = true;
        } else {
            return Err(bad());
        }
        // Each token ends at a word boundary.
        if i < s.len() && s[i] != ' ' && s[i] != '*' {
            return Err(bad());
        }
    }
    if !any_time {
        total = 300.0;
    }
    let secs = (total * factor).ceil();
    if !secs.is_finite() || secs < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs as u64))
}

impl Test {
    /// Build a test from its node data. `source_dir` is absolute,
    /// `source_rel` relative to the tree root (used for the default `path`).
    pub fn from_metadata(
        name: String,
        source_dir: PathBuf,
        source_rel: PathBuf,
        metadata: Map<String, Value>,
    ) -> Result<Test, MetadataError> {
        let mut test = Test {
            name,
            source_dir,
            source_rel,
            test: String::new(),
            path: String::new(),
            duration: Duration::from_secs(300),
            environment: IndexMap::new(),
            require: Vec::new(),
            require_raw: Vec::new(),
            recommend: Vec::new(),
            recommend_raw: Vec::new(),
            tag: Vec::new(),
            tier: None,
            order: 50,
            tty: false,
            extra_priority: None,
            result: "respect".into(),
            enabled: true,
            metadata,
            section: 0,
        };
        test.refresh()?;
        Ok(test)
    }

    /// Read the typed fields again from [`Test::metadata`].
    pub fn refresh(&mut self) -> Result<(), MetadataError> {
        let m = &self.metadata;
        self.test = match m.get("test") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => pyval::py_str(other),
            None => return Err(MetadataError("missing 'test'".into())),
        };
        self.path = match m.get("path") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                let rel = self.source_rel.to_string_lossy();
                if rel == "." || rel.is_empty() {
                    "/".into()
                } else {
                    format!("/{rel}")
                }
            }
        };
        self.duration = match m.get("duration") {
            None | Some(Value::Null) => parse_duration(DEFAULT_DURATION)?,
            Some(Value::String(s)) => parse_duration(s)?,
            Some(Value::Number(n)) => parse_duration(&n.to_string())?,
            Some(other) => {
                return Err(MetadataError(format!(
                    "invalid duration '{}'",
                    pyval::py_str(other)
                )));
            }
        };
        self.environment = environment(m.get("environment"))?;
        self.require_raw = listlike(m.get("require"));
        self.require = self
            .require_raw
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        self.recommend_raw = listlike(m.get("recommend"));
        self.recommend = self
            .recommend_raw
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        self.tag = strings(m.get("tag"));
        self.tier = match m.get("tier") {
            None | Some(Value::Null) => None,
            Some(v) => Some(pyval::py_str(v)),
        };
        self.order = match m.get("order") {
            None | Some(Value::Null) => 50,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| MetadataError(format!("invalid order '{}'", pyval::py_str(v))))?,
        };
        self.tty = m.get("tty").is_some_and(pyval::truthy);
        self.extra_priority = m.get("extra-priority").and_then(|v| match v {
            Value::String(s) => s.trim().parse().ok(),
            other => other.as_i64(),
        });
        self.result = match m.get("result") {
            None | Some(Value::Null) => "respect".into(),
            Some(v) => pyval::py_str(v),
        };
        self.enabled = m.get("enabled").is_none_or(pyval::truthy);
        Ok(())
    }
}

/// One `discover` section of a plan (`how: fmf`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiscoverSection {
    /// `name`; named sections prefix test names with `/<name>`.
    pub name: Option<String>,
    /// `test`: name regexes (OR-ed with the caller's names).
    pub test: Vec<String>,
    /// `filter`: filter expressions (AND-ed with the caller's filters).
    pub filter: Vec<String>,
    /// `exclude`: name regexes to drop.
    pub exclude: Vec<String>,
    /// `url`: the git repository holding the section's tree (`None`: the
    /// plan's own tree).
    pub url: Option<String>,
    /// `ref`: branch, tag or commit of `url` (`None`: its default branch).
    pub git_ref: Option<String>,
    /// `path`: the fmf root inside the repository (or, without `url`,
    /// inside the plan's tree).
    pub path: Option<String>,
    /// The raw section.
    pub raw: Map<String, Value>,
}

impl DiscoverSection {
    /// The directory name tmt gives the section's phase: its `name`, or
    /// `default-<index>` for an unnamed one.
    pub fn key(&self, index: usize) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("default-{index}"),
        }
    }

    /// Whether the section's tree is not the plan's own (`url` or `path`).
    pub fn is_remote(&self) -> bool {
        self.url.is_some() || self.path.is_some()
    }
}

/// One `prepare` step.
#[derive(Debug, Clone, PartialEq)]
pub enum PrepareStep {
    /// `how: install` with `package` names.
    Install(Vec<String>),
    /// `how: shell` with `script`s.
    Shell(Vec<String>),
    /// Any other `how`, kept raw.
    Other(Map<String, Value>),
}

/// A tmt plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// The plan node name; `None` for the default plan (discover everything
    /// with `how: fmf`).
    pub name: Option<String>,
    /// `discover` sections with `how: fmf`.
    pub discover: Vec<DiscoverSection>,
    /// `environment`.
    pub environment: IndexMap<String, String>,
    /// `prepare` steps in order.
    pub prepare: Vec<PrepareStep>,
    /// `finish` shell scripts (`how: shell`), in order.
    pub finish: Vec<String>,
    /// The plan node's data.
    pub metadata: Map<String, Value>,
}

impl Plan {
    /// The default plan: one unnamed `how: fmf` section.
    pub fn default_plan() -> Plan {
        Plan {
            discover: vec![DiscoverSection::default()],
            ..Plan::default()
        }
    }

    /// Build a plan from its node data.
    pub fn from_metadata(name: &str, metadata: Map<String, Value>) -> Result<Plan, MetadataError> {
        let sections_of = |key: &str| -> Result<Vec<Map<String, Value>>, MetadataError> {
            listlike(metadata.get(key))
                .into_iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(m),
                    _ => Err(MetadataError(format!(
                        "'{key}' must be a mapping or a list of mappings"
                    ))),
                })
                .collect()
        };
        let how = |m: &Map<String, Value>, default: &str| {
            m.get("how")
                .map(pyval::py_str)
                .unwrap_or_else(|| default.to_string())
        };
        let mut discover = Vec::new();
        for section in sections_of("discover")? {
            if how(&section, "fmf") != "fmf" {
                continue;
            }
            let name = section.get("name").map(pyval::py_str);
            let text = |key: &str| {
                section
                    .get(key)
                    .filter(|v| !v.is_null())
                    .map(pyval::py_str)
                    .filter(|s| !s.is_empty())
            };
            discover.push(DiscoverSection {
                name,
                test: strings(section.get("test")),
                filter: strings(section.get("filter")),
                exclude: strings(section.get("exclude")),
                url: text("url"),
                git_ref: text("ref"),
                path: text("path"),
                raw: section,
            });
        }
        if discover.is_empty() {
            return Err(MetadataError(
                "no 'discover' section with 'how: fmf'".into(),
            ));
        }
        if discover.len() > 1 {
            let mut seen = Vec::new();
            for s in &discover {
                let Some(n) = &s.name else {
                    return Err(MetadataError(
                        "with several discover sections, each needs a 'name'".into(),
                    ));
                };
                if seen.contains(n) {
                    return Err(MetadataError(format!(
                        "duplicate discover section name '{n}'"
                    )));
                }
                seen.push(n.clone());
            }
        }
        for s in &discover {
            if let Some(n) = &s.name
                && (n.contains('/') || n == "." || n == ".." || n.is_empty())
            {
                return Err(MetadataError(format!(
                    "invalid discover section name '{n}'"
                )));
            }
        }
        let mut prepare = Vec::new();
        for step in sections_of("prepare")? {
            prepare.push(match how(&step, "").as_str() {
                "install" => PrepareStep::Install(strings(step.get("package"))),
                "shell" => PrepareStep::Shell(strings(step.get("script"))),
                _ => PrepareStep::Other(step),
            });
        }
        let mut finish = Vec::new();
        for step in sections_of("finish")? {
            if how(&step, "shell") == "shell" {
                finish.extend(strings(step.get("script")));
            }
        }
        Ok(Plan {
            name: Some(name.to_string()),
            discover,
            environment: environment(metadata.get("environment"))?,
            prepare,
            finish,
            metadata,
        })
    }

    /// Packages of all `prepare` `how: install` steps.
    pub fn install_packages(&self) -> Vec<String> {
        self.prepare
            .iter()
            .filter_map(|s| match s {
                PrepareStep::Install(p) => Some(p.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Option<u64> {
        parse_duration(s).ok().map(|d| d.as_secs())
    }

    #[test]
    fn durations_like_tmt() {
        assert_eq!(secs("5m"), Some(300));
        assert_eq!(secs("1h 30m"), Some(5400));
        assert_eq!(secs("2d"), Some(172800));
        assert_eq!(secs("90"), Some(90));
        assert_eq!(secs("1h 3h 2m 3"), Some(14523));
        assert_eq!(secs("*3 2s *4"), Some(24));
        assert_eq!(secs("5m*2"), Some(600));
        assert_eq!(secs("5m *2 15m"), Some(2400));
        assert_eq!(secs("5m15m"), Some(1200));
        assert_eq!(secs("1m*2.5"), Some(150));
        assert_eq!(secs("*2"), Some(600));
        for bad in ["1.5h", "3 min", "1s+10s", "", "m", "*"] {
            assert_eq!(secs(bad), None, "{bad}");
        }
    }
}
