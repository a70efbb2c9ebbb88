//! The body of the FMF fuzz target (`host/fuzz`), kept in the library so
//! the same code also runs as a plain test over generated inputs where no
//! libFuzzer toolchain is at hand. It must never panic, whatever the input.
//!
//! The input is split at `0xFF` bytes (never valid UTF-8) into: the root
//! `main.fmf`, `child.fmf`, `dir/main.fmf`, a `when` rule, a filter and a
//! regex. Each is exercised directly (YAML parser, rule parser, filter,
//! regex) and the files are also loaded as a real tree on disk, adjusted,
//! pruned and turned into tmt tests.

use std::{fs, path::PathBuf};

use serde_json::{Map, Value};

use super::{
    context::{Context, Evaluator},
    discover::{Selection, discover_in},
    prune::{PruneOptions, filter_matches, prune},
    pyre,
    tmt::parse_duration,
    tree::{AdjustOptions, Tree},
    yaml,
};

fn scratch_dir() -> PathBuf {
    let id = format!("{:?}", std::thread::current().id())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    std::env::temp_dir().join(format!("atex-fmf-fuzz-{}-{id}", std::process::id()))
}

/// Parse `text` as YAML, and whenever the fast path
/// `yaml::parse_simple_map` answers, check that the full parser gives a
/// mapping with the same string keys (none starting with `/`) and the same
/// values, in the same order. Panics on disagreement.
pub fn check_simple_map(text: &str) {
    let full = yaml::parse(text, std::path::Path::new("fuzz.fmf"));
    if let Some(fast) = yaml::parse_simple_map(text) {
        let Ok(yaml::Yaml::Map(pairs)) = &full else {
            panic!("fast path gave {fast:?} for {text:?}, full parser {full:?}");
        };
        let mut expected = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let yaml::Yaml::Str(k) = k else {
                panic!("fast path accepted the non-string key {k:?} in {text:?}");
            };
            assert!(!k.starts_with('/'), "fast path accepted the key {k:?}");
            expected.push((k.clone(), v.clone().into_json()));
        }
        let got: Vec<(String, Value)> = fast.into_iter().collect();
        assert_eq!(got, expected, "fast path disagrees on {text:?}");
    }
    if let Ok(y) = full {
        let _ = y.into_json();
    }
}

/// Run one fuzz input through loading, the `when` parser, filters and
/// regexes. Errors are expected; panics are bugs.
pub fn fuzz_one(data: &[u8]) {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xFF).collect();
    let part = |i: usize| parts.get(i).copied().unwrap_or(&[]);
    let text = |i: usize| String::from_utf8_lossy(part(i)).into_owned();
    let path = std::path::Path::new("fuzz.fmf");

    // Direct entry points.
    for i in 0..3 {
        check_simple_map(&text(i));
    }
    let context = Context::new()
        .with("distro", ["fedora-40", "centos-stream-9"])
        .with("arch", ["x86_64"])
        .with("component", [text(5)]);
    for cs in [true, false] {
        let _ = Evaluator::new(&context, cs).matches(&text(3));
    }
    let mut sample = Map::new();
    sample.insert("tag".into(), Value::from(vec!["Tier1", "fast"]));
    sample.insert("tier".into(), Value::from(1));
    sample.insert("x".into(), Value::String(text(5)));
    let _ = filter_matches(&text(4), &sample, "/tests/one");
    let _ = pyre::search(&text(5), "fedora-40 x86_64");
    let _ = pyre::sub(&text(5), &text(3), "abc abc");
    let _ = parse_duration(&text(3));

    // A real tree on disk.
    let root = scratch_dir();
    let _ = fs::remove_dir_all(&root);
    if fs::create_dir_all(root.join(".fmf")).is_err()
        || fs::create_dir_all(root.join("dir")).is_err()
    {
        return;
    }
    let writes = [
        fs::write(root.join(".fmf/version"), "1\n"),
        fs::write(root.join("main.fmf"), part(0)),
        fs::write(root.join("child.fmf"), part(1)),
        fs::write(root.join("dir/main.fmf"), part(2)),
    ];
    if writes.iter().any(Result::is_err) {
        return;
    }
    if let Ok(mut tree) = Tree::load(&root) {
        let rules = match yaml::parse(&text(3), path) {
            Ok(y) => match y.into_json() {
                Value::Array(a) => a,
                other => vec![other],
            },
            Err(_) => Vec::new(),
        };
        let options = AdjustOptions {
            additional_rules: rules,
            ..AdjustOptions::default()
        };
        if tree.adjust(&context, &options).is_ok() {
            let prune_options = PruneOptions {
                whole: true,
                filters: vec![text(4)],
                names: vec![text(5)],
                ..PruneOptions::default()
            };
            let _ = prune(&tree, &prune_options);
            let _ = discover_in(&tree, &Selection::default());
            let _ = discover_in(
                &tree,
                &Selection {
                    plan: Some("/dir".into()),
                    ..Selection::default()
                },
            );
        }
    }
    // The streaming discovery agrees with the whole-tree one.
    let selection = Selection {
        context: context.clone(),
        filters: vec![text(4)],
        names: vec![text(5)],
        ..Selection::default()
    };
    assert!(
        super::discover::stream_agrees(&root, &selection),
        "streaming discovery differs"
    );
    assert!(super::discover::stream_agrees(&root, &Selection::default()));
    let _ = fs::remove_dir_all(&root);
}
