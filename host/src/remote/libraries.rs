//! BeakerLib libraries as tmt resolves them: `library(repo/lib)` strings
//! (through the configurable URL template; one that cannot be had stays a
//! package requirement, since packages provide `library(repo/lib)` too),
//! `type: library` entries with `url` (fetched; a failure is an error) or
//! `path` (a directory on the host), each placed at
//! `libs/<repo>/[<path>/]<name>` beside its test's tree, with its own
//! `require`/`recommend` followed: packages join the test's, libraries
//! are resolved in turn. The first library placed at a directory wins,
//! as in tmt. In-tree libraries (neither `url` nor `path`) are the fmf
//! crate's.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};

use super::{Checkout, RemoteError, RemoteOptions, Source, Upload, join_inside};
use crate::fmf;

/// What resolving the libraries adds to a run.
pub(super) struct Resolved {
    pub uploads: Vec<Upload>,
    pub sources: Vec<Source>,
}

/// One library requirement.
#[derive(Debug, Clone)]
enum Library {
    /// `library(repo/lib)`.
    Rpm {
        repo: String,
        name: String,
        text: String,
    },
    /// `{url, ref, path, name, nick}`.
    Url {
        url: String,
        git_ref: Option<String>,
        path: Option<String>,
        name: String,
        nick: Option<String>,
    },
    /// `{path, name, nick}`: a library on the host.
    Local {
        path: String,
        name: String,
        nick: Option<String>,
    },
}

impl Library {
    fn parse(entry: &Value) -> Option<Library> {
        match entry {
            Value::String(s) => {
                let inner = s.trim().strip_prefix("library(")?.strip_suffix(')')?;
                let (repo, lib) = inner.split_once('/')?;
                if repo.is_empty() || lib.is_empty() {
                    return None;
                }
                Some(Library::Rpm {
                    repo: repo.to_string(),
                    name: format!("/{lib}"),
                    text: s.clone(),
                })
            }
            Value::Object(obj) => {
                if obj
                    .get("type")
                    .is_some_and(|t| t.as_str() != Some("library"))
                {
                    return None;
                }
                let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
                let name = text("name").unwrap_or_else(|| "/".into());
                if let Some(url) = text("url") {
                    Some(Library::Url {
                        url,
                        git_ref: text("ref"),
                        path: text("path"),
                        name,
                        nick: text("nick"),
                    })
                } else {
                    text("path").map(|path| Library::Local {
                        path,
                        name,
                        nick: text("nick"),
                    })
                }
            }
            _ => None,
        }
    }
}

/// The repository directory name of a URL: its last component, without
/// `.git`.
fn url_repo(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url);
    last.strip_suffix(".git").unwrap_or(last).to_string()
}

/// A library placed: its directory on the host and what it requires.
#[derive(Debug, Clone)]
struct Placed {
    packages: Vec<String>,
    recommends: Vec<String>,
    deps: Vec<Value>,
}

fn listlike(v: Option<&Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// The library node's data in the fmf tree at `root` (empty when the
/// directory is no fmf tree or has no such node).
fn node_data(root: &Path, name: &str) -> Map<String, Value> {
    let Ok(tree) = fmf::Tree::load(root) else {
        return Map::new();
    };
    tree.find(name)
        .map(|id| tree.node(id).data().clone())
        .unwrap_or_default()
}

pub(super) fn resolve(
    found: &mut fmf::Discovery,
    checkouts: &[Option<Checkout>],
    options: &RemoteOptions,
) -> Result<Resolved, RemoteError> {
    let mut out = Resolved {
        uploads: Vec::new(),
        sources: Vec::new(),
    };
    // Fetched repositories, by URL and ref.
    let mut repos: HashMap<(String, Option<String>), Result<Checkout, String>> = HashMap::new();
    // Libraries placed, by destination.
    let mut placed: HashMap<String, Placed> = HashMap::new();
    let plan_root = found.root.clone();
    for test in &mut found.tests {
        let entries: Vec<Value> = test
            .require_raw
            .iter()
            .chain(&test.recommend_raw)
            .filter(|e| Library::parse(e).is_some())
            .cloned()
            .collect();
        if entries.is_empty() {
            continue;
        }
        // Libraries of a remote section's tests live beside its tree.
        let prefix = match checkouts.get(test.section).and_then(Option::as_ref) {
            Some(_) => format!(
                "discover/{}/",
                found.plan.discover[test.section].key(test.section)
            ),
            None => String::new(),
        };
        let mut packages: Vec<String> = Vec::new();
        let mut recommends: Vec<String> = Vec::new();
        let mut resolved_strings: Vec<String> = Vec::new();
        let mut extra_require: Vec<Value> = Vec::new();
        let mut pending: VecDeque<(Value, bool)> = entries.into_iter().map(|e| (e, true)).collect();
        let mut seen_here: Vec<String> = Vec::new();
        while let Some((entry, direct)) = pending.pop_front() {
            let Some(lib) = Library::parse(&entry) else {
                continue;
            };
            let lib_err = |message: String| RemoteError::Library {
                test: test.name.clone(),
                library: entry.to_string(),
                message,
            };
            let (url, git_ref, repo, path, name) = match &lib {
                Library::Rpm { repo, name, .. } => (
                    Some(options.library_url.replace("{repository}", repo)),
                    None,
                    repo.clone(),
                    None,
                    name.clone(),
                ),
                Library::Url {
                    url,
                    git_ref,
                    path,
                    name,
                    nick,
                } => (
                    Some(url.clone()),
                    git_ref.clone(),
                    nick.clone().unwrap_or_else(|| url_repo(url)),
                    path.clone(),
                    name.clone(),
                ),
                Library::Local { path, name, nick } => (
                    None,
                    None,
                    nick.clone().unwrap_or_else(|| {
                        Path::new(path.trim_end_matches('/'))
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    }),
                    Some(path.clone()),
                    name.clone(),
                ),
            };
            let name_rel = name.trim_matches('/').to_string();
            let mut dest = format!("{prefix}libs/{repo}");
            if url.is_some()
                && let Some(p) = path
                    .as_deref()
                    .map(|p| p.trim_matches('/'))
                    .filter(|p| !p.is_empty())
            {
                dest = format!("{dest}/{p}");
            }
            if !name_rel.is_empty() {
                dest = format!("{dest}/{name_rel}");
            }
            if seen_here.contains(&dest) {
                continue;
            }
            seen_here.push(dest.clone());
            if let Some(p) = placed.get(&dest) {
                packages.extend(p.packages.iter().cloned());
                recommends.extend(p.recommends.iter().cloned());
                for d in &p.deps {
                    pending.push_back((d.clone(), false));
                }
                if let Library::Rpm { text, .. } = &lib {
                    resolved_strings.push(text.clone());
                }
                if !direct {
                    extra_require.push(entry.clone());
                }
                continue;
            }
            // The library's tree root on the host.
            let lib_root = match &url {
                Some(url) => {
                    let got = repos
                        .entry((url.clone(), git_ref.clone()))
                        .or_insert_with(|| {
                            options
                                .cache
                                .checkout(url, git_ref.as_deref())
                                .map_err(|e| e.message)
                        })
                        .clone();
                    match got {
                        Ok(co) => {
                            if !out
                                .sources
                                .iter()
                                .any(|s| s.url == co.url && s.commit == co.commit)
                            {
                                out.sources.push(Source {
                                    kind: "library",
                                    plan: None,
                                    name: Some(format!("{repo}{name}")),
                                    url: url.clone(),
                                    git_ref: git_ref.clone(),
                                    commit: co.commit.clone(),
                                    path: path.clone(),
                                });
                            }
                            join_inside(&co.dir, path.as_deref())
                        }
                        Err(message) => {
                            if matches!(lib, Library::Rpm { .. }) {
                                // tmt keeps it as a package requirement.
                                tracing::warn!(
                                    "test {}: {entry}: {message}; left to the package manager",
                                    test.name
                                );
                                continue;
                            }
                            return Err(lib_err(message));
                        }
                    }
                }
                None => {
                    let p = PathBuf::from(path.clone().unwrap_or_default());
                    if p.is_absolute() {
                        p
                    } else {
                        plan_root.join(p)
                    }
                }
            };
            let dir = if name_rel.is_empty() {
                lib_root.clone()
            } else {
                lib_root.join(&name_rel)
            };
            if !dir.is_dir() {
                let message = format!("no directory '{name}' in {}", lib_root.display());
                if matches!(lib, Library::Rpm { .. }) {
                    tracing::warn!(
                        "test {}: {entry}: {message}; left to the package manager",
                        test.name
                    );
                    continue;
                }
                return Err(lib_err(message));
            }
            let data = node_data(&lib_root, if name_rel.is_empty() { "/" } else { &name });
            let mut p = Placed {
                packages: Vec::new(),
                recommends: Vec::new(),
                deps: Vec::new(),
            };
            for (key, list) in [
                ("require", &mut p.packages),
                ("recommend", &mut p.recommends),
            ] {
                for item in listlike(data.get(key)) {
                    if Library::parse(&item).is_some() {
                        p.deps.push(item);
                    } else if let Value::String(s) = item {
                        list.push(s);
                    }
                }
            }
            packages.extend(p.packages.iter().cloned());
            recommends.extend(p.recommends.iter().cloned());
            for d in &p.deps {
                pending.push_back((d.clone(), false));
            }
            if let Library::Rpm { text, .. } = &lib {
                resolved_strings.push(text.clone());
            }
            if !direct {
                extra_require.push(entry.clone());
            }
            out.uploads.push(Upload {
                dest: dest.clone(),
                dir,
            });
            placed.insert(dest, p);
        }
        // Resolved `library(...)` strings are no packages to install.
        test.require.retain(|r| !resolved_strings.contains(r));
        test.recommend.retain(|r| !resolved_strings.contains(r));
        for pkg in packages {
            if !test.require.contains(&pkg) {
                test.require.push(pkg);
            }
        }
        for pkg in recommends {
            if !test.recommend.contains(&pkg) {
                test.recommend.push(pkg);
            }
        }
        // Libraries a library requires join the test's metadata, so
        // `rlImport --all` imports them too.
        if !extra_require.is_empty() {
            let mut list = listlike(test.metadata.get("require"));
            for e in extra_require {
                if !list.contains(&e) {
                    list.push(e.clone());
                    test.require_raw.push(e);
                }
            }
            test.metadata.insert("require".into(), Value::Array(list));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_forms() {
        assert!(matches!(
            Library::parse(&Value::String("library(openssl/certgen)".into())),
            Some(Library::Rpm { repo, name, .. }) if repo == "openssl" && name == "/certgen"
        ));
        assert!(Library::parse(&Value::String("openssl".into())).is_none());
        let v: Value = serde_json::json!({"url": "https://example.org/x/lib.git", "name": "/a"});
        assert!(matches!(Library::parse(&v), Some(Library::Url { .. })));
        let v: Value = serde_json::json!({"nick": "n", "name": "/a"});
        assert!(
            Library::parse(&v).is_none(),
            "in-tree libraries are the fmf crate's"
        );
        let v: Value = serde_json::json!({"type": "file", "pattern": "x"});
        assert!(Library::parse(&v).is_none());
        assert_eq!(url_repo("https://example.org/x/lib.git"), "lib");
        assert_eq!(url_repo("git@host:x/lib"), "lib");
    }
}
