//! In-tree libraries: `require: [{nick: mylib, name: /mylib}]` with neither
//! `url` nor `path` names a node of the test's own tree (tmt 1.65+, and
//! upstream atex). Its own `require` and `recommend` are resolved the same
//! way, recursively, and their package names are appended to the test's;
//! the executor makes the library importable on the system (see
//! [`local_libraries`]). Remote libraries (`url`, `path`, `library(...)`)
//! are left as they are.

use std::collections::{HashSet, VecDeque};

use serde_json::{Map, Value};

use super::{Error, Result, Test, Tree};

/// One in-tree library a test requires: its `nick` and node `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLibrary {
    /// `nick`: the directory under `libs/` (what `rlImport NICK/...` uses).
    pub nick: String,
    /// The library's node name in the tree, e.g. `/mylib`.
    pub name: String,
}

/// The in-tree library entries of a `require` list (dicts of type
/// `library`, the default, with neither `url` nor `path`).
pub fn local_libraries(require: &[Value]) -> Vec<LocalLibrary> {
    require
        .iter()
        .filter_map(|entry| {
            let obj = entry.as_object()?;
            if !is_local_library(obj) {
                return None;
            }
            Some(LocalLibrary {
                nick: obj.get("nick")?.as_str()?.to_string(),
                name: library_name(obj),
            })
        })
        .collect()
}

fn is_local_library(obj: &Map<String, Value>) -> bool {
    obj.get("type")
        .is_none_or(|t| t.as_str() == Some("library"))
        && !obj.contains_key("url")
        && !obj.contains_key("path")
}

fn library_name(obj: &Map<String, Value>) -> String {
    obj.get("name")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_string()
}

/// Whether any test requires an in-tree library.
pub fn any_local_library(tests: &[Test]) -> bool {
    tests.iter().any(|t| {
        t.require_raw
            .iter()
            .any(|e| e.as_object().is_some_and(is_local_library))
    })
}

/// Appends the packages of every in-tree library each test requires
/// (recursively) to the test's `require` and `recommend`, in its metadata
/// and its typed fields. A library entry without `nick`, or naming no
/// node of `tree`, is an error.
pub fn resolve_local_libraries(tree: &Tree, tests: &mut [Test]) -> Result<()> {
    for test in tests.iter_mut() {
        if !test
            .require_raw
            .iter()
            .any(|e| e.as_object().is_some_and(is_local_library))
        {
            continue;
        }
        let mut require = Vec::new();
        let mut recommend = Vec::new();
        let mut seen = HashSet::new();
        let mut pending: VecDeque<Value> = test.require_raw.iter().cloned().collect();
        let direct = pending.len();
        let mut taken = 0;
        while let Some(entry) = pending.pop_front() {
            taken += 1;
            // Libraries a library requires join the test's list too, so
            // they are importable as well.
            if taken > direct {
                require.push(entry.clone());
            }
            let Some(obj) = entry.as_object() else {
                continue;
            };
            if !is_local_library(obj) {
                continue;
            }
            let err = |message: String| Error::Metadata {
                test: test.name.clone(),
                path: test.source_dir.clone(),
                message,
            };
            if !obj.get("nick").is_some_and(Value::is_string) {
                return Err(err(format!(
                    "the in-tree library {entry} needs a 'nick' (it has neither 'url' nor 'path')"
                )));
            }
            let name = library_name(obj);
            if !seen.insert(name.clone()) {
                continue;
            }
            let id = tree.find(&name).ok_or_else(|| {
                err(format!(
                    "library '{name}' (nick '{}') is not a node of this tree",
                    obj.get("nick").and_then(Value::as_str).unwrap_or_default()
                ))
            })?;
            let data = tree.node(id).data();
            for (key, out) in [("require", &mut require), ("recommend", &mut recommend)] {
                for item in listlike(data.get(key)) {
                    match &item {
                        Value::String(_) => out.push(item.clone()),
                        Value::Object(_) if key == "require" => pending.push_back(item.clone()),
                        _ => {}
                    }
                }
            }
        }
        for (key, extra) in [("require", require), ("recommend", recommend)] {
            if extra.is_empty() {
                continue;
            }
            let mut list = listlike(test.metadata.get(key));
            for item in extra {
                if !list.contains(&item) {
                    list.push(item);
                }
            }
            test.metadata.insert(key.into(), Value::Array(list));
        }
        test.refresh().map_err(|e| Error::Metadata {
            test: test.name.clone(),
            path: test.source_dir.clone(),
            message: e.0,
        })?;
    }
    Ok(())
}

fn listlike(v: Option<&Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Selection, discover};

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".fmf")).expect("mkdir");
        std::fs::write(dir.path().join(".fmf/version"), "1\n").expect("version");
        for (rel, text) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    /// Upstream's `test_local_library_symlink`: the library's own
    /// require and recommend join the test's.
    #[test]
    fn an_in_tree_library_adds_its_requirements() {
        let dir = tree(&[
            (
                "mylib/main.fmf",
                "require: [some_dependency, {nick: other, name: /otherlib}]\nrecommend: optional_dependency\n",
            ),
            ("otherlib/main.fmf", "require: deeper_dependency\n"),
            (
                "test.fmf",
                "test: ./test.sh\nrequire:\n  - own_package\n  - nick: mylib\n    name: /mylib\n",
            ),
        ]);
        let found = discover(dir.path(), &Selection::default()).expect("discover");
        let t = found.test("/test").expect("test");
        assert_eq!(
            t.require,
            vec!["own_package", "some_dependency", "deeper_dependency"]
        );
        assert_eq!(t.recommend, vec!["optional_dependency"]);
        assert_eq!(
            local_libraries(&t.require_raw),
            vec![
                LocalLibrary {
                    nick: "mylib".into(),
                    name: "/mylib".into()
                },
                LocalLibrary {
                    nick: "other".into(),
                    name: "/otherlib".into()
                }
            ]
        );
    }

    #[test]
    fn a_missing_library_or_nick_is_an_error() {
        let dir = tree(&[(
            "test.fmf",
            "test: true\nrequire:\n  - nick: mylib\n    name: /nowhere\n",
        )]);
        let err = discover(dir.path(), &Selection::default()).expect_err("missing");
        assert!(err.to_string().contains("not a node of this tree"), "{err}");
        let dir = tree(&[
            ("mylib.fmf", "summary: lib\n"),
            ("test.fmf", "test: true\nrequire:\n  - name: /mylib\n"),
        ]);
        let err = discover(dir.path(), &Selection::default()).expect_err("no nick");
        assert!(err.to_string().contains("needs a 'nick'"), "{err}");
    }
}
