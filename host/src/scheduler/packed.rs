//! The tests of a run kept compact until they start ([`TestList`]).
//!
//! A test's metadata as a `serde_json::Value` takes several times its text
//! size (a map entry, a hash and an allocation per key), and most of it is
//! the same in every test of a suite: the keys a test inherits from its
//! parents. A run of tens of thousands of tests keeps every test until it
//! has run, so each is kept as numbers: the ids of text pieces (its
//! command, its environment, each `"key": value` of its metadata) stored
//! once in the list however many tests share them. A spec is unpacked only
//! when its test starts.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use super::{driver::RunTest, engine::QueuedTest};
use crate::executor::TestSpec;

/// Text pieces, each stored once, by id.
#[derive(Debug, Clone, Default)]
struct Pieces {
    ids: HashMap<Arc<str>, u32>,
    texts: Vec<Arc<str>>,
}

impl Pieces {
    /// The id of `text`, storing it when it is new.
    fn id(&mut self, text: &str) -> u32 {
        match self.ids.get(text) {
            Some(&id) => id,
            None => self.insert(Arc::from(text)),
        }
    }

    /// [`Pieces::id`] of a piece already shared elsewhere.
    fn id_shared(&mut self, text: &Arc<str>) -> u32 {
        match self.ids.get(text) {
            Some(&id) => id,
            None => self.insert(Arc::clone(text)),
        }
    }

    fn insert(&mut self, text: Arc<str>) -> u32 {
        // Four billion distinct pieces would not fit in memory anyway.
        let id = self.texts.len() as u32;
        self.ids.insert(Arc::clone(&text), id);
        self.texts.push(text);
        id
    }

    fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }
}

/// A [`TestSpec`], packed.
#[derive(Debug, Clone)]
enum PackedSpec {
    /// Piece ids: the directory, the script, the environment, `require`
    /// and `recommend` (each as JSON), then one `"key":value` per
    /// metadata entry, in order.
    Pieces {
        /// The spec's name when it is not the test's [`QueuedTest::name`].
        name: Option<Box<str>>,
        duration: std::time::Duration,
        tty: bool,
        ids: Box<[u32]>,
    },
    /// Kept as given: a spec that JSON text cannot carry exactly (a
    /// directory that is not UTF-8; metadata that is not a map or has a
    /// fractional number, which serde_json reads back only to its best
    /// effort).
    Full(Box<TestSpec>),
}

/// The fixed pieces before the metadata entries.
const FIXED: usize = 5;

impl PackedSpec {
    fn pack(spec: TestSpec, queued_name: &str, pieces: &mut Pieces) -> Self {
        let (Some(dir), serde_json::Value::Object(meta)) = (spec.rel_dir.to_str(), &spec.metadata)
        else {
            return PackedSpec::Full(Box::new(spec));
        };
        if meta.values().any(has_float) {
            return PackedSpec::Full(Box::new(spec));
        }
        let mut ids = Vec::with_capacity(FIXED + meta.len());
        ids.push(pieces.id(dir));
        ids.push(pieces.id(&spec.script));
        for text in [
            json(&spec.environment),
            json(&spec.require),
            json(&spec.recommend),
        ] {
            match text {
                Some(t) => ids.push(pieces.id(&t)),
                None => return PackedSpec::Full(Box::new(spec)),
            }
        }
        for (key, value) in meta {
            match (json(key), json(value)) {
                (Some(k), Some(v)) => ids.push(pieces.id(&format!("{k}:{v}"))),
                _ => return PackedSpec::Full(Box::new(spec)),
            }
        }
        PackedSpec::Pieces {
            name: (spec.name != queued_name).then(|| spec.name.into_boxed_str()),
            duration: spec.duration,
            tty: spec.tty,
            ids: ids.into_boxed_slice(),
        }
    }

    fn unpack(&self, queued_name: &str, pieces: &Pieces) -> TestSpec {
        let (name, duration, tty, ids) = match self {
            PackedSpec::Full(spec) => return (**spec).clone(),
            PackedSpec::Pieces {
                name,
                duration,
                tty,
                ids,
            } => (name, duration, tty, ids),
        };
        // Text this module wrote from the same types always reads back.
        fn read<T: serde::de::DeserializeOwned>(text: &str) -> T {
            serde_json::from_str(text)
                .unwrap_or_else(|e| unreachable!("a packed test spec does not read back: {e}"))
        }
        let mut meta = String::from("{");
        for (i, id) in ids[FIXED..].iter().enumerate() {
            if i > 0 {
                meta.push(',');
            }
            meta.push_str(pieces.text(*id));
        }
        meta.push('}');
        TestSpec {
            name: name.as_deref().unwrap_or(queued_name).to_string(),
            rel_dir: PathBuf::from(pieces.text(ids[0])),
            script: pieces.text(ids[1]).to_string(),
            duration: *duration,
            environment: read(pieces.text(ids[2])),
            require: read(pieces.text(ids[3])),
            recommend: read(pieces.text(ids[4])),
            tty: *tty,
            metadata: read(&meta),
        }
    }

    /// The same spec with its piece ids mapped through `map`.
    fn remap(&mut self, map: &[u32]) {
        if let PackedSpec::Pieces { ids, .. } = self {
            for id in ids.iter_mut() {
                *id = map[*id as usize];
            }
        }
    }
}

/// `v` as JSON text.
fn json<T: serde::Serialize + ?Sized>(v: &T) -> Option<String> {
    serde_json::to_string(v).ok()
}

/// Whether `v` holds a number that is neither an `i64` nor a `u64`.
fn has_float(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(m) => m.values().any(has_float),
        _ => false,
    }
}

/// One test of a [`TestList`].
#[derive(Debug, Clone)]
struct PackedTest {
    queued: QueuedTest,
    /// The piece id of its platform name.
    platform: Option<u32>,
    spec: PackedSpec,
}

/// The tests of a run, in order, each kept packed until it is taken out
/// (see the module documentation). Built from [`RunTest`]s (`collect`,
/// `From<Vec<RunTest>>`, [`TestList::push`]); what goes in comes out the
/// same.
#[derive(Debug, Clone, Default)]
pub struct TestList {
    pieces: Pieces,
    tests: Vec<PackedTest>,
}

impl TestList {
    /// An empty list.
    pub fn new() -> Self {
        TestList::default()
    }

    /// Adds `test` at the end.
    pub fn push(&mut self, test: RunTest) {
        let RunTest {
            queued,
            spec,
            platform,
        } = test;
        let spec = PackedSpec::pack(spec, &queued.name, &mut self.pieces);
        let platform = platform.map(|p| self.pieces.id(&p));
        self.tests.push(PackedTest {
            queued,
            platform,
            spec,
        });
    }

    /// Adds every test of `other` at the end.
    pub fn append(&mut self, other: TestList) {
        if self.tests.is_empty() && self.pieces.texts.is_empty() {
            *self = other;
            return;
        }
        let map: Vec<u32> = other
            .pieces
            .texts
            .iter()
            .map(|t| self.pieces.id_shared(t))
            .collect();
        self.tests.reserve(other.tests.len());
        for mut t in other.tests {
            t.spec.remap(&map);
            t.platform = t.platform.map(|p| map[p as usize]);
            self.tests.push(t);
        }
    }

    /// The number of tests.
    pub fn len(&self) -> usize {
        self.tests.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Test `i`, unpacked.
    pub fn get(&self, i: usize) -> Option<RunTest> {
        self.tests.get(i)?;
        Some(RunTest {
            queued: self.tests[i].queued.clone(),
            spec: self.spec(i),
            platform: self.platform(i).map(str::to_string),
        })
    }

    /// Every test, unpacked one by one.
    pub fn iter(&self) -> impl Iterator<Item = RunTest> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The scheduling data of test `i`.
    pub fn queued(&self, i: usize) -> &QueuedTest {
        &self.tests[i].queued
    }

    /// The scheduling data of every test, to change in place.
    pub fn queued_mut(&mut self) -> impl Iterator<Item = &mut QueuedTest> {
        self.tests.iter_mut().map(|t| &mut t.queued)
    }

    /// The platform test `i` is for (see [`RunTest::platform`]).
    pub fn platform(&self, i: usize) -> Option<&str> {
        self.tests[i].platform.map(|p| self.pieces.text(p))
    }

    /// Makes every test one for `platform` (`None`: for every platform).
    pub fn set_platform(&mut self, platform: Option<&str>) {
        let id = platform.map(|p| self.pieces.id(p));
        for t in &mut self.tests {
            t.platform = id;
        }
    }

    /// What the executor runs for test `i`, unpacked.
    pub fn spec(&self, i: usize) -> TestSpec {
        let t = &self.tests[i];
        t.spec.unpack(&t.queued.name, &self.pieces)
    }

    /// Gives back spare capacity (once the list is complete).
    pub fn shrink_to_fit(&mut self) {
        self.tests.shrink_to_fit();
        self.pieces.texts.shrink_to_fit();
        self.pieces.ids.shrink_to_fit();
    }
}

impl Extend<RunTest> for TestList {
    fn extend<I: IntoIterator<Item = RunTest>>(&mut self, iter: I) {
        for t in iter {
            self.push(t);
        }
    }
}

impl FromIterator<RunTest> for TestList {
    fn from_iter<I: IntoIterator<Item = RunTest>>(iter: I) -> Self {
        let mut list = TestList::new();
        list.extend(iter);
        list
    }
}

impl From<Vec<RunTest>> for TestList {
    fn from(tests: Vec<RunTest>) -> Self {
        tests.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(name: &str) -> TestSpec {
        TestSpec {
            name: name.into(),
            rel_dir: "tests/a b".into(),
            script: "echo 'hi'\nexit 3".into(),
            duration: Duration::new(300, 123_456_789),
            environment: vec![("B".into(), "2".into()), ("A".into(), "x\ty".into())],
            require: vec!["bash".into()],
            recommend: vec!["vim".into(), "git".into()],
            tty: true,
            metadata: serde_json::json!({
                "summary": "s", "z": 1, "a": [-2, i64::MIN, u64::MAX, null],
                "nested": {"y": true, "b": "c"}, "e": {}, "\"q\"": "ü"
            }),
        }
    }

    fn run_test(name: &str, spec: TestSpec) -> RunTest {
        RunTest::new(QueuedTest::new(name, Duration::from_secs(3)), spec)
    }

    fn assert_same(a: &RunTest, b: &RunTest) {
        assert_eq!(a.spec, b.spec);
        assert_eq!(a.platform, b.platform);
        assert_eq!(a.queued.name, b.queued.name);
        assert_eq!(a.queued.duration, b.queued.duration);
        // Key order of the metadata is kept (it is written to the system).
        assert_eq!(
            serde_json::to_string(&a.spec.metadata).expect("json"),
            serde_json::to_string(&b.spec.metadata).expect("json")
        );
    }

    #[test]
    fn tests_come_out_as_they_went_in() {
        let mut other = spec("/other ünï \"q\"");
        other.metadata["summary"] = "another".into();
        other.environment.clear();
        let mut for_p = run_test("/p", spec("/p"));
        for_p.platform = Some("fedora".into());
        let given = vec![
            run_test("/a", spec("/a")),
            // The spec's name differs from the scheduler's.
            run_test("/b", spec("/b-spec")),
            run_test("/other ünï \"q\"", other),
            for_p,
        ];
        let list = TestList::from(given.clone());
        assert_eq!(list.len(), given.len());
        for (i, t) in given.iter().enumerate() {
            assert_same(&list.get(i).expect("test"), t);
        }
        assert_eq!(list.platform(3), Some("fedora"));
        assert!(list.get(4).is_none());
        // Shared pieces are kept once: the script, the directory and the
        // metadata entries the tests have in common.
        assert!(list.pieces.texts.len() < 15, "{:?}", list.pieces.texts);
    }

    #[test]
    fn appended_lists_keep_their_tests() {
        let a: TestList = vec![run_test("/a", spec("/a"))].into();
        let mut second = spec("/b");
        second.script = "only in b".into();
        let mut b_test = run_test("/b", second);
        b_test.platform = Some("rhel".into());
        let b: TestList = vec![b_test.clone(), run_test("/c", spec("/c"))].into();
        let mut all = TestList::new();
        all.append(a);
        all.append(b);
        let want = [
            run_test("/a", spec("/a")),
            b_test,
            run_test("/c", spec("/c")),
        ];
        assert_eq!(all.len(), 3);
        for (i, t) in want.iter().enumerate() {
            assert_same(&all.get(i).expect("test"), t);
        }
        all.set_platform(Some("x"));
        assert!(all.iter().all(|t| t.platform.as_deref() == Some("x")));
        all.set_platform(None);
        assert!(all.iter().all(|t| t.platform.is_none()));
    }

    #[test]
    fn specs_json_cannot_carry_are_kept_whole() {
        use std::os::unix::ffi::OsStrExt;
        let mut float = spec("/f");
        float.metadata["nested"]["f"] = serde_json::json!(0.1 + 0.2);
        let mut dir = spec("/d");
        dir.rel_dir = PathBuf::from(std::ffi::OsStr::from_bytes(b"dir-\xff"));
        let mut not_a_map = spec("/n");
        not_a_map.metadata = serde_json::json!([1, 2]);
        for s in [float, dir, not_a_map] {
            let t = run_test(&s.name.clone(), s);
            let list = TestList::from(vec![t.clone()]);
            assert!(matches!(list.tests[0].spec, PackedSpec::Full(_)));
            assert_same(&list.get(0).expect("test"), &t);
        }
    }
}
