//! The merge operators of fmf (`_merge_special`): plain keys replace,
//! `key+` appends, `key+<` prepends, `key-` removes, `key~` substitutes
//! with a regex, `key-~` removes what matches. Used for inheritance, for
//! nested dicts inside `+`, and for applying adjust rules.
//!
//! Suffixes are stripped like Python's `rstrip` of a character set
//! (`c++` names `c`), and the generic `+`/`-` branches follow Python's
//! types (`true + 1 == 2`, list removal by Python equality).

use serde_json::{Map, Value};

use super::{
    error::{Error, Result},
    pyre,
    pyval::{self, Num},
};

/// Merge `source` into `data` in `source`'s key order (`node` names the
/// node in errors). `source` is any sequence of pairs, so a caller can
/// merge part of a mapping without building a new one.
pub fn merge_special<K: AsRef<str> + Into<String>>(
    data: &mut Map<String, Value>,
    source: impl IntoIterator<Item = (K, Value)>,
    node: &str,
) -> Result<()> {
    for (key, value) in source {
        let k = key.as_ref();
        if k.ends_with('+') {
            plus(data, k.trim_end_matches('+'), value, false, node)?;
        } else if k.ends_with("+<") {
            plus(data, k.trim_end_matches(['+', '<']), value, true, node)?;
        } else if k.ends_with("-~") {
            minus_regexp(data, k.trim_end_matches(['-', '~']), value, node)?;
        } else if k.ends_with('-') {
            minus(data, k.trim_end_matches('-'), value, node)?;
        } else if k.ends_with('~') {
            regexp(data, k.trim_end_matches('~'), value, node)?;
        } else {
            data.insert(key.into(), value);
        }
    }
    Ok(())
}

fn merge_error(node: &str, key: &str, message: impl Into<String>) -> Error {
    Error::Merge {
        node: node.to_string(),
        key: key.to_string(),
        message: message.into(),
    }
}

fn plus(
    data: &mut Map<String, Value>,
    key: &str,
    value: Value,
    prepend: bool,
    node: &str,
) -> Result<()> {
    let Some(current) = data.get_mut(key) else {
        data.insert(key.to_string(), value);
        return Ok(());
    };
    if let (Value::Object(base), Value::Array(v)) = (&*current, &value) {
        let mut result = Vec::with_capacity(v.len());
        for item in v {
            match item {
                Value::Object(m) => {
                    let mut copy = base.clone();
                    merge_special(&mut copy, m.clone(), node)?;
                    result.push(Value::Object(copy));
                }
                other => {
                    return Err(merge_error(
                        node,
                        key,
                        format!("item '{}' must be a dictionary", pyval::py_str(other)),
                    ));
                }
            }
        }
        *current = Value::Array(result);
        return Ok(());
    }
    match (current, value) {
        (Value::Array(items), Value::Object(v)) => {
            for item in items.iter_mut() {
                match item {
                    Value::Object(m) => merge_special(m, v.clone(), node)?,
                    other => {
                        return Err(merge_error(
                            node,
                            key,
                            format!("item '{}' must be a dictionary", pyval::py_str(other)),
                        ));
                    }
                }
            }
        }
        (Value::Object(m), Value::Object(v)) => merge_special(m, v, node)?,
        (Value::Array(a), Value::Array(mut b)) => {
            if prepend {
                b.append(a);
                *a = b;
            } else {
                a.append(&mut b);
            }
        }
        (Value::String(a), Value::String(b)) => {
            if prepend {
                *a = format!("{b}{a}");
            } else {
                a.push_str(&b);
            }
        }
        (current, value) => match (Num::of(current), Num::of(&value)) {
            (Some(a), Some(b)) => {
                *current = if prepend {
                    b.add(a, false)
                } else {
                    a.add(b, false)
                }
            }
            _ => {
                let (l, r) = if prepend {
                    (&value, &*current)
                } else {
                    (&*current, &value)
                };
                return Err(merge_error(
                    node,
                    key,
                    format!(
                        "unsupported operand type(s) for +: '{}' and '{}'",
                        pyval::type_name(l),
                        pyval::type_name(r)
                    ),
                ));
            }
        },
    }
    Ok(())
}

fn minus(data: &mut Map<String, Value>, key: &str, value: Value, node: &str) -> Result<()> {
    let Some(current) = data.get_mut(key) else {
        return Ok(());
    };
    if let (Some(a), Some(b)) = (Num::of(current), Num::of(&value)) {
        *current = a.add(b, true);
        return Ok(());
    }
    match (current, value) {
        (Value::String(s), Value::String(pattern)) => {
            *s = pyre::sub(&pattern, "", s).map_err(|m| regex_error(&pattern, node, m))?;
        }
        (Value::Array(items), Value::Array(remove)) => {
            items.retain(|item| !remove.iter().any(|r| pyval::py_eq(item, r)));
        }
        (Value::Object(m), Value::Array(remove)) => {
            for item in remove {
                match item {
                    Value::String(k) => {
                        m.shift_remove(&k);
                    }
                    Value::Array(_) | Value::Object(_) => {
                        return Err(merge_error(
                            node,
                            key,
                            format!("unhashable type: '{}'", pyval::type_name(&item)),
                        ));
                    }
                    _ => {}
                }
            }
        }
        _ => return Err(merge_error(node, key, "wrong type")),
    }
    Ok(())
}

fn regex_error(pattern: &str, node: &str, error: pyre::RegexError) -> Error {
    Error::Regex {
        pattern: pattern.to_string(),
        node: Some(node.to_string()),
        message: error.to_string(),
    }
}

/// Split `<d>PATTERN<d>REPLACEMENT<d>` (`fmf.utils.split_pattern_replacement`).
fn split_pattern_replacement(source: &str, node: &str) -> Result<(String, String)> {
    let bad = |m: &str| Error::Substitution {
        node: node.to_string(),
        value: source.to_string(),
        message: m.to_string(),
    };
    let Some(d) = source.chars().next() else {
        return Err(bad("has to start and end with the same delimiter"));
    };
    if !source.ends_with(d) {
        return Err(bad(&format!("has to end with '{d}'")));
    }
    let inner = if source.len() >= 2 * d.len_utf8() {
        &source[d.len_utf8()..source.len() - d.len_utf8()]
    } else {
        ""
    };
    let parts: Vec<&str> = if source.chars().count() < 2 {
        vec![]
    } else {
        inner.split(d).collect()
    };
    let [pattern, replacement] = parts.as_slice() else {
        return Err(bad("can't be split in two parts"));
    };
    if pattern.is_empty() {
        return Err(bad("pattern cannot be empty"));
    }
    Ok((pattern.to_string(), replacement.to_string()))
}

/// The items Python would iterate over in `for v in value`.
fn iterate(value: Value, node: &str, key: &str) -> Result<Vec<Value>> {
    match value {
        Value::String(s) => Ok(vec![Value::String(s)]),
        Value::Array(items) => Ok(items),
        Value::Object(m) => Ok(m.into_iter().map(|(k, _)| Value::String(k)).collect()),
        other => Err(merge_error(
            node,
            key,
            format!("'{}' object is not iterable", pyval::type_name(&other)),
        )),
    }
}

fn regexp(data: &mut Map<String, Value>, key: &str, value: Value, node: &str) -> Result<()> {
    let Some(current) = data.get_mut(key) else {
        return Ok(());
    };
    let mut pairs = Vec::new();
    for v in iterate(value, node, key)? {
        match v {
            Value::String(s) => pairs.push(split_pattern_replacement(&s, node)?),
            other => {
                return Err(merge_error(
                    node,
                    key,
                    format!("'{}' is not a string", pyval::type_name(&other)),
                ));
            }
        }
    }
    for (pattern, replacement) in pairs {
        match current {
            Value::Array(items) => {
                for item in items.iter_mut() {
                    match item {
                        Value::String(s) => {
                            *s = pyre::sub(&pattern, &replacement, s)
                                .map_err(|m| regex_error(&pattern, node, m))?;
                        }
                        _ => return Err(merge_error(node, key, "not a string")),
                    }
                }
            }
            Value::String(s) => {
                *s = pyre::sub(&pattern, &replacement, s)
                    .map_err(|m| regex_error(&pattern, node, m))?;
            }
            _ => return Err(merge_error(node, key, "wrong type")),
        }
    }
    Ok(())
}

fn minus_regexp(data: &mut Map<String, Value>, key: &str, value: Value, node: &str) -> Result<()> {
    let Some(current) = data.get_mut(key) else {
        return Ok(());
    };
    let patterns = iterate(value, node, key)?;
    let any_search = |text: &str| -> Result<bool> {
        for p in &patterns {
            let Value::String(p) = p else {
                return Err(merge_error(
                    node,
                    key,
                    "first argument must be string or compiled pattern",
                ));
            };
            if pyre::search(p, text).map_err(|m| regex_error(p, node, m))? {
                return Ok(true);
            }
        }
        Ok(false)
    };
    match current {
        Value::Array(items) => {
            let mut kept = Vec::with_capacity(items.len());
            for item in items.drain(..) {
                if !any_search(&pyval::py_str(&item))? {
                    kept.push(item);
                }
            }
            *items = kept;
        }
        Value::String(s) => {
            if any_search(s)? {
                s.clear();
            }
        }
        Value::Object(m) => {
            let mut remove = Vec::new();
            for k in m.keys() {
                if any_search(k)? {
                    remove.push(k.clone());
                }
            }
            for k in remove {
                m.shift_remove(&k);
            }
        }
        _ => return Err(merge_error(node, key, "wrong type")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(data: Value, source: Value) -> Result<Value> {
        let (Value::Object(mut d), Value::Object(s)) = (data, source) else {
            panic!("objects")
        };
        merge_special(&mut d, s, "/t")?;
        Ok(Value::Object(d))
    }

    #[test]
    fn operators() {
        assert_eq!(
            merged(json!({"a": [1]}), json!({"a+": [2], "a+<": [0]})).unwrap(),
            json!({"a": [0, 1, 2]})
        );
        assert_eq!(
            merged(json!({"c": "x"}), json!({"c++": "y"})).unwrap(),
            json!({"c": "xy"})
        );
        assert_eq!(
            merged(json!({"n": true}), json!({"n+": 1})).unwrap(),
            json!({"n": 2})
        );
        assert_eq!(
            merged(json!({"n": 1}), json!({"n+": 0.5})).unwrap(),
            json!({"n": 1.5})
        );
        assert_eq!(
            merged(json!({"l": [1, true, 1.0, "1", 0]}), json!({"l-": [true]})).unwrap(),
            json!({"l": ["1", 0]})
        );
        assert_eq!(
            merged(json!({"s": "abc"}), json!({"s-": "b."})).unwrap(),
            json!({"s": "a"})
        );
        assert_eq!(
            merged(json!({"s": ["ab", "cb"]}), json!({"s~": "/b$/x/"})).unwrap(),
            json!({"s": ["ax", "cx"]})
        );
        assert_eq!(
            merged(json!({"s": [1, "ab", 22]}), json!({"s-~": "^2"})).unwrap(),
            json!({"s": [1, "ab"]})
        );
        assert!(matches!(
            merged(json!({"v": null}), json!({"v+": [1]})),
            Err(Error::Merge { .. })
        ));
        assert!(matches!(
            merged(json!({"v": "x"}), json!({"v~": "/x/"})),
            Err(Error::Substitution { .. })
        ));
        assert_eq!(
            merged(json!({}), json!({"x+": {"k+": 1}})).unwrap(),
            json!({"x": {"k+": 1}})
        );
        assert_eq!(
            merged(json!({"x": {"a": 1}}), json!({"x+": [{"b": 1}, {"c": 1}]})).unwrap(),
            json!({"x": [{"a": 1, "b": 1}, {"a": 1, "c": 1}]})
        );
    }
}
