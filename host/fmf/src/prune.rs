//! Selecting nodes (`fmf.Tree.prune`): leaves or the whole tree, required
//! keys, name regexes, and the `fmf.utils.filter` language (`tag: A, -B &
//! tier: 1 | /name`), with the reference's evaluation order, stringified
//! values and "missing key drops the node" rule.

use serde_json::{Map, Value};

use super::{
    error::{Error, Result},
    pyre, pyval,
    tree::{NodeId, Tree},
};

/// What [`prune`] selects (`fmf.Tree.prune` parameters).
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Also yield branch nodes.
    pub whole: bool,
    /// Keys that must all be present.
    pub keys: Vec<String>,
    /// Regexes; a node is kept when any `re.search`es its name.
    pub names: Vec<String>,
    /// Filter expressions; all must match.
    pub filters: Vec<String>,
    /// Children sorted by name (`true`) or in insertion order.
    pub sort: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            whole: false,
            keys: Vec::new(),
            names: Vec::new(),
            filters: Vec::new(),
            sort: true,
        }
    }
}

/// A filter could not be evaluated.
enum FilterFail {
    /// A dimension is missing from the node (`FilterError`: drop the node).
    Missing,
    /// A bad regex (aborts).
    Regex(Error),
}

fn regex_fail(pattern: &str, error: pyre::RegexError) -> FilterFail {
    FilterFail::Regex(Error::Regex {
        pattern: pattern.to_string(),
        node: None,
        message: error.to_string(),
    })
}

/// Select nodes as `Tree.prune` does.
pub fn prune(tree: &Tree, options: &PruneOptions) -> Result<Vec<NodeId>> {
    let mut out = Vec::new();
    for id in tree.climb(options.whole, options.sort) {
        let node = tree.node(id);
        if keeps(options, node.name(), node.data())? {
            out.push(id);
        }
    }
    Ok(out)
}

/// Whether `prune` keeps a node it climbs to, by its keys, name and
/// filters.
pub(super) fn keeps(options: &PruneOptions, name: &str, data: &Map<String, Value>) -> Result<bool> {
    if !options.keys.iter().all(|k| data.contains_key(k)) {
        return Ok(false);
    }
    if !options.names.is_empty() {
        let mut any = false;
        for pattern in &options.names {
            if pyre::search(pattern, name).map_err(|e| Error::Regex {
                pattern: pattern.clone(),
                node: None,
                message: e.to_string(),
            })? {
                any = true;
            }
        }
        if !any {
            return Ok(false);
        }
    }
    let mut all = true;
    for f in &options.filters {
        match filter(f, data, name) {
            Ok(true) => {}
            Ok(false) => all = false,
            Err(FilterFail::Missing) => return Ok(false),
            Err(FilterFail::Regex(e)) => return Err(e),
        }
    }
    Ok(all)
}

/// Evaluate one filter expression against node data; `Ok(true)` when it
/// matches.
pub fn filter_matches(expr: &str, data: &Map<String, Value>, name: &str) -> Result<Option<bool>> {
    match filter(expr, data, name) {
        Ok(b) => Ok(Some(b)),
        Err(FilterFail::Missing) => Ok(None),
        Err(FilterFail::Regex(e)) => Err(e),
    }
}

/// Split on `sep` not preceded by a backslash, eating whitespace around it
/// (`re.split(r"\s*(?<!\\)SEP\s*", text)`).
fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == sep && !(i > 0 && chars[i - 1] == '\\') {
            let trimmed = current.trim_end_matches(char::is_whitespace).len();
            current.truncate(trimmed);
            parts.push(std::mem::take(&mut current));
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            continue;
        }
        current.push(c);
        i += 1;
    }
    parts.push(current);
    parts
}

/// `data[key]` as the list of strings the filter compares against.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(pyval::py_str).collect(),
        other => vec![pyval::py_str(other)],
    }
}

fn full_match(pattern: &str, text: &str) -> Result<bool, FilterFail> {
    pyre::search(&format!("^{pattern}$"), text).map_err(|m| regex_fail(pattern, m))
}

fn check_value(values: &[String], value: &str) -> Result<bool, FilterFail> {
    // `re.split(r"\s*,\s*", value)`: whitespace goes only around commas.
    let pieces: Vec<&str> = value.split(',').collect();
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate() {
        let mut atom = *piece;
        if i > 0 {
            atom = atom.trim_start_matches(char::is_whitespace);
        }
        if i < last {
            atom = atom.trim_end_matches(char::is_whitespace);
        }
        if let Some(negated) = atom.strip_prefix('-') {
            let mut found = false;
            for v in values {
                if full_match(negated, v)? {
                    found = true;
                    break;
                }
            }
            if !found {
                return Ok(true);
            }
        } else {
            for v in values {
                if full_match(atom, v)? {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

fn check_clause(clause: &str, data: &Map<String, Value>, name: &str) -> Result<bool, FilterFail> {
    let mut dims: Vec<(String, Vec<String>)> = Vec::new();
    for literal in split_unescaped(clause, '&') {
        let literal = literal.replace("\\&", "&");
        // `^([^:]*)\s*:\s*(.*)$`
        let parsed = literal.split_once(':').and_then(|(dim, rest)| {
            let rest = rest.trim_start_matches(char::is_whitespace);
            let rest = rest.strip_suffix('\n').unwrap_or(rest);
            (!rest.contains('\n')).then(|| (dim.to_string(), rest.to_string()))
        });
        match parsed {
            None => {
                if pyre::search(&literal, name).map_err(|m| regex_fail(&literal, m))? {
                    continue;
                }
                return Ok(false);
            }
            Some((dim, value)) => match dims.iter_mut().find(|(d, _)| *d == dim) {
                Some((_, values)) => values.push(value),
                None => dims.push((dim, vec![value])),
            },
        }
    }
    let mut all = true;
    for (dim, values) in &dims {
        let Some(data_value) = data.get(dim) else {
            return Err(FilterFail::Missing);
        };
        let strs = strings(data_value);
        for value in values {
            if !check_value(&strs, value)? {
                all = false;
            }
        }
    }
    Ok(all)
}

fn filter(expr: &str, data: &Map<String, Value>, name: &str) -> Result<bool, FilterFail> {
    if expr.is_empty() {
        return Ok(true);
    }
    let mut any = false;
    for clause in split_unescaped(expr, '|') {
        if check_clause(&clause.replace("\\|", "|"), data, name)? {
            any = true;
        }
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(expr: &str, data: Value) -> Option<bool> {
        let Value::Object(m) = data else { panic!() };
        filter_matches(expr, &m, "/tests/one").ok().flatten()
    }

    #[test]
    fn filter_language() {
        let d = json!({"tag": ["Tier1", "fast"], "tier": 1, "enabled": true});
        assert_eq!(f("tag: Tier1", d.clone()), Some(true));
        assert_eq!(f("tag: Tier", d.clone()), Some(false));
        assert_eq!(f("tag: -slow", d.clone()), Some(true));
        assert_eq!(f("tag: -fast, -Tier1", d.clone()), Some(false));
        assert_eq!(f("tier: 1 & tag: fast", d.clone()), Some(true));
        assert_eq!(f("enabled: true", d.clone()), Some(false));
        assert_eq!(f("enabled: True", d.clone()), Some(true));
        assert_eq!(f("tag: x | missing: y", d.clone()), None);
        assert_eq!(f("/tests & tag: fast", d.clone()), Some(true));
        assert_eq!(f("Tier(1\\|2)", json!({})), Some(false));
        assert_eq!(split_unescaped("a | b\\|c |d", '|'), ["a", "b\\|c", "d"]);
    }
}
