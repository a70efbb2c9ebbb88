//! Measured test runtimes, kept between runs.
//!
//! The scheduler starts the longest tests first. A test's declared
//! `duration` is a time limit, usually far above what it takes; the
//! runtime measured in earlier runs is a much better guess. The history
//! is a small JSON file:
//!
//! ```json
//! {"version": 1, "tests": {"/tests/a": {"runtime_ms": 1234, "runs": 3}}}
//! ```
//!
//! By default `atex run` keeps it beside the results directory, as
//! `<parent of DIR>/.atex-history.json`, so runs whose results go to
//! sibling directories share it; `--history FILE` puts it elsewhere. The
//! runtime kept is an average weighted towards recent runs (each new
//! measurement counts for half).

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// One test's entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimingEntry {
    /// Expected runtime in milliseconds.
    pub runtime_ms: u64,
    /// Runs measured.
    pub runs: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HistoryFile {
    version: u32,
    tests: BTreeMap<String, TimingEntry>,
}

/// Runtimes by test name.
#[derive(Debug, Default)]
pub struct TimingHistory {
    path: Option<PathBuf>,
    tests: BTreeMap<String, TimingEntry>,
}

impl TimingHistory {
    /// An empty history that is never saved.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads `path`; a missing or unreadable file gives an empty history
    /// (with a warning for the unreadable one).
    pub fn load(path: &Path) -> Self {
        // Parsed as it is read: the text is never held whole beside the map.
        let tests = match fs::File::open(path) {
            Ok(f) => match serde_json::from_reader::<_, HistoryFile>(std::io::BufReader::new(f)) {
                Ok(f) => f.tests,
                Err(e) => {
                    tracing::warn!("ignoring timing history {}: {e}", path.display());
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        TimingHistory {
            path: Some(path.to_path_buf()),
            tests,
        }
    }

    /// The expected runtime of `test`, when measured before.
    pub fn expected(&self, test: &str) -> Option<Duration> {
        self.tests
            .get(test)
            .map(|e| Duration::from_millis(e.runtime_ms))
    }

    /// Adds a measurement.
    pub fn record(&mut self, test: &str, runtime: Duration) {
        let ms = runtime.as_millis() as u64;
        // The name is copied only for a test measured for the first time.
        let e = match self.tests.get_mut(test) {
            Some(e) => e,
            None => self.tests.entry(test.to_string()).or_insert(TimingEntry {
                runtime_ms: ms,
                runs: 0,
            }),
        };
        if e.runs > 0 {
            e.runtime_ms = (e.runtime_ms + ms) / 2;
        }
        e.runs += 1;
    }

    /// Where it is saved.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes the file (atomically: a temp file renamed over it). The error
    /// names the file; a temp file is never left behind.
    pub fn save(&self) -> Result<(), HistoryError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // Borrowed, not cloned: a large history is not held twice.
        #[derive(Serialize)]
        struct HistoryRef<'a> {
            version: u32,
            tests: &'a BTreeMap<String, TimingEntry>,
        }
        let file = HistoryRef {
            version: 1,
            tests: &self.tests,
        };
        let err = |error: std::io::Error| HistoryError {
            path: path.clone(),
            error,
        };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(err)?;
        }
        // Streamed into the temp file, not built as one string first.
        let written = fs::File::create(&tmp)
            .and_then(|f| {
                let mut w = std::io::BufWriter::new(f);
                serde_json::to_writer_pretty(&mut w, &file)?;
                w.write_all(b"\n")?;
                w.into_inner().map_err(|e| e.into_error()).map(drop)
            })
            .and_then(|()| fs::rename(&tmp, path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(err)
    }
}

/// The timing history could not be saved.
#[derive(Debug, thiserror::Error)]
// The I/O error is part of the message, not a `source()`, so that printing
// the chain does not repeat it.
#[error("cannot save the timing history {}: {error}", path.display())]
pub struct HistoryError {
    /// The history file.
    pub path: std::path::PathBuf,
    /// What failed.
    pub error: std::io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_average() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("h.json");
        let mut h = TimingHistory::load(&path);
        assert_eq!(h.expected("/a"), None);
        h.record("/a", Duration::from_secs(10));
        h.record("/a", Duration::from_secs(20));
        h.save().expect("save");
        let h = TimingHistory::load(&path);
        assert_eq!(h.expected("/a"), Some(Duration::from_secs(15)));
    }
}
