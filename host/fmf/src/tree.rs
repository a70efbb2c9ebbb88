//! Loading an FMF tree the way python fmf 1.7.0 does (`fmf.Tree`): finding
//! the root and its `.fmf/version` and `.fmf/config`, naming nodes from
//! files and `/child` keys, scattered definitions, directives, pruning of
//! empty directories, and inheritance with the merge operators. Then
//! [`Tree::adjust`] applies `adjust` rules against a context.
//!
//! Loading runs in two steps: the `walk` module finds and parses the files
//! (in parallel), then the reference's `grow()` is replayed in walk order
//! over the parsed data, so the result and the first error reported are
//! those of a sequential walk. A file that is a flat mapping of plain
//! scalars is kept as its text until its node's data is needed: parsing it
//! again is cheaper than holding thousands of parsed maps at once.
//!
//! Inheritance is either done for the whole tree ([`Tree::load`]) or
//! prepared node by node for discovery that does not keep the tree's data
//! (`Tree::inherit_items`, used by `discover`).

use std::{
    fs,
    path::{Component, Path, PathBuf},
    sync::Arc,
};

use indexmap::IndexMap;
use rayon::prelude::*;
use serde_json::{Map, Value};

use super::{
    context::{Context, Evaluator, RuleError},
    error::{Error, Result},
    merge::merge_special,
    walk::{self, DirPlan, FileData, PlanFile, is_dir_following},
    yaml::{self, Yaml},
};

/// Index of a node in its [`Tree`].
pub type NodeId = usize;

/// The `/` directives of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    /// `inherit: false` stops inheritance from the parent.
    pub inherit: Option<bool>,
    /// `select` overrides leaf/branch selection.
    pub select: Option<bool>,
}

/// One node of a tree.
#[derive(Debug, Clone)]
pub struct Node {
    name: String,
    parent: Option<NodeId>,
    children: IndexMap<String, NodeId>,
    data: Map<String, Value>,
    /// The text of a simple file (see [`yaml::parse_simple_map`]) that
    /// alone makes the node's own data, parsed when the data is needed.
    /// A tree of mostly such files holds a few bytes of text per node
    /// instead of the parsed maps until discovery reaches each node.
    text: Option<Box<str>>,
    directives: Directives,
    sources: Vec<Arc<Path>>,
    updated: bool,
}

impl Node {
    /// Full name, e.g. `/tests/smoke`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The node's data (after inheritance, and after adjust once applied).
    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }
    /// The `.fmf` files that contributed, parents first.
    pub fn sources(&self) -> &[Arc<Path>] {
        &self.sources
    }
    /// Children in insertion (walk) order.
    pub fn children(&self) -> impl Iterator<Item = (&str, NodeId)> {
        self.children.iter().map(|(k, &v)| (k.as_str(), v))
    }
    /// The parent node, `None` for the root.
    pub fn parent(&self) -> Option<NodeId> {
        self.parent
    }
    /// The node's directives.
    pub fn directives(&self) -> Directives {
        self.directives
    }
    /// A node with no data yet.
    fn empty(name: String, parent: Option<NodeId>) -> Node {
        Node {
            name,
            parent,
            children: IndexMap::new(),
            data: Map::new(),
            text: None,
            directives: Directives::default(),
            sources: Vec::new(),
            updated: false,
        }
    }
    /// Parse pending simple text into the node's data.
    fn materialize(&mut self) -> Result<()> {
        if let Some(text) = self.text.take() {
            self.data = parse_simple(&text)?;
        }
        Ok(())
    }
    /// Whether `climb` yields it without `whole`: the `select` directive,
    /// else "has no children".
    pub fn is_selected(&self) -> bool {
        self.directives.select.unwrap_or(self.children.is_empty())
    }
}

/// Parse the text of a simple file, checked by the walk.
fn parse_simple(text: &str) -> Result<Map<String, Value>> {
    yaml::parse_simple_map(text).ok_or(Error::Internal("a simple file is no longer simple"))
}

/// A node's own data: parsed, or the text of a simple file.
pub(super) enum Raw {
    /// Parsed data.
    Data(Map<String, Value>),
    /// Text for [`yaml::parse_simple_map`].
    Text(Box<str>),
}

/// A node's inherited data, to be made by [`Inherit::data`].
pub(super) enum Inherit {
    /// Already merged.
    Ready(Arc<Map<String, Value>>),
    /// The parent's inherited data (`None`: nothing to inherit) and the
    /// node's own data to merge into it.
    Merge(Option<Arc<Map<String, Value>>>, Raw),
}

impl Inherit {
    /// The inherited data (`name` names the node in errors).
    pub(super) fn data(self, name: &str) -> Result<Map<String, Value>> {
        match self {
            Inherit::Ready(data) => Ok(Arc::unwrap_or_clone(data)),
            Inherit::Merge(base, raw) => {
                let raw = match raw {
                    Raw::Data(map) => map,
                    Raw::Text(text) => parse_simple(&text)?,
                };
                let mut data = match base {
                    Some(base) => Arc::unwrap_or_clone(base),
                    // Nothing to inherit and no merge operator to resolve
                    // (`key+` into nothing still becomes `key`).
                    None if !raw.keys().any(|k| k.ends_with(['+', '<', '-', '~'])) => {
                        return Ok(raw);
                    }
                    None => Map::new(),
                };
                merge_special(&mut data, raw, name)?;
                Ok(data)
            }
        }
    }
}

/// How [`Tree::adjust`] runs (`fmf.Tree.adjust` parameters).
#[derive(Debug, Clone)]
pub struct AdjustOptions {
    /// Key holding the rules (`adjust`).
    pub key: String,
    /// `true`: undecidable rules are an error (`undecided="raise"`);
    /// `false`: they are skipped.
    pub undecided_raise: bool,
    /// Case-sensitive comparison of values (fmf default `true`, tmt `false`).
    pub case_sensitive: bool,
    /// Rules applied to every node after its own (tmt `adjust-tests`).
    pub additional_rules: Vec<Value>,
    /// Record every decision (for the conformance corpus).
    pub record_decisions: bool,
}

impl Default for AdjustOptions {
    fn default() -> Self {
        AdjustOptions {
            key: "adjust".into(),
            undecided_raise: false,
            case_sensitive: true,
            additional_rules: Vec::new(),
            record_decisions: false,
        }
    }
}

/// One evaluated adjust rule: node, raw `when` (null when missing), and
/// the outcome (`None`: could not decide).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Node name.
    pub node: String,
    /// The rule's `when` value.
    pub when: Value,
    /// Applied, not applied, or undecided.
    pub outcome: Option<bool>,
}

/// A loaded FMF tree.
#[derive(Debug, Clone)]
pub struct Tree {
    root: PathBuf,
    version: i64,
    nodes: Vec<Node>,
}

/// Python `os.path.abspath`: absolute and lexically normalised.
fn abspath(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| Error::Io {
            path: path.to_path_buf(),
            message: format!("cannot get the current directory: {e}"),
        })?;
        cwd.join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Python `int(text)` for `.fmf/version`.
fn parse_version(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: i64 = clean.parse().ok()?;
    Some(if neg { -v } else { v })
}

fn join_name(parent: &str, name: &str) -> String {
    if parent.ends_with('/') {
        format!("{parent}{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl Tree {
    /// Load the tree that contains `path` (searching parents for `.fmf/`),
    /// always from its root, and apply inheritance.
    pub fn load(path: impl AsRef<Path>) -> Result<Tree> {
        let mut tree = Self::load_uninherited(path.as_ref())?;
        tree.nodes.par_iter_mut().try_for_each(Node::materialize)?;
        tree.inherit()?;
        Ok(tree)
    }

    /// [`Tree::load`] without the inheritance step: nodes hold only their
    /// own data, possibly still as text (see [`Tree::inherit_items`]).
    pub(super) fn load_uninherited(path: &Path) -> Result<Tree> {
        let start = abspath(path)?;
        let mut root = start.clone();
        loop {
            let entries = fs::read_dir(&root).map_err(|e| Error::Io {
                path: root.clone(),
                message: format!("invalid directory path: {e}"),
            })?;
            let has_fmf = entries.flatten().any(|e| {
                e.file_name() == ".fmf"
                    && e.file_type().is_ok_and(|t| {
                        t.is_dir() || (t.is_symlink() && is_dir_following(&e.path()))
                    })
            });
            if has_fmf {
                break;
            }
            if root == Path::new("/") {
                return Err(Error::Root { path: start });
            }
            root.pop();
        }
        let version_path = root.join(".fmf").join("version");
        let text = fs::read_to_string(&version_path).map_err(|e| Error::Version {
            path: version_path.clone(),
            message: format!("unable to detect format version: {e}"),
        })?;
        let version = parse_version(&text).ok_or_else(|| Error::Version {
            path: version_path.clone(),
            message: "invalid version format".into(),
        })?;
        let include = Self::explore_include(&root)?;

        let plan = walk::walk_and_load(&root, &include);

        // Every directory and every file other than `main.fmf` is a node
        // (plus any `/child` keys): sizing the list up front spares the
        // unused half a doubling vector would keep.
        let mut nodes = Vec::with_capacity(1 + plan.node_count());
        nodes.push(Node::empty("/".into(), None));
        let mut tree = Tree {
            root: root.clone(),
            version,
            nodes,
        };
        tree.grow(0, plan)?;
        Ok(tree)
    }

    /// `explore.include` of `.fmf/config` (a missing or empty config is
    /// `{}`).
    fn explore_include(root: &Path) -> Result<Vec<String>> {
        let path = root.join(".fmf").join("config");
        let text = match fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|e| Error::Yaml {
                path: path.clone(),
                line: None,
                message: format!("invalid UTF-8: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Io {
                    path,
                    message: e.to_string(),
                });
            }
        };
        let bad = |m: &str| Error::Config {
            path: path.clone(),
            message: m.to_string(),
        };
        let config = match yaml::parse(&text, &path)? {
            // Deliberate difference: the reference crashes on an empty config.
            Yaml::Null => return Ok(Vec::new()),
            Yaml::Map(pairs) => pairs,
            _ => return Err(bad("the config should be a mapping")),
        };
        let explore = match config
            .into_iter()
            .find(|(k, _)| *k == Yaml::Str("explore".into()))
        {
            None | Some((_, Yaml::Null)) => return Ok(Vec::new()),
            Some((_, Yaml::Map(pairs))) => pairs,
            Some(_) => return Err(bad("the 'explore' config section should be a mapping")),
        };
        let include = match explore
            .into_iter()
            .find(|(k, _)| *k == Yaml::Str("include".into()))
        {
            None => return Ok(Vec::new()),
            Some((_, Yaml::Seq(items))) => items,
            Some((_, other)) => {
                return Err(bad(&format!(
                    "The 'include' config section should be a list, found '{}'.",
                    super::pyval::py_str(&other.into_json())
                )));
            }
        };
        let names: Vec<String> = include
            .into_iter()
            .filter_map(|y| match y {
                Yaml::Str(s) => Some(s),
                _ => None,
            })
            .collect();
        if names.iter().any(|n| n == ".fmf") {
            return Err(bad(
                "The '.fmf' directory cannot be used for storing fmf metadata.",
            ));
        }
        Ok(names)
    }

    fn new_child(&mut self, parent: NodeId, name: &str) -> NodeId {
        if let Some(&id) = self.nodes[parent].children.get(name) {
            return id;
        }
        let id = self.nodes.len();
        let full = join_name(&self.nodes[parent].name, name);
        self.nodes.push(Node::empty(full, Some(parent)));
        self.nodes[parent].children.insert(name.to_string(), id);
        id
    }

    fn grow(&mut self, node: NodeId, plan: DirPlan) -> Result<()> {
        for PlanFile { name, path, data } in plan.files {
            let data = data?;
            let source = &path;
            if name == "main.fmf" {
                self.nodes[node].sources.push(source.clone());
                match data {
                    FileData::Simple(text) => self.update_simple(node, text)?,
                    FileData::Plain(map) => self.update_plain(node, map)?,
                    FileData::Yaml(data) => self.update(node, data, source)?,
                }
            } else {
                let child_name = &name[..name.len() - ".fmf".len()];
                match data {
                    FileData::Simple(text) => {
                        // `child()` with a mapping.
                        let id = self.new_child(node, child_name);
                        self.update_simple(id, text)?;
                        self.nodes[id].sources.push(source.clone());
                    }
                    FileData::Plain(map) => {
                        let id = self.new_child(node, child_name);
                        self.update_plain(id, map)?;
                        self.nodes[id].sources.push(source.clone());
                    }
                    FileData::Yaml(data) => self.child(node, child_name, data, source, true)?,
                }
            }
        }
        for (name, sub) in plan.dirs {
            let child = self.new_child(node, &name);
            self.grow(child, sub)?;
        }
        let nodes = &self.nodes;
        let keep: IndexMap<String, NodeId> = nodes[node]
            .children
            .iter()
            .filter(|&(_, &c)| !nodes[c].children.is_empty() || nodes[c].updated)
            .map(|(k, &v)| (k.clone(), v))
            .collect();
        self.nodes[node].children = keep;
        Ok(())
    }

    /// `Tree.child(name, data, source)`.
    fn child(
        &mut self,
        node: NodeId,
        name: &str,
        data: Yaml,
        file: &Arc<Path>,
        is_source: bool,
    ) -> Result<()> {
        let id = self.new_child(node, name);
        match data {
            Yaml::Map(_) | Yaml::Null => self.update(id, data, file)?,
            // The reference walks a string value as a directory path relative
            // to the process CWD; we never look there and treat it as a path
            // that does not exist (the node stays as it is).
            Yaml::Str(_) => {}
            other => {
                let kind = match other {
                    Yaml::Seq(_) => "a list",
                    _ => "a scalar",
                };
                return Err(Error::Format {
                    path: file.to_path_buf(),
                    message: format!(
                        "node '{}': data must be a mapping or empty, found {kind}",
                        self.nodes[id].name
                    ),
                });
            }
        }
        if is_source {
            self.nodes[id].sources.push(file.clone());
        }
        Ok(())
    }

    /// `Tree.update(data)` for a [`FileData::Simple`] text: kept as text
    /// when it is all the node's data so far.
    fn update_simple(&mut self, node: NodeId, text: Box<str>) -> Result<()> {
        let n = &mut self.nodes[node];
        if n.data.is_empty() && n.text.is_none() {
            n.updated = true;
            n.text = Some(text);
            return Ok(());
        }
        let map = parse_simple(&text)?;
        self.update_plain(node, map)
    }

    /// `Tree.update(data)` for a [`FileData::Plain`] mapping.
    fn update_plain(&mut self, node: NodeId, map: Map<String, Value>) -> Result<()> {
        let node = &mut self.nodes[node];
        node.materialize()?;
        node.updated = true;
        if node.data.is_empty() {
            node.data = map;
        } else {
            for (key, value) in map {
                node.data.insert(key, value);
            }
        }
        Ok(())
    }

    /// `Tree.update(data)`.
    fn update(&mut self, node: NodeId, data: Yaml, file: &Arc<Path>) -> Result<()> {
        self.nodes[node].materialize()?;
        self.nodes[node].updated = true;
        let pairs = match data {
            Yaml::Null => return Ok(()),
            Yaml::Map(pairs) => pairs,
            Yaml::Seq(_) => {
                return Err(Error::Format {
                    path: file.to_path_buf(),
                    message: "top-level data must be a mapping, found a list".into(),
                });
            }
            _ => {
                return Err(Error::Format {
                    path: file.to_path_buf(),
                    message: "top-level data must be a mapping, found a scalar".into(),
                });
            }
        };
        let mut pairs = pairs;
        if let Some(pos) = pairs
            .iter()
            .position(|(k, _)| matches!(k, Yaml::Str(s) if s == "/"))
        {
            let (_, directives) = pairs.remove(pos);
            self.directives(node, directives, file)?;
        }
        for (key, value) in pairs {
            let key = match key {
                Yaml::Str(s) => s,
                Yaml::Null => {
                    return Err(Error::Format {
                        path: file.to_path_buf(),
                        message: "Invalid key 'None'.".into(),
                    });
                }
                other => {
                    return Err(Error::Format {
                        path: file.to_path_buf(),
                        message: format!(
                            "invalid key '{}': node keys must be strings",
                            other.key_text()
                        ),
                    });
                }
            };
            if let Some(stripped) = key.strip_prefix('/') {
                let name = stripped.trim_start_matches('/');
                match name.find('/') {
                    Some(slash) if slash > 0 => {
                        let first = &name[..slash];
                        let rest = &name[slash..];
                        let rest = rest.split('\n').next().unwrap_or(rest);
                        let value = Yaml::Map(vec![(Yaml::Str(rest.to_string()), value)]);
                        self.child(node, first, value, file, false)?;
                    }
                    _ => self.child(node, name, value, file, false)?,
                }
            } else {
                self.nodes[node].data.insert(key, value.into_json());
            }
        }
        Ok(())
    }

    fn directives(&mut self, node: NodeId, value: Yaml, file: &Arc<Path>) -> Result<()> {
        let bad = |m: String| Error::Directive {
            path: file.to_path_buf(),
            node: self.nodes[node].name.clone(),
            message: m,
        };
        let Yaml::Map(pairs) = value else {
            return Err(bad("should be a 'dict'".into()));
        };
        let mut d = self.nodes[node].directives;
        for (k, v) in pairs {
            let key = match &k {
                Yaml::Str(s) => s.as_str(),
                other => return Err(bad(format!("unknown fmf directive '{}'", other.key_text()))),
            };
            let Yaml::Bool(b) = v else {
                return Err(bad(format!("'{key}' should be a 'bool'")));
            };
            match key {
                "inherit" => d.inherit = Some(b),
                "select" => d.select = Some(b),
                other => return Err(bad(format!("unknown fmf directive '{other}'"))),
            }
        }
        self.nodes[node].directives = d;
        Ok(())
    }

    /// Node ids in pre-order (children in insertion order).
    fn preorder(&self) -> Vec<NodeId> {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![0];
        while let Some(id) = stack.pop() {
            order.push(id);
            stack.extend(self.nodes[id].children.values().rev());
        }
        order
    }

    fn inherit(&mut self) -> Result<()> {
        for id in self.preorder() {
            let raw = std::mem::take(&mut self.nodes[id].data);
            let parent = self.nodes[id]
                .parent
                .filter(|_| self.nodes[id].directives.inherit != Some(false));
            let mut base = match parent {
                Some(p) => {
                    let mut sources = self.nodes[p].sources.clone();
                    sources.append(&mut self.nodes[id].sources);
                    self.nodes[id].sources = sources;
                    self.nodes[p].data.clone()
                }
                None => Map::new(),
            };
            merge_special(&mut base, raw, &self.nodes[id].name)?;
            self.nodes[id].data = base;
        }
        Ok(())
    }

    /// Inheritance prepared node by node, for a tree from
    /// [`Tree::load_uninherited`]: every node depth first with children
    /// sorted by name (the order of `climb(_, true)`), each with what
    /// [`Inherit::data`] turns into the data [`Tree::load`] would leave in
    /// [`Node::data`]. Branch nodes are merged here (their children need
    /// the result); leaves are left to merge, possibly on other threads.
    /// Node data is moved out of the tree; sources are inherited in place.
    /// Errors are those of the inheritance, but not necessarily the first
    /// one [`Tree::load`] would report.
    pub(super) fn inherit_items(&mut self) -> Result<Vec<(NodeId, Inherit)>> {
        struct Frame {
            data: Arc<Map<String, Value>>,
            kids: Vec<NodeId>,
            next: usize,
        }
        let mut items = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<Frame> = Vec::new();
        let mut pending = Some(0);
        loop {
            let id = match pending.take() {
                Some(id) => id,
                None => {
                    let Some(top) = stack.last_mut() else { break };
                    match top.kids.get(top.next) {
                        Some(&id) => {
                            top.next += 1;
                            id
                        }
                        None => {
                            stack.pop();
                            continue;
                        }
                    }
                }
            };
            let raw = match self.nodes[id].text.take() {
                Some(text) => Raw::Text(text),
                None => Raw::Data(std::mem::take(&mut self.nodes[id].data)),
            };
            let parent = self.nodes[id]
                .parent
                .filter(|_| self.nodes[id].directives.inherit != Some(false));
            let base = match (parent, stack.last()) {
                (Some(p), Some(frame)) => {
                    let mut sources = self.nodes[p].sources.clone();
                    sources.append(&mut self.nodes[id].sources);
                    self.nodes[id].sources = sources;
                    Some(frame.data.clone())
                }
                _ => None,
            };
            let node = &self.nodes[id];
            if node.children.is_empty() {
                items.push((id, Inherit::Merge(base, raw)));
            } else {
                let data = Arc::new(Inherit::Merge(base, raw).data(&node.name)?);
                let mut kids: Vec<(&String, NodeId)> =
                    node.children.iter().map(|(k, &v)| (k, v)).collect();
                kids.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let kids = kids.into_iter().map(|(_, c)| c).collect();
                items.push((id, Inherit::Ready(data.clone())));
                stack.push(Frame {
                    data,
                    kids,
                    next: 0,
                });
            }
        }
        Ok(items)
    }

    /// Apply `adjust` rules to every node (pre-order), as
    /// `fmf.Tree.adjust` does. Returns the decisions when asked to record
    /// them.
    pub fn adjust(&mut self, context: &Context, options: &AdjustOptions) -> Result<Vec<Decision>> {
        let mut evaluator = Evaluator::new(context, options.case_sensitive);
        let mut decisions = Vec::new();
        for id in self.preorder() {
            let node = &mut self.nodes[id];
            adjust_node(
                &mut node.data,
                &node.name,
                &node.sources,
                &mut evaluator,
                options,
                &mut decisions,
            )?;
        }
        Ok(decisions)
    }

    /// The tree root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The format version from `.fmf/version`.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The root node's id.
    pub fn root_node(&self) -> NodeId {
        0
    }

    /// A node by id.
    ///
    /// # Panics
    /// When `id` does not come from this tree.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Mutable data of a node (to edit metadata before use).
    pub fn data_mut(&mut self, id: NodeId) -> Option<&mut Map<String, Value>> {
        self.nodes.get_mut(id).map(|n| &mut n.data)
    }

    /// Depth-first pre-order walk yielding the nodes `climb` yields: every
    /// node with `whole`, else the selected ones (leaves unless the
    /// `select` directive says otherwise); children sorted by name unless
    /// `sort` is false.
    pub fn climb(&self, whole: bool, sort: bool) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![0];
        while let Some(id) = stack.pop() {
            let node = &self.nodes[id];
            if whole || node.is_selected() {
                out.push(id);
            }
            if sort {
                let mut kids: Vec<(&String, &NodeId)> = node.children.iter().collect();
                kids.sort_unstable_by(|a, b| a.0.cmp(b.0));
                stack.extend(kids.into_iter().rev().map(|(_, &c)| c));
            } else {
                stack.extend(node.children.values().rev());
            }
        }
        out
    }

    /// Find a node by its full name.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.climb(true, true)
            .into_iter()
            .find(|&id| self.nodes[id].name == name)
    }
}

/// Apply the `adjust` rules of one node to its data (one step of
/// [`Tree::adjust`]), recording decisions when asked to.
pub(super) fn adjust_node(
    data: &mut Map<String, Value>,
    name: &str,
    sources: &[Arc<Path>],
    evaluator: &mut Evaluator<'_>,
    options: &AdjustOptions,
    decisions: &mut Vec<Decision>,
) -> Result<()> {
    let key = options.key.as_str();
    // Errors name the files the node comes from, so a user can find it.
    let files = sources
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    // The reference applies a copy of the rules. Unless a rule changes the
    // rules key itself, the rules are moved out of the data while they are
    // applied instead (leaving a null in place, so the key order stays),
    // and put back afterwards.
    let touches_key =
        |rule: &Value| matches!(rule, Value::Object(r) if r.keys().any(|k| k.starts_with(key)));
    let (rules, moved) = match data.get_mut(key) {
        None => (Value::Array(Vec::new()), false),
        Some(v @ Value::Object(_)) if !touches_key(v) => (std::mem::take(v), true),
        Some(Value::Array(items)) if !items.iter().any(touches_key) => {
            (Value::Array(std::mem::take(items)), true)
        }
        Some(v @ (Value::Object(_) | Value::Array(_))) => (v.clone(), false),
        Some(other) => {
            return Err(Error::Adjust {
                files: files.clone(),
                node: name.to_string(),
                message: format!(
                    "should be a dictionary or a list of dictionaries, got '{}'",
                    super::pyval::type_name(other)
                ),
            });
        }
    };
    let result = apply_rules(data, &rules, name, &files, evaluator, options, decisions);
    if moved && let Some(slot) = data.get_mut(key) {
        *slot = rules;
    }
    result
}

/// Apply `rules` (the node's own: a mapping or a list), then the
/// additional ones, to `data`.
fn apply_rules(
    data: &mut Map<String, Value>,
    rules: &Value,
    name: &str,
    files: &str,
    evaluator: &mut Evaluator<'_>,
    options: &AdjustOptions,
    decisions: &mut Vec<Decision>,
) -> Result<()> {
    let own = match rules {
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    for set in [own, options.additional_rules.as_slice()] {
        for rule in set.iter() {
            let Value::Object(rule) = rule else {
                return Err(Error::Adjust {
                    files: files.to_string(),
                    node: name.to_string(),
                    message: "Adjust rule should be a dictionary.".into(),
                });
            };
            let when = rule.get("when");
            let cont = match rule.get("continue") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(Error::Adjust {
                        files: files.to_string(),
                        node: name.to_string(),
                        message: format!(
                            "The 'continue' value should be bool, got '{}'.",
                            super::pyval::py_str(other)
                        ),
                    });
                }
            };
            let outcome = match when {
                None => Some(true),
                Some(Value::Bool(b)) => Some(*b),
                Some(Value::String(s)) => evaluator.matches(s).map_err(|e| match e {
                    RuleError::Invalid(message) => Error::InvalidRule {
                        files: files.to_string(),
                        node: name.to_string(),
                        rule: s.clone(),
                        message,
                    },
                    RuleError::Regex { pattern, message } => Error::Regex {
                        pattern,
                        node: Some(name.to_string()),
                        message,
                    },
                })?,
                Some(other) => {
                    return Err(Error::Adjust {
                        files: files.to_string(),
                        node: name.to_string(),
                        message: format!(
                            "'when' must be a string or a bool, got '{}'",
                            super::pyval::type_name(other)
                        ),
                    });
                }
            };
            if options.record_decisions {
                decisions.push(Decision {
                    node: name.to_string(),
                    when: when.cloned().unwrap_or(Value::Null),
                    outcome,
                });
            }
            match outcome {
                Some(true) => {
                    let apply = rule
                        .iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "because" | "continue" | "when"))
                        .map(|(k, v)| (k.as_str(), v.clone()));
                    merge_special(data, apply, name)?;
                    if !cont {
                        break;
                    }
                }
                Some(false) => {}
                None if options.undecided_raise => {
                    let rule = match when {
                        Some(Value::String(s)) => s.clone(),
                        _ => String::new(),
                    };
                    return Err(Error::CannotDecide {
                        files: files.to_string(),
                        node: name.to_string(),
                        rule,
                    });
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        assert_eq!(join_name("/", "a"), "/a");
        assert_eq!(join_name("/a", "b"), "/a/b");
        assert_eq!(join_name("/", ""), "/");
        assert_eq!(parse_version(" +0_1\n"), Some(1));
        assert_eq!(parse_version("1.0"), None);
        assert_eq!(parse_version(""), None);
    }

    /// A tree root (with `.fmf/version`) holding `files`, by relative path.
    fn tree_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [(".fmf/version", "1\n")].iter().chain(files) {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn load_small_tree() {
        let dir = tree_dir(&[
            ("main.fmf", "tag: [a]\n/x:\n  tag+: [b]\n"),
            ("d/main.fmf", "v: 1\n"),
        ]);
        let root = dir.path();
        fs::create_dir_all(root.join("empty/deeper")).unwrap();
        let tree = Tree::load(root.join("d")).unwrap();
        let leaves: Vec<&str> = tree
            .climb(false, true)
            .into_iter()
            .map(|id| tree.node(id).name())
            .collect();
        assert_eq!(leaves, ["/d", "/x"]);
        let x = tree.find("/x").unwrap();
        assert_eq!(
            Value::Object(tree.node(x).data().clone()),
            serde_json::json!({"tag": ["a", "b"]})
        );
    }

    /// Simple files are kept as text until needed; when a second file
    /// adds to the same node (before or after), the data is that of
    /// merging both in walk order, in the whole tree and in the items
    /// discovery inherits from.
    #[test]
    fn deferred_text_merges_with_later_and_earlier_files() {
        let dir = tree_dir(&[
            ("main.fmf", "tag: [r]\n/early:\n  a: from-root\n"),
            ("late.fmf", "a: from-file\nb: 1\n"),
            ("only.fmf", "e: 5\n"),
            ("late/main.fmf", "b: 2\nc: 3\n"),
            ("early/main.fmf", "a: 1\nd: [x]\n"),
        ]);
        let root = dir.path();
        let expected = [
            (
                "/early",
                serde_json::json!({"tag": ["r"], "a": 1, "d": ["x"]}),
            ),
            (
                "/late",
                serde_json::json!({"tag": ["r"], "a": "from-file", "b": 2, "c": 3}),
            ),
            ("/only", serde_json::json!({"tag": ["r"], "e": 5})),
        ];
        let tree = Tree::load(root).unwrap();
        for (name, want) in &expected {
            let id = tree.find(name).unwrap();
            assert_eq!(&Value::Object(tree.node(id).data().clone()), want, "{name}");
        }
        let mut tree = Tree::load_uninherited(root).unwrap();
        assert!(
            tree.nodes.iter().any(|n| n.text.is_some()),
            "nothing deferred"
        );
        let names: Vec<String> = tree.nodes.iter().map(|n| n.name.clone()).collect();
        let mut seen = 0;
        for (id, inherit) in tree.inherit_items().unwrap() {
            if let Some((_, want)) = expected.iter().find(|(n, _)| *n == names[id]) {
                let data = inherit.data(&names[id]).unwrap();
                assert_eq!(&Value::Object(data), want);
                seen += 1;
            }
        }
        assert_eq!(seen, 3);
    }
}
