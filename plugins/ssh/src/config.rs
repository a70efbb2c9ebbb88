//! Options of the ssh provisioner and the `[user@]host[:port]` entries.

use std::path::PathBuf;

use serde::Deserialize;

/// Options as the user writes them (`-p ssh:K=V,...` or a YAML mapping).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Space-separated entries, a list, or `@FILE` (one entry a line).
    pub hosts: Hosts,
    /// Login user of entries without `user@`.
    #[serde(default)]
    pub user: Option<String>,
    /// Port of entries without `:port`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Private key file.
    #[serde(default)]
    pub key: Option<String>,
    /// Run commands through `sudo -n` (default: when the user is not root).
    #[serde(default)]
    pub sudo: Option<bool>,
    /// Systems handed out per host at once.
    #[serde(default)]
    pub max_per_host: Option<u32>,
    /// Platform name results are filed under.
    #[serde(default)]
    pub platform: Option<String>,
    /// Seconds ssh waits for a host to answer.
    #[serde(default)]
    pub connect_timeout: Option<u64>,
    /// Check host keys against known_hosts (default true).
    #[serde(default)]
    pub host_key_check: Option<bool>,
    /// The known_hosts file (default: ssh's own, `~/.ssh/known_hosts`).
    #[serde(default)]
    pub known_hosts: Option<String>,
}

/// The `hosts` option: one string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Hosts {
    /// `"root@a root@b:2222"` or `"@FILE"`.
    Text(String),
    /// One entry (or `@FILE`) per item.
    List(Vec<String>),
}

/// One machine to log in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// Login user.
    pub user: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl HostEntry {
    /// `user@host:port` (IPv6 addresses in brackets).
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every host, in the order given, without duplicates.
    pub hosts: Vec<HostEntry>,
    /// Private key file, `~` expanded.
    pub key: Option<PathBuf>,
    /// Forced sudo setting; `None`: sudo for users other than root.
    pub sudo: Option<bool>,
    /// Slots per host.
    pub max_per_host: u32,
    /// Platform name.
    pub platform: String,
    /// Seconds.
    pub connect_timeout: u64,
    /// Whether host keys are checked.
    pub host_key_check: bool,
    /// known_hosts file, `~` expanded; `None`: ssh's default files.
    pub known_hosts: Option<PathBuf>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `hosts` lists nothing.
    #[error("`hosts` lists no host")]
    NoHosts,
    /// An entry is not `[user@]host[:port]`.
    #[error("bad host entry `{entry}`: {reason} (expected [user@]host[:port])")]
    BadEntry {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `@FILE` could not be read.
    #[error("cannot read the hosts file {path}: {source}")]
    HostsFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A number is out of range.
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    /// A user name that ssh would take for an option.
    #[error("bad user `{0}`")]
    BadUser(String),
    /// The key file does not exist.
    #[error("the key file {0} does not exist")]
    NoKey(String),
}

/// `~/…` with the home directory put in.
pub fn expand_tilde(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ if path == "~" => std::env::var_os("HOME").map_or_else(|| path.into(), PathBuf::from),
        _ => PathBuf::from(path),
    }
}

/// Whether `s` is safe as an ssh host or user (no option injection, no
/// shell or config syntax).
fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b))
}

/// Parses one `[user@]host[:port]` entry.
pub fn parse_entry(
    entry: &str,
    default_user: &str,
    default_port: u16,
) -> Result<HostEntry, ConfigError> {
    let bad = |reason| ConfigError::BadEntry {
        entry: entry.to_string(),
        reason,
    };
    let (user, rest) = match entry.rsplit_once('@') {
        Some((u, r)) => (u, r),
        None => (default_user, entry),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        // [v6]:port or [v6]
        let (addr, after) = inner.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
        match after {
            "" => (addr, None),
            p => (
                addr,
                Some(p.strip_prefix(':').ok_or_else(|| bad("junk after `]`"))?),
            ),
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => (rest, None), // a bare IPv6 address
            None => (rest, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        None => default_port,
    };
    if !valid_part(host) {
        return Err(bad(
            "the host name is empty or has characters ssh would not take",
        ));
    }
    if !valid_part(user) || user.contains(':') {
        return Err(bad(
            "the user is empty or has characters ssh would not take",
        ));
    }
    Ok(HostEntry {
        user: user.to_string(),
        host: host.to_string(),
        port,
    })
}

/// Every entry of `hosts`, with `@FILE`s read (one entry a line, `#`
/// comments and blank lines ignored).
pub fn host_words(hosts: &Hosts) -> Result<Vec<String>, ConfigError> {
    let items: Vec<&str> = match hosts {
        Hosts::Text(t) => t.split_whitespace().collect(),
        Hosts::List(l) => l.iter().map(|s| s.trim()).collect(),
    };
    let mut words = Vec::new();
    for item in items {
        if let Some(file) = item.strip_prefix('@') {
            let path = expand_tilde(file);
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::HostsFile {
                path: path.display().to_string(),
                source,
            })?;
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                words.extend(line.split_whitespace().map(str::to_string));
            }
        } else if !item.is_empty() {
            words.push(item.to_string());
        }
    }
    Ok(words)
}

impl RawConfig {
    /// Checks the options and reads the hosts.
    pub fn settings(self) -> Result<Settings, ConfigError> {
        let user = self.user.unwrap_or_else(|| "root".to_string());
        if !valid_part(&user) || user.contains(':') {
            return Err(ConfigError::BadUser(user));
        }
        let port = self.port.unwrap_or(22);
        if port == 0 {
            return Err(ConfigError::Zero("port"));
        }
        let mut hosts: Vec<HostEntry> = Vec::new();
        for word in host_words(&self.hosts)? {
            let entry = parse_entry(&word, &user, port)?;
            if !hosts.contains(&entry) {
                hosts.push(entry);
            }
        }
        if hosts.is_empty() {
            return Err(ConfigError::NoHosts);
        }
        let max_per_host = self.max_per_host.unwrap_or(1);
        if max_per_host == 0 {
            return Err(ConfigError::Zero("max_per_host"));
        }
        let connect_timeout = self.connect_timeout.unwrap_or(10);
        if connect_timeout == 0 {
            return Err(ConfigError::Zero("connect_timeout"));
        }
        let key = self.key.as_deref().map(expand_tilde);
        if let Some(k) = &key
            && !k.exists()
        {
            return Err(ConfigError::NoKey(k.display().to_string()));
        }
        Ok(Settings {
            hosts,
            key,
            sudo: self.sudo,
            max_per_host,
            platform: self.platform.unwrap_or_else(|| "ssh".to_string()),
            connect_timeout,
            host_key_check: self.host_key_check.unwrap_or(true),
            known_hosts: self.known_hosts.as_deref().map(expand_tilde),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Settings, String> {
        let raw: RawConfig = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        raw.settings().map_err(|e| e.to_string())
    }

    #[test]
    fn entries_take_defaults_and_overrides() {
        let s =
            parse("hosts: root@a b:2222 [::1]:23 c\nuser: tester\nport: 2200\n").expect("parses");
        let shown: Vec<String> = s.hosts.iter().map(HostEntry::display).collect();
        assert_eq!(
            shown,
            [
                "root@a:2200",
                "tester@b:2222",
                "tester@[::1]:23",
                "tester@c:2200"
            ]
        );
        assert_eq!(s.max_per_host, 1);
        assert!(s.host_key_check);
        assert_eq!(s.platform, "ssh");
    }

    #[test]
    fn a_list_and_a_file_work_too() {
        let dir = tempfile_dir();
        let file = dir.join("hosts");
        std::fs::write(&file, "# machines\nroot@x:2022\n\n  y  # the other one\n").expect("write");
        let yaml = format!("hosts:\n  - z\n  - \"@{}\"\n", file.display());
        let s = parse(&yaml).expect("parses");
        let shown: Vec<String> = s.hosts.iter().map(HostEntry::display).collect();
        assert_eq!(shown, ["root@z:22", "root@x:2022", "root@y:22"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "hosts: ''",
            "hosts: -oProxyCommand=x",
            "hosts: a:notaport",
            "hosts: a:0",
            "hosts: root@",
            "hosts: '[::1'",
            "hosts: a\nmax_per_host: 0",
            "hosts: a\nkey: /nonexistent/key",
            "hosts: '@/nonexistent/list'",
            "hosts: a\nno_such_option: 1",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("atex-ssh-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
