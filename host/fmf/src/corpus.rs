//! The conformance harness for the FMF corpus format
//! (`tests/fmf-corpus/README.md`): run one case directory (`tree/`,
//! `case.yaml`, `expected.json`) through load → adjust → prune and compare
//! with the reference result, with a readable diff on mismatch. Used by the
//! corpus test and by the `fmf-corpus` example runner.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value, json};

use super::{
    context::Context,
    error::Error,
    prune::{PruneOptions, prune},
    pyval,
    tree::{AdjustOptions, Tree},
    yaml,
};

/// Quirk cases where this implementation deliberately differs from the
/// reference, with the reason (see docs/fmf-compatibility.md).
pub const DELIBERATE_DIFFERENCES: &[(&str, &str)] = &[
    (
        "adjust-aliasing",
        "adjust rule values are deep-copied, so a later rule never mutates an earlier rule inside 'adjust'",
    ),
    (
        "config-empty",
        "an empty .fmf/config is read as {} instead of crashing with TypeError",
    ),
];

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Matches the reference.
    Passed,
    /// Does not match; the text explains how.
    Failed(String),
    /// Not compared; the text says why.
    Skipped(String),
}

/// Copy a directory, keeping symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        let target = to.join(entry.file_name());
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
        } else if ft.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(pyval::py_str).collect(),
        Some(other) => vec![pyval::py_str(other)],
    }
}

/// Run the case and describe the result in the corpus' expected.json form.
fn evaluate(case: &Map<String, Value>, tree_dir: &Path) -> Value {
    let fail = |stage: &str, e: &Error| json!({"error": e.reference_class(), "stage": stage, "message": e.to_string()});
    let start = case.get("start").and_then(Value::as_str).unwrap_or(".");
    let mut tree = match Tree::load(tree_dir.join(start)) {
        Ok(t) => t,
        Err(e) => return fail("load", &e),
    };
    let mut decisions = Vec::new();
    if case.get("adjust") != Some(&Value::Bool(false)) {
        let mut context = Context::new();
        if let Some(Value::Object(dims)) = case.get("context") {
            for (k, v) in dims {
                context.set(k.clone(), strings(Some(v)));
            }
        }
        let options = AdjustOptions {
            key: case
                .get("adjust_key")
                .and_then(Value::as_str)
                .unwrap_or("adjust")
                .to_string(),
            undecided_raise: case.get("undecided").and_then(Value::as_str) == Some("raise"),
            case_sensitive: case
                .get("case_sensitive")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            additional_rules: match case.get("additional_rules") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(other) => vec![other.clone()],
            },
            record_decisions: case
                .get("record_decisions")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        match tree.adjust(&context, &options) {
            Ok(d) => decisions = d,
            Err(e) => return fail("adjust", &e),
        }
    }
    let options = PruneOptions {
        whole: case.get("whole").and_then(Value::as_bool).unwrap_or(false),
        keys: strings(case.get("keys")),
        names: strings(case.get("names")),
        filters: strings(case.get("filters")),
        sort: case.get("sort").and_then(Value::as_bool).unwrap_or(true),
    };
    let ids = match prune(&tree, &options) {
        Ok(ids) => ids,
        Err(e) => return fail("prune", &e),
    };
    let mut nodes = Map::new();
    let mut order = Vec::new();
    let mut sources = Map::new();
    for id in ids {
        let node = tree.node(id);
        nodes.insert(node.name().to_string(), Value::Object(node.data().clone()));
        order.push(Value::String(node.name().to_string()));
        let rel: Vec<Value> = node
            .sources()
            .iter()
            .map(|s| {
                Value::String(
                    s.strip_prefix(tree.root())
                        .unwrap_or(s)
                        .to_string_lossy()
                        .into_owned(),
                )
            })
            .collect();
        sources.insert(node.name().to_string(), Value::Array(rel));
    }
    let mut out = json!({"nodes": nodes, "order": order, "sources": sources});
    if case
        .get("record_decisions")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        let mut by_node: std::collections::BTreeMap<String, Vec<Value>> =
            std::collections::BTreeMap::new();
        for d in decisions {
            let outcome = d.outcome.map_or(Value::Null, Value::Bool);
            by_node
                .entry(d.node)
                .or_default()
                .push(json!([d.when, outcome]));
        }
        out["decisions"] = Value::Object(
            by_node
                .into_iter()
                .map(|(k, v)| (k, Value::Array(v)))
                .collect(),
        );
    }
    out
}

/// A line diff of two texts (`-` expected, `+` actual), at most `limit`
/// changed lines.
pub fn diff(expected: &str, actual: &str, limit: usize) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    if a.len() * b.len() > 4_000_000 {
        return format!("--- expected\n{expected}\n+++ actual\n{actual}\n");
    }
    // Longest common subsequence table.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut shown) = (0, 0, 0);
    let mut out = String::new();
    while (i < a.len() || j < b.len()) && shown < limit {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("  + {}\n", b[j]));
            j += 1;
            shown += 1;
        } else {
            out.push_str(&format!("  - {}\n", a[i]));
            i += 1;
            shown += 1;
        }
    }
    if shown >= limit {
        out.push_str("  ...\n");
    }
    out
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Sort object keys recursively so diffs ignore key order.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Run one case directory.
pub fn run_case(dir: &Path) -> Outcome {
    let read = |name: &str| fs::read_to_string(dir.join(name));
    let case: Map<String, Value> = match read("case.yaml") {
        Ok(text) => match yaml::parse(&text, &dir.join("case.yaml")) {
            Ok(y) => match y.into_json() {
                Value::Object(m) => m,
                Value::Null => Map::new(),
                _ => return Outcome::Failed("case.yaml is not a mapping".into()),
            },
            Err(e) => return Outcome::Failed(format!("cannot read case.yaml: {e}")),
        },
        Err(_) => Map::new(),
    };
    if let Some(why) = case.get("reference_dependent") {
        return Outcome::Skipped(format!("reference dependent: {}", pyval::py_str(why)));
    }
    let expected: Value = match read("expected.json").map(|t| serde_json::from_str(&t)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Outcome::Failed(format!("invalid expected.json: {e}")),
        Err(e) => return Outcome::Failed(format!("cannot read expected.json: {e}")),
    };
    let tmp = match tempfile::Builder::new()
        .prefix("atex-fmf-corpus-")
        .tempdir()
    {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(format!("cannot create a temporary directory: {e}")),
    };
    let tree_dir: PathBuf = tmp.path().join("tree");
    if let Err(e) = copy_tree(&dir.join("tree"), &tree_dir) {
        return Outcome::Failed(format!("cannot copy the tree: {e}"));
    }
    let actual = evaluate(&case, &tree_dir);
    let mismatch = compare(&expected, &actual);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match mismatch {
        None => Outcome::Passed,
        Some(text) => {
            if case.contains_key("quirk")
                && let Some((_, why)) = DELIBERATE_DIFFERENCES.iter().find(|(n, _)| *n == name)
            {
                return Outcome::Skipped(format!("deliberate difference (quirk): {why}"));
            }
            Outcome::Failed(text)
        }
    }
}

/// `None` when `actual` matches `expected` under the corpus rules.
fn compare(expected: &Value, actual: &Value) -> Option<String> {
    if let Some(err) = expected.get("error") {
        let stage = expected.get("stage");
        let what = format!(
            "expected error {} at stage {} ({})",
            pyval::py_str(err),
            stage.map(pyval::py_str).unwrap_or_default(),
            expected
                .get("message")
                .map(pyval::py_str)
                .unwrap_or_default()
        );
        let Some(got) = actual.get("error") else {
            return Some(format!("{what}, got success:\n{}", pretty(&sorted(actual))));
        };
        if actual.get("stage") != stage {
            return Some(format!(
                "{what}, got {got} at stage {} ({})",
                actual["stage"], actual["message"]
            ));
        }
        if expected.get("error_category").and_then(Value::as_str) == Some("fmf") && got != err {
            return Some(format!("{what}, got {got} ({})", actual["message"]));
        }
        return None;
    }
    if actual.get("error").is_some() {
        return Some(format!(
            "expected success, got {} at stage {}: {}",
            actual["error"], actual["stage"], actual["message"]
        ));
    }
    let mut problems = String::new();
    for key in ["order", "nodes", "sources", "decisions"] {
        let (e, a) = (expected.get(key), actual.get(key));
        if key == "decisions" && e.is_none() {
            continue;
        }
        if e != a {
            let (e, a) = (
                e.map(sorted).unwrap_or(Value::Null),
                a.map(sorted).unwrap_or(Value::Null),
            );
            problems.push_str(&format!(
                "{key} differ:\n{}",
                diff(&pretty(&e), &pretty(&a), 40)
            ));
        }
    }
    (!problems.is_empty()).then_some(problems)
}

/// Run every case directory under `corpus` (sorted by name); returns
/// `(case name, outcome)` pairs.
pub fn run_corpus(corpus: &Path) -> std::io::Result<Vec<(String, Outcome)>> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(corpus)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("tree").is_dir() && p.join("expected.json").is_file())
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|d| {
            (
                d.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                run_case(&d),
            )
        })
        .collect())
}
