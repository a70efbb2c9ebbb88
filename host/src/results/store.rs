//! The results directory.
//!
//! ```text
//! DIR/results.jsonl          one line per final result, upstream's format
//! DIR/files/<platform>/<test>/[<subtest>/]<file>
//! DIR/attempts.jsonl         one JSON object per attempt (extra data)
//! DIR/attempts/<platform>/<test>/<n>/{results,files/}
//!                            artifacts of earlier attempts of rerun tests
//! DIR/summary.json           written at the end of the run
//! ```
//!
//! Paths are normalised as upstream's `normalize_path` does: a leading `/`,
//! `.` and `..` components are dropped and control characters become `_`.
//! Each test's lines are parsed in full before any is written, then written
//! and flushed in one go.

use std::{
    collections::{HashMap, HashSet},
    fs::{self, File, OpenOptions},
    io::{self, BufRead, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Map, Value, json};

use super::pyjson;
use crate::{Status, backend::ReportedResult};

/// Errors of the results store.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The results directory holds results of another run.
    #[error("{0}: already holds results (choose another --results directory)")]
    Exists(PathBuf),
    /// A line of a test's `results` file is not a JSON object.
    #[error("{path}:{line}: bad result line: {detail}")]
    BadLine {
        /// The `results` file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The same test was stored twice for one platform.
    #[error("{test} on {platform}: results already stored")]
    Duplicate {
        /// Platform.
        platform: String,
        /// Test name.
        test: String,
    },
    /// Reading or writing failed. The I/O error is part of the message,
    /// not a `source()`, so that printing the chain does not repeat it.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        error: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ResultsError {
    let context = context.into();
    move |error| ResultsError::Io { context, error }
}

/// What the scheduler knows about one attempt besides its artifacts.
#[derive(Debug, Clone, Default)]
pub struct AttemptInfo {
    /// Platform the results are filed under.
    pub platform: String,
    /// Full test name.
    pub test: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Whether this attempt's results are the test's results (no rerun
    /// follows).
    pub final_attempt: bool,
    /// Name of the system that ran it.
    pub remote: String,
    /// Name of the provisioner that made the system.
    pub provisioner: String,
    /// Start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Wall time of the attempt.
    pub duration: Duration,
    /// Exit code of the test, when known.
    pub exit_code: Option<i32>,
    /// Reboots during the test.
    pub reboots: u32,
    /// Whether the system was lost during the test.
    pub system_lost: bool,
    /// Why the attempt ended (`exit code 3`, `timed out after 5m`, ...).
    pub reason: Option<String>,
}

/// upstream's `normalize_path`.
pub fn normalize_path(path: &str) -> String {
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .map(|p| {
            p.chars()
                .map(|c| {
                    let u = c as u32;
                    if u <= 0x1f || (0x7f..=0x9f).contains(&u) {
                        '_'
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    parts.join("/")
}

/// The results directory of one run. Not thread-safe by itself: one
/// thread (the scheduler's results thread) owns it.
pub struct ResultsStore {
    dir: PathBuf,
    results: File,
    attempts: File,
    /// The jobs with a final result, as [`job_key`]s: one small string a
    /// job, not two.
    seen: HashSet<Box<str>>,
    /// Attempts made by earlier runs of a reopened directory, per
    /// (platform, test): this run's attempt numbers continue after them.
    earlier_attempts: HashMap<(String, String), u32>,
}

/// What [`ResultsStore::reopen`] kept of the earlier run.
#[derive(Debug, Default)]
pub struct Reopened {
    /// Final results kept, as reporters see them, in file order.
    pub kept: Vec<ReportedResult>,
    /// (platform, test) of the tests with a kept final result.
    pub done: HashSet<(String, String)>,
    /// (platform, test) of the tests whose results were moved to
    /// `attempts/` to be run again.
    pub retried: Vec<(String, String)>,
}

/// One test's lines in `results.jsonl`.
struct StoredTest {
    platform: String,
    test: String,
    /// The raw lines, in order.
    lines: Vec<String>,
    /// The parsed lines.
    values: Vec<Value>,
}

impl StoredTest {
    /// The test's own result line (subtest `null`): status and note.
    fn own(&self) -> Option<(Option<Status>, Option<&str>)> {
        self.values.iter().rev().find(|v| v[3].is_null()).map(|v| {
            (
                v[1].as_str().map(Status::parse),
                v.get(5).and_then(Value::as_str),
            )
        })
    }
}

impl ResultsStore {
    /// Creates the store in `dir` (created if missing; an existing
    /// `results.jsonl` is refused).
    pub fn create(dir: &Path) -> Result<ResultsStore, ResultsError> {
        fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        let jsonl = dir.join("results.jsonl");
        if jsonl.exists() || dir.join("files").exists() {
            return Err(ResultsError::Exists(dir.to_path_buf()));
        }
        fs::create_dir_all(dir.join("files"))
            .map_err(io_err(format!("cannot create {}/files", dir.display())))?;
        let open = |name: &str| {
            let path = dir.join(name);
            OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(io_err(format!("cannot create {}", path.display())))
        };
        Ok(ResultsStore {
            dir: dir.to_path_buf(),
            results: open("results.jsonl")?,
            attempts: open("attempts.jsonl")?,
            seen: HashSet::new(),
            earlier_attempts: HashMap::new(),
        })
    }

    /// Reopens the results directory of an earlier run to continue it.
    /// Tests whose final result `again` accepts (given its status and
    /// note) are taken out of `results.jsonl` and `files/`: their lines
    /// and files become an earlier attempt under `attempts/`, and they run
    /// again. Every other final result stays as it is. `results.jsonl` is
    /// rewritten atomically; `attempts.jsonl` is appended to.
    pub fn reopen(
        dir: &Path,
        again: impl Fn(Option<&Status>, Option<&str>) -> bool,
    ) -> Result<(ResultsStore, Reopened), ResultsError> {
        let jsonl = dir.join("results.jsonl");
        let text = fs::read_to_string(&jsonl)
            .map_err(io_err(format!("cannot read {}", jsonl.display())))?;
        let mut tests: Vec<StoredTest> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |detail: &str| ResultsError::BadLine {
                path: jsonl.clone(),
                line: i + 1,
                detail: detail.into(),
            };
            let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
            let (Some(platform), Some(test)) = (v[0].as_str(), v[2].as_str()) else {
                return Err(bad("not a [platform, status, test, ...] line"));
            };
            let key = (platform.to_string(), test.to_string());
            let at = *index.entry(key).or_insert_with(|| {
                tests.push(StoredTest {
                    platform: platform.into(),
                    test: test.into(),
                    lines: Vec::new(),
                    values: Vec::new(),
                });
                tests.len() - 1
            });
            tests[at].lines.push(line.to_string());
            tests[at].values.push(v);
        }
        // Attempts of earlier runs, to number this run's after them.
        let mut earlier_attempts: HashMap<(String, String), u32> = HashMap::new();
        if let Ok(text) = fs::read_to_string(dir.join("attempts.jsonl")) {
            for v in text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            {
                if let (Some(p), Some(t), Some(n)) = (
                    v["platform"].as_str(),
                    v["test"].as_str(),
                    v["attempt"].as_u64(),
                ) {
                    let e = earlier_attempts.entry((p.into(), t.into())).or_default();
                    *e = (*e).max(n as u32);
                }
            }
        }
        let mut reopened = Reopened::default();
        let mut keep_text = String::new();
        for t in &tests {
            let key = (t.platform.clone(), t.test.clone());
            let (status, note) = t.own().unwrap_or((None, None));
            if !again(status.as_ref(), note) {
                for l in &t.lines {
                    keep_text.push_str(l);
                    keep_text.push('\n');
                }
                reopened
                    .kept
                    .extend(t.values.iter().map(|v| reported_from_line(dir, v)));
                reopened.done.insert(key);
                continue;
            }
            // Its results become an earlier attempt.
            let n = earlier_attempts.get(&key).copied().unwrap_or(0).max(1);
            let (plat, name) = (normalize_path(&t.platform), normalize_path(&t.test));
            let attempt_dir = dir.join(format!("attempts/{plat}/{name}/{n}"));
            fs::create_dir_all(&attempt_dir)
                .map_err(io_err(format!("cannot create {}", attempt_dir.display())))?;
            let files = dir.join(format!("files/{plat}/{name}"));
            if files.exists() {
                move_tree(&files, &attempt_dir.join("files"))?;
            }
            let raw = attempt_dir.join("results");
            fs::write(&raw, t.lines.join("\n") + "\n")
                .map_err(io_err(format!("cannot write {}", raw.display())))?;
            earlier_attempts.insert(key.clone(), n);
            reopened.retried.push(key);
        }
        let tmp = dir.join(".results.jsonl.tmp");
        fs::write(&tmp, keep_text)
            .and_then(|()| fs::rename(&tmp, &jsonl))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                io_err(format!("cannot rewrite {}", jsonl.display()))(e)
            })?;
        let open = |name: &str| {
            let path = dir.join(name);
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(format!("cannot open {}", path.display())))
        };
        fs::create_dir_all(dir.join("files"))
            .map_err(io_err(format!("cannot create {}/files", dir.display())))?;
        let store = ResultsStore {
            dir: dir.to_path_buf(),
            results: open("results.jsonl")?,
            attempts: open("attempts.jsonl")?,
            seen: reopened.done.iter().map(|(p, t)| job_key(p, t)).collect(),
            earlier_attempts,
        };
        Ok((store, reopened))
    }

    /// The results directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where scratch artifacts directories go (same file system, so
    /// ingesting is a rename).
    pub fn scratch_dir(&self) -> PathBuf {
        self.dir.join(".scratch")
    }

    /// Consumes an attempt's artifacts directory (upstream's Test Artifacts
    /// format): the final attempt goes to `results.jsonl` and `files/`,
    /// an earlier one to `attempts/`. Returns the results as reporters see
    /// them.
    pub fn ingest(
        &mut self,
        info: &AttemptInfo,
        artifacts: &Path,
    ) -> Result<Vec<ReportedResult>, ResultsError> {
        let lines = read_results(&artifacts.join("results"))?;
        let offset = self
            .earlier_attempts
            .get(&(info.platform.clone(), info.test.clone()))
            .copied()
            .unwrap_or(0);
        let shifted;
        let info = if offset > 0 {
            shifted = AttemptInfo {
                attempt: info.attempt + offset,
                ..info.clone()
            };
            &shifted
        } else {
            info
        };
        let plat = normalize_path(&info.platform);
        let test = normalize_path(&info.test);
        let rel_dest = if info.final_attempt {
            let key = job_key(&info.platform, &info.test);
            if self.seen.contains(&key) {
                return Err(ResultsError::Duplicate {
                    platform: info.platform.clone(),
                    test: info.test.clone(),
                });
            }
            self.seen.insert(key);
            format!("files/{plat}/{test}")
        } else {
            format!("attempts/{plat}/{test}/{}/files", info.attempt)
        };
        let dest = self.dir.join(&rel_dest);
        let src_files = artifacts.join("files");
        if src_files.is_dir()
            && fs::read_dir(&src_files)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)
                    .map_err(io_err(format!("cannot create {}", parent.display())))?;
            }
            move_tree(&src_files, &dest)?;
        }
        let mut reported = Vec::with_capacity(lines.len());
        let mut text = String::new();
        for obj in &lines {
            let status = obj.get("status").and_then(Value::as_str).map(Status::parse);
            let subtest = obj.get("name").and_then(Value::as_str).map(str::to_string);
            let note = obj.get("note").and_then(Value::as_str).map(str::to_string);
            let files: Vec<String> = match obj.get("files") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            if info.final_attempt {
                let line = json!([
                    info.platform,
                    obj.get("status").cloned().unwrap_or(Value::Null),
                    info.test,
                    obj.get("name").cloned().unwrap_or(Value::Null),
                    obj.get("files")
                        .cloned()
                        .unwrap_or(Value::Array(Vec::new())),
                    obj.get("note").cloned().unwrap_or(Value::Null),
                ]);
                text.push_str(&pyjson::dumps(&line));
                text.push('\n');
            }
            let sub = subtest.as_deref().map(normalize_path);
            let rel_files = files
                .iter()
                .map(|f| match &sub {
                    Some(s) if !s.is_empty() => format!("{rel_dest}/{s}/{}", normalize_path(f)),
                    _ => format!("{rel_dest}/{}", normalize_path(f)),
                })
                .collect();
            let mut extra = Map::new();
            for (k, v) in obj {
                if !matches!(k.as_str(), "status" | "name" | "note" | "files") {
                    extra.insert(k.clone(), v.clone());
                }
            }
            if subtest.is_none() {
                // Why the attempt ended, for reporters (the test's own
                // result only, not its sub-results).
                if let Some(reason) = &info.reason {
                    extra.insert("reason".into(), reason.clone().into());
                }
                if let Some(code) = info.exit_code {
                    extra.insert("exit_code".into(), code.into());
                }
            }
            reported.push(ReportedResult {
                platform: info.platform.clone(),
                test: info.test.clone(),
                subtest,
                status,
                note,
                files: rel_files,
                results_dir: self.dir.clone(),
                started_unix_ms: info.started_unix_ms,
                duration: info.duration,
                attempt: info.attempt,
                final_attempt: info.final_attempt,
                remote: info.remote.clone(),
                extra,
            });
        }
        if info.final_attempt {
            self.results
                .write_all(text.as_bytes())
                .and_then(|()| self.results.flush())
                .map_err(io_err("cannot write results.jsonl"))?;
        } else {
            let raw = self
                .dir
                .join(format!("attempts/{plat}/{test}/{}/results", info.attempt));
            if let Some(parent) = raw.parent() {
                fs::create_dir_all(parent)
                    .map_err(io_err(format!("cannot create {}", parent.display())))?;
            }
            let body: String = lines
                .iter()
                .map(|l| format!("{}\n", Value::Object(l.clone())))
                .collect();
            fs::write(&raw, body).map_err(io_err(format!("cannot write {}", raw.display())))?;
        }
        let own = lines
            .iter()
            .rev()
            .find(|l| l.get("name").is_none_or(Value::is_null))
            .and_then(|l| l.get("status").and_then(Value::as_str));
        self.record_attempt(
            info,
            own,
            if info.final_attempt {
                None
            } else {
                Some(&rel_dest)
            },
        )?;
        let _ = fs::remove_dir_all(artifacts);
        Ok(reported)
    }

    /// Records a test that never ran to completion (given up on, or that
    /// does not fit a policy) with one result line of its own.
    pub fn record_not_run(
        &mut self,
        platform: &str,
        test: &str,
        status: &Status,
        note: &str,
    ) -> Result<ReportedResult, ResultsError> {
        let key = job_key(platform, test);
        if self.seen.contains(&key) {
            return Err(ResultsError::Duplicate {
                platform: platform.into(),
                test: test.into(),
            });
        }
        self.seen.insert(key);
        let line = json!([platform, status.as_str(), test, null, [], note]);
        self.results
            .write_all(format!("{}\n", pyjson::dumps(&line)).as_bytes())
            .and_then(|()| self.results.flush())
            .map_err(io_err("cannot write results.jsonl"))?;
        let info = AttemptInfo {
            platform: platform.into(),
            test: test.into(),
            attempt: 0,
            final_attempt: true,
            reason: Some(note.into()),
            ..AttemptInfo::default()
        };
        self.record_attempt(&info, Some(status.as_str()), None)?;
        let mut extra = Map::new();
        extra.insert("reason".into(), note.into());
        Ok(ReportedResult {
            platform: platform.into(),
            test: test.into(),
            subtest: None,
            status: Some(status.clone()),
            note: Some(note.into()),
            files: Vec::new(),
            results_dir: self.dir.clone(),
            started_unix_ms: 0,
            duration: Duration::ZERO,
            attempt: 0,
            final_attempt: true,
            remote: String::new(),
            extra,
        })
    }

    fn record_attempt(
        &mut self,
        info: &AttemptInfo,
        status: Option<&str>,
        kept_at: Option<&str>,
    ) -> Result<(), ResultsError> {
        let line = json!({
            "test": info.test,
            "platform": info.platform,
            "attempt": info.attempt,
            "final": info.final_attempt,
            "status": status,
            "remote": info.remote,
            "provisioner": info.provisioner,
            "started_unix_ms": info.started_unix_ms,
            "duration_ms": info.duration.as_millis() as u64,
            "exit_code": info.exit_code,
            "reason": info.reason,
            "reboots": info.reboots,
            "system_lost": info.system_lost,
            "files": kept_at,
        });
        self.attempts
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.attempts.flush())
            .map_err(io_err("cannot write attempts.jsonl"))
    }

    /// Writes `summary.json` with `write` (through a buffer, so a large
    /// summary is streamed, not built whole) and removes the scratch
    /// directory. The file appears whole or not at all: it is written to a
    /// temporary file beside it and renamed.
    pub fn finish_with(
        &mut self,
        write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), ResultsError> {
        let _ = fs::remove_dir_all(self.scratch_dir());
        let path = self.dir.join("summary.json");
        // Created as any file of the run (not private as a tempfile).
        let tmp = self
            .dir
            .join(format!(".summary.json.tmp{}", std::process::id()));
        let written = File::create(&tmp)
            .and_then(|f| {
                let mut w = std::io::BufWriter::new(f);
                write(&mut w)?;
                w.into_inner().map_err(|e| e.into_error()).map(drop)
            })
            .and_then(|()| fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(io_err(format!("cannot write {}", path.display())))?;
        self.results
            .sync_all()
            .map_err(io_err("cannot sync results.jsonl"))
    }
}

/// One job (a test on a platform) as one string: platform and test joined
/// by a NUL, which names do not hold.
fn job_key(platform: &str, test: &str) -> Box<str> {
    let mut key = String::with_capacity(platform.len() + 1 + test.len());
    key.push_str(platform);
    key.push('\0');
    key.push_str(test);
    key.into_boxed_str()
}

/// A `results.jsonl` line as reporters see it.
fn reported_from_line(dir: &Path, v: &Value) -> ReportedResult {
    let text = |i: usize| v.get(i).and_then(Value::as_str).map(str::to_string);
    let platform = text(0).unwrap_or_default();
    let test = text(2).unwrap_or_default();
    let subtest = text(3);
    let rel = format!(
        "files/{}/{}",
        normalize_path(&platform),
        normalize_path(&test)
    );
    let sub = subtest.as_deref().map(normalize_path);
    let files = v
        .get(4)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|f| match &sub {
                    Some(s) if !s.is_empty() => format!("{rel}/{s}/{}", normalize_path(f)),
                    _ => format!("{rel}/{}", normalize_path(f)),
                })
                .collect()
        })
        .unwrap_or_default();
    ReportedResult {
        status: text(1).map(|s| Status::parse(&s)),
        note: text(5),
        platform,
        test,
        subtest,
        files,
        results_dir: dir.to_path_buf(),
        started_unix_ms: 0,
        duration: Duration::ZERO,
        attempt: 1,
        final_attempt: true,
        remote: String::new(),
        extra: Map::new(),
    }
}

fn read_results(path: &Path) -> Result<Vec<Map<String, Value>>, ResultsError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The executor always writes one; be lenient with others.
            let mut m = Map::new();
            m.insert("status".into(), "error".into());
            m.insert("note".into(), "the test left no results".into());
            return Ok(vec![m]);
        }
        Err(e) => return Err(io_err(format!("cannot read {}", path.display()))(e)),
    };
    let mut out = Vec::new();
    for (i, line) in io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io_err(format!("cannot read {}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => out.push(m),
            Ok(_) => {
                return Err(ResultsError::BadLine {
                    path: path.into(),
                    line: i + 1,
                    detail: "not a JSON object".into(),
                });
            }
            Err(e) => {
                return Err(ResultsError::BadLine {
                    path: path.into(),
                    line: i + 1,
                    detail: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Moves `src` to `dest` (which must not exist): a rename, or a copy when
/// they are on different file systems. Symlinks are copied verbatim.
fn move_tree(src: &Path, dest: &Path) -> Result<(), ResultsError> {
    if dest.exists() {
        return Err(ResultsError::Io {
            context: format!("cannot store files at {}", dest.display()),
            error: io::Error::from(io::ErrorKind::AlreadyExists),
        });
    }
    if fs::rename(src, dest).is_ok() {
        return Ok(());
    }
    copy_tree(src, dest).map_err(io_err(format!(
        "cannot copy {} to {}",
        src.display(),
        dest.display()
    )))?;
    let _ = fs::remove_dir_all(src);
    Ok(())
}

fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let to = dest.join(entry.file_name());
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &to)?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else {
            fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifacts(root: &Path, results: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = root.join(format!("art-{}", results.len()));
        fs::create_dir_all(dir.join("files")).expect("mkdir");
        fs::write(dir.join("results"), results).expect("write");
        for (name, body) in files {
            let p = dir.join("files").join(name);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, body).expect("write");
        }
        dir
    }

    #[test]
    fn normalizes_like_upstream() {
        assert_eq!(normalize_path("/a/./b/../c"), "a/b/c");
        assert_eq!(normalize_path("/x\ty\u{85}"), "x_y_");
        assert_eq!(normalize_path("9.8@x86_64"), "9.8@x86_64");
    }

    #[test]
    fn final_and_earlier_attempts() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("res");
        let mut store = ResultsStore::create(&dir).expect("create");
        let a1 = artifacts(
            tmp.path(),
            "{\"status\": \"fail\", \"files\": [\"output.txt\"]}\n",
            &[("output.txt", "one")],
        );
        let mut info = AttemptInfo {
            platform: "p1".into(),
            test: "/t/a".into(),
            attempt: 1,
            final_attempt: false,
            ..Default::default()
        };
        let r = store.ingest(&info, &a1).expect("ingest");
        assert_eq!(r[0].files, vec!["attempts/p1/t/a/1/files/output.txt"]);
        assert!(dir.join("attempts/p1/t/a/1/files/output.txt").exists());
        let a2 = artifacts(
            tmp.path(),
            "{\"status\": \"pass\", \"files\": [\"output.txt\"]}\n{\"status\": \"pass\", \"name\": \"sub/x\", \"files\": [\"log\"], \"note\": \"n\"}\n",
            &[("output.txt", "two"), ("sub/x/log", "l")],
        );
        info.attempt = 2;
        info.final_attempt = true;
        let r = store.ingest(&info, &a2).expect("ingest");
        assert_eq!(r[1].files, vec!["files/p1/t/a/sub/x/log"]);
        let text = fs::read_to_string(dir.join("results.jsonl")).expect("read");
        assert_eq!(
            text,
            "[\"p1\", \"pass\", \"/t/a\", null, [\"output.txt\"], null]\n[\"p1\", \"pass\", \"/t/a\", \"sub/x\", [\"log\"], \"n\"]\n"
        );
        assert_eq!(
            fs::read_to_string(dir.join("files/p1/t/a/sub/x/log")).expect("read"),
            "l"
        );
        assert!(matches!(
            store.ingest(&info, &a1),
            Err(ResultsError::Duplicate { .. }) | Err(ResultsError::Io { .. })
        ));
        assert_eq!(
            fs::read_to_string(dir.join("attempts.jsonl"))
                .expect("read")
                .lines()
                .count(),
            2
        );
        assert!(matches!(
            ResultsStore::create(&dir),
            Err(ResultsError::Exists(_))
        ));
    }

    /// A job has one final result; the same test on another platform is
    /// another job.
    #[test]
    fn a_job_has_one_final_result() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut store = ResultsStore::create(&tmp.path().join("res")).expect("create");
        let gone = |store: &mut ResultsStore, platform: &str, test: &str| {
            store.record_not_run(platform, test, &Status::Infra, "system lost")
        };
        gone(&mut store, "p1", "/t").expect("first");
        gone(&mut store, "p2", "/t").expect("another platform");
        gone(&mut store, "p1", "/t/u").expect("another test");
        assert!(matches!(
            gone(&mut store, "p1", "/t"),
            Err(ResultsError::Duplicate { .. })
        ));
    }

    /// Why the attempt ended goes with the test's own result to
    /// reporters (`reason`, `exit_code`) and into attempts.jsonl; not with
    /// its sub-results, and not into results.jsonl.
    #[test]
    fn the_reason_goes_with_the_own_result() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("res");
        let mut store = ResultsStore::create(&dir).expect("create");
        let a = artifacts(
            tmp.path(),
            "{\"status\": \"fail\", \"name\": \"sub\"}\n{\"status\": \"fail\"}\n",
            &[],
        );
        let info = AttemptInfo {
            platform: "p".into(),
            test: "/t".into(),
            attempt: 1,
            final_attempt: true,
            exit_code: Some(3),
            reason: Some("exit code 3".into()),
            ..Default::default()
        };
        let r = store.ingest(&info, &a).expect("ingest");
        assert_eq!(r[0].subtest.as_deref(), Some("sub"));
        assert!(r[0].extra.is_empty(), "{:?}", r[0].extra);
        assert_eq!(r[1].extra["reason"], "exit code 3");
        assert_eq!(r[1].extra["exit_code"], 3);
        let attempts = fs::read_to_string(dir.join("attempts.jsonl")).expect("read");
        assert!(
            attempts.contains("\"reason\":\"exit code 3\""),
            "{attempts}"
        );
        let results = fs::read_to_string(dir.join("results.jsonl")).expect("read");
        assert!(!results.contains("exit code"), "{results}");
    }
}
