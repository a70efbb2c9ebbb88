//! Test discovery as atex does it: load the tree, adjust it with the
//! context (case-sensitive, the fmf default), pick the plan, and for each
//! of its `discover` sections prune with the section's and the caller's
//! names and filters, drop excluded, disabled, manual and story nodes, and
//! build [`Test`]s.
//!
//! Without a plan (the default plan: one section, all tests) discovery
//! does not keep the tree's data: each node is inherited, adjusted,
//! selected and built on its own, spread over the cores, and
//! [`discover_into`] hands each test to its caller as soon as it is built
//! (`atex discover` keeps only each test's text). The result is that of the
//! whole-tree steps; when anything fails, the whole-tree steps run again
//! and report the error they meet first.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::{Map, Value};

use super::{
    context::{Context, Evaluator},
    error::{Error, Result},
    libraries,
    prune::{PruneOptions, keeps, prune},
    pyre, pyval,
    tmt::{DiscoverSection, Plan, Test},
    tree::{AdjustOptions, Inherit, NodeId, Tree, adjust_node},
};

/// What to discover: the one description of a test selection, which
/// command-line arguments and configuration files convert into.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// For each discover section of [`Discovery::plan`], the fmf root of
    /// its tree when that is not [`Discovery::root`] (a section with
    /// `url` or `path`, see [`discover_sections`]).
    pub section_roots: Vec<Option<PathBuf>>,
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
        if pyre::search(p, name).map_err(|e| Error::Regex {
            pattern: p.clone(),
            node: None,
            message: e.to_string(),
        })? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Discover the tests of the tree containing `root` for `selection`.
pub fn discover(root: impl AsRef<Path>, selection: &Selection) -> Result<Discovery> {
    let mut found = discover_tests(root.as_ref(), selection)?;
    // In-tree libraries need nodes that are not tests: load the tree
    // again only when a test asks for one.
    if libraries::any_local_library(&found.tests) {
        let mut tree = Tree::load(&found.root)?;
        tree.adjust(&selection.context, &AdjustOptions::default())?;
        libraries::resolve_local_libraries(&tree, &mut found.tests)?;
    }
    Ok(found)
}

fn discover_tests(root: &Path, selection: &Selection) -> Result<Discovery> {
    if selection.plan.is_none()
        && let Ok((root, plan, chunks)) = stream_default(root, selection, Vec::new, push_to, |_| {})
    {
        let tests = chunks.into_iter().flatten().collect();
        return Ok(Discovery {
            root,
            plan,
            tests,
            section_roots: Vec::new(),
        });
    }
    discover_whole(root, selection)
}

/// Where [`discover_into`] puts the tests it builds: one sink per chunk of
/// the tree, filled on one of the worker threads.
pub trait TestSink: Send {
    /// Take the next test of the chunk (tests come in discovery order).
    fn push(&mut self, test: Test);

    /// The chunk is complete (to give back spare capacity, say); called
    /// once, on the thread that filled the sink.
    fn finish(&mut self) {}
}

impl TestSink for Vec<Test> {
    fn push(&mut self, test: Test) {
        Vec::push(self, test);
    }
}

fn push_to<S: TestSink>(sink: &mut S, test: Test) -> Result<()> {
    sink.push(test);
    Ok(())
}

/// Discover the tests as [`discover()`] does, handing each test to a sink
/// made by `new_sink` as soon as it is built instead of collecting them:
/// the tests of all returned sinks, in order, are the tests of
/// [`discover()`]. Without a plan the tree is split into chunks, each
/// filled on its own thread of the rayon pool; with a plan (or when the
/// chunked pass meets an error and the whole-tree pass runs to report it)
/// all tests go into one sink. For consumers that turn each test into
/// something smaller, such as a line of output.
///
/// Sinks are only kept when discovery succeeds; on an error, or when the
/// chunked pass is abandoned, the sinks filled so far are dropped.
pub fn discover_into<S: TestSink>(
    root: impl AsRef<Path>,
    selection: &Selection,
    new_sink: impl Fn() -> S + Sync,
) -> Result<Vec<S>> {
    Ok(discover_streamed(root, selection, new_sink)?.sinks)
}

/// What [`discover_streamed`] found.
#[derive(Debug)]
pub struct Streamed<S> {
    /// The tree root.
    pub root: PathBuf,
    /// The plan used.
    pub plan: Plan,
    /// The sinks, in discovery order.
    pub sinks: Vec<S>,
}

/// [`discover_into`], also giving the tree root and the plan. In-tree
/// libraries are not resolved (see [`discover()`]): a test requiring
/// one comes as it is written.
pub fn discover_streamed<S: TestSink>(
    root: impl AsRef<Path>,
    selection: &Selection,
    new_sink: impl Fn() -> S + Sync,
) -> Result<Streamed<S>> {
    let root = root.as_ref();
    if selection.plan.is_none()
        && let Ok((root, plan, sinks)) =
            stream_default(root, selection, &new_sink, push_to, S::finish)
    {
        return Ok(Streamed { root, plan, sinks });
    }
    let found = discover_whole(root, selection)?;
    let mut sink = new_sink();
    for test in found.tests {
        sink.push(test);
    }
    sink.finish();
    Ok(Streamed {
        root: found.root,
        plan: found.plan,
        sinks: vec![sink],
    })
}

/// Discovery over a whole loaded tree: load (with inheritance), adjust,
/// select, build. The reference for [`stream_default`], and what gives
/// the error when anything fails.
fn discover_whole(root: &Path, selection: &Selection) -> Result<Discovery> {
    let mut tree = Tree::load(root)?;
    tree.adjust(&selection.context, &AdjustOptions::default())?;
    let (plan, picked) = select(&tree, selection)?;
    // With one section every node is picked at most once: move its data
    // instead of copying it.
    let take = plan.discover.len() == 1;
    build(tree.root().to_path_buf(), plan, picked, |id| {
        if take {
            tree.data_mut(id).map(std::mem::take).unwrap_or_default()
        } else {
            tree.node(id).data().clone()
        }
    })
}

/// Discovery with the default plan (one section) without keeping the
/// tree's data: each node's data is inherited, adjusted, selected and
/// turned into a [`Test`] that `push` adds to a sink made by `new_sink`
/// (and closed by `end_sink`), in chunks of nodes spread over the
/// available cores (the rayon pool). Returns the sinks in discovery
/// order. On success the tests are exactly those of
/// [`discover_whole`]; on any error the caller runs [`discover_whole`],
/// which reports the error the sequential steps meet first.
fn stream_default<S: Send>(
    root: &Path,
    selection: &Selection,
    new_sink: impl Fn() -> S + Sync,
    push: impl Fn(&mut S, Test) -> Result<()> + Sync,
    end_sink: impl Fn(&mut S) + Sync,
) -> Result<(PathBuf, Plan, Vec<S>)> {
    /// Nodes per unit of work.
    const CHUNK: usize = 256;
    let plan = Plan::default_plan();
    let section = &DiscoverSection::default();
    let (options, excludes) = section_options(section, selection);
    let adjust = AdjustOptions::default();
    let mut tree = Tree::load_uninherited(root)?;
    // Items are taken out of their slots by the workers, chunk by chunk.
    let mut items: Vec<(NodeId, Option<Inherit>)> = tree
        .inherit_items()?
        .into_iter()
        .map(|(id, inherit)| (id, Some(inherit)))
        .collect();
    let tree = &tree;
    let work = |chunk: &mut [(NodeId, Option<Inherit>)], evaluator: &mut Evaluator<'_>| {
        let mut sink = new_sink();
        let mut decisions = Vec::new();
        for (id, inherit) in chunk {
            let (id, Some(inherit)) = (*id, inherit.take()) else {
                continue;
            };
            let node = tree.node(id);
            let mut data = inherit.data(node.name())?;
            adjust_node(
                &mut data,
                node.name(),
                node.sources(),
                evaluator,
                &adjust,
                &mut decisions,
            )?;
            if node.is_selected()
                && keeps(&options, node.name(), &data)?
                && let Some(p) = pick(tree, id, &data, section, &excludes)?
            {
                push(&mut sink, build_one(p, data)?)?;
            }
        }
        end_sink(&mut sink);
        Ok(sink)
    };
    // Each worker keeps one evaluator (and its cache of parsed rules) for
    // the chunks it takes.
    let sinks = items
        .par_chunks_mut(CHUNK)
        .map_init(
            || Evaluator::new(&selection.context, adjust.case_sensitive),
            |evaluator, chunk| work(chunk, evaluator),
        )
        .collect::<Result<Vec<S>>>()?;
    Ok((tree.root().to_path_buf(), plan, sinks))
}

/// Discover tests in an already loaded (and adjusted) tree.
pub fn discover_in(tree: &Tree, selection: &Selection) -> Result<Discovery> {
    let (plan, picked) = select(tree, selection)?;
    let mut found = build(tree.root().to_path_buf(), plan, picked, |id| {
        tree.node(id).data().clone()
    })?;
    libraries::resolve_local_libraries(tree, &mut found.tests)?;
    Ok(found)
}

/// A node picked as a test.
struct Picked {
    id: NodeId,
    section: usize,
    name: String,
    source_dir: PathBuf,
    source_rel: PathBuf,
    source_file: PathBuf,
}

/// Prune options and exclude regexes of a discover section.
fn section_options(
    section: &DiscoverSection,
    selection: &Selection,
) -> (PruneOptions, Vec<String>) {
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
    (options, excludes)
}

/// A node `prune` kept, as a test of `section` (`None`: excluded, or not
/// a test).
fn pick(
    tree: &Tree,
    id: NodeId,
    data: &Map<String, Value>,
    section: &DiscoverSection,
    excludes: &[String],
) -> Result<Option<Picked>> {
    let node = tree.node(id);
    if search_any(excludes, node.name())? {
        return Ok(None);
    }
    if !data.contains_key("test")
        || data.get("enabled").is_some_and(|v| !pyval::truthy(v))
        || data.get("manual").is_some_and(pyval::truthy)
        || data.get("story").is_some_and(pyval::truthy)
    {
        return Ok(None);
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
    Ok(Some(Picked {
        id,
        section: 0,
        name: match &section.name {
            Some(s) => format!("/{s}{}", node.name()),
            None => node.name().to_string(),
        },
        source_dir,
        source_rel: if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        },
        source_file: node
            .sources()
            .last()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
    }))
}

fn select(tree: &Tree, selection: &Selection) -> Result<(Plan, Vec<Picked>)> {
    let plan = plan_of(tree, selection)?;
    let mut picked = Vec::new();
    for (index, section) in plan.discover.iter().enumerate() {
        if section.is_remote() {
            return Err(Error::Plan {
                plan: plan.name.clone().unwrap_or_default(),
                message: format!(
                    "discover section '{}' takes its tests from another tree ('url' or 'path'): fetch it and use discover_sections",
                    section.key(index)
                ),
            });
        }
        picked.extend(select_section(tree, index, section, selection)?);
    }
    Ok((plan, picked))
}

/// The selected plan of an adjusted tree.
fn plan_of(tree: &Tree, selection: &Selection) -> Result<Plan> {
    Ok(match &selection.plan {
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
    })
}

/// The nodes of `tree` that discover section `index` picks.
fn select_section(
    tree: &Tree,
    index: usize,
    section: &DiscoverSection,
    selection: &Selection,
) -> Result<Vec<Picked>> {
    let (options, excludes) = section_options(section, selection);
    let mut picked = Vec::new();
    for id in prune(tree, &options)? {
        if let Some(mut p) = pick(tree, id, tree.node(id).data(), section, &excludes)? {
            p.section = index;
            picked.push(p);
        }
    }
    Ok(picked)
}

/// The plan `selection` names (the default plan without one), read from
/// the tree containing `root` adjusted with the selection's context:
/// what a caller looks at to fetch the trees of its remote sections
/// before [`discover_sections`].
pub fn read_plan(root: impl AsRef<Path>, selection: &Selection) -> Result<Plan> {
    if selection.plan.is_none() {
        return Ok(Plan::default_plan());
    }
    let mut tree = Tree::load(root.as_ref())?;
    tree.adjust(&selection.context, &AdjustOptions::default())?;
    plan_of(&tree, selection)
}

/// Discovery as [`discover()`] where some discover sections take their
/// tests from another tree: `trees[i]`, when set, is a directory of the
/// fmf tree of section `i` (a section with `url`, fetched by the caller,
/// or with `path`). Each such tree is loaded and adjusted on its own; its
/// tests carry the section's name prefix as usual, their `source_dir` in
/// that tree, and in-tree libraries resolve inside it. The roots found
/// are in [`Discovery::section_roots`].
pub fn discover_sections(
    root: impl AsRef<Path>,
    selection: &Selection,
    trees: &[Option<PathBuf>],
) -> Result<Discovery> {
    discover_fetching(root, selection, |_| Ok::<_, Error>(trees.to_vec()))
}

/// Discovery as [`discover_sections`], the trees of the remote sections
/// given by `fetch` once the plan is read (it is called only when the
/// plan has a section with `url` or `path`): the tree is loaded once, and
/// a plan without such sections is discovered as [`discover()`] does.
pub fn discover_fetching<E: From<Error>>(
    root: impl AsRef<Path>,
    selection: &Selection,
    fetch: impl FnOnce(&Plan) -> std::result::Result<Vec<Option<PathBuf>>, E>,
) -> std::result::Result<Discovery, E> {
    if selection.plan.is_none() {
        // The default plan is one local section.
        return Ok(discover(root, selection)?);
    }
    let adjust = AdjustOptions::default();
    let mut tree = Tree::load(root.as_ref())?;
    tree.adjust(&selection.context, &adjust)?;
    let plan = plan_of(&tree, selection)?;
    if !plan.discover.iter().any(DiscoverSection::is_remote) {
        return Ok(discover_in(&tree, selection)?);
    }
    let trees = fetch(&plan)?;
    let mut tests = Vec::new();
    let mut section_roots = Vec::with_capacity(plan.discover.len());
    for (index, section) in plan.discover.iter().enumerate() {
        let other;
        let this: &Tree = match trees.get(index).and_then(Option::as_ref) {
            Some(dir) => {
                let mut t = Tree::load(dir)?;
                t.adjust(&selection.context, &adjust)?;
                other = t;
                section_roots.push(Some(other.root().to_path_buf()));
                &other
            }
            None if section.is_remote() => {
                return Err(Error::Plan {
                    plan: plan.name.clone().unwrap_or_default(),
                    message: format!(
                        "no tree was given for discover section '{}'",
                        section.key(index)
                    ),
                }
                .into());
            }
            None => {
                section_roots.push(None);
                &tree
            }
        };
        let picked = select_section(this, index, section, selection)?;
        let mut found = build(this.root().to_path_buf(), plan.clone(), picked, |id| {
            this.node(id).data().clone()
        })?;
        libraries::resolve_local_libraries(this, &mut found.tests)?;
        tests.extend(found.tests);
    }
    Ok(Discovery {
        root: tree.root().to_path_buf(),
        plan,
        tests,
        section_roots,
    })
}

fn build_one(p: Picked, metadata: Map<String, Value>) -> Result<Test> {
    let section = p.section;
    let mut test = Test::from_metadata(p.name.clone(), p.source_dir, p.source_rel, metadata)
        .map_err(|e| Error::Metadata {
            test: p.name,
            path: p.source_file,
            message: e.0,
        })?;
    test.section = section;
    Ok(test)
}

fn build(
    root: PathBuf,
    plan: Plan,
    picked: Vec<Picked>,
    mut data: impl FnMut(NodeId) -> Map<String, Value>,
) -> Result<Discovery> {
    let mut tests = Vec::with_capacity(picked.len());
    for p in picked {
        let metadata = data(p.id);
        tests.push(build_one(p, metadata)?);
    }
    Ok(Discovery {
        root,
        plan,
        tests,
        section_roots: Vec::new(),
    })
}

/// Whether [`stream_default`] agrees with [`discover_whole`] for
/// `selection` without a plan: the same root, plan and tests, or both an
/// error. For tests and fuzzing.
pub(crate) fn stream_agrees(root: &Path, selection: &Selection) -> bool {
    let selection = Selection {
        plan: None,
        ..selection.clone()
    };
    let stream = stream_default(root, &selection, Vec::new, push_to, |_| {});
    let whole = discover_whole(root, &selection);
    match (stream, whole) {
        (Ok((root, plan, chunks)), Ok(found)) => {
            let tests: Vec<Test> = chunks.into_iter().flatten().collect();
            root == found.root && plan == found.plan && tests == found.tests
        }
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streaming path agrees with the whole-tree path on every tree of
    /// the conformance corpus, with and without a context and filters.
    #[test]
    fn stream_agrees_on_corpus() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fmf-corpus");
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("tree"))
            .filter(|p| p.join(".fmf").is_dir())
            .collect();
        cases.sort();
        assert!(
            cases.len() > 100,
            "corpus not found at {}",
            corpus.display()
        );
        let selections = [
            Selection::default(),
            Selection {
                context: Context::from_args(["distro=fedora-40", "arch=x86_64"]).unwrap(),
                ..Selection::default()
            },
            Selection {
                filters: vec!["tag: -slow".into()],
                names: vec!["a|b".into()],
                excludes: vec!["skip".into()],
                ..Selection::default()
            },
        ];
        for case in &cases {
            for selection in &selections {
                assert!(
                    stream_agrees(case, selection),
                    "{} {selection:?}",
                    case.display()
                );
            }
        }
    }

    /// Found by the fuzz target: a root whose only file is simple and
    /// holds merge operators (`tag+` into nothing becomes `tag`).
    #[test]
    fn stream_agrees_on_operators_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".fmf")).unwrap();
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(root.join(".fmf/version"), "1\n").unwrap();
        std::fs::write(root.join("main.fmf"), "test: ./t\ntag+: [a]\nx-: [b]\n").unwrap();
        std::fs::write(root.join("child.fmf"), "").unwrap();
        std::fs::write(root.join("dir/main.fmf"), "tag+: [b]\n").unwrap();
        assert!(stream_agrees(root, &Selection::default()));
        let found = discover(root, &Selection::default()).unwrap();
        let tags: Vec<&[String]> = found.tests.iter().map(|t| t.tag.as_slice()).collect();
        assert_eq!(tags, [&["a".to_string()][..], &["a".into(), "b".into()]]);
    }

    /// A sink that counts its `finish` calls.
    #[derive(Default)]
    struct Counted {
        tests: Vec<Test>,
        finished: usize,
    }

    impl TestSink for Counted {
        fn push(&mut self, test: Test) {
            self.tests.push(test);
        }
        fn finish(&mut self) {
            self.finished += 1;
        }
    }

    /// The sinks of `discover_into` hold the tests of `discover`, in
    /// order, each finished once; with a plan, in one sink.
    #[test]
    fn discover_into_sinks_hold_the_tests() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".fmf")).unwrap();
        std::fs::write(root.join(".fmf/version"), "1\n").unwrap();
        for i in 0..600 {
            std::fs::write(root.join(format!("t{i:03}.fmf")), "test: ./t\n").unwrap();
        }
        std::fs::write(
            root.join("plan.fmf"),
            "discover:\n    how: fmf\n    test: t1\n",
        )
        .unwrap();
        let planned = Selection {
            plan: Some("/plan".into()),
            ..Selection::default()
        };
        for (selection, chunked) in [(Selection::default(), true), (planned, false)] {
            let sinks = discover_into(root, &selection, Counted::default).unwrap();
            assert_eq!(sinks.len() > 1, chunked, "{selection:?}");
            assert!(sinks.iter().all(|s| s.finished == 1));
            let tests: Vec<Test> = sinks.into_iter().flat_map(|s| s.tests).collect();
            let found = discover(root, &selection).unwrap();
            assert!(!tests.is_empty());
            assert_eq!(tests, found.tests);
        }
        assert!(
            discover_into(
                root,
                &Selection {
                    names: vec!["(".into()],
                    ..Selection::default()
                },
                Counted::default
            )
            .is_err()
        );
    }
}
