//! From discovered FMF tests and plans to what the scheduler and the
//! executor take.

use crate::{
    executor::{PlanSpec, PrepareStep, TestSpec},
    fmf::{self, Plan, Test},
    results::TimingHistory,
};

use super::{driver::RunTest, engine::QueuedTest};

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

/// [`run_tests`] taking the discovered tests, each freed as soon as it is
/// converted: a large run never holds two copies of its metadata.
pub(crate) fn into_run_tests(tests: Vec<Test>, history: &TimingHistory) -> Vec<RunTest> {
    tests
        .into_iter()
        .map(|t| RunTest::new(queued_test(&t, history), into_test_spec(t)))
        .collect()
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
