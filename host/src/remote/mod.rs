//! Tests and libraries from other repositories: discover sections with
//! `url`/`ref`/`path`, an fmf id instead of a local root, and BeakerLib
//! libraries (`type: library` requires and `library(repo/lib)` strings).
//!
//! Everything is fetched once on the host into a [`GitCache`] (see
//! [`git`] for the layout and why the `git` command), then uploaded to
//! each system with the plan's tree, laid out as tmt lays out a plan:
//!
//! ```text
//! <workdir>/tests/                     the plan's own tree (TMT_TREE)
//! <workdir>/libs/<repo>/<name>         libraries of its tests
//! <workdir>/discover/<section>/tests/  a remote section's repository
//! <workdir>/discover/<section>/libs/   libraries of that section's tests
//! ```
//!
//! A remote section's test runs in `discover/<section>/tests/<path>/<test
//! path>`, so its relative paths work as under tmt, and `rlImport` finds
//! a library walking up from the test (`libs/` is a sibling of `tests/`)
//! or through `BEAKERLIB_LIBRARY_PATH`, which atex sets to the directory
//! holding that `libs/`. This module owns the fetching and the layout; it
//! does not run anything on the systems (the executor uploads
//! [`Prepared::uploads`]).

pub mod git;
mod libraries;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::Serialize;

pub use git::{Checkout, GitCache, GitError};

use crate::fmf;

/// tmt's default for `library(repo/lib)`: `{repository}` is `repo`.
pub const DEFAULT_LIBRARY_URL: &str = "https://github.com/beakerlib/{repository}";

/// A tree in a git repository: what tmt calls an fmf id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FmfId {
    /// The repository.
    pub url: String,
    /// Branch, tag or commit (`None`: the default branch).
    pub git_ref: Option<String>,
    /// The fmf root inside the repository (`None`: its top).
    pub path: Option<String>,
}

/// How remote trees and libraries are fetched.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Where fetched repositories are kept.
    pub cache: GitCache,
    /// URL template of `library(repo/lib)`, with `{repository}`.
    pub library_url: String,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            cache: GitCache::new(GitCache::default_root()),
            library_url: DEFAULT_LIBRARY_URL.into(),
        }
    }
}

/// A remote tree or library that could not be had: one line naming the
/// plan and section (or the test and library).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// Discovery failed.
    #[error(transparent)]
    Fmf(#[from] fmf::Error),
    /// A discover section's repository.
    #[error("plan {plan}, discover section '{section}': {error}")]
    Section {
        /// The plan.
        plan: String,
        /// The section's name (`default-N` when unnamed).
        section: String,
        /// What went wrong.
        error: GitError,
    },
    /// The fmf id given instead of a local root.
    #[error("--url: {0}")]
    Root(GitError),
    /// A library a test requires.
    #[error("test {test}: library {library}: {message}")]
    Library {
        /// The test.
        test: String,
        /// The library as written.
        library: String,
        /// What went wrong.
        message: String,
    },
}

/// A fetched tree as `summary.json` records it, so a run can be
/// reproduced: where it came from and the commit it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// What used it: `root` (the `--url` tree), `section` or `library`.
    pub kind: &'static str,
    /// The plan (sections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The section's or the library's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The repository.
    pub url: String,
    /// The ref asked for.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The commit it resolved to.
    pub commit: String,
    /// `path` inside the repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A host directory uploaded to every system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Where it goes, relative to the system's work directory (e.g.
    /// `discover/upstream/tests`, `libs/openssl/certgen`).
    pub dest: String,
    /// The host directory.
    pub dir: PathBuf,
}

/// A discovery with everything fetched.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The tests (their library packages added to `require`).
    pub discovery: fmf::Discovery,
    /// Remote trees and libraries to upload beside the plan's tree.
    pub uploads: Vec<Upload>,
    /// Every fetched tree, for `summary.json`.
    pub sources: Vec<Source>,
    /// For each discover section whose tree is not the plan's own: the
    /// directory of its fmf root relative to the uploaded plan tree
    /// (`../discover/<section>/tests/<path>`).
    section_dirs: Vec<Option<String>>,
}

impl Prepared {
    /// The directory `test` runs in, relative to the uploaded plan tree,
    /// when it is not its own `path` (a test of a remote section).
    pub fn rel_dir(&self, test: &fmf::Test) -> Option<PathBuf> {
        let base = self.section_dirs.get(test.section)?.as_ref()?;
        let rel = test.path.trim_start_matches('/');
        Some(if rel.is_empty() {
            PathBuf::from(base)
        } else {
            Path::new(base).join(rel)
        })
    }
}

/// Fetches the checkout of `id` (`root` tree of a run), returning the
/// local fmf root inside it and its [`Source`].
pub fn fetch_root(id: &FmfId, options: &RemoteOptions) -> Result<(PathBuf, Source), RemoteError> {
    let co = options
        .cache
        .checkout(&id.url, id.git_ref.as_deref())
        .map_err(RemoteError::Root)?;
    let root = join_inside(&co.dir, id.path.as_deref());
    if !root.is_dir() {
        return Err(RemoteError::Root(GitError {
            url: id.url.clone(),
            message: format!(
                "no directory '{}' at {}",
                id.path.as_deref().unwrap_or("/"),
                co.commit
            ),
        }));
    }
    let source = Source {
        kind: "root",
        plan: None,
        name: None,
        url: id.url.clone(),
        git_ref: id.git_ref.clone(),
        commit: co.commit,
        path: id.path.clone(),
    };
    Ok((root, source))
}

/// `dir` joined with a repository path given as `/a/b` or `a/b`.
fn join_inside(dir: &Path, path: Option<&str>) -> PathBuf {
    match path.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) {
        Some(p) => dir.join(p),
        None => dir.to_path_buf(),
    }
}

/// The fmf root at or above `start`.
fn fmf_root(start: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).ok()?;
    start
        .ancestors()
        .find(|d| d.join(".fmf").is_dir())
        .map(Path::to_path_buf)
}

/// Fetches the repositories of the plan's `url` sections at once; the
/// fmf tree directory of each section that is not the plan's own.
fn fetch_sections(
    root: &Path,
    plan: &fmf::Plan,
    options: &RemoteOptions,
    checkouts: &mut Vec<Option<Checkout>>,
    sources: &mut Vec<Source>,
) -> Result<Vec<Option<PathBuf>>, RemoteError> {
    let plan_name = plan.name.clone().unwrap_or_else(|| "(default)".into());
    let plan_root = fmf_root(root);
    // Sections with `url`, fetched at once.
    let fetched: Mutex<HashMap<usize, Result<Checkout, GitError>>> = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        for (i, section) in plan.discover.iter().enumerate() {
            let Some(url) = &section.url else { continue };
            let fetched = &fetched;
            s.spawn(move || {
                let got = options.cache.checkout(url, section.git_ref.as_deref());
                if let Ok(mut map) = fetched.lock() {
                    map.insert(i, got);
                }
            });
        }
    });
    let mut fetched = fetched.into_inner().unwrap_or_default();
    let mut trees = vec![None; plan.discover.len()];
    *checkouts = vec![None; plan.discover.len()];
    for (i, section) in plan.discover.iter().enumerate() {
        let key = section.key(i);
        let serr = |message: String, url: &str| RemoteError::Section {
            plan: plan_name.clone(),
            section: key.clone(),
            error: GitError {
                url: url.to_string(),
                message,
            },
        };
        if let Some(url) = &section.url {
            let co = match fetched.remove(&i) {
                Some(Ok(co)) => co,
                Some(Err(error)) => {
                    return Err(RemoteError::Section {
                        plan: plan_name.clone(),
                        section: key,
                        error,
                    });
                }
                None => return Err(serr("was not fetched".into(), url)),
            };
            let dir = join_inside(&co.dir, section.path.as_deref());
            if !dir.is_dir() {
                return Err(serr(
                    format!(
                        "no directory '{}' at {}",
                        section.path.as_deref().unwrap_or("/"),
                        co.commit
                    ),
                    url,
                ));
            }
            sources.push(Source {
                kind: "section",
                plan: plan.name.clone(),
                name: Some(key.clone()),
                url: url.clone(),
                git_ref: section.git_ref.clone(),
                commit: co.commit.clone(),
                path: section.path.clone(),
            });
            trees[i] = Some(dir);
            checkouts[i] = Some(co);
        } else if let Some(path) = &section.path {
            let base = plan_root.clone().unwrap_or_else(|| root.to_path_buf());
            let dir = join_inside(&base, Some(path));
            if !dir.is_dir() {
                return Err(serr(
                    format!("no directory '{path}' in the plan's tree"),
                    &base.display().to_string(),
                ));
            }
            trees[i] = Some(dir);
        }
    }
    Ok(trees)
}

/// Discovers the tests of `selection` in the tree at `root`, fetching the
/// repositories of its plan's remote sections (in parallel) and the
/// libraries its tests require.
pub fn discover(
    root: &Path,
    selection: &fmf::Selection,
    options: &RemoteOptions,
) -> Result<Prepared, RemoteError> {
    discover_notify(root, selection, options, || {})
}

/// [`discover`], calling `before_fetch` when the plan is read and its
/// remote sections are about to be fetched (not at all without any): a
/// caller starts its systems then.
pub fn discover_notify(
    root: &Path,
    selection: &fmf::Selection,
    options: &RemoteOptions,
    before_fetch: impl FnOnce(),
) -> Result<Prepared, RemoteError> {
    let mut checkouts: Vec<Option<Checkout>> = Vec::new();
    let mut sources = Vec::new();
    let mut discovery = fmf::discover_fetching(root, selection, |plan| {
        if plan.discover.iter().any(|s| s.url.is_some()) {
            before_fetch();
        }
        fetch_sections(root, plan, options, &mut checkouts, &mut sources)
    })?;
    let plan = discovery.plan.clone();
    checkouts.resize(plan.discover.len(), None);
    // Where each section's tests run, relative to the uploaded plan tree.
    let mut uploads = Vec::new();
    let mut section_dirs = vec![None; plan.discover.len()];
    for (i, section) in plan.discover.iter().enumerate() {
        let Some(fmf_dir) = discovery.section_roots.get(i).cloned().flatten() else {
            continue;
        };
        let key = section.key(i);
        match &checkouts[i] {
            Some(co) => {
                let inner = fmf_dir
                    .strip_prefix(&co.dir)
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let mut base = format!("../discover/{key}/tests");
                if !inner.as_os_str().is_empty() {
                    base = format!("{base}/{}", inner.display());
                }
                section_dirs[i] = Some(base);
                uploads.push(Upload {
                    dest: format!("discover/{key}/tests"),
                    dir: co.dir.clone(),
                });
            }
            None => {
                // A `path` inside the plan's own tree: uploaded with it.
                let plan_tree = std::fs::canonicalize(&discovery.root).unwrap_or_default();
                let inner = std::fs::canonicalize(&fmf_dir)
                    .ok()
                    .and_then(|d| d.strip_prefix(&plan_tree).ok().map(Path::to_path_buf))
                    .unwrap_or_default();
                section_dirs[i] = Some(if inner.as_os_str().is_empty() {
                    ".".into()
                } else {
                    inner.display().to_string()
                });
            }
        }
    }
    let libs = libraries::resolve(&mut discovery, &checkouts, options)?;
    uploads.extend(libs.uploads);
    sources.extend(libs.sources);
    Ok(Prepared {
        discovery,
        uploads,
        sources,
        section_dirs,
    })
}

/// Adds `sources` to the `summary.json` in `results_dir` (as its last
/// key, `sources`), through a temporary file and a rename. The file is
/// copied as it is, not parsed: a large summary is not read into memory.
pub fn record_sources(results_dir: &Path, sources: &[Source]) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    if sources.is_empty() {
        return Ok(());
    }
    let path = results_dir.join("summary.json");
    let mut src = std::fs::File::open(&path)?;
    // The summary is pretty-printed by atex and ends with its closing
    // brace alone on the last line.
    const END: &[u8] = b"\n}\n";
    let len = src.metadata()?.len();
    let mut end = [0u8; END.len()];
    let keep = len
        .checked_sub(END.len() as u64)
        .ok_or_else(not_a_summary)?;
    src.seek(SeekFrom::Start(keep))?;
    src.read_exact(&mut end)?;
    if end != END {
        return Err(not_a_summary());
    }
    src.seek(SeekFrom::Start(0))?;
    let value = serde_json::to_string_pretty(sources).map_err(std::io::Error::from)?;
    let tmp = results_dir.join(format!(".summary.json.tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            std::io::copy(&mut (&mut src).take(keep), &mut w)?;
            // One level deeper than the document, as a pretty printer
            // writes a value of a key.
            w.write_all(b",\n  \"sources\": ")?;
            w.write_all(value.replace('\n', "\n  ").as_bytes())?;
            w.write_all(END)?;
            w.into_inner().map_err(|e| e.into_error()).map(drop)
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn not_a_summary() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "not a summary written by atex",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
            .args(["-c", "init.defaultBranch=main"])
            .args(args)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn repo(dir: &Path, files: &[(&str, &str)]) -> String {
        std::fs::create_dir_all(dir).expect("mkdir");
        if !dir.join(".git").exists() {
            git(dir, &["init", "-q"]);
        }
        for (rel, text) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "c"]);
        git(dir, &["rev-parse", "HEAD"])
    }

    /// Libraries' packages join the test's `require`, a resolved
    /// `library(...)` is no package any more, one that cannot be had
    /// stays a package (as tmt), and every library is uploaded where
    /// `rlImport` looks for it.
    #[test]
    fn library_packages_join_the_test() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        repo(
            &d.join("mirror/helpers"),
            &[
                (".fmf/version", "1\n"),
                (
                    "log/main.fmf",
                    "require: [logger-pkg]\nrecommend: [nice-pkg]\n",
                ),
                ("log/lib.sh", "true\n"),
            ],
        );
        repo(
            &d.join("certgen"),
            &[
                (".fmf/version", "1\n"),
                (
                    "certgen/main.fmf",
                    "require: [openssl, 'library(helpers/log)']\n",
                ),
                ("certgen/lib.sh", "true\n"),
            ],
        );
        let tree = d.join("tree");
        std::fs::create_dir_all(tree.join(".fmf")).expect("mkdir");
        std::fs::write(tree.join(".fmf/version"), "1\n").expect("write");
        std::fs::write(
            tree.join("t.fmf"),
            format!(
                "test: true\nrequire:\n  - own-pkg\n  - url: file://{}/certgen\n    name: /certgen\n  - library(nowhere/lib)\n",
                d.display()
            ),
        )
        .expect("write");
        let options = RemoteOptions {
            cache: GitCache::new(d.join("cache")),
            library_url: format!("file://{}/mirror/{{repository}}", d.display()),
        };
        let found = discover(&tree, &fmf::Selection::default(), &options).expect("discover");
        let t = &found.discovery.tests[0];
        assert_eq!(
            t.require,
            ["own-pkg", "library(nowhere/lib)", "openssl", "logger-pkg"]
        );
        assert_eq!(t.recommend, ["nice-pkg"]);
        let dests: Vec<&str> = found.uploads.iter().map(|u| u.dest.as_str()).collect();
        assert_eq!(dests, ["libs/certgen/certgen", "libs/helpers/log"]);
        assert!(found.uploads.iter().all(|u| u.dir.join("lib.sh").is_file()));
        // The dependency joins the metadata, for `rlImport --all`.
        assert!(
            t.metadata["require"]
                .as_array()
                .expect("list")
                .contains(&serde_json::json!("library(helpers/log)"))
        );
        let kinds: Vec<&str> = found.sources.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, ["library", "library"]);
    }

    /// `nick`, `ref` and `path` of a library entry: the directory is
    /// `libs/<nick>/<path>/<name>`, holding the tree at that ref.
    #[test]
    fn library_nick_ref_and_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let multi = d.join("multi");
        repo(
            &multi,
            &[
                ("sub/.fmf/version", "1\n"),
                ("sub/tool/main.fmf", "require: [tool-pkg]\n"),
                ("sub/tool/lib.sh", "# v1\n"),
            ],
        );
        git(&multi, &["tag", "v1"]);
        repo(&multi, &[("sub/tool/lib.sh", "# v2\n")]);
        let tree = d.join("tree");
        std::fs::create_dir_all(tree.join(".fmf")).expect("mkdir");
        std::fs::write(tree.join(".fmf/version"), "1\n").expect("write");
        std::fs::write(
            tree.join("t.fmf"),
            format!(
                "test: true\nrecommend:\n  - url: file://{}/multi\n    ref: v1\n    path: /sub\n    name: /tool\n    nick: other\n",
                d.display()
            ),
        )
        .expect("write");
        let options = RemoteOptions {
            cache: GitCache::new(d.join("cache")),
            library_url: DEFAULT_LIBRARY_URL.into(),
        };
        let found = discover(&tree, &fmf::Selection::default(), &options).expect("discover");
        assert_eq!(found.uploads.len(), 1);
        assert_eq!(found.uploads[0].dest, "libs/other/sub/tool");
        assert_eq!(
            std::fs::read_to_string(found.uploads[0].dir.join("lib.sh")).expect("lib.sh"),
            "# v1\n"
        );
        assert_eq!(found.discovery.tests[0].require, ["tool-pkg"]);
        assert_eq!(found.sources[0].git_ref.as_deref(), Some("v1"));
    }

    /// A checkout is shallow, keyed by URL and commit; a moved branch
    /// gets a new checkout beside the old one.
    #[test]
    fn cache_by_url_and_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let first = repo(&d.join("r"), &[("a", "1")]);
        let second = repo(&d.join("r"), &[("a", "2")]);
        let url = format!("file://{}/r", d.display());
        let cache = GitCache::new(d.join("cache"));
        let head = cache.checkout(&url, None).expect("head");
        assert_eq!(head.commit, second);
        assert_eq!(git(&head.dir, &["rev-list", "--count", "HEAD"]), "1");
        let old = cache.checkout(&url, Some(&first)).expect("commit");
        assert_eq!(std::fs::read_to_string(old.dir.join("a")).expect("a"), "1");
        assert_eq!(git(&old.dir, &["rev-list", "--count", "HEAD"]), "1");
        assert_ne!(old.dir, head.dir);
        assert_eq!(old.dir.parent(), head.dir.parent());
        let short = cache.checkout(&url, Some(&first[..8])).expect("short");
        assert_eq!(short.commit, first);
        let err = cache.checkout(&url, Some("nope")).expect_err("unknown");
        assert!(err.to_string().contains("unknown ref 'nope'"), "{err}");
        assert_ne!(
            git::repo_key("file:///a/b"),
            git::repo_key("file:///a_b"),
            "distinct URLs, distinct keys"
        );
    }

    /// The sources are added as the last key of `summary.json` without
    /// reading it whole: the file is the one parsing it, adding the key
    /// and printing it again gave, byte for byte.
    #[test]
    fn sources_are_appended_to_the_summary_as_a_rewrite_would() {
        let dir = tempfile::tempdir().expect("tmp");
        let summary = serde_json::json!({
            "wall_seconds": 1.5,
            "tests": [{"test": "/a \"ü\"", "earlier": [], "note": null}],
            "counts": {},
            "exit_code": 0,
        });
        let text = serde_json::to_string_pretty(&summary).expect("json") + "\n";
        std::fs::write(dir.path().join("summary.json"), &text).expect("write");
        let sources = vec![
            Source {
                kind: "root",
                plan: None,
                name: None,
                url: "https://example.com/a.git".into(),
                git_ref: Some("main".into()),
                commit: "0123456789abcdef".into(),
                path: Some("sub/dir".into()),
            },
            Source {
                kind: "library",
                plan: Some("/plans/x".into()),
                name: Some("lib\nname".into()),
                url: "https://example.com/b.git".into(),
                git_ref: None,
                commit: "fedcba".into(),
                path: None,
            },
        ];
        record_sources(dir.path(), &sources).expect("record");
        let mut expected = summary;
        expected["sources"] = serde_json::to_value(&sources).expect("value");
        let expected = serde_json::to_string_pretty(&expected).expect("json") + "\n";
        let got = std::fs::read_to_string(dir.path().join("summary.json")).expect("read");
        assert_eq!(got, expected);
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        // A file that is not atex's summary is refused, and kept as it is.
        std::fs::write(dir.path().join("summary.json"), "[1]").expect("write");
        assert!(record_sources(dir.path(), &sources).is_err());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("summary.json")).expect("read"),
            "[1]"
        );
    }
}
