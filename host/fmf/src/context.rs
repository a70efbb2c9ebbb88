//! The adjust context and the `when` rule language (`fmf.context`):
//! dimensions with values, rule parsing (`and`/`or`, comma lists,
//! `is defined`, the textual oddities of the reference parser), and the
//! three-valued evaluation with version comparison (`<`, `~<`, ... with
//! name and version parts) and regex operators.
//!
//! Rules are parsed the way the reference does it, including its quirks:
//! a lone `=` anywhere becomes `==`, `and`/`or` split on word boundaries
//! even inside values, and any part starting with `true`/`false` is that
//! constant.

use std::{collections::HashMap, rc::Rc, sync::OnceLock};

use indexmap::IndexMap;

use super::pyre;

/// One dimension value, split into its name and version parts
/// (`centos-8.4` → `centos`, `8`, `4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextValue {
    raw: String,
    parts: Vec<String>,
}

impl ContextValue {
    /// A value from its text.
    pub fn new(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let parts = raw.split([':', '-', '.']).map(str::to_string).collect();
        ContextValue { raw, parts }
    }

    /// The text of the value.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// The context rules are evaluated against: dimension name → values.
///
/// Values are stored as text (tmt and fmf convert them with Python
/// `str()`); duplicate values of one dimension count once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    dims: IndexMap<String, Vec<ContextValue>>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a dimension to the given values (replacing earlier ones).
    pub fn set<I, S>(&mut self, dimension: impl Into<String>, values: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list: Vec<ContextValue> = Vec::new();
        for v in values {
            let v = ContextValue::new(v);
            if !list.iter().any(|x| x.parts == v.parts) {
                list.push(v);
            }
        }
        self.dims.insert(dimension.into(), list);
        self
    }

    /// Builder form of [`Context::set`].
    pub fn with<I, S>(mut self, dimension: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set(dimension, values);
        self
    }

    /// The values of a dimension.
    pub fn get(&self, dimension: &str) -> Option<&[ContextValue]> {
        self.dims.get(dimension).map(Vec::as_slice)
    }

    /// Add values to a dimension (creating it when it is not set yet).
    pub fn add<I, S>(&mut self, dimension: impl Into<String>, values: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list = self.dims.entry(dimension.into()).or_default();
        for v in values {
            let v = ContextValue::new(v);
            if !list.iter().any(|x| x.parts == v.parts) {
                list.push(v);
            }
        }
        self
    }

    /// The context of command-line style `K=V[,V...]` arguments (`atex -c`,
    /// tmt `--context`): values split on commas, a repeated key adds its
    /// values to the earlier ones.
    pub fn from_args<I, S>(args: I) -> Result<Context, ParseContextError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        args.into_iter().map(|a| a.as_ref().parse()).collect()
    }

    /// The dimensions and their values, in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[ContextValue])> {
        self.dims.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Whether no dimension is set.
    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }
}

impl Extend<ContextPair> for Context {
    fn extend<T: IntoIterator<Item = ContextPair>>(&mut self, pairs: T) {
        for pair in pairs {
            self.add(pair.dimension, pair.values);
        }
    }
}

impl FromIterator<ContextPair> for Context {
    fn from_iter<T: IntoIterator<Item = ContextPair>>(pairs: T) -> Self {
        let mut context = Context::new();
        context.extend(pairs);
        context
    }
}

/// One `K=V[,V...]` context argument, parsed with [`str::parse`]: the
/// dimension (trimmed, not empty) and its values (split on commas and
/// trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextPair {
    /// The dimension name.
    pub dimension: String,
    /// Its values.
    pub values: Vec<String>,
}

impl std::str::FromStr for ContextPair {
    type Err = ParseContextError;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(ParseContextError::NoValue(arg.to_string()));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(ParseContextError::EmptyKey(arg.to_string()));
        }
        Ok(ContextPair {
            dimension: k.to_string(),
            values: v.split(',').map(|s| s.trim().to_string()).collect(),
        })
    }
}

/// A context argument that is not `K=V`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseContextError {
    /// No `=` in the argument.
    #[error("invalid context '{0}': expected KEY=VALUE")]
    NoValue(String),
    /// Nothing before the `=`.
    #[error("invalid context '{0}': empty key")]
    EmptyKey(String),
}

/// Why a rule could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// The rule does not parse (`InvalidRule`).
    #[error("{0}")]
    Invalid(String),
    /// A regex in a `~`/`!~` expression is invalid.
    #[error("invalid regular expression '{pattern}': {message}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The regex engine's message.
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Less,
    MinorLess,
    LessEq,
    MinorLessEq,
    Eq,
    MinorEq,
    NotEq,
    MinorNotEq,
    GreaterEq,
    MinorGreaterEq,
    Greater,
    MinorGreater,
    Match,
    NotMatch,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<" => Op::Less,
            "~<" => Op::MinorLess,
            "<=" => Op::LessEq,
            "~<=" => Op::MinorLessEq,
            "==" => Op::Eq,
            "~=" => Op::MinorEq,
            "!=" => Op::NotEq,
            "~!=" => Op::MinorNotEq,
            ">=" => Op::GreaterEq,
            "~>=" => Op::MinorGreaterEq,
            ">" => Op::Greater,
            "~>" => Op::MinorGreater,
            "~" => Op::Match,
            "!~" => Op::NotMatch,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Expr {
    Const(bool),
    Defined(String, bool),
    Cmp(String, Op, Vec<ContextValue>),
}

/// A parsed rule: OR of AND groups.
type Parsed = Vec<Vec<Expr>>;

fn re(cell: &'static OnceLock<regex::Regex>, pattern: &str) -> &'static regex::Regex {
    cell.get_or_init(|| regex::Regex::new(pattern).expect("static regex"))
}

/// Python `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// Parse a rule string (`Context.parse_rule`).
fn parse_rule(rule: &str) -> Result<Parsed, RuleError> {
    static OR: OnceLock<regex::Regex> = OnceLock::new();
    static AND: OnceLock<regex::Regex> = OnceLock::new();
    // Every lone `=` becomes `==` (lookbehind `(?<!=|!|~|<|>)`, lookahead `(?!=)`).
    let chars: Vec<char> = rule.chars().collect();
    let mut rewritten = String::with_capacity(rule.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '='
            && !(i > 0 && matches!(chars[i - 1], '=' | '!' | '~' | '<' | '>'))
            && chars.get(i + 1) != Some(&'=')
        {
            rewritten.push_str("==");
        } else {
            rewritten.push(c);
        }
    }
    let mut parsed = Vec::new();
    for or_group in re(&OR, r"\bor\b").split(&rewritten) {
        if or_group.is_empty() {
            return Err(RuleError::Invalid(format!(
                "Empty OR expression in {rule}."
            )));
        }
        let mut group = Vec::new();
        for part in re(&AND, r"\band\b").split(or_group) {
            let part = py_strip(part);
            if part.is_empty() {
                return Err(RuleError::Invalid(format!(
                    "Empty AND expression in {rule}."
                )));
            }
            group.push(split_expression(part)?);
        }
        if !group.is_empty() {
            parsed.push(group);
        }
    }
    Ok(parsed)
}

fn split_expression(part: &str) -> Result<Expr, RuleError> {
    static TRIPLE: OnceLock<regex::Regex> = OnceLock::new();
    static DOUBLE: OnceLock<regex::Regex> = OnceLock::new();
    if part.starts_with("true") {
        return Ok(Expr::Const(true));
    }
    if part.starts_with("false") {
        return Ok(Expr::Const(false));
    }
    let triple = re(
        &TRIPLE,
        r"^([\w-]+)\s*(<|~<|<=|~<=|==|~=|!=|~!=|>=|~>=|>|~>|~|!~)\s*([^=].*)",
    );
    if let Some(c) = triple.captures(part) {
        let (Some(dim), Some(op), Some(raw)) = (c.get(1), c.get(2), c.get(3)) else {
            return Err(RuleError::Invalid(format!(
                "Cannot parse expression '{part}'."
            )));
        };
        let op = Op::parse(op.as_str())
            .ok_or_else(|| RuleError::Invalid(format!("Cannot parse expression '{part}'.")))?;
        let values = raw
            .as_str()
            .split(',')
            .map(|v| ContextValue::new(py_strip(v)))
            .collect();
        return Ok(Expr::Cmp(dim.as_str().to_string(), op, values));
    }
    let double = re(&DOUBLE, r"^([\w-]+)\s*(is defined|is not defined)");
    if let Some(c) = double.captures(part) {
        let (Some(dim), Some(op)) = (c.get(1), c.get(2)) else {
            return Err(RuleError::Invalid(format!(
                "Cannot parse expression '{part}'."
            )));
        };
        return Ok(Expr::Defined(
            dim.as_str().to_string(),
            op.as_str() == "is defined",
        ));
    }
    Err(RuleError::Invalid(format!(
        "Cannot parse expression '{part}'."
    )))
}

/// Python `int(text)` for version parts.
fn py_int(s: &str) -> Option<i128> {
    let s = py_strip(s);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut v: i128 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(10)?;
        v = v.checked_mul(10)?.checked_add(i128::from(d))?;
    }
    Some(if neg { -v } else { v })
}

fn fold(s: &str, case_sensitive: bool) -> std::borrow::Cow<'_, str> {
    if case_sensitive {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.to_lowercase())
    }
}

fn compare_part(a: &str, b: &str, cs: bool) -> i32 {
    if let (Some(x), Some(y)) = (py_int(a), py_int(b)) {
        return (x > y) as i32 - (x < y) as i32;
    }
    let (x, y) = (fold(a, cs), fold(b, cs));
    (x > y) as i32 - (x < y) as i32
}

/// `ContextValue.version_cmp`; `None` is CannotDecide.
fn version_cmp(
    l: &ContextValue,
    r: &ContextValue,
    minor: bool,
    ordered: bool,
    cs: bool,
) -> Option<i32> {
    let (lp, rp) = (&l.parts, &r.parts);
    let (l0, r0) = (lp.first()?, rp.first()?);
    if fold(l0, cs) != fold(r0, cs) {
        return if ordered { None } else { Some(1) };
    }
    if minor && rp.len() > 1 {
        let l1 = lp.get(1)?;
        if fold(l1, cs) != fold(&rp[1], cs) {
            if ordered {
                if rp.len() > 2 {
                    return None;
                }
            } else {
                return Some(1);
            }
        }
    }
    for (a, b) in lp.iter().skip(1).zip(rp.iter().skip(1)) {
        let c = compare_part(a, b, cs);
        if c != 0 {
            return Some(c);
        }
    }
    if rp.len() <= lp.len() {
        Some(0)
    } else if minor {
        None
    } else if !ordered {
        Some(1)
    } else if lp.len() == 1 {
        None
    } else {
        Some(-1)
    }
}

/// Evaluates `when` rules against a context, caching parsed rules.
pub struct Evaluator<'c> {
    context: &'c Context,
    case_sensitive: bool,
    cache: HashMap<String, Result<Rc<Parsed>, RuleError>>,
}

impl<'c> Evaluator<'c> {
    /// An evaluator for `context`.
    pub fn new(context: &'c Context, case_sensitive: bool) -> Self {
        Evaluator {
            context,
            case_sensitive,
            cache: HashMap::new(),
        }
    }

    fn parsed(&mut self, rule: &str) -> Result<Rc<Parsed>, RuleError> {
        if let Some(hit) = self.cache.get(rule) {
            return hit.clone();
        }
        let parsed = parse_rule(rule).map(Rc::new);
        self.cache.insert(rule.to_string(), parsed.clone());
        parsed
    }

    /// Evaluate a rule: `Some(true)`/`Some(false)`, or `None` when it
    /// cannot be decided (`CannotDecide`).
    pub fn matches(&mut self, rule: &str) -> Result<Option<bool>, RuleError> {
        let parsed = self.parsed(rule)?;
        let mut final_outcome: Option<bool> = None;
        let mut valid = false;
        for group in parsed.iter() {
            let mut and_outcome: Option<bool> = None;
            let mut and_valid = false;
            for expr in group {
                let result = self.evaluate(expr)?;
                if and_valid {
                    and_outcome = if and_outcome == Some(false) || result == Some(false) {
                        Some(false)
                    } else if result == Some(true) && and_outcome == Some(true) {
                        Some(true)
                    } else {
                        None
                    };
                } else {
                    and_valid = true;
                    and_outcome = result;
                }
                if and_outcome == Some(false) {
                    break;
                }
            }
            if and_outcome == Some(true) {
                return Ok(Some(true));
            }
            if valid {
                final_outcome = if and_outcome.is_none() || final_outcome.is_none() {
                    None
                } else {
                    Some(false)
                };
            } else {
                final_outcome = and_outcome;
                valid = true;
            }
        }
        Ok(if final_outcome == Some(false) {
            Some(false)
        } else {
            None
        })
    }

    fn evaluate(&self, expr: &Expr) -> Result<Option<bool>, RuleError> {
        let (dim, op, values) = match expr {
            Expr::Const(b) => return Ok(Some(*b)),
            Expr::Defined(dim, defined) => {
                return Ok(Some(self.context.dims.contains_key(dim) == *defined));
            }
            Expr::Cmp(dim, op, values) => (dim, *op, values),
        };
        let Some(dim_values) = self.context.dims.get(dim) else {
            return Ok(None);
        };
        let cs = self.case_sensitive;
        let mut decided = false;
        for l in dim_values {
            for r in values {
                let outcome = match op {
                    Op::Match | Op::NotMatch => {
                        let found = pyre::search(&r.raw, &l.raw).map_err(|e| RuleError::Regex {
                            pattern: r.raw.clone(),
                            message: e.to_string(),
                        })?;
                        Some(found == (op == Op::Match))
                    }
                    Op::Eq => version_cmp(l, r, false, false, cs).map(|c| c == 0),
                    Op::NotEq => version_cmp(l, r, false, false, cs).map(|c| c != 0),
                    Op::MinorEq => version_cmp(l, r, true, false, cs).map(|c| c == 0),
                    Op::MinorNotEq => version_cmp(l, r, true, false, cs).map(|c| c != 0),
                    Op::Less => version_cmp(l, r, false, true, cs).map(|c| c < 0),
                    Op::LessEq => version_cmp(l, r, false, true, cs).map(|c| c <= 0),
                    Op::Greater => version_cmp(l, r, false, true, cs).map(|c| c > 0),
                    Op::GreaterEq => version_cmp(l, r, false, true, cs).map(|c| c >= 0),
                    Op::MinorLess => version_cmp(l, r, true, true, cs).map(|c| c < 0),
                    Op::MinorLessEq => version_cmp(l, r, true, true, cs).map(|c| c <= 0),
                    Op::MinorGreater => version_cmp(l, r, true, true, cs).map(|c| c > 0),
                    Op::MinorGreaterEq => version_cmp(l, r, true, true, cs).map(|c| c >= 0),
                };
                match outcome {
                    Some(true) => return Ok(Some(true)),
                    Some(false) => decided = true,
                    None => {}
                }
            }
        }
        Ok(if decided { Some(false) } else { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(ctx: &Context, rule: &str) -> Result<Option<bool>, RuleError> {
        Evaluator::new(ctx, true).matches(rule)
    }

    #[test]
    fn versions_and_logic() {
        let ctx = Context::new()
            .with("distro", ["centos-8.4.0"])
            .with("arch", ["x86_64"]);
        assert_eq!(eval(&ctx, "distro == centos-8"), Ok(Some(true)));
        assert_eq!(eval(&ctx, "distro < centos-8.4.1"), Ok(Some(true)));
        assert_eq!(eval(&ctx, "distro ~< centos-9.1"), Ok(None));
        assert_eq!(
            eval(&ctx, "distro = fedora or arch = x86_64"),
            Ok(Some(true))
        );
        assert_eq!(eval(&ctx, "component == x and arch == x86_64"), Ok(None));
        assert_eq!(
            eval(&ctx, "component == x and arch == s390x"),
            Ok(Some(false))
        );
        assert_eq!(eval(&ctx, "arch != x86_64, ppc64"), Ok(Some(true)));
        assert_eq!(eval(&ctx, "trueish"), Ok(Some(true)));
        assert_eq!(eval(&ctx, "arch ~ ^x86"), Ok(Some(true)));
        assert!(matches!(
            eval(&ctx, "component == foo-or-bar"),
            Err(RuleError::Invalid(_))
        ));
        assert!(matches!(eval(&ctx, ""), Err(RuleError::Invalid(_))));
        assert!(matches!(
            eval(&ctx, "arch ~ ("),
            Err(RuleError::Regex { .. })
        ));
        let ctx = Context::new().with("distro", ["Fedora-33"]);
        assert_eq!(
            Evaluator::new(&ctx, false).matches("distro == fedora"),
            Ok(Some(true))
        );
        assert_eq!(eval(&ctx, "distro == fedora"), Ok(Some(false)));
    }

    #[test]
    fn context_arguments() {
        let ctx = Context::from_args([
            "distro=fedora-40, centos ",
            " arch =x86_64",
            "distro=centos,rhel",
        ])
        .unwrap();
        let dims: Vec<(&str, Vec<&str>)> = ctx
            .iter()
            .map(|(k, vs)| (k, vs.iter().map(ContextValue::as_str).collect()))
            .collect();
        assert_eq!(
            dims,
            [
                ("distro", vec!["fedora-40", "centos", "rhel"]),
                ("arch", vec!["x86_64"])
            ]
        );
        assert_eq!(
            "k=".parse::<ContextPair>(),
            Ok(ContextPair {
                dimension: "k".into(),
                values: vec![String::new()]
            })
        );
        let err = Context::from_args(["a=b", "novalue"]).unwrap_err();
        assert_eq!(err, ParseContextError::NoValue("novalue".into()));
        assert_eq!(
            err.to_string(),
            "invalid context 'novalue': expected KEY=VALUE"
        );
        let err = " =x".parse::<ContextPair>().unwrap_err();
        assert_eq!(err.to_string(), "invalid context ' =x': empty key");
    }
}
