//! YAML as python fmf reads it (`ruamel.yaml` `typ="safe"`, pure-Python
//! parser): YAML 1.2 core scalars plus ruamel's extensions, timestamps,
//! anchors, aliases and `<<` merge keys, duplicate keys as errors, one
//! document per file, a leading BOM accepted.
//!
//! The parser is `saphyr-parser` (events with positions); this module owns
//! the resolution of plain scalars and the construction of [`Yaml`] values.
//! Mapping keys keep their YAML type here because fmf treats node-level
//! keys that are not strings as errors; [`Yaml::into_json`] turns a value
//! into node data. It does not own what the keys mean (that is the tree).

use std::{collections::HashMap, path::Path, sync::OnceLock};

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::Value;

use super::error::{Error, Result};

/// Most values (nodes, counting alias copies) one file may expand to; stops
/// "billion laughs" alias bombs.
const MAX_NODES: usize = 1_000_000;
/// Deepest nesting of collections accepted.
const MAX_DEPTH: usize = 500;

/// A YAML value with typed mapping keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// `~`, `null`, empty.
    Null,
    /// `true`/`false` (YAML 1.2: not `yes`/`no`).
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A float (`1.5`, `1e3`, `.inf`).
    Float(f64),
    /// A string.
    Str(String),
    /// A resolved timestamp, as the ISO 8601 text Python's `isoformat()`
    /// gives.
    Timestamp(String),
    /// A sequence.
    Seq(Vec<Yaml>),
    /// A mapping, in document order.
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    /// Python's `str()` of a mapping key, as `json.dumps` would write it.
    pub fn key_text(&self) -> String {
        match self {
            Yaml::Str(s) | Yaml::Timestamp(s) => s.clone(),
            Yaml::Null => "null".into(),
            Yaml::Bool(b) => b.to_string(),
            Yaml::Int(i) => i.to_string(),
            Yaml::Float(f) => super::pyval::float_repr(*f),
            Yaml::Seq(_) | Yaml::Map(_) => super::pyval::repr(&self.clone().into_json()),
        }
    }

    /// Convert to node data (JSON). Non-string keys inside become their text;
    /// integers beyond 64 bits and non-finite floats, which JSON cannot hold,
    /// become floats and the strings `.inf`, `-.inf`, `.nan`.
    pub fn into_json(self) -> Value {
        match self {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => Value::Bool(b),
            Yaml::Int(i) => int_to_json(i),
            Yaml::Float(f) => float_to_json(f),
            Yaml::Str(s) | Yaml::Timestamp(s) => Value::String(s),
            Yaml::Seq(items) => Value::Array(items.into_iter().map(Yaml::into_json).collect()),
            Yaml::Map(pairs) => {
                let mut map = serde_json::Map::with_capacity(pairs.len());
                for (k, v) in pairs {
                    let key = match k {
                        Yaml::Str(s) => s,
                        other => other.key_text(),
                    };
                    map.insert(key, v.into_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// JSON for an integer that may not fit 64 bits.
pub fn int_to_json(i: i128) -> Value {
    if let Ok(v) = i64::try_from(i) {
        Value::from(v)
    } else if let Ok(v) = u64::try_from(i) {
        Value::from(v)
    } else {
        float_to_json(i as f64)
    }
}

/// JSON for a float; non-finite values become `.inf`, `-.inf`, `.nan`.
pub fn float_to_json(f: f64) -> Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String(".nan".into()),
        None if f > 0.0 => Value::String(".inf".into()),
        None => Value::String("-.inf".into()),
    }
}

/// Parse the text of one file. Empty (or comment-only) text is `Null`.
pub fn parse(text: &str, path: &Path) -> Result<Yaml> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut builder = Builder {
        path,
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0usize;
    let mut result = Yaml::Null;
    loop {
        let (event, span) = next(&mut parser, path)?;
        match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(builder.error(
                        Some(span),
                        "expected a single document in the stream, found another document",
                    ));
                }
                let (event, span) = next(&mut parser, path)?;
                result = builder.node(&mut parser, event, span, 0)?;
            }
            _ => return Err(builder.error(Some(span), "unexpected event")),
        }
    }
    Ok(result)
}

/// Longest text [`parse_simple_map`] looks at. Far below what could reach
/// the [`MAX_NODES`] budget (every value takes at least one byte), and far
/// above the size of a typical flat metadata file.
const MAX_SIMPLE_TEXT: usize = 256 * 1024;

/// Longest key [`parse_simple_map`] accepts (YAML caps implicit keys at 1024
/// characters).
const MAX_SIMPLE_KEY: usize = 256;

/// Fast path for the flat files most fmf trees consist of, such as
///
/// ```yaml
/// summary: Test number 17
/// test: ./test.sh 17
/// tag+: [group-7]
/// ```
///
/// Only a narrow subset is recognised: printable ASCII and `\n` line ends
/// (an optional leading BOM is dropped), every line either empty, a comment
/// starting at column 0, or `key: value` at column 0. The key is a plain
/// scalar made of ASCII letters, digits and `_ - . + < ~` (starting with a
/// letter, digit or `_`) that resolves to a string; keys must be unique.
/// The value, on the same line and not followed by a comment, is a plain
/// scalar that cannot start a YAML construct, a one-line flow sequence of
/// such scalars, or a quoted string without escapes.
///
/// When it returns `Some`, the result equals what [`parse`] gives turned
/// into node data (each value through [`Yaml::into_json`], keys in document
/// order, none starting with `/`). Any other text, including text `parse`
/// rejects or reads as something other than a mapping, gives `None` and the
/// caller falls back to the full parser.
pub fn parse_simple_map(text: &str) -> Option<serde_json::Map<String, Value>> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if text.len() > MAX_SIMPLE_TEXT {
        return None;
    }
    // Tabs, carriage returns, other control characters and non-ASCII text
    // all have special cases in YAML; leave them to the full parser.
    if !text
        .bytes()
        .all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
    {
        return None;
    }
    let is_entry = |line: &&str| !line.is_empty() && !line.starts_with('#');
    // Sized up front: the map is kept for as long as the tree is.
    let mut map = serde_json::Map::with_capacity(text.split('\n').filter(is_entry).count());
    for line in text.split('\n').filter(is_entry) {
        let (key, rest) = simple_key(line)?;
        let value = simple_value(rest)?;
        if map.insert(key.to_string(), value).is_some() {
            // The full parser reports the duplicate.
            return None;
        }
    }
    // A text of comments and blank lines is `Null`, not a mapping.
    (!map.is_empty()).then_some(map)
}

/// Split a `key: rest` line, the key being a plain scalar of safe
/// characters that resolves to a string and is followed by `: `.
fn simple_key(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let first = *bytes.first()?;
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return None;
    }
    let end = bytes.iter().position(|&b| {
        !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+' | b'<' | b'~'))
    })?;
    // A key alone on its line (`key:`) may open a nested block; bail on it
    // along with anything else that is not `: ` right after the key.
    if end > MAX_SIMPLE_KEY || bytes.get(end..end + 2) != Some(b": ".as_slice()) {
        return None;
    }
    let key = &line[..end];
    if resolve_plain(key) != Resolved::Str {
        return None;
    }
    Some((key, &line[end + 2..]))
}

/// The node data of a value that fills the rest of its line.
fn simple_value(rest: &str) -> Option<Value> {
    let value = rest.trim_matches(' ');
    let quote = *value.as_bytes().first()?;
    match quote {
        b'[' => {
            let inner = value[1..].strip_suffix(']')?;
            if inner.trim_matches(' ').is_empty() {
                return Some(Value::Array(Vec::new()));
            }
            // Empty items (`[a,,b]`, `[a,]`) fail `simple_plain`. The
            // vector is sized exactly: it is kept with the tree.
            let mut items = Vec::with_capacity(inner.split(',').count());
            for item in inner.split(',') {
                items.push(simple_plain(item.trim_matches(' '), true)?);
            }
            Some(Value::Array(items))
        }
        b'"' | b'\'' => {
            // Only quoted strings with no escapes and no quote inside, so
            // the text between the quotes is the string itself.
            let inner = value[1..].strip_suffix(char::from(quote))?;
            let escaped = inner
                .bytes()
                .any(|b| b == quote || (quote == b'"' && b == b'\\'));
            (!escaped).then(|| Value::String(inner.to_string()))
        }
        _ => simple_plain(value, false),
    }
}

/// The node data of a plain scalar (without surrounding spaces), if it is
/// one the fast path is sure about: it cannot be read as the start of
/// another construct, holds no comment and no `: `, and inside a flow
/// sequence none of `, [ ] { } : #` or quotes.
fn simple_plain(text: &str, in_flow: bool) -> Option<Value> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    let starts_well = match first {
        // `-1` and `-.5` are numbers, `- x` is an item, `-x` is left alone.
        b'-' => bytes
            .get(1)
            .is_some_and(|&b| b.is_ascii_digit() || b == b'.'),
        b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|'
        | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' => false,
        _ => true,
    };
    if !starts_well {
        return None;
    }
    // One pass for what may not follow: `: ` or a final `:` (a key), ` #`
    // (a comment), and in a flow sequence any flow indicator, colon, `#`
    // or quote.
    for (i, &b) in bytes.iter().enumerate() {
        let bad = match b {
            b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'\'' | b'"' | b':' if in_flow => true,
            b':' => bytes.get(i + 1).is_none_or(|&n| n == b' '),
            b'#' => i > 0 && bytes[i - 1] == b' ',
            _ => false,
        };
        if bad {
            return None;
        }
    }
    construct_plain(text).ok().map(Yaml::into_json)
}

fn next<'a>(
    parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
    path: &Path,
) -> Result<(Event<'a>, Span)> {
    match parser.next_event() {
        Some(Ok(ev)) => Ok(ev),
        Some(Err(e)) => Err(Error::Yaml {
            path: path.to_path_buf(),
            line: Some(e.marker().line()),
            message: e.info().to_string(),
        }),
        None => Err(Error::Yaml {
            path: path.to_path_buf(),
            line: None,
            message: "unexpected end of input".into(),
        }),
    }
}

struct Builder<'p> {
    path: &'p Path,
    anchors: HashMap<usize, Yaml>,
    nodes: usize,
}

/// Which core tag an explicit tag asks for.
enum Tagged {
    None,
    NonSpecific,
    Core(String),
}

impl Builder<'_> {
    fn error(&self, span: Option<Span>, message: impl Into<String>) -> Error {
        Error::Yaml {
            path: self.path.to_path_buf(),
            line: span.map(|s| s.start.line()),
            message: message.into(),
        }
    }

    fn count(&mut self, n: usize, span: Span) -> Result<()> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(self.error(
                Some(span),
                format!("document expands to more than {MAX_NODES} values"),
            ));
        }
        Ok(())
    }

    fn tag(&self, tag: Option<&saphyr_parser::Tag>, span: Span) -> Result<Tagged> {
        let Some(tag) = tag else {
            return Ok(Tagged::None);
        };
        if tag.handle == "tag:yaml.org,2002:" {
            return Ok(Tagged::Core(tag.suffix.clone()));
        }
        if tag.handle == "!" && tag.suffix.is_empty() {
            return Ok(Tagged::NonSpecific);
        }
        Err(self.error(
            Some(span),
            format!(
                "could not determine a constructor for the tag '{}{}'",
                tag.handle, tag.suffix
            ),
        ))
    }

    fn node<'a>(
        &mut self,
        parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
        event: Event<'a>,
        span: Span,
        depth: usize,
    ) -> Result<Yaml> {
        if depth > MAX_DEPTH {
            return Err(self.error(Some(span), "nesting too deep"));
        }
        self.count(1, span)?;
        match event {
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(v) => {
                    let v = v.clone();
                    self.count(size(&v), span)?;
                    Ok(v)
                }
                None => Err(self.error(Some(span), "found undefined alias")),
            },
            Event::Scalar(text, style, anchor, tag) => {
                let tagged = self.tag(tag.as_deref(), span)?;
                let value = self.scalar(&text, style, tagged, span)?;
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                Ok(value)
            }
            Event::SequenceStart(anchor, tag) => {
                match self.tag(tag.as_deref(), span)? {
                    Tagged::None | Tagged::NonSpecific => {}
                    Tagged::Core(s) if s == "seq" => {}
                    Tagged::Core(s) => {
                        return Err(self.error(
                            Some(span),
                            format!("cannot construct !!{s} from a sequence"),
                        ));
                    }
                }
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = next(parser, self.path)?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(parser, ev, sp, depth + 1)?);
                }
                let value = Yaml::Seq(items);
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                Ok(value)
            }
            Event::MappingStart(anchor, tag) => {
                match self.tag(tag.as_deref(), span)? {
                    Tagged::None | Tagged::NonSpecific => {}
                    Tagged::Core(s) if s == "map" => {}
                    Tagged::Core(s) => {
                        return Err(self
                            .error(Some(span), format!("cannot construct !!{s} from a mapping")));
                    }
                }
                let value = self.mapping(parser, span, depth)?;
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                Ok(value)
            }
            _ => Err(self.error(Some(span), "unexpected event")),
        }
    }

    fn mapping<'a>(
        &mut self,
        parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
        span: Span,
        depth: usize,
    ) -> Result<Yaml> {
        // Own entries, and what `<<` merges in (ruamel: merged entries come
        // first, own keys override them, and a mapping with a merge key is
        // not checked for duplicates at all).
        let mut own: Vec<(Yaml, Yaml, Span)> = Vec::new();
        let mut merged: Option<Vec<(Yaml, Yaml)>> = None;
        loop {
            let (ev, key_span) = next(parser, self.path)?;
            if matches!(ev, Event::MappingEnd) {
                break;
            }
            let is_merge =
                matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t.as_ref() == "<<");
            let key = self.node(parser, ev, key_span, depth + 1)?;
            let (vev, vspan) = next(parser, self.path)?;
            let value = self.node(parser, vev, vspan, depth + 1)?;
            if is_merge {
                if merged.is_some() {
                    return Err(self.error(Some(key_span), "found duplicate merge key \"<<\""));
                }
                let entries = match value {
                    Yaml::Map(pairs) => pairs,
                    Yaml::Seq(items) => {
                        let mut maps = Vec::new();
                        for item in items {
                            match item {
                                Yaml::Map(pairs) => maps.push(pairs),
                                _ => {
                                    return Err(
                                        self.error(Some(vspan), "expected a mapping for merging")
                                    );
                                }
                            }
                        }
                        maps.into_iter().rev().flatten().collect()
                    }
                    _ => {
                        return Err(self.error(
                            Some(vspan),
                            "expected a mapping or list of mappings for merging",
                        ));
                    }
                };
                merged = Some(entries);
                continue;
            }
            if matches!(key, Yaml::Map(_)) {
                return Err(self.error(Some(key_span), "found unhashable key"));
            }
            own.push((key, value, key_span));
        }
        let _ = span;
        match merged {
            None => {
                let mut seen: HashMap<KeyRepr, ()> = HashMap::with_capacity(own.len());
                let mut pairs = Vec::with_capacity(own.len());
                for (k, v, sp) in own {
                    if seen.insert(KeyRepr::of(&k), ()).is_some() {
                        return Err(self.error(
                            Some(sp),
                            format!("found duplicate key \"{}\"", k.key_text()),
                        ));
                    }
                    pairs.push((k, v));
                }
                Ok(Yaml::Map(pairs))
            }
            Some(entries) => {
                let mut pairs: Vec<(Yaml, Yaml)> = Vec::new();
                let mut index: HashMap<KeyRepr, usize> = HashMap::new();
                for (k, v) in entries
                    .into_iter()
                    .chain(own.into_iter().map(|(k, v, _)| (k, v)))
                {
                    let repr = KeyRepr::of(&k);
                    match index.get(&repr) {
                        Some(&i) => pairs[i].1 = v,
                        None => {
                            index.insert(repr, pairs.len());
                            pairs.push((k, v));
                        }
                    }
                }
                Ok(Yaml::Map(pairs))
            }
        }
    }

    fn scalar(&self, text: &str, style: ScalarStyle, tagged: Tagged, span: Span) -> Result<Yaml> {
        match tagged {
            Tagged::NonSpecific => Ok(Yaml::Str(text.to_string())),
            Tagged::Core(suffix) => {
                let resolved = resolve_plain(text);
                let bad = || {
                    self.error(
                        Some(span),
                        format!("invalid value for !!{suffix}: '{text}'"),
                    )
                };
                match suffix.as_str() {
                    "str" => Ok(Yaml::Str(text.to_string())),
                    "null" => Ok(Yaml::Null),
                    "bool" => match resolved {
                        Resolved::Bool(b) => Ok(Yaml::Bool(b)),
                        _ => Err(bad()),
                    },
                    "int" => match resolved {
                        Resolved::Int => self.at(span, construct_int(text)),
                        _ => Err(bad()),
                    },
                    "float" => match resolved {
                        Resolved::Float | Resolved::Int => self.at(span, construct_float(text)),
                        _ => Err(bad()),
                    },
                    "timestamp" => match resolved {
                        Resolved::Timestamp => self.at(span, construct_timestamp(text)),
                        _ => Err(bad()),
                    },
                    _ => Err(self.error(
                        Some(span),
                        format!("could not determine a constructor for the tag '!!{suffix}'"),
                    )),
                }
            }
            Tagged::None if style != ScalarStyle::Plain => Ok(Yaml::Str(text.to_string())),
            Tagged::None => self.at(span, construct_plain(text)),
        }
    }

    /// Attach the position of the scalar to a constructor's complaint.
    fn at(&self, span: Span, built: Built) -> Result<Yaml> {
        built.map_err(|message| self.error(Some(span), message))
    }
}

/// What a scalar constructor gives: the value, or the message of the error
/// the builder reports at the scalar's position.
type Built = std::result::Result<Yaml, String>;

/// The value of an untagged plain scalar: resolve its type, then build it.
fn construct_plain(text: &str) -> Built {
    match resolve_plain(text) {
        Resolved::Null => Ok(Yaml::Null),
        Resolved::Bool(b) => Ok(Yaml::Bool(b)),
        Resolved::Int => construct_int(text),
        Resolved::Float => construct_float(text),
        Resolved::Timestamp => construct_timestamp(text),
        Resolved::Str => Ok(Yaml::Str(text.to_string())),
    }
}

fn construct_int(text: &str) -> Built {
    let bad = || format!("invalid integer '{text}'");
    let mut s: String = text.chars().filter(|&c| c != '_').collect();
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest.to_string();
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest.to_string();
    }
    if s.is_empty() {
        return Err(bad());
    }
    let (digits, radix) = if let Some(r) = s.strip_prefix("0b") {
        (r, 2)
    } else if let Some(r) = s.strip_prefix("0x") {
        (r, 16)
    } else if let Some(r) = s.strip_prefix("0o") {
        (r, 8)
    } else {
        (s.as_str(), 10)
    };
    if digits.is_empty() {
        return Err(bad());
    }
    match i128::from_str_radix(digits, radix) {
        Ok(v) => Ok(Yaml::Int(if negative { -v } else { v })),
        Err(_) => {
            // Larger than i128: keep the magnitude as a float.
            let mut f = 0f64;
            for c in digits.chars() {
                f = f * f64::from(radix) + f64::from(c.to_digit(radix).ok_or_else(bad)?);
            }
            Ok(Yaml::Float(if negative { -f } else { f }))
        }
    }
}

fn construct_float(text: &str) -> Built {
    let s: String = text
        .chars()
        .filter(|&c| c != '_')
        .collect::<String>()
        .to_lowercase();
    let (sign, body) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(&s)),
    };
    if body == ".inf" {
        return Ok(Yaml::Float(sign * f64::INFINITY));
    }
    if body == ".nan" {
        return Ok(Yaml::Float(f64::NAN));
    }
    // Python's float() accepts "5.", ".5", "1.e5"; make Rust's parser
    // see digits on both sides of the point.
    let mut fixed = body.to_string();
    if let Some(pos) = fixed.find('.') {
        let after = fixed[pos + 1..].chars().next();
        if !matches!(after, Some(c) if c.is_ascii_digit()) {
            fixed.insert(pos + 1, '0');
        }
        if pos == 0 {
            fixed.insert(0, '0');
        }
    }
    match fixed.parse::<f64>() {
        Ok(v) => Ok(Yaml::Float(sign * v)),
        Err(_) => Err(format!("could not convert string to float: '{text}'")),
    }
}

fn construct_timestamp(text: &str) -> Built {
    let bad = |m: &str| format!("invalid timestamp '{text}': {m}");
    let caps = timestamp_re()
        .captures(text)
        .ok_or_else(|| bad("no match"))?;
    let num = |name: &str| caps.name(name).and_then(|m| m.as_str().parse::<u32>().ok());
    let num2 = |a: &str, b: &str| num(a).or_else(|| num(b));
    let (year, month, day) = match (
        num2("year", "year2"),
        num2("month", "month2"),
        num2("day", "day2"),
    ) {
        (Some(y), Some(m), Some(d)) => (y, m, d),
        _ => return Err(bad("bad date")),
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad("month must be in 1..12")),
    };
    if year < 1 || day < 1 || day > days_in_month {
        return Err(bad("day is out of range for month"));
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    let Some(hour) = num("hour") else {
        return Ok(Yaml::Timestamp(date));
    };
    let (minute, second) = (num("minute").unwrap_or(0), num("second").unwrap_or(0));
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("time out of range"));
    }
    let mut out = format!("{date}T{hour:02}:{minute:02}:{second:02}");
    if let Some(frac) = caps
        .name("fraction")
        .map(|m| m.as_str())
        .filter(|f| !f.is_empty())
    {
        let mut digits: String = frac.chars().take(6).collect();
        while digits.len() < 6 {
            digits.push('0');
        }
        let mut micro: u32 = digits.parse().unwrap_or(0);
        if frac.len() > 6 && frac.as_bytes()[6] > b'4' {
            micro += 1;
        }
        if micro > 999_999 {
            micro = 0;
        }
        if micro != 0 {
            out.push_str(&format!(".{micro:06}"));
        }
    }
    if caps.name("tz").is_some() {
        match caps.name("tz_sign").map(|m| m.as_str()) {
            Some(sign) => {
                let h = num("tz_hour").unwrap_or(0);
                let m = num("tz_minute").unwrap_or(0);
                out.push_str(&format!("{sign}{h:02}:{m:02}"));
            }
            None => out.push_str("+00:00"),
        }
    }
    Ok(Yaml::Timestamp(out))
}

/// Number of values in `v` (for the alias expansion budget).
fn size(v: &Yaml) -> usize {
    match v {
        Yaml::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Yaml::Map(pairs) => 1 + pairs.iter().map(|(k, v)| size(k) + size(v)).sum::<usize>(),
        _ => 1,
    }
}

/// A mapping key under Python equality and hashing (`1 == 1.0 == True`).
#[derive(Hash, PartialEq, Eq)]
enum KeyRepr {
    Null,
    Int(i128),
    Float(u64),
    Str(String),
    Date(String),
    Tuple(Vec<KeyRepr>),
    Other,
}

impl KeyRepr {
    fn of(y: &Yaml) -> KeyRepr {
        match y {
            Yaml::Null => KeyRepr::Null,
            Yaml::Bool(b) => KeyRepr::Int(i128::from(*b)),
            Yaml::Int(i) => KeyRepr::Int(*i),
            Yaml::Float(f) if f.fract() == 0.0 && f.abs() < 1e30 => KeyRepr::Int(*f as i128),
            Yaml::Float(f) => KeyRepr::Float(f.to_bits()),
            Yaml::Str(s) => KeyRepr::Str(s.clone()),
            Yaml::Timestamp(s) => KeyRepr::Date(s.clone()),
            Yaml::Seq(items) => KeyRepr::Tuple(items.iter().map(KeyRepr::of).collect()),
            Yaml::Map(_) => KeyRepr::Other,
        }
    }
}

/// What a plain scalar resolves to under ruamel's YAML 1.2 resolver.
#[derive(Debug, PartialEq)]
enum Resolved {
    Null,
    Bool(bool),
    Int,
    Float,
    Timestamp,
    Str,
}

fn resolve_plain(text: &str) -> Resolved {
    let Some(first) = text.chars().next() else {
        return Resolved::Null;
    };
    // The order of ruamel's implicit resolvers: bool, float, int, merge,
    // null, timestamp.
    if matches!(first, 't' | 'T' | 'f' | 'F') {
        match text {
            "true" | "True" | "TRUE" => return Resolved::Bool(true),
            "false" | "False" | "FALSE" => return Resolved::Bool(false),
            _ => {}
        }
    }
    let may_be_number = may_be_number(text);
    if may_be_number && matches!(first, '-' | '+' | '0'..='9' | '.') && float_re().is_match(text) {
        return Resolved::Float;
    }
    if may_be_number && matches!(first, '-' | '+' | '0'..='9') && int_re().is_match(text) {
        return Resolved::Int;
    }
    if matches!(text, "~" | "null" | "Null" | "NULL") {
        return Resolved::Null;
    }
    if may_be_number && first.is_ascii_digit() && timestamp_re().is_match(text) {
        return Resolved::Timestamp;
    }
    Resolved::Str
}

/// Whether `text` holds only characters the number and timestamp patterns
/// can match; other text (`./run.sh`, `5m`) skips those three regexes.
fn may_be_number(text: &str) -> bool {
    text.bytes().all(|b| {
        matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' | b'_' | b'+' | b'-' | b'.' | b'x'
            | b'o' | b'i' | b'n' | b'I' | b'N' | b'T' | b't' | b'Z' | b':' | b' ' | b'\t')
    })
}

fn float_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)|[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        )
        .expect("static regex")
    })
}

fn int_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?[0-9_]+|[-+]?0x[0-9a-fA-F_]+)$")
            .expect("static regex")
    })
}

fn timestamp_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(concat!(
            r"^(?:(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})",
            r"|(?P<year2>[0-9]{4})-(?P<month2>[0-9]{1,2})-(?P<day2>[0-9]{1,2})(?:[Tt]|[ \t]+)",
            r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]*))?",
            r"(?P<tz>[ \t]*(?:Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9]{1,2})(?::(?P<tz_minute>[0-9]{2}))?))?)$"
        ))
        .expect("static regex")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Yaml> {
        parse(s, Path::new("t.fmf"))
    }

    #[test]
    fn scalars_follow_yaml_1_2() {
        assert_eq!(p("yes").unwrap(), Yaml::Str("yes".into()));
        assert_eq!(p("True").unwrap(), Yaml::Bool(true));
        assert_eq!(p("017").unwrap(), Yaml::Int(17));
        assert_eq!(p("0o17").unwrap(), Yaml::Int(15));
        assert_eq!(p("0x1F").unwrap(), Yaml::Int(31));
        assert_eq!(p("1_000").unwrap(), Yaml::Int(1000));
        assert_eq!(p("1e3").unwrap(), Yaml::Float(1000.0));
        assert_eq!(p("5.").unwrap(), Yaml::Float(5.0));
        assert_eq!(p("1:20").unwrap(), Yaml::Str("1:20".into()));
        assert_eq!(
            p("2020-01-01").unwrap(),
            Yaml::Timestamp("2020-01-01".into())
        );
        assert_eq!(
            p("2020-1-1 10:00:00.5 +02:00").unwrap(),
            Yaml::Timestamp("2020-01-01T10:00:00.500000+02:00".into())
        );
        assert_eq!(p("'017'").unwrap(), Yaml::Str("017".into()));
        assert_eq!(p("").unwrap(), Yaml::Null);
        assert_eq!(p("# c\n").unwrap(), Yaml::Null);
    }

    /// The character guard never hides a match of the number and
    /// timestamp patterns: every string built from a pool of relevant and
    /// irrelevant characters that one of them matches passes the guard.
    #[test]
    fn number_guard_keeps_every_match() {
        let pool: Vec<char> = "0123456789_+-.:eExXoObBaAfFiInNtTZz \tm/#"
            .chars()
            .collect();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut matched = 0;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 1 + (state % 12) as usize;
            let text: String = (0..len)
                .map(|i| pool[((state >> (i * 5)) % pool.len() as u64) as usize])
                .collect();
            let any = float_re().is_match(&text)
                || int_re().is_match(&text)
                || timestamp_re().is_match(&text);
            if any {
                matched += 1;
                assert!(may_be_number(&text), "{text:?}");
            }
        }
        for text in [
            "2024-01-02 10:20:30.5 +01:00",
            ".NaN",
            "-.Inf",
            "0x_fF",
            "0o17",
            "1e5",
        ] {
            assert!(may_be_number(text), "{text}");
        }
        assert!(matched > 1000, "only {matched} matches");
    }

    #[test]
    fn duplicates_and_merge_keys() {
        let e = p("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(matches!(e, Error::Yaml { line: Some(3), .. }), "{e:?}");
        assert!(p("1: a\ntrue: b\n").is_err());
        let y = p("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n  z: 4\n")
            .unwrap()
            .into_json();
        assert_eq!(y["c"].to_string(), r#"{"x":1,"y":3,"z":4}"#);
        assert!(p("a: 1\n---\nb: 2\n").is_err());
        assert!(p("a: 2020-02-30").is_err());
        assert!(p("a: !foo x").is_err());
        assert_eq!(p("a: !!str 12").unwrap().into_json()["a"], "12");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            s.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        assert!(p(&s).is_err());
    }
}

#[cfg(test)]
mod simple_map_tests {
    use super::*;
    use serde_json::Map;

    /// What the full parser makes of `text`, when that is a mapping with
    /// string keys not starting with `/` (the only case the fast path may
    /// claim).
    fn full_map(text: &str) -> Option<Map<String, Value>> {
        let Ok(Yaml::Map(pairs)) = parse(text, Path::new("t.fmf")) else {
            return None;
        };
        let mut map = Map::new();
        for (k, v) in pairs {
            match k {
                Yaml::Str(k) if !k.starts_with('/') => {
                    map.insert(k, v.into_json());
                }
                _ => return None,
            }
        }
        Some(map)
    }

    /// Entries in order (`Map`'s own equality ignores the order).
    fn entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
        map.iter().collect()
    }

    /// The fast path either declines or agrees with the full parser.
    /// Returns whether it fired.
    fn check(text: &str) -> bool {
        let Some(fast) = parse_simple_map(text) else {
            return false;
        };
        let full = full_map(text);
        assert!(
            full.is_some(),
            "fast path accepted {text:?}, full parser gave {:?}",
            parse(text, Path::new("t.fmf"))
        );
        if let Some(full) = full {
            assert_eq!(entries(&fast), entries(&full), "for {text:?}");
        }
        true
    }

    #[track_caller]
    fn fires(text: &str) {
        assert!(check(text), "fast path declined {text:?}");
    }

    #[track_caller]
    fn declines(text: &str) {
        assert!(!check(text), "fast path accepted {text:?}");
    }

    #[test]
    fn simple_map_fires_on_flat_files() {
        let generated =
            "summary: Test number 17\ntest: ./test.sh 17\ntag+: [group-7]\ntier: 2\nduration: 3m\n";
        fires(generated);
        let m = parse_simple_map(generated).expect("fast path");
        assert_eq!(
            Value::Object(m).to_string(),
            r#"{"summary":"Test number 17","test":"./test.sh 17","tag+":["group-7"],"tier":2,"duration":"3m"}"#
        );
        for text in [
            "a: b",
            "a: b\n",
            "\u{FEFF}a: b\n",
            "# comment\n\na: b\n\n# more\nc: d\n",
            "#!shebang-like\na: 1\n",
            "a:    b   \n",
            "a: 1\nb: -1\nc: +1\nd: 0x1F\ne: 0o17\nf: 017\ng: 1_000\nh: 0b101\n",
            "a: 1.5\nb: 1e3\nc: .inf\nd: -.inf\ne: .nan\nf: 5.\ng: .5\nh: -1.5e-3\n",
            "a: true\nb: False\nc: TRUE\nd: yes\ne: no\nf: on\ng: off\nh: y\n",
            "a: ~\nb: null\nc: Null\nd: NULL\ne: nil\n",
            "a: 2024-01-02\nb: 2024-1-2 10:00:00\nc: 2020-01-01T10:00:00.5Z\n",
            "a: 1:20\nb: a:b\nc: http://example.com/x?y=1#z\nd: a#b\n",
            "a: it's\nb: say \"hi\"\nc: a, b\nd: x[1]\ne: f{g}\nf: a - b\ng: a ? b\n",
            "a: ./test.sh --opt=1 && echo $HOME | grep x > /dev/null\n",
            "a: <<\nb: =\nc: ...\nd: .\ne: \\n\n",
            "a: []\nb: [ ]\nc: [x]\nd: [x, y, z]\ne: [ x ,y ]\nf: [1, -2, 1.5, true, ~, null, 2024-01-02]\n",
            "a: [Tier1, fast, c++]\nb: [a b, c  d]\n",
            "a: \"\"\nb: ''\nc: \"x: y # z\"\nd: 'x: y # z'\ne: \"it's\"\nf: 'say \"hi\"'\ng: 'a\\b'\nh: \"  padded  \"\n",
            "a: \"017\"\nb: 'true'\nc: \"~\"\n",
            "a_b: 1\nA-B: 2\nc.d: 3\ne+: 4\nf<: 5\ng~: 6\n_: 7\n9a: 8\nyes: 9\nno: 10\nNone: 11\nnan: 12\ninf: 13\n",
            "x: 99999999999999999999999999999999999999999999\ny: -170141183460469231731687303715884105729\n",
            "a: 123456789012345678901234567890\n",
        ] {
            fires(text);
        }
    }

    #[test]
    fn simple_map_declines_near_misses() {
        for text in [
            // Not a mapping, or nothing at all.
            "",
            "\n\n",
            "# only a comment\n",
            "\u{FEFF}",
            "x",
            "- x\n",
            "- a: b\n",
            "[a, b]\n",
            "{a: 1}\n",
            "\"a\": 1\n",
            "'a': 1\n",
            // Keys that are not plain strings.
            "true: 1\n",
            "1: a\n",
            "null: a\n",
            "~: a\n",
            "1.5: a\n",
            "2024-01-02: a\n",
            "0x1F: a\n",
            "/child: a\n",
            "/child:\n  a: b\n",
            "<<: {a: 1}\n",
            "? complex\n: value\n",
            "a b: c\n",
            "a : b\n",
            "a:b\n",
            // Nesting, continuation, empty values.
            "a:\n",
            "a: \n",
            "a:\n  b: c\n",
            "a: b\n  c\n",
            "a: b\n c: d\n",
            " a: b\n",
            "a: b\n \nc: d\n",
            "a:\n- x\n",
            // Document markers and directives.
            "---\na: b\n",
            "a: b\n---\nc: d\n",
            "a: b\n...\n",
            "%YAML 1.2\n---\na: b\n",
            // Values with indicators, comments, tags, anchors.
            "a: |\n  x\n",
            "a: >\n  x\n",
            "a: &anchor x\n",
            "a: *alias\n",
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: !local x\n",
            "a: ! x\n",
            "a: ? x\n",
            "a: - x\n",
            "a: -x\n",
            "a: --1\n",
            "a: ---x\n",
            "a: @x\n",
            "a: `x`\n",
            "a: %x\n",
            "a: ,x\n",
            "a: :x\n",
            "a: a: b\n",
            "a: a:\n",
            "a: x #c\n",
            "a: x # c\n",
            "a: 'x' # c\n",
            "a: [x] # c\n",
            "a: #c\n",
            "a: {b: 1}\n",
            "a: {}\n",
            // Quoted strings with escapes or not closed on the line.
            "a: \"a\\\"b\"\n",
            "a: \"a\\nb\"\n",
            "a: 'it''s'\n",
            "a: \"x\"y\"\n",
            "a: \"x\n  y\"\n",
            "a: 'x\n  y'\n",
            "a: \"x\" y\n",
            "a: \"\n",
            "a: '\n",
            // Flow sequences we leave alone.
            "a: [a, [b]]\n",
            "a: [a, {b: c}]\n",
            "a: [a,]\n",
            "a: [a,,b]\n",
            "a: [,]\n",
            "a: [a: b]\n",
            "a: [a:b]\n",
            "a: [\"x\"]\n",
            "a: ['x']\n",
            "a: [x#y]\n",
            "a: [? x]\n",
            "a: [- x]\n",
            "a: [-]\n",
            "a: [&a x]\n",
            "a: [*a]\n",
            "a: [!!str 1]\n",
            "a: [x\n",
            "a: [x,\n  y]\n",
            "a: [x] y\n",
            "a: [x]]\n",
            // Values the builder rejects.
            "a: 2024-02-30\n",
            "a: 2024-13-01\n",
            "a: 2024-01-01 25:00:00\n",
            // Duplicates.
            "a: 1\na: 2\n",
            "a: 1\nb: 2\na: 1\n",
            // Characters outside the subset.
            "a:\tb\n",
            "a: b\t\n",
            "a: b\r\n",
            "a: b\rc: d\n",
            "a: caf\u{e9}\n",
            "a: \u{FEFF}b\n",
            "# caf\u{e9}\na: b\n",
            "a: b\u{85}c\n",
            "a: b\x00\n",
            "a: b\x7f\n",
            "\u{FEFF}\u{FEFF}a: b\n",
        ] {
            declines(text);
        }
        // Keys longer than the fast path takes.
        declines(&format!("{}: x\n", "k".repeat(MAX_SIMPLE_KEY + 1)));
        declines(&format!("{}: x\n", "k".repeat(2000)));
        fires(&format!("{}: x\n", "k".repeat(MAX_SIMPLE_KEY)));
    }

    /// Small deterministic generator (xorshift) for the random mix below.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn one_in(&mut self, n: u64) -> bool {
            self.next().is_multiple_of(n)
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

    /// Lines glued from fragments: mostly ones inside the subset, with a
    /// steady trickle of ways to leave it. The fast path must never
    /// disagree with the full parser, and must fire often enough for that
    /// to mean something.
    #[test]
    fn simple_map_agrees_on_random_mixes() {
        let good_keys = [
            "a", "b", "c", "tag", "tag+", "tier", "x-y", "a.b", "_", "yes", "k~", "k<", "9a",
        ];
        let bad_keys = [
            "1",
            "true",
            "null",
            "~",
            "/c",
            "<<",
            "a b",
            "\"q\"",
            "2020-01-01",
            "1e3",
            "-a",
            "? a",
        ];
        let bad_seps = [":  ", ":", " : ", ":\t", ": \t", "::"];
        let good_atoms = [
            "x",
            "1",
            "-1",
            "0o17",
            "0x1f",
            "1_0",
            "1e3",
            "1.5",
            ".inf",
            "-.inf",
            ".nan",
            "~",
            "null",
            "true",
            "False",
            "yes",
            "2024-01-02",
            "2024-1-2 1:00:00",
            "a b",
            "a:b",
            "a#b",
            "a,b",
            "a]",
            "a}",
            "a[",
            "a{",
            "'x'",
            "\"x\"",
            "''",
            "\"\"",
            "...",
            "<<",
            "\\",
            ".",
            "+1",
            "0b11",
            "12:30",
            "1:2:3",
            "\"a: #b\"",
            "'a\\b'",
            "x y  z",
        ];
        let bad_atoms = [
            "2024-02-30",
            "a: b",
            "a #b",
            "x:",
            "-",
            "- x",
            "-x",
            "?",
            "? x",
            ":x",
            "&a x",
            "*a",
            "!!str 1",
            "!x",
            "|",
            ">",
            "%x",
            "@x",
            "`x`",
            "'",
            "\"",
            "'a''b'",
            "\"a\\\"b\"",
            "\"a\\nb\"",
            "#",
            "---",
            "",
            "{}",
            "{a: 1}",
            "\"x\" y",
            "'x'y'",
        ];
        let good_items = [
            "x",
            "1",
            "-1",
            "a b",
            "~",
            "true",
            "1.5",
            "2024-01-02",
            "-.5",
            "a.b",
            "c++",
        ];
        let bad_items = [
            "a:b",
            "a: b",
            "-",
            "- x",
            "[x]",
            "{x}",
            "'x'",
            "\"x\"",
            "",
            " ",
            "#x",
            "x#",
            "?x",
            "? x",
            "&a x",
            "*a",
            "2024-02-30",
        ];
        let tails = [" #c", "#c", "\t", "\r", ":", " x", " ", "  "];
        let extra = [
            "# c",
            "#",
            "",
            "  nested: 1",
            " cont",
            "- item",
            "---",
            "...",
            "\t",
            " ",
            "%YAML 1.2",
            "? k",
            ": v",
            "  - x",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let rounds = 50_000;
        let mut fired = 0usize;
        for _ in 0..rounds {
            // One chance in `odds` of each kind of deviation.
            let odds = 4 + rng.next() % 60;
            let mut text = String::new();
            let bom = rng.one_in(odds);
            let lines = 1 + rng.next() % 6;
            if bom {
                text.push('\u{FEFF}');
            }
            for _ in 0..lines {
                let (b1, b2, b3) = (rng.one_in(odds), rng.one_in(odds), rng.one_in(odds));
                let (b4, b5, b6) = (rng.one_in(odds), rng.one_in(odds), rng.one_in(odds));
                if b1 {
                    text.push_str(rng.pick(&extra));
                    text.push('\n');
                }
                text.push_str(rng.pick(if b2 { &bad_keys } else { &good_keys }));
                text.push_str(if b3 { rng.pick(&bad_seps) } else { ": " });
                if rng.next().is_multiple_of(3) {
                    text.push('[');
                    let n = rng.next() % 4;
                    for i in 0..n {
                        if i > 0 {
                            text.push_str(rng.pick(&[",", ", ", " ,", " , "]));
                        }
                        let bad_item = rng.one_in(odds * 2);
                        text.push_str(rng.pick(if bad_item { &bad_items } else { &good_items }));
                    }
                    if !b4 {
                        text.push(']');
                    }
                } else {
                    text.push_str(rng.pick(if b4 { &bad_atoms } else { &good_atoms }));
                }
                if b5 {
                    text.push_str(rng.pick(&tails));
                }
                if !b6 {
                    text.push('\n');
                }
            }
            if check(&text) {
                fired += 1;
            }
        }
        eprintln!("fast path fired on {fired} of {rounds} random texts");
        assert!(fired > rounds / 5, "fast path fired only {fired} times");
    }

    /// Every metadata file of the conformance corpus.
    #[test]
    fn simple_map_agrees_on_fmf_corpus() {
        fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    walk(&path, files);
                } else if path.extension().is_some_and(|e| e == "fmf") {
                    files.push(path);
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fmf-corpus");
        let mut files = Vec::new();
        walk(&root, &mut files);
        files.sort();
        assert!(files.len() > 100, "corpus not found at {}", root.display());
        let mut fired = 0usize;
        for file in &files {
            // Symlinks are followed by `read_to_string`; unreadable and
            // non-UTF-8 files are skipped.
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            if check(&text) {
                fired += 1;
            }
        }
        assert!(fired > 0, "fast path never fired on the corpus");
        eprintln!("fast path fired on {fired} of {} files", files.len());
    }

    /// Rough timing of the fast path against the full parser on the
    /// generated-benchmark file shape
    /// (`cargo test --release -p atex --lib simple_map_timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn simple_map_timing() {
        let text =
            "summary: Test number 17\ntest: ./test.sh 17\ntag+: [group-7]\ntier: 2\nduration: 3m\n";
        let rounds = 200_000u32;
        let full = || {
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                let map = full_map(std::hint::black_box(text));
                std::hint::black_box(map);
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
        };
        let fast = || {
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                let map = parse_simple_map(std::hint::black_box(text));
                std::hint::black_box(map);
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
        };
        // Warm up the regexes and caches once.
        let _ = (full(), fast());
        let (f, s) = (full(), fast());
        eprintln!(
            "parse + into_json: {f:.3} us/file, parse_simple_map: {s:.3} us/file, {:.1}x",
            f / s
        );
    }
}
