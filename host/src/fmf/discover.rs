//! Test discovery as atex does it: load the tree, adjust it with the
//! context (case-sensitive, the fmf default), pick the plan, and for each
//! of its `discover` sections prune with the section's and the caller's
//! names and filters, drop excluded, disabled, manual and story nodes, and
//! build [`Test`]s. Also the `atex discover` command as a library function.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{
    context::Context,
    error::{Error, Result},
    prune::{PruneOptions, prune},
    pyre, pyval,
    tmt::{Plan, Test},
    tree::{AdjustOptions, Tree},
};

/// What to discover.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Plan node name; `None` runs the default plan (all tests).
    pub plan: Option<String>,
    /// Adjust context.
    pub context: Context,
    /// Extra filter expressions (AND-ed with each section's).
    pub filters: Vec<String>,
    /// Extra name regexes (OR-ed with each section's `test`).
    pub names: Vec<String>,
    /// Name regexes of tests to drop.
    pub excludes: Vec<String>,
}

/// The result of [`discover`].
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The tree root.
    pub root: PathBuf,
    /// The plan used.
    pub plan: Plan,
    /// Tests in discovery order.
    pub tests: Vec<Test>,
}

impl Discovery {
    /// A test by name.
    pub fn test(&self, name: &str) -> Option<&Test> {
        self.tests.iter().find(|t| t.name == name)
    }

    /// A test by name, to edit before running.
    pub fn test_mut(&mut self, name: &str) -> Option<&mut Test> {
        self.tests.iter_mut().find(|t| t.name == name)
    }
}

fn search_any(patterns: &[String], name: &str) -> Result<bool> {
    for p in patterns {
        if pyre::search(p, name).map_err(|message| Error::Regex {
            pattern: p.clone(),
            node: None,
            message,
        })? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Discover the tests of the tree containing `root` for `selection`.
pub fn discover(root: impl AsRef<Path>, selection: &Selection) -> Result<Discovery> {
    let mut tree = Tree::load(root)?;
    tree.adjust(&selection.context, &AdjustOptions::default())?;
    discover_in(&tree, selection)
}

/// Discover tests in an already loaded (and adjusted) tree.
pub fn discover_in(tree: &Tree, selection: &Selection) -> Result<Discovery> {
    let plan = match &selection.plan {
        None => Plan::default_plan(),
        Some(name) => {
            let perr = |m: &str| Error::Plan {
                plan: name.clone(),
                message: m.to_string(),
            };
            let id = tree
                .find(name)
                .ok_or_else(|| perr("no such node in the tree"))?;
            let node = tree.node(id);
            if node.data().contains_key("test") {
                return Err(perr("appears to be a test, not a plan"));
            }
            if node.children().next().is_some() {
                return Err(perr("matches multiple plans (the node has children)"));
            }
            Plan::from_metadata(name, node.data().clone()).map_err(|e| perr(&e.0))?
        }
    };
    let mut tests = Vec::new();
    for section in &plan.discover {
        let mut names = section.test.clone();
        names.extend(selection.names.iter().cloned());
        let mut filters = section.filter.clone();
        filters.extend(selection.filters.iter().cloned());
        let mut excludes = selection.excludes.clone();
        excludes.extend(section.exclude.iter().cloned());
        let options = PruneOptions {
            names,
            filters,
            ..PruneOptions::default()
        };
        for id in prune(tree, &options)? {
            let node = tree.node(id);
            let data = node.data();
            if search_any(&excludes, node.name())? {
                continue;
            }
            if !data.contains_key("test")
                || data.get("enabled").is_some_and(|v| !pyval::truthy(v))
                || data.get("manual").is_some_and(pyval::truthy)
                || data.get("story").is_some_and(pyval::truthy)
            {
                continue;
            }
            let (source_dir, rel) = match node.sources().last() {
                Some(src) => {
                    let dir = src.parent().unwrap_or(tree.root()).to_path_buf();
                    let rel = dir
                        .strip_prefix(tree.root())
                        .map(Path::to_path_buf)
                        .unwrap_or_default();
                    (dir, rel)
                }
                None => (tree.root().to_path_buf(), PathBuf::new()),
            };
            let name = match &section.name {
                Some(s) => format!("/{s}{}", node.name()),
                None => node.name().to_string(),
            };
            let source_rel = if rel.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                rel
            };
            let test = Test::from_metadata(name.clone(), source_dir, source_rel, data.clone())
                .map_err(|e| Error::Metadata {
                    test: name.clone(),
                    path: node
                        .sources()
                        .last()
                        .map(|p| p.to_path_buf())
                        .unwrap_or_default(),
                    message: e.0,
                })?;
            tests.push(test);
        }
    }
    Ok(Discovery {
        root: tree.root().to_path_buf(),
        plan,
        tests,
    })
}

/// Arguments of `atex discover`, independent of the argument parser.
#[derive(Debug, Clone, Default)]
pub struct DiscoverArgs {
    /// Tree root (or any directory inside the tree); default `.`.
    pub root: Option<PathBuf>,
    /// `--plan`.
    pub plan: Option<String>,
    /// `-c K=V` (repeatable; `V` may be a comma list, as in tmt).
    pub context: Vec<String>,
    /// `--filter` (repeatable).
    pub filters: Vec<String>,
    /// `--test` name regexes (repeatable).
    pub tests: Vec<String>,
    /// `--exclude` name regexes (repeatable).
    pub excludes: Vec<String>,
    /// `--json`.
    pub json: bool,
}

/// Parse `-c` arguments (`K=V`, `V` split on commas; repeated keys add
/// values) into a context.
pub fn parse_context_args(args: &[String]) -> Result<Context> {
    let mut dims: indexmap::IndexMap<String, Vec<String>> = indexmap::IndexMap::new();
    for arg in args {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(Error::Usage(format!(
                "invalid context '{arg}': expected KEY=VALUE"
            )));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(Error::Usage(format!("invalid context '{arg}': empty key")));
        }
        dims.entry(k.to_string())
            .or_default()
            .extend(v.split(',').map(|s| s.trim().to_string()));
    }
    let mut ctx = Context::new();
    for (k, vs) in dims {
        ctx.set(k, vs);
    }
    Ok(ctx)
}

/// Run `atex discover`: test names one per line, or with `json` an object
/// keyed by test name (in discovery order) whose values are
/// `{"metadata": {...}, "source_dir": "/abs/dir"}`.
pub fn cli_discover(args: &DiscoverArgs) -> Result<String> {
    let selection = Selection {
        plan: args.plan.clone(),
        context: parse_context_args(&args.context)?,
        filters: args.filters.clone(),
        names: args.tests.clone(),
        excludes: args.excludes.clone(),
    };
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("."));
    let found = discover(&root, &selection)?;
    if args.json {
        let mut out = Map::new();
        for t in found.tests {
            let mut entry = Map::new();
            entry.insert("metadata".into(), Value::Object(t.metadata));
            entry.insert(
                "source_dir".into(),
                Value::String(t.source_dir.to_string_lossy().into_owned()),
            );
            out.insert(t.name, Value::Object(entry));
        }
        let mut text = serde_json::to_string_pretty(&Value::Object(out))
            .map_err(|e| Error::Usage(format!("cannot write JSON: {e}")))?;
        text.push('\n');
        Ok(text)
    } else {
        let mut text = String::new();
        for t in &found.tests {
            text.push_str(&t.name);
            text.push('\n');
        }
        Ok(text)
    }
}
