//! `atex discover`: what it prints for the demo suite and for a small tree
//! with a plan, and how it refuses bad arguments.

use std::path::{Path, PathBuf};

use atex::fmf;
use atex_integration_tests::{TestDir, atex, stderr, stdout};
use serde_json::{Map, Value};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo")
}

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Names one per line, in the order the library discovers them.
#[test]
fn names_of_the_demo_suite() {
    let demo = demo();
    let out = atex(&["discover", path_arg(&demo)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let found = fmf::discover(&demo, &fmf::Selection::default()).expect("discover");
    assert!(found.tests.len() >= 5);
    let names: String = found.tests.iter().map(|t| t.name.clone() + "\n").collect();
    assert_eq!(stdout(&out), names);
}

/// `--json`: an object keyed by test name in discovery order, with the
/// adjusted metadata and the absolute source directory of each test.
#[test]
fn json_of_the_demo_suite_with_a_context() {
    let demo = demo();
    let out = atex(&[
        "discover",
        path_arg(&demo),
        "-c",
        "distro=fedora-40,centos-stream-9",
        "-c",
        "arch=x86_64",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("{\n  \"/") && text.ends_with("\n}\n"),
        "{text}"
    );
    let printed: Map<String, Value> = serde_json::from_str(&text).expect("JSON");
    let selection = fmf::Selection {
        context: fmf::Context::from_args(["distro=fedora-40,centos-stream-9", "arch=x86_64"])
            .expect("context"),
        ..fmf::Selection::default()
    };
    let found = fmf::discover(&demo, &selection).expect("discover");
    let names: Vec<&String> = printed.keys().collect();
    let expected: Vec<&String> = found.tests.iter().map(|t| &t.name).collect();
    assert_eq!(names, expected);
    for t in &found.tests {
        let entry = &printed[&t.name];
        assert_eq!(
            entry["metadata"],
            Value::Object(t.metadata.clone()),
            "{}",
            t.name
        );
        assert_eq!(entry["source_dir"], t.source_dir.to_str().expect("UTF-8"));
        assert!(t.source_dir.is_absolute());
    }
}

/// A plan with named sections, a filter, an exclude and a context rule:
/// the exact text.
#[test]
fn plan_sections_filters_and_context() {
    let tree = TestDir::new();
    tree.create(".fmf/version", "1\n");
    tree.create(
        "tests/main.fmf",
        "test: ./run\n/fast:\n    tag: [fast]\n/slow:\n    tag: [slow]\n\
         /gone:\n    tag: [fast]\n    adjust:\n      - when: distro == fedora\n        enabled: false\n",
    );
    tree.create(
        "plans/ci.fmf",
        "discover:\n  - how: fmf\n    name: quick\n    filter: 'tag: fast'\n  \
         - how: fmf\n    name: all\n    exclude: [slow]\n",
    );
    let root = path_arg(tree.path());
    let out = atex(&[
        "discover",
        root,
        "--plan",
        "/plans/ci",
        "-c",
        "distro=fedora",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/quick/tests/fast\n/all/tests/fast\n");
    let out = atex(&["discover", root, "--plan", "/plans/ci", "--test", "gone"]);
    assert_eq!(stdout(&out), "/quick/tests/gone\n/all/tests/gone\n");
    let out = atex(&["discover", root, "--exclude", "fast", "--json"]);
    let printed: Map<String, Value> = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        printed.keys().collect::<Vec<_>>(),
        ["/tests/gone", "/tests/slow"]
    );
    assert_eq!(
        printed["/tests/slow"]["metadata"]["tag"],
        serde_json::json!(["slow"])
    );
}

/// Bad arguments and a bad tree: exit 2, one line on stderr, nothing on
/// stdout.
#[test]
fn errors_print_nothing_on_stdout() {
    let demo = demo();
    let demo = path_arg(&demo);
    for (args, message) in [
        (
            vec!["-c", "novalue"],
            "atex: invalid context 'novalue': expected KEY=VALUE\n",
        ),
        (vec!["-c", "=x"], "atex: invalid context '=x': empty key\n"),
        (
            vec!["--plan", "/nope"],
            "atex: plan '/nope': no such node in the tree\n",
        ),
    ] {
        let mut argv = vec!["discover", demo];
        argv.extend(args);
        let out = atex(&argv);
        assert_eq!(out.status.code(), Some(2), "{argv:?}");
        assert_eq!(stdout(&out), "", "{argv:?}");
        assert_eq!(stderr(&out), message, "{argv:?}");
    }
    let out = atex(&["discover", demo, "--test", "(", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).starts_with("atex: invalid regular expression '('"),
        "{}",
        stderr(&out)
    );
    let empty = TestDir::new();
    let out = atex(&["discover", path_arg(empty.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unable to find an fmf tree root"),
        "{}",
        stderr(&out)
    );
}
