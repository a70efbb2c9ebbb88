//! Packages a suite needs, installed once into an image that every system
//! of a run then starts from.
//!
//! A provisioner that can snapshot a system (a container image, a VM's base
//! disk) installs a [`PackageSet`] once, keeps the result under the set's
//! [`key`](PackageSet::key), and starts every system from it; the per-test
//! installs the host runs later then find everything present.
//!
//! # The `prepare: suite` convention
//!
//! The host knows which tests a run selected; a plugin does not. When a
//! provisioner's configuration has the option `prepare` and its value (a
//! string, or an entry of a list) is the word [`SUITE`], the host replaces
//! that entry, before constructing the provisioner, by the packages the
//! selected tests of the provisioner's platform `require`, plus those of
//! the plan's `prepare` steps with `how: install`, and sets the option
//! `prepare_recommend` to the union of their `recommend` packages
//! (installed on a best-effort basis). Other entries of the list are kept,
//! so `prepare: [suite, gdb]` adds a package of the user's own. A plugin
//! that offers `prepare` reads both options with
//! [`PackageSet::from_options`].
//!
//! This is plain Rust compiled into the plugin; nothing here crosses the
//! ABI.

use std::fmt;

/// The `prepare` entry the host replaces by the suite's packages.
pub const SUITE: &str = "suite";

/// A set of packages to install: the `required` ones must all install, the
/// `recommended` ones are tried one by one and may be missing. Both are
/// sorted and without duplicates, so the same set in any order has the same
/// [`key`](Self::key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageSet {
    required: Vec<String>,
    recommended: Vec<String>,
}

/// A `prepare` entry that is not a package name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPackageName {
    /// The option it came from.
    pub option: &'static str,
    /// The entry.
    pub name: String,
}

impl fmt::Display for BadPackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: {:?} is not a package name (letters, digits and `.+-_:~@=/*`)",
            self.option, self.name
        )
    }
}

impl std::error::Error for BadPackageName {}

fn sorted<I, S>(packages: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut v: Vec<String> = packages.into_iter().map(Into::into).collect();
    v.sort();
    v.dedup();
    v
}

impl PackageSet {
    /// The set of `required` packages.
    pub fn new<I, S>(required: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PackageSet {
            required: sorted(required),
            recommended: Vec::new(),
        }
    }

    /// The same set with `recommended` packages added (best effort). A
    /// package that is also required counts as required only.
    pub fn with_recommended<I, S>(mut self, recommended: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all = std::mem::take(&mut self.recommended);
        all.extend(recommended.into_iter().map(Into::into));
        self.recommended = sorted(all)
            .into_iter()
            .filter(|p| self.required.binary_search(p).is_err())
            .collect();
        self
    }

    /// The set a plugin's `prepare` and `prepare_recommend` options name
    /// (after the host replaced [`SUITE`]); every entry must be a
    /// [package name](is_package_name). A [`SUITE`] entry left in place
    /// (a host that predates the convention, or a library user who did not
    /// expand it) is refused by name.
    pub fn from_options(prepare: &[String], recommend: &[String]) -> Result<Self, BadPackageName> {
        for (option, list) in [("prepare", prepare), ("prepare_recommend", recommend)] {
            if let Some(bad) = list.iter().find(|p| !is_package_name(p) || *p == SUITE) {
                return Err(BadPackageName {
                    option,
                    name: bad.clone(),
                });
            }
        }
        Ok(PackageSet::new(prepare.iter().cloned()).with_recommended(recommend.iter().cloned()))
    }

    /// The packages that must install, sorted.
    pub fn packages(&self) -> &[String] {
        &self.required
    }

    /// The packages installed on a best-effort basis, sorted.
    pub fn recommended(&self) -> &[String] {
        &self.recommended
    }

    /// Whether there is nothing to install.
    pub fn is_empty(&self) -> bool {
        self.required.is_empty() && self.recommended.is_empty()
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
        for p in &self.required {
            h.write(b"\0");
            h.write(p.as_bytes());
        }
        // Sets without recommendations keep the keys they always had.
        for p in &self.recommended {
            h.write(b"\0?");
            h.write(p.as_bytes());
        }
        format!("{:016x}", h.finish())
    }

    /// A POSIX shell script installing the set with whichever of dnf, yum,
    /// apt-get, zypper or apk the system has: it fails when a required
    /// package cannot be installed; each recommended package is tried on
    /// its own and skipped when it cannot. Package names are not quoted:
    /// callers check them with [`is_package_name`].
    pub fn install_script(&self) -> String {
        let p = self.required.join(" ");
        let mut script = format!(
            "set -e; \
             if command -v dnf >/dev/null 2>&1; then dnf -y install {p}; dnf clean all; \
             elif command -v yum >/dev/null 2>&1; then yum -y install {p}; yum clean all; \
             elif command -v apt-get >/dev/null 2>&1; then apt-get update; \
             DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {p}; \
             elif command -v zypper >/dev/null 2>&1; then zypper --non-interactive install {p}; \
             elif command -v apk >/dev/null 2>&1; then apk add {p}; \
             else echo 'no known package manager (dnf, yum, apt-get, zypper, apk)' >&2; exit 1; fi"
        );
        if !self.recommended.is_empty() {
            let r = self.recommended.join(" ");
            script.push_str(&format!(
                "; for p in {r}; do \
                 if command -v dnf >/dev/null 2>&1; then dnf -y install \"$p\" || echo \"skipped $p\" >&2; \
                 elif command -v yum >/dev/null 2>&1; then yum -y install \"$p\" || echo \"skipped $p\" >&2; \
                 elif command -v apt-get >/dev/null 2>&1; then \
                 DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \"$p\" || echo \"skipped $p\" >&2; \
                 elif command -v zypper >/dev/null 2>&1; then zypper --non-interactive install \"$p\" || echo \"skipped $p\" >&2; \
                 elif command -v apk >/dev/null 2>&1; then apk add \"$p\" || echo \"skipped $p\" >&2; fi; \
                 done; \
                 if command -v apt-get >/dev/null 2>&1; then apt-get clean; fi"
            ));
        }
        script
    }
}

/// Whether `p` can be a package name in an install command without
/// quoting: letters, digits and `.+-_:~@=/*`, not starting with `-`.
pub fn is_package_name(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('-')
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+-_:~@=/*".contains(c))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_duplicates_do_not_change_the_key() {
        let a = PackageSet::new(["jq", "tree", "jq"]);
        let b = PackageSet::new(["tree", "jq"]);
        assert_eq!(a, b);
        assert_eq!(a.key("base"), b.key("base"));
        assert_eq!(a.key("base").len(), 16);
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
    fn the_hash_is_stable() {
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

    #[test]
    fn recommended_packages_change_the_key_and_never_repeat_required_ones() {
        let plain = PackageSet::new(["jq"]);
        let rec = PackageSet::new(["jq"]).with_recommended(["gdb", "jq", "gdb"]);
        assert_eq!(rec.recommended(), ["gdb"]);
        assert_ne!(plain.key("b"), rec.key("b"));
        let script = rec.install_script();
        assert!(script.contains("for p in gdb;"), "{script}");
        assert!(!plain.install_script().contains("for p in"));
    }

    #[test]
    fn options_are_checked_and_an_unexpanded_suite_is_refused() {
        let ok = PackageSet::from_options(&["jq".into()], &["gdb".into()]).expect("valid");
        assert_eq!(ok.packages(), ["jq"]);
        let e = PackageSet::from_options(&["jq 'x'".into()], &[]).expect_err("quote");
        assert_eq!(e.option, "prepare");
        let e = PackageSet::from_options(&[], &["-y".into()]).expect_err("dash");
        assert_eq!(e.option, "prepare_recommend");
        let e = PackageSet::from_options(&[SUITE.into()], &[]).expect_err("suite");
        assert!(e.to_string().contains("\"suite\""), "{e}");
    }
}
