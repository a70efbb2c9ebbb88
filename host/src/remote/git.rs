//! Git trees on the host, fetched once and kept: a cache keyed by the
//! repository URL and the resolved commit.
//!
//! This uses the `git` command rather than a git library. The user's git
//! already knows their credentials helpers, ssh configuration, proxies,
//! `insteadOf` rewrites and every transport (`file://`, `git://`, ssh,
//! https); a library would have to be taught all of them, and the one
//! well-kept choice (`gix`) would add a large dependency tree to build on
//! every machine. What atex needs is small and stable on the command
//! line: `ls-remote`, a shallow `fetch`, `checkout`.
//!
//! Layout under the cache root (default `$XDG_CACHE_HOME/atex/git`, else
//! `~/.cache/atex/git`):
//!
//! ```text
//! <repo key>/url           the URL, for people
//! <repo key>/refs.json     ref -> {commit, kind}, as last resolved
//! <repo key>/<commit>/     a checkout of that commit (with a shallow .git)
//! <repo key>/.tmp-*        a fetch in progress, renamed when complete
//! ```
//!
//! A ref is resolved with `git ls-remote`, except a full commit id (never
//! asked) and a tag resolved before (tags are taken as fixed). When the
//! repository cannot be reached, a ref resolved before is used from
//! `refs.json`, so a second run works offline. A fetch goes into a
//! temporary directory that is renamed into place only when complete, so
//! no partial clone is ever taken for a cached one.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde::{Deserialize, Serialize};

/// A repository that could not be fetched, or a ref it does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{url}: {message}")]
pub struct GitError {
    /// The repository.
    pub url: String,
    /// What went wrong, one line.
    pub message: String,
}

/// What a ref was when it was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    /// A branch (or the default branch): may move, asked every time.
    Branch,
    /// A tag: taken as fixed once resolved.
    Tag,
    /// A commit id.
    Commit,
}

/// A checkout in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The repository URL.
    pub url: String,
    /// The ref asked for (`None`: the default branch).
    pub git_ref: Option<String>,
    /// The commit it resolved to.
    pub commit: String,
    /// The checkout directory.
    pub dir: PathBuf,
    /// Whether the commit was resolved from the cache because the
    /// repository could not be reached.
    pub offline: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefEntry {
    commit: String,
    kind: RefKind,
}

/// The cache of fetched repositories.
#[derive(Debug, Clone)]
pub struct GitCache {
    root: PathBuf,
}

impl GitCache {
    /// The cache under `root`.
    pub fn new(root: impl Into<PathBuf>) -> GitCache {
        GitCache { root: root.into() }
    }

    /// The default cache: `$XDG_CACHE_HOME/atex/git`, else
    /// `$HOME/.cache/atex/git`.
    pub fn default_root() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })
            .unwrap_or_else(std::env::temp_dir);
        base.join("atex").join("git")
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one repository's checkouts.
    fn repo_dir(&self, url: &str) -> PathBuf {
        self.root.join(repo_key(url))
    }

    /// A checkout of `url` at `git_ref` (`None`: the default branch),
    /// fetched unless the cache has it.
    pub fn checkout(&self, url: &str, git_ref: Option<&str>) -> Result<Checkout, GitError> {
        let err = |message: String| GitError {
            url: url.to_string(),
            message,
        };
        let repo = self.repo_dir(url);
        std::fs::create_dir_all(&repo)
            .map_err(|e| err(format!("cannot create {}: {e}", repo.display())))?;
        let _ = std::fs::write(repo.join("url"), format!("{url}\n"));
        let refs = read_refs(&repo);
        let key = git_ref.unwrap_or("HEAD").to_string();
        let (commit, kind, offline) = match git_ref {
            Some(r) if is_full_commit(r) => (r.to_ascii_lowercase(), RefKind::Commit, false),
            _ => match refs.get(&key) {
                Some(e) if e.kind == RefKind::Tag && repo.join(&e.commit).is_dir() => {
                    (e.commit.clone(), RefKind::Tag, false)
                }
                _ => match ls_remote(url, git_ref) {
                    Ok(Some((commit, kind))) => (commit, kind, false),
                    Ok(None) => match git_ref {
                        // An abbreviated commit id: found after a full fetch.
                        Some(r) if is_hex(r) && r.len() >= 4 => {
                            return self.fetch_abbreviated(url, r, &repo);
                        }
                        _ => return Err(err(format!("unknown ref '{key}'"))),
                    },
                    Err(reach) => match refs.get(&key) {
                        Some(e) if repo.join(&e.commit).is_dir() => {
                            tracing::warn!(
                                "{url}: cannot reach it ({reach}); using {key} = {} from the cache",
                                e.commit
                            );
                            (e.commit.clone(), e.kind, true)
                        }
                        _ => return Err(err(format!("cannot fetch: {reach}"))),
                    },
                },
            },
        };
        let dir = repo.join(&commit);
        if !dir.is_dir() {
            let want = match (kind, git_ref) {
                (RefKind::Commit, _) | (_, None) => commit.clone(),
                (RefKind::Tag, Some(r)) => {
                    format!("refs/tags/{}", r.trim_start_matches("refs/tags/"))
                }
                (RefKind::Branch, Some(r)) if r.starts_with("refs/") => r.to_string(),
                (RefKind::Branch, Some(r)) => format!("refs/heads/{r}"),
            };
            self.fetch_into(url, &repo, &commit, &want)?;
        }
        if kind != RefKind::Commit && !offline {
            record_ref(
                &repo,
                key,
                RefEntry {
                    commit: commit.clone(),
                    kind,
                },
            );
        }
        Ok(Checkout {
            url: url.to_string(),
            git_ref: git_ref.map(str::to_string),
            commit,
            dir,
            offline,
        })
    }

    /// Fetches `want` (a ref name or a commit id) of `url` shallowly,
    /// falling back to a full fetch (a server that refuses a commit it
    /// does not advertise), checks out `commit`, and renames the result
    /// to `<repo>/<commit>`.
    fn fetch_into(&self, url: &str, repo: &Path, commit: &str, want: &str) -> Result<(), GitError> {
        let tmp = TempDir::new(repo, url)?;
        git(&tmp.0, &["init", "-q"]).map_err(|m| gerr(url, m))?;
        let shallow = git(
            &tmp.0,
            &["fetch", "-q", "--depth", "1", "--no-tags", "--", url, want],
        );
        if shallow.is_err() || !has_commit(&tmp.0, commit) {
            git(
                &tmp.0,
                &[
                    "fetch",
                    "-q",
                    "--tags",
                    "--",
                    url,
                    "+refs/heads/*:refs/remotes/origin/*",
                ],
            )
            .map_err(|m| gerr(url, format!("cannot fetch: {m}")))?;
            if !has_commit(&tmp.0, commit) {
                return Err(gerr(url, format!("unknown ref '{want}'")));
            }
        }
        self.finish(url, tmp, repo, commit)
    }

    /// A full fetch, then the abbreviated commit `short` resolved in it.
    fn fetch_abbreviated(&self, url: &str, short: &str, repo: &Path) -> Result<Checkout, GitError> {
        let tmp = TempDir::new(repo, url)?;
        git(&tmp.0, &["init", "-q"]).map_err(|m| gerr(url, m))?;
        git(
            &tmp.0,
            &[
                "fetch",
                "-q",
                "--tags",
                "--",
                url,
                "+refs/heads/*:refs/remotes/origin/*",
            ],
        )
        .map_err(|m| gerr(url, format!("cannot fetch: {m}")))?;
        let commit = git(
            &tmp.0,
            &[
                "rev-parse",
                "--verify",
                "-q",
                &format!("{short}^{{commit}}"),
            ],
        )
        .map(|s| s.trim().to_string())
        .map_err(|_| gerr(url, format!("unknown ref '{short}'")))?;
        let dir = repo.join(&commit);
        if dir.is_dir() {
            drop(tmp);
        } else {
            self.finish(url, tmp, repo, &commit)?;
        }
        Ok(Checkout {
            url: url.to_string(),
            git_ref: Some(short.to_string()),
            commit,
            dir,
            offline: false,
        })
    }

    /// Checks out `commit` in `tmp` and renames it into the cache.
    fn finish(&self, url: &str, tmp: TempDir, repo: &Path, commit: &str) -> Result<(), GitError> {
        git(
            &tmp.0,
            &["-c", "advice.detachedHead=false", "checkout", "-q", commit],
        )
        .map_err(|m| gerr(url, format!("cannot check out {commit}: {m}")))?;
        let dir = repo.join(commit);
        match std::fs::rename(&tmp.0, &dir) {
            Ok(()) => {
                std::mem::forget(tmp);
                Ok(())
            }
            // Another run put it there first: theirs is as good.
            Err(_) if dir.is_dir() => Ok(()),
            Err(e) => Err(gerr(url, format!("cannot store {}: {e}", dir.display()))),
        }
    }
}

fn gerr(url: &str, message: String) -> GitError {
    GitError {
        url: url.to_string(),
        message,
    }
}

/// A temporary fetch directory inside the repository's cache directory
/// (so the final rename stays on one file system), removed unless kept.
struct TempDir(PathBuf);

impl TempDir {
    fn new(repo: &Path, url: &str) -> Result<TempDir, GitError> {
        let dir = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(repo)
            .map_err(|e| {
                gerr(
                    url,
                    format!("cannot create a directory in {}: {e}", repo.display()),
                )
            })?;
        Ok(TempDir(dir.keep()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `git` command for this module: no prompts (an unreachable private
/// repository fails instead of waiting for a password), C locale.
fn git_command() -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "echo")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    cmd
}

/// Runs git in `dir`; its stdout, or its last line of stderr.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = git_command()
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(last_line(&out.stderr))
    }
}

fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("git failed")
        .to_string()
}

fn has_commit(dir: &Path, commit: &str) -> bool {
    git(dir, &["cat-file", "-e", &format!("{commit}^{{commit}}")]).is_ok()
}

/// The commit `git_ref` (`None`: `HEAD`) names in `url`, and what kind of
/// ref it is; `Ok(None)` when the repository has no such ref; `Err` when
/// it cannot be reached.
fn ls_remote(url: &str, git_ref: Option<&str>) -> Result<Option<(String, RefKind)>, String> {
    let out = git_command()
        .args(["ls-remote", "--", url])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(last_line(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let refs: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('\t')).collect();
    let find = |name: &str| {
        refs.iter()
            .find(|(_, n)| *n == name)
            .map(|(c, _)| c.to_string())
    };
    let Some(r) = git_ref else {
        return Ok(find("HEAD").map(|c| (c, RefKind::Branch)));
    };
    let short = r
        .trim_start_matches("refs/heads/")
        .trim_start_matches("refs/tags/");
    if !r.starts_with("refs/tags/")
        && let Some(c) = find(&format!("refs/heads/{short}"))
    {
        return Ok(Some((c, RefKind::Branch)));
    }
    if !r.starts_with("refs/heads/") {
        // An annotated tag: the commit it points to is the peeled line.
        if let Some(c) =
            find(&format!("refs/tags/{short}^{{}}")).or_else(|| find(&format!("refs/tags/{short}")))
        {
            return Ok(Some((c, RefKind::Tag)));
        }
    }
    Ok(find(r).map(|c| (c, RefKind::Branch)))
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_full_commit(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && is_hex(s)
}

fn read_refs(repo: &Path) -> BTreeMap<String, RefEntry> {
    std::fs::read(repo.join("refs.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Sections fetched in parallel update one `refs.json`: one at a time.
static REFS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Records `key` in `refs.json`, read again under the lock and written
/// through a temporary file and a rename, so a reader never sees half of
/// it. Best effort: the cache works without.
fn record_ref(repo: &Path, key: String, entry: RefEntry) {
    let _guard = REFS_LOCK.lock();
    let mut refs = read_refs(repo);
    refs.insert(key, entry);
    let Ok(text) = serde_json::to_vec_pretty(&refs) else {
        return;
    };
    let Ok(mut tmp) = tempfile::NamedTempFile::new_in(repo) else {
        return;
    };
    use std::io::Write as _;
    if tmp.write_all(&text).is_ok() {
        let _ = tmp.persist(repo.join("refs.json"));
    }
}

/// The cache directory name of a repository: its URL made readable (host
/// and path, other characters as `_`, at most 60) plus a hash of the whole
/// URL, so two URLs never share one.
pub fn repo_key(url: &str) -> String {
    let tail = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    let mut readable: String = tail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if readable.len() > 60 {
        readable = readable.split_off(readable.len() - 60);
    }
    // FNV-1a, 64 bits: stable across versions and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}-{h:016x}", readable.trim_start_matches('.'))
}
