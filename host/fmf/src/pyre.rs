//! Python `re` on top of `fancy-regex`: a translation of the pattern
//! dialect where the two differ (`$` also before a final newline, `\Z`,
//! literal `{`/`}`, `[` inside classes, `{,n}`), `re.search`, and
//! `re.sub` with Python's replacement templates (`\1`, `\g<name>`) and
//! empty-match rules. Compiled patterns are cached per thread.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use fancy_regex::Regex;

/// How many compiled patterns a thread keeps.
const CACHE_LIMIT: usize = 4096;
/// Backtracking budget per match (fancy-regex's unit); bounds pathological
/// patterns instead of hanging.
const BACKTRACK_LIMIT: usize = 1_000_000;

thread_local! {
    static CACHE: RefCell<HashMap<String, Result<Rc<Regex>, RegexError>>> = RefCell::new(HashMap::new());
}

/// Why a Python pattern or replacement template cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegexError {
    /// The pattern does not compile, or a match ran out of its
    /// backtracking budget.
    #[error(transparent)]
    Engine(#[from] fancy_regex::Error),
    /// An invalid `re.sub` replacement template (bad escape, unknown
    /// group, ...).
    #[error("{0}")]
    Template(String),
}

fn template(message: impl Into<String>) -> RegexError {
    RegexError::Template(message.into())
}

/// Compile a Python pattern (cached).
pub fn compile(pattern: &str) -> Result<Rc<Regex>, RegexError> {
    if let Some(hit) = CACHE.with(|c| c.borrow().get(pattern).cloned()) {
        return hit;
    }
    let translated = translate(pattern);
    let result = fancy_regex::RegexBuilder::new(&translated)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map(Rc::new)
        .map_err(RegexError::from);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_LIMIT {
            c.clear();
        }
        c.insert(pattern.to_string(), result.clone());
    });
    result
}

/// Python `re.search(pattern, text) is not None`.
pub fn search(pattern: &str, text: &str) -> Result<bool, RegexError> {
    Ok(compile(pattern)?.is_match(text)?)
}

/// Python `re.sub(pattern, replacement, text)`.
pub fn sub(pattern: &str, replacement: &str, text: &str) -> Result<String, RegexError> {
    let re = compile(pattern)?;
    let template = parse_template(replacement, &re)?;
    let mut out = String::with_capacity(text.len());
    let mut last = 0usize;
    let mut pos = 0usize;
    let mut prev_empty_at: Option<usize> = None;
    while pos <= text.len() {
        let Some(caps) = re.captures_from_pos(text, pos)? else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        let (s, e) = (m.start(), m.end());
        if s == e && prev_empty_at == Some(s) {
            // An empty match right where the previous empty match was:
            // move one character on.
            match text[s..].chars().next() {
                Some(c) => {
                    pos = s + c.len_utf8();
                    continue;
                }
                None => break,
            }
        }
        out.push_str(&text[last..s]);
        for part in &template {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Group(g) => {
                    if let Some(gm) = caps.get(*g) {
                        out.push_str(gm.as_str());
                    }
                }
            }
        }
        last = e;
        if s == e {
            prev_empty_at = Some(s);
            pos = e;
        } else {
            prev_empty_at = None;
            pos = e;
        }
    }
    out.push_str(&text[last..]);
    Ok(out)
}

enum Part {
    Lit(String),
    Group(usize),
}

fn parse_template(repl: &str, re: &Regex) -> Result<Vec<Part>, RegexError> {
    let groups = re.captures_len();
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = repl.chars().peekable();
    let push_group =
        |lit: &mut String, parts: &mut Vec<Part>, g: usize| -> Result<(), RegexError> {
            if g >= groups {
                return Err(template(format!("invalid group reference {g}")));
            }
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(lit)));
            }
            parts.push(Part::Group(g));
            Ok(())
        };
    while let Some(c) = chars.next() {
        if c != '\\' {
            lit.push(c);
            continue;
        }
        let Some(n) = chars.next() else {
            return Err(template("bad escape (end of pattern)"));
        };
        match n {
            '0'..='9' => {
                let mut num = String::from(n);
                if let Some(&d) = chars.peek()
                    && d.is_ascii_digit()
                {
                    num.push(d);
                    chars.next();
                }
                if n == '0'
                    || (num.len() == 2 && chars.peek().is_some_and(|d| ('0'..='7').contains(d)))
                {
                    // Octal escape.
                    while num.len() < 3 && chars.peek().is_some_and(|d| ('0'..='7').contains(d)) {
                        num.extend(chars.next());
                    }
                    let v = u32::from_str_radix(&num, 8).map_err(|e| template(e.to_string()))?;
                    lit.push(char::from_u32(v).ok_or_else(|| template("bad octal escape"))?);
                } else {
                    let g: usize = num.parse().map_err(|_| template("bad group"))?;
                    push_group(&mut lit, &mut parts, g)?;
                }
            }
            'g' => {
                if chars.next() != Some('<') {
                    return Err(template("missing <"));
                }
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('>') => break,
                        Some(c) => name.push(c),
                        None => return Err(template("missing >, unterminated name")),
                    }
                }
                let g = match name.parse::<usize>() {
                    Ok(g) => g,
                    Err(_) => re
                        .capture_names()
                        .position(|n| n == Some(name.as_str()))
                        .ok_or_else(|| template(format!("unknown group name '{name}'")))?,
                };
                push_group(&mut lit, &mut parts, g)?;
            }
            'n' => lit.push('\n'),
            't' => lit.push('\t'),
            'r' => lit.push('\r'),
            'f' => lit.push('\x0c'),
            'v' => lit.push('\x0b'),
            'a' => lit.push('\x07'),
            'b' => lit.push('\x08'),
            '\\' => lit.push('\\'),
            c if c.is_ascii_alphabetic() => return Err(template(format!("bad escape \\{c}"))),
            c => {
                lit.push('\\');
                lit.push(c);
            }
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(parts)
}

/// Translate a Python pattern into fancy-regex syntax.
fn translate(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                match chars.get(i + 1) {
                    Some('Z') => out.push_str("\\z"),
                    Some('0') => {
                        let mut j = i + 2;
                        let mut v = 0u32;
                        while j < chars.len() && j < i + 4 && ('0'..='7').contains(&chars[j]) {
                            v = v * 8 + chars[j].to_digit(8).unwrap_or(0);
                            j += 1;
                        }
                        out.push_str(&format!("\\x{{{v:x}}}"));
                        i = j;
                        continue;
                    }
                    Some(&n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    None => out.push('\\'),
                }
                i += 2;
            }
            '$' => {
                out.push_str("(?=\\n?\\z)");
                i += 1;
            }
            '{' => {
                // A quantifier only if it has the form {m}, {m,}, {,n}, {m,n}.
                let mut j = i + 1;
                let mut lo = String::new();
                while j < chars.len() && chars[j].is_ascii_digit() {
                    lo.push(chars[j]);
                    j += 1;
                }
                let mut hi: Option<String> = None;
                if j < chars.len() && chars[j] == ',' {
                    j += 1;
                    let mut h = String::new();
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        h.push(chars[j]);
                        j += 1;
                    }
                    hi = Some(h);
                }
                let valid = j < chars.len() && chars[j] == '}' && !(lo.is_empty() && hi.is_none());
                if valid {
                    let lo = if lo.is_empty() { "0".to_string() } else { lo };
                    match hi {
                        None => out.push_str(&format!("{{{lo}}}")),
                        Some(h) => out.push_str(&format!("{{{lo},{h}}}")),
                    }
                    i = j + 1;
                } else {
                    out.push_str("\\{");
                    i += 1;
                }
            }
            '}' => {
                out.push_str("\\}");
                i += 1;
            }
            '[' => {
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                while i < chars.len() && chars[i] != ']' {
                    let d = chars[i];
                    match d {
                        '\\' => {
                            out.push('\\');
                            if let Some(&n) = chars.get(i + 1) {
                                out.push(n);
                            }
                            i += 2;
                            continue;
                        }
                        '[' => out.push_str("\\["),
                        '&' | '~' if chars.get(i + 1) == Some(&d) => {
                            out.push('\\');
                            out.push(d);
                        }
                        '-' if chars.get(i + 1) == Some(&'-') => out.push_str("\\-"),
                        d => out.push(d),
                    }
                    i += 1;
                }
                if i < chars.len() {
                    out.push(']');
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_follows_python() {
        assert_eq!(sub("x*", "-", "abxd").unwrap(), "-a-b--d-");
        assert_eq!(sub("a*", "-", "baaa").unwrap(), "-b--");
        assert_eq!(
            sub(r"(\w+)-(\d)", r"\2:\g<1>", "ab-1 cd-2").unwrap(),
            "1:ab 2:cd"
        );
        assert_eq!(sub("o", "$1", "foo").unwrap(), "f$1$1");
        assert_eq!(sub(".", "", "abc").unwrap(), "");
        assert!(sub("(", "", "abc").is_err());
        assert!(sub("a", r"\2", "abc").is_err());
    }

    #[test]
    fn dialect() {
        assert!(search("^foo$", "foo\n").unwrap());
        assert!(!search("^foo\\Z", "foo\n").unwrap());
        assert!(search("a{b", "a{b").unwrap());
        assert!(search("^a{,2}$", "aa").unwrap());
        assert!(search("[[]", "[").unwrap());
        assert!(search("(?P<x>a)(?P=x)", "aa").unwrap());
    }
}
