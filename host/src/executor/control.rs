//! The test-control protocol and the results it produces.
//!
//! A test writes control lines (`word[ args]\n`, at most 4096 bytes) to the
//! file descriptor named by `ATEX_TEST_CONTROL`; `result` is followed by a
//! JSON object and the raw bytes of the files it lists. [`ControlParser`]
//! is fed the stream in arbitrary chunks, writes results and files into the
//! test's artifacts directory through [`ResultWriter`], and returns the
//! other words as [`ControlEvent`]s for the executor to act on.
//!
//! Nothing a test sends can make this write outside the artifacts
//! directory or panic: every problem becomes a [`ControlError`], which ends
//! the stream and is reported as the test's result note.

use std::{
    collections::BTreeSet,
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Map, Value};

use super::helpers::{ABORT_KEY, BEAKERLIB_KEY, REPORTED_KEY};

/// Longest control line, newline included.
pub const MAX_LINE: usize = 4096;

/// A change of the test's time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationChange {
    /// A new limit counted from now.
    Set(Duration),
    /// Move the end later.
    Extend(Duration),
    /// Move the end earlier.
    Shorten(Duration),
    /// Remember the time left (nestable; only the outermost counts).
    Save,
    /// Restore the remembered time left.
    Restore,
}

/// A control word the executor acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlEvent {
    /// `exitcode N`.
    ExitCode(i32),
    /// `duration ...`.
    Duration(DurationChange),
    /// `disconnect [SECONDS]`: the system is about to reboot; the optional
    /// argument (an extension of atex's helpers) is how long to wait for
    /// it to come back.
    Disconnect(Option<Duration>),
}

/// Bad input on the control channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// A protocol violation.
    #[error("bad test control: {0}")]
    Bad(String),
    /// A `result` whose JSON is unusable.
    #[error("bad result JSON: {0}")]
    BadJson(String),
    /// Writing an artifact failed.
    #[error("cannot write artifact {path}: {message}")]
    Io {
        /// The artifact.
        path: String,
        /// What failed.
        message: String,
    },
}

/// Parses `5m`, `90`, `2h`, `1d` (seconds when no unit), as upstream's
/// test-control `duration` does.
pub fn parse_simple_duration(text: &str) -> Option<Duration> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// Turns a name a test sent into a relative path inside the artifacts
/// directory, normalised as upstream does (and as the results store maps
/// names to paths): empty, `.` and `..` parts are dropped, so a leading
/// `/` goes (`/setup` is `setup`) and nothing climbs out; control
/// characters become `_`. `None` when nothing is left.
pub fn safe_relative(name: &str) -> Option<PathBuf> {
    let parts: Vec<String> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .map(|p| {
            p.chars()
                .map(|c| if c.is_control() { '_' } else { c })
                .collect()
        })
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.iter().collect())
    }
}

enum State {
    /// Reading a control line.
    Line(Vec<u8>),
    /// Reading `n` bytes of result JSON.
    Json { want: usize, buf: Vec<u8> },
    /// Copying file payloads of a result.
    Files {
        result: Map<String, Value>,
        files: Vec<(PathBuf, u64)>,
        open: Option<File>,
    },
    /// After an error nothing more is read.
    Failed,
}

/// Incremental parser of one control stream.
pub struct ControlParser {
    state: State,
}

impl Default for ControlParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ControlParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        ControlParser {
            state: State::Line(Vec::new()),
        }
    }

    /// Whether a `result` payload is partly read (the stream may not end
    /// here without an error).
    pub fn in_progress(&self) -> bool {
        match &self.state {
            State::Line(buf) => !buf.is_empty(),
            State::Json { .. } | State::Files { .. } => true,
            State::Failed => false,
        }
    }

    /// Feeds bytes; results go to `writer`, other words are returned.
    /// After an error, later calls do nothing.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        writer: &mut ResultWriter,
    ) -> Result<Vec<ControlEvent>, ControlError> {
        let mut events = Vec::new();
        while !data.is_empty() {
            let r = self.step(&mut data, writer, &mut events);
            if let Err(e) = r {
                self.state = State::Failed;
                return Err(e);
            }
            if matches!(self.state, State::Failed) {
                break;
            }
        }
        Ok(events)
    }

    /// The stream ended; an unfinished payload is an error.
    pub fn finish(&mut self) -> Result<(), ControlError> {
        let err = match &self.state {
            State::Line(buf) if !buf.is_empty() => Some("the stream ended in the middle of a line"),
            State::Json { .. } => Some("EOF when reading result JSON"),
            State::Files { .. } => Some("EOF when reading data"),
            _ => None,
        };
        self.state = State::Line(Vec::new());
        err.map_or(Ok(()), |e| Err(ControlError::Bad(e.into())))
    }

    fn step(
        &mut self,
        data: &mut &[u8],
        writer: &mut ResultWriter,
        events: &mut Vec<ControlEvent>,
    ) -> Result<(), ControlError> {
        match &mut self.state {
            State::Failed => {
                *data = &[];
                Ok(())
            }
            State::Line(buf) => {
                let (chunk, rest, complete) = match data.iter().position(|&b| b == b'\n') {
                    Some(i) => (&data[..i], &data[i + 1..], true),
                    None => (*data, &[][..], false),
                };
                if buf.len() + chunk.len() + usize::from(complete) > MAX_LINE {
                    return Err(ControlError::Bad(format!(
                        "control line longer than {MAX_LINE} bytes"
                    )));
                }
                buf.extend_from_slice(chunk);
                *data = rest;
                if complete {
                    let line = std::mem::take(buf);
                    self.line(&line, events)?;
                }
                Ok(())
            }
            State::Json { want, buf } => {
                let take = (*want - buf.len()).min(data.len());
                buf.extend_from_slice(&data[..take]);
                *data = &data[take..];
                if buf.len() == *want {
                    let json = std::mem::take(buf);
                    self.state = start_files(&json, writer)?;
                    self.maybe_done(writer)?;
                }
                Ok(())
            }
            State::Files { files, open, .. } => {
                let Some((path, left)) = files.first_mut() else {
                    return self.maybe_done(writer);
                };
                if open.is_none() {
                    *open = Some(writer.open_append(path)?);
                }
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                if let Some(file) = open.as_mut() {
                    file.write_all(&data[..take])
                        .map_err(|e| ControlError::Io {
                            path: path.display().to_string(),
                            message: e.to_string(),
                        })?;
                }
                *left -= take as u64;
                *data = &data[take..];
                self.maybe_done(writer)
            }
        }
    }

    /// Closes finished files and, when every payload is in, reports the result.
    fn maybe_done(&mut self, writer: &mut ResultWriter) -> Result<(), ControlError> {
        if let State::Files {
            result,
            files,
            open,
        } = &mut self.state
        {
            while let Some((path, 0)) = files.first() {
                if open.is_none() {
                    // An empty file still exists afterwards.
                    writer.open_append(path)?;
                }
                files.remove(0);
                *open = None;
            }
            if files.is_empty() {
                let result = std::mem::take(result);
                self.state = State::Line(Vec::new());
                writer.report(result)?;
            }
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<ControlEvent>) -> Result<(), ControlError> {
        let text = std::str::from_utf8(line)
            .map_err(|_| ControlError::Bad("control line is not valid UTF-8".into()))?;
        if text.is_empty() {
            return Err(ControlError::Bad("empty control line".into()));
        }
        let (word, arg) = text.split_once(' ').unwrap_or((text, ""));
        match word {
            "noop" => Ok(()),
            "disconnect" => {
                // Anything else after the word is ignored, as before.
                events.push(ControlEvent::Disconnect(parse_simple_duration(arg.trim())));
                Ok(())
            }
            "exitcode" => {
                let code = arg
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| ControlError::Bad(format!("exitcode: not a number: {arg:?}")))?;
                events.push(ControlEvent::ExitCode(code));
                Ok(())
            }
            "duration" => {
                let arg = arg.trim();
                let change = match arg {
                    "save" => DurationChange::Save,
                    "restore" => DurationChange::Restore,
                    _ => {
                        let (kind, value): (fn(Duration) -> DurationChange, &str) =
                            if let Some(v) = arg.strip_prefix('+') {
                                (DurationChange::Extend, v)
                            } else if let Some(v) = arg.strip_prefix('-') {
                                (DurationChange::Shorten, v)
                            } else {
                                (DurationChange::Set, arg)
                            };
                        let d = parse_simple_duration(value).ok_or_else(|| {
                            ControlError::Bad(format!("duration: cannot parse {arg:?}"))
                        })?;
                        kind(d)
                    }
                };
                events.push(ControlEvent::Duration(change));
                Ok(())
            }
            "result" => {
                let want = arg
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| ControlError::Bad(format!("result: bad length {arg:?}")))?;
                if want > 64 * 1024 * 1024 {
                    return Err(ControlError::Bad(format!(
                        "result: JSON of {want} bytes is too large"
                    )));
                }
                self.state = State::Json {
                    want,
                    buf: Vec::with_capacity(want.min(65536)),
                };
                Ok(())
            }
            _ => Err(ControlError::Bad(format!("unknown control word {word:?}"))),
        }
    }
}

fn start_files(json: &[u8], writer: &ResultWriter) -> Result<State, ControlError> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| ControlError::BadJson(e.to_string()))?;
    let Value::Object(result) = value else {
        return Err(ControlError::BadJson(
            "a result must be a JSON object".into(),
        ));
    };
    let name = match result.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ControlError::BadJson("'name' must be a string".into())),
    };
    let dir = match name {
        None => PathBuf::new(),
        Some(n) => safe_relative(n)
            .ok_or_else(|| ControlError::BadJson(format!("result name {n:?} names no path")))?,
    };
    let mut files = Vec::new();
    match result.get("files") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for entry in list {
                let (Some(fname), Some(len)) = (
                    entry.get("name").and_then(Value::as_str),
                    entry.get("length").and_then(Value::as_u64),
                ) else {
                    return Err(ControlError::BadJson(format!(
                        "each of 'files' needs a string 'name' and an integer 'length': {entry}"
                    )));
                };
                let rel = safe_relative(fname).ok_or_else(|| {
                    ControlError::BadJson(format!("file name {fname:?} names no path"))
                })?;
                files.push((writer.files_dir().join(&dir).join(rel), len));
            }
        }
        Some(_) => return Err(ControlError::BadJson("'files' must be a list".into())),
    }
    Ok(State::Files {
        result,
        files,
        open: None,
    })
}

/// Collects results the way upstream's reporter does: partial results are
/// merged until a final one for the same name arrives, files are kept as a
/// sorted set, `testout` links the test output into the result's files.
pub struct ResultWriter {
    dir: PathBuf,
    results: File,
    /// Pending partial results by name ("" for the test itself), first-seen order.
    partial: Vec<(String, Map<String, Value>)>,
    nameless_seen: bool,
    /// The test's own final result, once written.
    own: Option<Map<String, Value>>,
    /// The worst status sent by a report-result helper.
    reported_worst: Option<String>,
    /// A `tmt-abort` arrived.
    abort_requested: bool,
    /// BeakerLib's `TestResults`, as the run script summarised it.
    beakerlib: Option<Map<String, Value>>,
}

/// How bad a status a report-result helper sent is, as tmt orders them
/// for a shell test's verdict (skip < pass < warn < fail; error above).
fn reported_rank(status: &str) -> u8 {
    match status {
        "skip" => 0,
        "pass" | "info" => 1,
        "warn" => 2,
        "fail" => 3,
        "error" => 4,
        _ => 2,
    }
}

impl ResultWriter {
    /// Creates `results`, `files/` and `testout.temp` in `dir`, which must
    /// not already hold the first two. An existing `testout.temp` is kept
    /// (the scheduler creates it beforehand to show it while the test
    /// runs).
    pub fn create(dir: &Path) -> std::io::Result<ResultWriter> {
        std::fs::create_dir(dir.join("files"))?;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("testout.temp"))?;
        let results = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(dir.join("results"))?;
        Ok(ResultWriter {
            dir: dir.to_path_buf(),
            results,
            partial: Vec::new(),
            nameless_seen: false,
            own: None,
            reported_worst: None,
            abort_requested: false,
            beakerlib: None,
        })
    }

    /// Forgets every result and file of the attempt so far (a restart:
    /// tmt collects nothing from the attempt it restarts); the test
    /// output goes on.
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.results.set_len(0)?;
        std::fs::remove_dir_all(self.files_dir())?;
        std::fs::create_dir(self.files_dir())?;
        self.partial.clear();
        self.nameless_seen = false;
        self.own = None;
        self.reported_worst = None;
        self.abort_requested = false;
        self.beakerlib = None;
        Ok(())
    }

    /// The worst status the test sent with a report-result helper.
    pub fn reported_worst(&self) -> Option<&str> {
        self.reported_worst.as_deref()
    }

    /// Whether the test called `tmt-abort`.
    pub fn abort_requested(&self) -> bool {
        self.abort_requested
    }

    /// BeakerLib's `TestResults` summary (`found`, `state`, `result`).
    pub fn beakerlib(&self) -> Option<&Map<String, Value>> {
        self.beakerlib.as_ref()
    }

    /// Whether the test's own final result was written.
    pub fn own_written(&self) -> bool {
        self.nameless_seen
    }

    /// `<artifacts>/files`.
    pub fn files_dir(&self) -> PathBuf {
        self.dir.join("files")
    }

    /// Where the test's output is collected.
    pub fn testout_path(&self) -> PathBuf {
        self.dir.join("testout.temp")
    }

    /// Creates `dir` under `files/`, refusing one that a symlink planted by
    /// the test leads out of the artifacts.
    fn ensure_dir(&self, dir: &Path) -> Result<(), ControlError> {
        let io = |e: std::io::Error| ControlError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let real = dir.canonicalize().map_err(io)?;
        let root = self.files_dir().canonicalize().map_err(io)?;
        if real.starts_with(&root) {
            Ok(())
        } else {
            Err(ControlError::Bad(format!(
                "{} leads outside the artifacts",
                dir.display()
            )))
        }
    }

    fn open_append(&self, path: &Path) -> Result<File, ControlError> {
        if let Some(parent) = path.parent() {
            self.ensure_dir(parent)?;
        }
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| ControlError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }

    /// Reports one result (as received, with `files` as `[{name, length}]`
    /// or a list of names).
    pub fn report(&mut self, mut result: Map<String, Value>) -> Result<(), ControlError> {
        if matches!(result.remove(REPORTED_KEY), Some(Value::Bool(true)))
            && let Some(status) = result.get("status").and_then(Value::as_str)
            && self
                .reported_worst
                .as_deref()
                .is_none_or(|w| reported_rank(status) >= reported_rank(w))
        {
            self.reported_worst = Some(status.to_string());
        }
        if matches!(result.remove(ABORT_KEY), Some(Value::Bool(true))) {
            self.abort_requested = true;
        }
        if let Some(Value::Object(summary)) = result.remove(BEAKERLIB_KEY) {
            self.beakerlib = Some(summary);
        }
        // Upstream keeps an empty list: `"files": []` is written as sent.
        let had_files = matches!(result.get("files"), Some(Value::Array(_)));
        let names: BTreeSet<String> = match result.remove("files") {
            Some(Value::Array(list)) => list
                .into_iter()
                .filter_map(|f| match f {
                    Value::String(s) => Some(s),
                    Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
                    _ => None,
                })
                .collect(),
            _ => BTreeSet::new(),
        };
        if had_files {
            result.insert(
                "files".into(),
                Value::Array(names.into_iter().map(Value::String).collect()),
            );
        }
        let partial = matches!(result.remove("partial"), Some(Value::Bool(true)));
        if matches!(result.get("testout"), Some(Value::String(s)) if s.is_empty()) {
            return Err(ControlError::BadJson(
                "'testout' specified, but empty".into(),
            ));
        }
        let key = result
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let pos = self.partial.iter().position(|(k, _)| *k == key);
        if partial {
            match pos {
                Some(i) => merge_partial(&mut self.partial[i].1, result),
                None => self.partial.push((key, result)),
            }
            return Ok(());
        }
        let merged = match pos {
            Some(i) => {
                let (_, mut pending) = self.partial.remove(i);
                merge_partial(&mut pending, result);
                pending
            }
            None => result,
        };
        self.write(merged)
    }

    fn write(&mut self, mut result: Map<String, Value>) -> Result<(), ControlError> {
        let name = result
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let had_files = result.contains_key("files");
        let mut files: Vec<String> = match result.remove("files") {
            Some(Value::Array(list)) => list
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        files.sort();
        files.dedup();
        if let Some(testout) = result.remove("testout") {
            let Value::String(testout) = testout else {
                return Err(ControlError::BadJson("'testout' must be a string".into()));
            };
            let rel = safe_relative(&testout).ok_or_else(|| {
                ControlError::BadJson(format!("testout {testout:?} names no path"))
            })?;
            let dir =
                match &name {
                    Some(n) => self.files_dir().join(safe_relative(n).ok_or_else(|| {
                        ControlError::BadJson(format!("unsafe result name {n:?}"))
                    })?),
                    None => self.files_dir(),
                };
            let target = dir.join(&rel);
            if target.exists() {
                return Err(ControlError::BadJson(format!(
                    "testout target {testout:?} already exists"
                )));
            }
            if let Some(parent) = target.parent() {
                self.ensure_dir(parent)?;
            }
            std::fs::hard_link(self.testout_path(), &target).map_err(|e| ControlError::Io {
                path: target.display().to_string(),
                message: e.to_string(),
            })?;
            files.retain(|f| *f != testout);
            files.insert(0, testout);
        }
        if had_files || !files.is_empty() {
            result.insert(
                "files".into(),
                Value::Array(files.into_iter().map(Value::String).collect()),
            );
        }
        if name.is_none() {
            self.nameless_seen = true;
            self.own = Some(result.clone());
        }
        let mut line = serde_json::to_vec(&Value::Object(result))
            .map_err(|e| ControlError::BadJson(e.to_string()))?;
        line.push(b'\n');
        self.results.write_all(&line).map_err(|e| ControlError::Io {
            path: self.dir.join("results").display().to_string(),
            message: e.to_string(),
        })
    }

    /// The fallback result, then every pending partial, as upstream does
    /// when a test ends. `aborted` is the note of an abnormal ending.
    pub fn finish(
        &mut self,
        exit_code: Option<i32>,
        aborted: Option<&str>,
    ) -> Result<(), ControlError> {
        if !self.nameless_seen {
            let pending = self
                .partial
                .iter()
                .find(|(k, _)| k.is_empty())
                .map(|(_, r)| r);
            let has_testout = pending.is_some_and(|r| {
                r.contains_key("testout")
                    || r.get("files")
                        .and_then(Value::as_array)
                        .is_some_and(|f| f.iter().any(|v| v == "output.txt"))
            });
            let mut fallback = Map::new();
            match aborted {
                Some(note) => {
                    fallback.insert("status".into(), "infra".into());
                    fallback.insert("note".into(), note.into());
                }
                None => {
                    let status = pending
                        .and_then(|r| r.get("status").cloned())
                        .unwrap_or_else(|| {
                            if exit_code == Some(0) {
                                "pass".into()
                            } else {
                                "fail".into()
                            }
                        });
                    fallback.insert("status".into(), status);
                }
            }
            fallback.insert("partial".into(), Value::Bool(true));
            if !has_testout {
                fallback.insert("testout".into(), "output.txt".into());
            }
            self.report(fallback)?;
        }
        let mut first_error = None;
        for (_, pending) in std::mem::take(&mut self.partial) {
            if let Err(e) = self.write(pending) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether the test reported a status for itself (a nameless result,
    /// final or partial), rather than leaving it to its exit code.
    pub fn own_reported(&self) -> bool {
        self.nameless_seen
            || self
                .partial
                .iter()
                .any(|(k, r)| k.is_empty() && r.contains_key("status"))
    }

    /// The test's own final result, once written.
    pub fn own_result(&self) -> Option<&Map<String, Value>> {
        self.own.as_ref()
    }
}

/// Upstream's merge of a partial result into a pending one.
fn merge_partial(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (_, Value::Null) => {
                into.remove(&key);
            }
            (Some(Value::Object(a)), Value::Object(b)) => merge_partial(a, b),
            (Some(Value::Array(a)), Value::Array(b)) if key == "files" => {
                for v in b {
                    if !a.contains(&v) {
                        a.push(v);
                    }
                }
                a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
            (Some(Value::Array(a)), Value::Array(b)) => a.extend(b),
            (_, v) => {
                into.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, ResultWriter) {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = ResultWriter::create(dir.path()).expect("create");
        (dir, w)
    }

    fn lines(dir: &Path) -> Vec<Value> {
        std::fs::read_to_string(dir.join("results"))
            .expect("results")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }

    fn result_msg(json: &str, payload: &[u8]) -> Vec<u8> {
        let mut v = format!("result {}\n{json}", json.len()).into_bytes();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn disconnect_takes_an_optional_reboot_timeout() {
        let (_d, mut w) = setup();
        let mut p = ControlParser::new();
        let events = p
            .feed(b"disconnect 300\ndisconnect\ndisconnect soon\n", &mut w)
            .expect("ok");
        assert_eq!(
            events,
            vec![
                ControlEvent::Disconnect(Some(Duration::from_secs(300))),
                ControlEvent::Disconnect(None),
                ControlEvent::Disconnect(None),
            ]
        );
    }

    #[test]
    fn helper_keys_are_taken_out_and_remembered() {
        let (d, mut w) = setup();
        let mut p = ControlParser::new();
        let mut input = Vec::new();
        for json in [
            r#"{"name":"/a","status":"pass","atex-report-result":true}"#,
            r#"{"name":"/b","status":"fail","atex-report-result":true}"#,
            r#"{"name":"/c","status":"warn","atex-report-result":true}"#,
            r#"{"name":"/d","status":"error"}"#,
            r#"{"partial":true,"atex-abort":true}"#,
            r#"{"partial":true,"atex-beakerlib":{"found":true,"state":"complete","result":"WARN"}}"#,
        ] {
            input.extend(result_msg(json, b""));
        }
        p.feed(&input, &mut w).expect("ok");
        // Only the helpers' results count, and the worst one wins.
        assert_eq!(w.reported_worst(), Some("fail"));
        assert!(w.abort_requested());
        assert_eq!(
            w.beakerlib().and_then(|m| m.get("result")),
            Some(&Value::from("WARN"))
        );
        w.finish(Some(0), None).expect("finish");
        let text = std::fs::read_to_string(d.path().join("results")).expect("results");
        assert!(!text.contains("atex-"), "{text}");
        assert_eq!(lines(d.path()).len(), 5);
    }

    #[test]
    fn reset_forgets_results_and_files() {
        let (d, mut w) = setup();
        let mut p = ControlParser::new();
        let json = r#"{"name":"/a","status":"fail","atex-report-result":true,"files":[{"name":"x.log","length":3}]}"#;
        p.feed(&result_msg(json, b"abc"), &mut w).expect("ok");
        assert!(d.path().join("files/a/x.log").exists());
        w.reset().expect("reset");
        assert_eq!(w.reported_worst(), None);
        assert!(!d.path().join("files/a").exists());
        w.finish(Some(0), None).expect("finish");
        assert_eq!(
            lines(d.path()),
            vec![serde_json::json!({"status": "pass", "files": ["output.txt"]})]
        );
    }

    #[test]
    fn words_are_parsed_byte_by_byte() {
        let (_d, mut w) = setup();
        let mut p = ControlParser::new();
        let mut events = Vec::new();
        for b in b"noop\nduration +5m\nduration save\nexitcode 3\ndisconnect\n" {
            events.extend(p.feed(std::slice::from_ref(b), &mut w).expect("ok"));
        }
        assert_eq!(
            events,
            vec![
                ControlEvent::Duration(DurationChange::Extend(Duration::from_secs(300))),
                ControlEvent::Duration(DurationChange::Save),
                ControlEvent::ExitCode(3),
                ControlEvent::Disconnect(None),
            ]
        );
    }

    #[test]
    fn result_with_files_in_chunks() {
        let (d, mut w) = setup();
        let mut p = ControlParser::new();
        let json = r#"{"status":"pass","name":"sub/one","files":[{"name":"a/b.log","length":5},{"name":"c","length":0}]}"#;
        let msg = result_msg(json, b"hello");
        for chunk in msg.chunks(3) {
            p.feed(chunk, &mut w).expect("ok");
        }
        p.finish().expect("complete");
        assert_eq!(
            std::fs::read(d.path().join("files/sub/one/a/b.log")).expect("file"),
            b"hello"
        );
        assert!(d.path().join("files/sub/one/c").exists());
        let l = lines(d.path());
        assert_eq!(l[0]["files"], serde_json::json!(["a/b.log", "c"]));
        assert_eq!(l[0]["name"], "sub/one");
    }

    #[test]
    fn partial_results_merge() {
        let (d, mut w) = setup();
        let mut p = ControlParser::new();
        let mut msg = result_msg(
            r#"{"status":"fail","partial":true,"tags":["a"],"x":1}"#,
            b"",
        );
        msg.extend(result_msg(
            r#"{"partial":true,"tags":["b"],"x":null,"note":"n"}"#,
            b"",
        ));
        p.feed(&msg, &mut w).expect("ok");
        assert!(lines(d.path()).is_empty());
        w.finish(Some(0), None).expect("finish");
        let l = lines(d.path());
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["status"], "fail");
        assert_eq!(l[0]["tags"], serde_json::json!(["a", "b"]));
        assert!(l[0].get("x").is_none());
        assert_eq!(l[0]["files"], serde_json::json!(["output.txt"]));
        assert!(d.path().join("files/output.txt").exists());
    }

    #[test]
    fn fallback_from_exit_code_and_abort() {
        let (d, mut w) = setup();
        w.finish(Some(1), None).expect("finish");
        assert_eq!(lines(d.path())[0]["status"], "fail");
        let (d, mut w) = setup();
        w.finish(None, Some("test duration timeout reached"))
            .expect("finish");
        let l = lines(d.path());
        assert_eq!(l[0]["status"], "infra");
        assert_eq!(l[0]["note"], "test duration timeout reached");
    }

    #[test]
    fn a_nameless_final_result_suppresses_the_fallback() {
        let (d, mut w) = setup();
        let mut p = ControlParser::new();
        p.feed(&result_msg(r#"{"status":"warn"}"#, b""), &mut w)
            .expect("ok");
        w.finish(Some(1), None).expect("finish");
        let l = lines(d.path());
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["status"], "warn");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty line", b"\n".to_vec()),
            ("unknown word", b"frobnicate\n".to_vec()),
            ("long line", vec![b'x'; 5000]),
            ("bad json", b"result 3\n{x}".to_vec()),
            ("not an object", result_msg("[1]", b"")),
            (
                "nothing left of a file name",
                result_msg(r#"{"files":[{"name":"./..","length":1}]}"#, b"x"),
            ),
            (
                "nothing left of a result name",
                result_msg(r#"{"name":"/","files":[{"name":"f","length":1}]}"#, b"x"),
            ),
            ("bad length", b"result x\n".to_vec()),
            ("exitcode", b"exitcode nope\n".to_vec()),
            ("duration", b"duration 5y\n".to_vec()),
            ("empty testout", result_msg(r#"{"testout":""}"#, b"")),
        ];
        for (what, input) in cases {
            let (d, mut w) = setup();
            let mut p = ControlParser::new();
            assert!(p.feed(&input, &mut w).is_err(), "{what} must be an error");
            // Nothing may be written outside the artifacts directory.
            assert!(
                !d.path().parent().expect("parent").join("x").exists(),
                "{what}"
            );
        }
    }

    /// Upstream accepts names with a leading `/` or `..` parts and
    /// normalises them; refusing them made valid results infra (#14).
    #[test]
    fn names_are_normalised_like_upstream_and_stay_inside() {
        assert_eq!(safe_relative("/setup"), Some(PathBuf::from("setup")));
        assert_eq!(safe_relative("/log.txt"), Some(PathBuf::from("log.txt")));
        assert_eq!(safe_relative("a/../../x"), Some(PathBuf::from("a/x")));
        assert_eq!(safe_relative("tab\there"), Some(PathBuf::from("tab_here")));
        assert_eq!(safe_relative("./a//b/."), Some(PathBuf::from("a/b")));
        assert_eq!(safe_relative("/.."), None);
        let (d, mut w) = setup();
        let mut p = ControlParser::new();
        let mut input = result_msg(
            r#"{"name":"/setup","status":"pass","files":[{"name":"/log.txt","length":2},{"name":"../../escape","length":1}]}"#,
            b"okx",
        );
        input.extend(result_msg(r#"{"name":"../up","testout":"/out.txt"}"#, b""));
        p.feed(&input, &mut w)
            .expect("normalised names are accepted");
        assert_eq!(
            std::fs::read(d.path().join("files/setup/log.txt")).expect("log"),
            b"ok"
        );
        assert_eq!(
            std::fs::read(d.path().join("files/setup/escape")).expect("escape"),
            b"x"
        );
        assert!(d.path().join("files/up/out.txt").exists());
        assert!(!d.path().parent().expect("parent").join("escape").exists());
        let l = lines(d.path());
        assert_eq!(l[0]["name"], "/setup");
        assert_eq!(
            l[0]["files"],
            serde_json::json!(["../../escape", "/log.txt"])
        );
    }

    #[test]
    fn stream_ending_mid_payload_is_an_error() {
        let (_d, mut w) = setup();
        let mut p = ControlParser::new();
        let json = r#"{"files":[{"name":"f","length":10}]}"#;
        p.feed(&result_msg(json, b"abc"), &mut w)
            .expect("ok so far");
        assert!(p.in_progress());
        assert!(p.finish().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_simple_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_simple_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_simple_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_simple_duration("1d"),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(parse_simple_duration(""), None);
        assert_eq!(parse_simple_duration("1.5m"), None);
    }
}
