//! `atex discover`: the tests a tree and plan select, as names one per line
//! or, with `--json`, an object keyed by test name (in discovery order)
//! whose values are `{"metadata": {...}, "source_dir": "/abs/dir"}`.
//!
//! The text is built as the library hands out the tests
//! ([`fmf::discover_into`]): each chunk of the tree becomes a piece of text
//! on the thread that discovered it, and no test is kept after its text is
//! written. Nothing is printed before discovery has succeeded.

use std::{
    collections::HashSet,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Result;
use atex::{
    fmf::{self, Test, TestSink},
    remote,
};
use clap::Args;
use serde_json::{Map, Value};

use crate::SelectionArgs;

#[derive(Args)]
pub(crate) struct DiscoverArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// Print JSON: {name: {"metadata": {...}, "source_dir": DIR}} in discovery order.
    #[arg(long)]
    json: bool,
}

pub(crate) fn discover_tests(args: DiscoverArgs) -> Result<ExitCode> {
    let mut options = remote::RemoteOptions::default();
    if let Some(url) = &args.selection.library_url {
        options.library_url = url.clone();
    }
    let fmf_id = args.selection.fmf_id();
    let (root, selection) = args.selection.into_selection()?;
    let root = match fmf_id {
        Some(id) => remote::fetch_root(&id, &options)?.0,
        None => root.unwrap_or_else(|| PathBuf::from(".")),
    };
    let output = if selection.plan.is_some() {
        // A plan may take sections from other repositories: they are
        // fetched, and the tests listed whole.
        let found = remote::discover(&root, &selection, &options)?;
        render_tests(found.discovery.tests, args.json)?
    } else {
        render(&root, &selection, args.json)?
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`atex discover | head`) is not an error.
    if let Err(e) = output.write_to(&mut out).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    Ok(ExitCode::SUCCESS)
}

/// Discover the tests and build the text `atex discover` prints.
fn render(root: &Path, selection: &fmf::Selection, json: bool) -> Result<Rendered> {
    let chunks = fmf::discover_into(root, selection, || Chunk::new(json))?;
    if let Some(e) = chunks.iter().find_map(|c| c.error.as_ref()) {
        anyhow::bail!("cannot write JSON: {e}");
    }
    let mut seen = HashSet::new();
    let unique = chunks
        .iter()
        .flat_map(|c| &c.names)
        .all(|n| seen.insert(n.as_str()));
    if unique {
        let pieces = chunks.into_iter().map(|c| c.text).collect();
        return Ok(Rendered::framed(json, pieces));
    }
    drop(seen);
    // A guard: plans make names unique today (distinct section names
    // without `/`). A repeated name would replace the value of the earlier
    // JSON entry and keep its place, as a JSON object built test by test
    // does.
    render_tests(fmf::discover(root, selection)?.tests, json)
}

/// The text of tests discovered whole.
fn render_tests(tests: Vec<Test>, json: bool) -> Result<Rendered> {
    if !json {
        let mut text = String::new();
        for t in &tests {
            text.push_str(&t.name);
            text.push('\n');
        }
        return Ok(Rendered { pieces: vec![text] });
    }
    let mut object = Map::new();
    for t in tests {
        object.insert(t.name.clone(), entry(t));
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(object))
        .map_err(|e| anyhow::anyhow!("cannot write JSON: {e}"))?;
    text.push('\n');
    Ok(Rendered { pieces: vec![text] })
}

/// The JSON value of one test.
fn entry(t: Test) -> Value {
    let mut entry = Map::new();
    entry.insert("metadata".into(), Value::Object(t.metadata));
    entry.insert(
        "source_dir".into(),
        Value::String(t.source_dir.to_string_lossy().into_owned()),
    );
    Value::Object(entry)
}

/// The text `atex discover` prints, kept in the pieces it was built in
/// (joining them would hold the text twice).
#[derive(Debug)]
struct Rendered {
    pieces: Vec<String>,
}

impl Rendered {
    /// Frame the texts of [`Chunk`]s: for JSON, every entry starts with a
    /// separator, and the first one becomes the opening brace.
    fn framed(json: bool, mut pieces: Vec<String>) -> Rendered {
        if json {
            match pieces.iter_mut().find(|p| !p.is_empty()) {
                Some(first) => {
                    first.replace_range(..1, "{");
                    pieces.push("\n}\n".into());
                }
                None => pieces = vec!["{}\n".into()],
            }
        }
        Rendered { pieces }
    }

    /// Write the text out, piece by piece.
    fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        self.pieces
            .iter()
            .try_for_each(|piece| out.write_all(piece.as_bytes()))
    }
}

/// The text of a chunk of tests, built one test at a time: names one per
/// line, or the entries of the JSON object `serde_json::to_string_pretty`
/// gives for `{name: {"metadata": ..., "source_dir": ...}}`, each after a
/// `,` separator ([`Rendered::framed`] completes the object).
struct Chunk {
    json: bool,
    text: String,
    /// The test names, for JSON (a repeated name needs the whole object).
    names: Vec<String>,
    /// The first JSON serialization error.
    error: Option<serde_json::Error>,
}

impl Chunk {
    fn new(json: bool) -> Chunk {
        Chunk {
            json,
            text: String::new(),
            names: Vec::new(),
            error: None,
        }
    }

    fn push_json(&mut self, t: Test) -> serde_json::Result<()> {
        let name = serde_json::to_string(&t.name)?;
        self.names.push(t.name.clone());
        let body = serde_json::to_string_pretty(&entry(t))?;
        self.text.push_str(",\n  ");
        self.text.push_str(&name);
        self.text.push_str(": ");
        // JSON text holds no raw newlines inside strings: indenting every
        // line nests the entry one level.
        let mut lines = body.split('\n');
        if let Some(first) = lines.next() {
            self.text.push_str(first);
        }
        for line in lines {
            self.text.push_str("\n  ");
            self.text.push_str(line);
        }
        Ok(())
    }
}

impl TestSink for Chunk {
    fn push(&mut self, t: Test) {
        if !self.json {
            self.text.push_str(&t.name);
            self.text.push('\n');
        } else if self.error.is_none()
            && let Err(e) = self.push_json(t)
        {
            self.error = Some(e);
        }
    }

    fn finish(&mut self) {
        self.text.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Rendered) -> String {
        r.pieces.concat()
    }

    /// What `serde_json` prints for the whole object, the form the chunked
    /// text must match byte for byte.
    fn whole_json(tests: &[Test]) -> String {
        let mut object = Map::new();
        for t in tests {
            object.insert(t.name.clone(), entry(t.clone()));
        }
        serde_json::to_string_pretty(&Value::Object(object)).unwrap() + "\n"
    }

    #[test]
    fn json_framing() {
        assert_eq!(text(Rendered::framed(true, Vec::new())), "{}\n");
        assert_eq!(text(Rendered::framed(true, vec![String::new()])), "{}\n");
        let mut one = Chunk::new(true);
        let test = Test::from_metadata(
            "/a".into(),
            PathBuf::from("/tree"),
            PathBuf::from("."),
            serde_json::from_str(r#"{"test": "true", "x": {"y": ["\n", 1.5]}}"#).unwrap(),
        )
        .unwrap();
        one.push(test.clone());
        assert!(one.error.is_none());
        let rendered = text(Rendered::framed(true, vec![String::new(), one.text]));
        assert_eq!(rendered, whole_json(&[test]));
        assert!(rendered.starts_with("{\n  \"/a\": {\n"), "{rendered}");
    }

    /// On every tree of the FMF conformance corpus, the chunked text is
    /// what the whole object prints (JSON) or one name per line, for the
    /// tests `fmf::discover` finds.
    #[test]
    fn chunked_text_matches_whole_on_corpus() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fmf-corpus");
        let mut trees: Vec<PathBuf> = std::fs::read_dir(&corpus)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("tree"))
            .filter(|p| p.join(".fmf").is_dir())
            .collect();
        trees.sort();
        assert!(
            trees.len() > 100,
            "corpus not found at {}",
            corpus.display()
        );
        let selection = fmf::Selection {
            context: fmf::Context::from_args(["distro=fedora-40", "arch=x86_64"]).unwrap(),
            ..fmf::Selection::default()
        };
        let mut compared = 0;
        for tree in &trees {
            let Ok(found) = fmf::discover(tree, &selection) else {
                assert!(render(tree, &selection, true).is_err());
                continue;
            };
            let names: String = found.tests.iter().map(|t| t.name.clone() + "\n").collect();
            assert_eq!(text(render(tree, &selection, false).unwrap()), names);
            let json = text(render(tree, &selection, true).unwrap());
            assert_eq!(json, whole_json(&found.tests), "{}", tree.display());
            compared += usize::from(!found.tests.is_empty());
        }
        assert!(compared > 25, "only {compared} trees had tests");
    }
}
