//! A test's executor view ([`TestSpec`]) kept compact while it waits in
//! the queue: one string of JSON instead of a tree of maps, strings and
//! vectors. A test's metadata as a `serde_json::Value` takes several times
//! its text size (a map entry, a hash and an allocation per key), and a run
//! of tens of thousands of tests keeps every spec until its test has run;
//! a spec is unpacked only when its test starts.

use std::{path::PathBuf, time::Duration};

use crate::executor::TestSpec;

/// A [`TestSpec`], packed.
#[derive(Debug, Clone)]
pub(crate) enum PackedSpec {
    /// Every field as one JSON array.
    Json(Box<str>),
    /// Kept as given: a spec that JSON text cannot carry exactly (a
    /// directory that is not UTF-8; metadata with a fractional number,
    /// which serde_json reads back only to its best effort).
    Full(Box<TestSpec>),
}

/// The fields of a spec in the order they are packed.
type Fields = (
    String,
    PathBuf,
    String,
    (u64, u32),
    Vec<(String, String)>,
    Vec<String>,
    Vec<String>,
    bool,
    serde_json::Value,
);

impl PackedSpec {
    /// Packs `spec`.
    pub(crate) fn pack(spec: TestSpec) -> Self {
        if has_float(&spec.metadata) {
            return PackedSpec::Full(Box::new(spec));
        }
        let fields = (
            &spec.name,
            &spec.rel_dir,
            &spec.script,
            (spec.duration.as_secs(), spec.duration.subsec_nanos()),
            &spec.environment,
            &spec.require,
            &spec.recommend,
            spec.tty,
            &spec.metadata,
        );
        match serde_json::to_string(&fields) {
            Ok(text) => PackedSpec::Json(text.into_boxed_str()),
            Err(_) => PackedSpec::Full(Box::new(spec)),
        }
    }

    /// The spec as it was packed.
    pub(crate) fn unpack(&self) -> TestSpec {
        let text = match self {
            PackedSpec::Full(spec) => return (**spec).clone(),
            PackedSpec::Json(text) => text,
        };
        // Text this module wrote from the same types always reads back.
        let (name, rel_dir, script, (secs, nanos), environment, require, recommend, tty, metadata) =
            serde_json::from_str::<Fields>(text)
                .unwrap_or_else(|e| unreachable!("a packed test spec does not read back: {e}"));
        TestSpec {
            name,
            rel_dir,
            script,
            duration: Duration::new(secs, nanos),
            environment,
            require,
            recommend,
            tty,
            metadata,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TestSpec {
        TestSpec {
            name: "/tests/ünï \"q\"".into(),
            rel_dir: "tests/a b".into(),
            script: "echo 'hi'\nexit 3".into(),
            duration: Duration::new(300, 123_456_789),
            environment: vec![("B".into(), "2".into()), ("A".into(), "x\ty".into())],
            require: vec!["bash".into()],
            recommend: vec!["vim".into(), "git".into()],
            tty: true,
            metadata: serde_json::json!({
                "summary": "s", "z": 1, "a": [-2, i64::MIN, u64::MAX, null],
                "nested": {"y": true, "b": "c"}
            }),
        }
    }

    #[test]
    fn a_spec_unpacks_as_it_was_packed() {
        let packed = PackedSpec::pack(spec());
        assert!(matches!(packed, PackedSpec::Json(_)));
        let back = packed.unpack();
        assert_eq!(back, spec());
        // Key order of the metadata is kept (it is written to the system).
        assert_eq!(
            serde_json::to_string(&back.metadata).expect("json"),
            serde_json::to_string(&spec().metadata).expect("json")
        );
    }

    #[test]
    fn metadata_with_a_fraction_is_kept_whole() {
        let mut s = spec();
        s.metadata["nested"]["f"] = serde_json::json!(0.1 + 0.2);
        let packed = PackedSpec::pack(s.clone());
        assert!(matches!(packed, PackedSpec::Full(_)));
        assert_eq!(packed.unpack(), s);
    }

    #[test]
    fn a_directory_json_cannot_carry_is_kept_whole() {
        use std::os::unix::ffi::OsStrExt;
        let mut s = spec();
        s.rel_dir = PathBuf::from(std::ffi::OsStr::from_bytes(b"dir-\xff"));
        let packed = PackedSpec::pack(s.clone());
        assert!(matches!(packed, PackedSpec::Full(_)));
        assert_eq!(packed.unpack(), s);
    }
}
