//! From discovered FMF tests and plans to what the scheduler and the
//! executor take.

use std::{collections::BTreeSet, path::PathBuf};

use atex_plugin_api::packages::PackageSet;

use crate::{
    executor::{PlanSpec, PrepareStep, TestSpec},
    fmf::{self, Plan, Test},
    remote,
    results::TimingHistory,
};

use super::{driver::RunTest, engine::QueuedTest, packed::TestList};

/// The executor's view of a test.
pub fn test_spec(t: &Test) -> TestSpec {
    into_test_spec(t.clone())
}

/// [`test_spec`] taking the test: its metadata moves instead of being
/// copied.
fn into_test_spec(t: Test) -> TestSpec {
    let rel = t.path.trim_start_matches('/');
    TestSpec {
        rel_dir: if rel.is_empty() {
            ".".into()
        } else {
            rel.into()
        },
        name: t.name,
        script: t.test,
        duration: t.duration,
        environment: t.environment.into_iter().collect(),
        require: t.require,
        recommend: t.recommend,
        tty: t.tty,
        metadata: serde_json::Value::Object(t.metadata),
    }
}

/// The scheduler's view of a test, with its runtime from `history`.
pub fn queued_test(t: &Test, history: &TimingHistory) -> QueuedTest {
    QueuedTest {
        name: t.name.clone(),
        duration: t.duration,
        expected: history.expected(&t.name),
        priority: t.extra_priority.unwrap_or(0),
        destructive: t.tag.iter().any(|tag| tag == "destructive"),
        column: 0,
        // Reruns of this test on top of the run's (`--reruns`).
        extra_reruns: t
            .metadata
            .get("extra-reruns")
            .and_then(serde_json::Value::as_u64)
            .map_or(0, |n| n.min(u64::from(u32::MAX)) as u32),
    }
}

/// Both views of every discovered test.
pub fn run_tests(found: &fmf::Discovery, history: &TimingHistory) -> Vec<RunTest> {
    found
        .tests
        .iter()
        .map(|t| RunTest::new(queued_test(t, history), test_spec(t)))
        .collect()
}

/// The tests of one discovery, converted and packed as they were found,
/// with what else a run needs of it.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The tree root.
    pub root: PathBuf,
    /// The plan the tests come from.
    pub plan: Plan,
    /// The tests (for every platform; no runtimes from history yet).
    pub tests: TestList,
    /// What the tests need installed ([`suite_packages`]).
    pub packages: PackageSet,
    /// Remote trees and libraries to upload beside the plan's tree.
    pub uploads: Vec<remote::Upload>,
    /// Every fetched tree, for `summary.json`.
    pub sources: Vec<remote::Source>,
}

impl Found {
    /// Converts a discovery with its remote trees and libraries, test by
    /// test, each freed as soon as it is packed.
    pub fn from_prepared(mut p: remote::Prepared) -> Self {
        let packages = suite_packages(&p.discovery);
        let found = std::mem::take(&mut p.discovery.tests);
        let mut tests = TestList::new();
        for t in found {
            let dir = p.rel_dir(&t);
            let mut run = RunTest::new(
                queued_test(&t, &TimingHistory::default()),
                into_test_spec(t),
            );
            if let Some(dir) = dir {
                run.spec.rel_dir = dir;
            }
            tests.push(run);
        }
        tests.shrink_to_fit();
        Found {
            root: p.discovery.root,
            plan: p.discovery.plan,
            tests,
            packages,
            uploads: p.uploads,
            sources: p.sources,
        }
    }

    /// Discovers the default plan of the tree at `root` (no plan named),
    /// each test packed on the thread that built it, so that a large tree's
    /// tests are never all in memory as metadata. `None` when the tests
    /// need libraries (or discovery fails): those are resolved by the
    /// whole discovery ([`remote::discover`]), which also gives the errors.
    pub fn stream(root: &std::path::Path, selection: &fmf::Selection) -> Option<Self> {
        if selection.plan.is_some() {
            return None;
        }
        let found = fmf::discover_streamed(root, selection, RunSink::default).ok()?;
        if found.sinks.iter().any(|s| s.libraries) {
            return None;
        }
        let mut tests = TestList::new();
        let (mut required, mut recommended) = (BTreeSet::new(), BTreeSet::new());
        for sink in found.sinks {
            tests.append(sink.tests);
            required.extend(sink.required);
            recommended.extend(sink.recommended);
        }
        required.extend(found.plan.install_packages().iter().cloned());
        tests.shrink_to_fit();
        Some(Found {
            root: found.root,
            plan: found.plan,
            tests,
            packages: PackageSet::new(required).with_recommended(recommended),
            uploads: Vec::new(),
            sources: Vec::new(),
        })
    }
}

/// Where [`Found::stream`] puts the tests of one chunk of the tree.
#[derive(Default)]
struct RunSink {
    tests: TestList,
    /// A test of the chunk needs a library.
    libraries: bool,
    required: BTreeSet<String>,
    recommended: BTreeSet<String>,
}

impl fmf::TestSink for RunSink {
    fn push(&mut self, t: Test) {
        let library = |e: &serde_json::Value| match e {
            serde_json::Value::String(s) => s.trim().starts_with("library("),
            _ => true,
        };
        if self.libraries || t.require_raw.iter().chain(&t.recommend_raw).any(library) {
            self.libraries = true;
            return;
        }
        self.required.extend(t.require.iter().cloned());
        self.recommended.extend(t.recommend.iter().cloned());
        let queued = queued_test(&t, &TimingHistory::default());
        self.tests.push(RunTest::new(queued, into_test_spec(t)));
    }

    fn finish(&mut self) {
        self.tests.shrink_to_fit();
    }
}

/// The executor's view of a plan. `prepare` steps other than `install`
/// and `shell` are skipped with a warning (as upstream does).
pub fn plan_spec(p: &Plan) -> PlanSpec {
    let mut prepare = Vec::new();
    for step in &p.prepare {
        match step {
            fmf::PrepareStep::Install(pkgs) => prepare.push(PrepareStep::Install(pkgs.clone())),
            fmf::PrepareStep::Shell(scripts) => {
                prepare.extend(scripts.iter().cloned().map(PrepareStep::Shell))
            }
            fmf::PrepareStep::Other(raw) => {
                tracing::warn!(
                    "skipping unsupported prepare step {}",
                    serde_json::Value::Object(raw.clone())
                );
            }
        }
    }
    PlanSpec {
        environment: p
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        prepare,
        finish: p.finish.clone(),
    }
}

/// What a run's tests need installed on one platform: the `require`
/// packages of the selected tests plus those of the plan's `prepare`
/// install steps, and the tests' `recommend` packages (best effort).
/// Library references (`library(repo/name)`) are not packages and are left
/// out. A provisioner given `prepare: suite` builds these into its image
/// (see [`atex_plugin_api::packages`]).
pub fn suite_packages(found: &fmf::Discovery) -> atex_plugin_api::packages::PackageSet {
    let package = |p: &&String| !p.starts_with("library(");
    let required = found
        .tests
        .iter()
        .flat_map(|t| t.require.iter())
        .chain(found.plan.install_packages().iter())
        .filter(package)
        .cloned()
        .collect::<Vec<_>>();
    let recommended = found
        .tests
        .iter()
        .flat_map(|t| t.recommend.iter())
        .filter(package)
        .cloned()
        .collect::<Vec<_>>();
    atex_plugin_api::packages::PackageSet::new(required).with_recommended(recommended)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// On every tree of the FMF conformance corpus, the tests packed on
    /// the discovery threads are those of the whole discovery, converted
    /// one by one: the same specs and scheduling data in the same order,
    /// and the same packages; a tree whose tests need a library is left
    /// to the whole discovery.
    #[test]
    fn streamed_tests_are_those_of_the_whole_discovery_on_corpus() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fmf-corpus");
        let mut trees: Vec<PathBuf> = std::fs::read_dir(&corpus)
            .expect("corpus")
            .flatten()
            .map(|e| e.path().join("tree"))
            .filter(|p| p.join(".fmf").is_dir())
            .collect();
        trees.sort();
        assert!(trees.len() > 100, "corpus not at {}", corpus.display());
        let selection = fmf::Selection {
            context: fmf::Context::from_args(["distro=fedora-40", "arch=x86_64"]).expect("context"),
            ..fmf::Selection::default()
        };
        let options = remote::RemoteOptions::default();
        let (mut compared, mut left) = (0, 0);
        for tree in &trees {
            let Some(streamed) = Found::stream(tree, &selection) else {
                // Only an error or a library sends a tree the other way.
                if let Ok(whole) = fmf::discover(tree, &selection) {
                    let library = whole.tests.iter().any(|t| {
                        t.require_raw
                            .iter()
                            .chain(&t.recommend_raw)
                            .any(|e| e.as_str().is_none_or(|s| s.trim().starts_with("library(")))
                    });
                    assert!(library, "{} was not streamed", tree.display());
                    left += 1;
                }
                continue;
            };
            let whole = Found::from_prepared(
                remote::discover(tree, &selection, &options).expect("whole discovery"),
            );
            assert_eq!(streamed.root, whole.root);
            assert_eq!(streamed.plan, whole.plan);
            assert_eq!(streamed.packages, whole.packages, "{}", tree.display());
            assert_eq!(
                streamed.tests.len(),
                whole.tests.len(),
                "{}",
                tree.display()
            );
            for (a, b) in streamed.tests.iter().zip(whole.tests.iter()) {
                assert_eq!(a.spec, b.spec, "{}", tree.display());
                assert_eq!(
                    serde_json::to_string(&a.spec.metadata).expect("json"),
                    serde_json::to_string(&b.spec.metadata).expect("json")
                );
                assert_eq!(a.platform, b.platform);
                let (qa, qb) = (&a.queued, &b.queued);
                assert_eq!(
                    (
                        &qa.name,
                        qa.duration,
                        qa.priority,
                        qa.destructive,
                        qa.extra_reruns
                    ),
                    (
                        &qb.name,
                        qb.duration,
                        qb.priority,
                        qb.destructive,
                        qb.extra_reruns
                    )
                );
            }
            compared += usize::from(!streamed.tests.is_empty());
        }
        assert!(compared > 25, "only {compared} trees had tests");
        assert!(left > 0, "no tree of the corpus needs a library");
    }
}
