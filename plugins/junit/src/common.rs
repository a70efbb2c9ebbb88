//! Pieces both report plugins need: grouping results into tests and
//! attempts, reading bounded log tails, cleaning text of ANSI escapes and
//! control characters, UTC timestamps, and writing a file atomically.
//!
//! The HTML plugin includes this same file (`#[path]`), so it must stay free
//! of anything specific to one report format.

use std::{
    borrow::Cow,
    collections::HashMap,
    fs::File,
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Component, Path, PathBuf},
};

use atex_plugin_api::{PluginError, TestResult, time::UtcTime};

/// Longest note kept per result, in bytes (notes are not logs).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;

/// What went wrong inside a report plugin.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The options are wrong.
    #[error("bad configuration: {message}")]
    Config {
        /// Plugin name.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// The report cannot be written where it should go.
    #[error("cannot write the report to {}: {source}", path.display())]
    Unwritable {
        /// Plugin name.
        plugin: String,
        /// Where it should go.
        path: PathBuf,
        /// Why not.
        source: io::Error,
    },
    /// The temporary spool of log tails failed.
    #[error("cannot keep log tails in a temporary file: {source}")]
    Spool {
        /// Plugin name.
        plugin: String,
        /// Why.
        source: io::Error,
    },
}

impl From<ReportError> for PluginError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Config { .. } => PluginError::config(e.to_string()),
            ReportError::Unwritable { .. } | ReportError::Spool { .. } => {
                PluginError::io(e.to_string())
            }
        }
    }
}

/// Parses plugin options, refusing anything but a mapping at the top.
/// Messages do not name the plugin: the host prefixes its name.
///
/// serde's derived `Deserialize` for structs also accepts a sequence (fields
/// by position), so a YAML list would otherwise be taken as options.
pub fn parse_options<T: serde::de::DeserializeOwned>(
    ctx: &atex_plugin_api::sdk::PluginContext,
) -> Result<T, PluginError> {
    ctx.parse_config::<serde::de::IgnoredAny>()
        .map_err(|e| PluginError::config(format!("options are not valid YAML: {}", e.message)))?;
    ctx.parse_config::<HashMap<String, serde::de::IgnoredAny>>()
        .map_err(|e| {
            PluginError::config(format!(
                "options must be a mapping of option names to values ({})",
                e.message
            ))
        })?;
    ctx.parse_config::<T>()
}

/// Resolves the output path: the option (relative to the current
/// directory), else `default_name` in the work directory.
pub fn output_path(option: Option<&Path>, work_dir: &Path, default_name: &str) -> PathBuf {
    match option {
        Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
        None => work_dir.join(default_name),
    }
}

/// Checks up front that a report can be written at `path`: it is not a
/// directory, its directory exists (or can be made) and takes new files.
pub fn check_writable(plugin: &str, path: &Path) -> Result<(), ReportError> {
    let fail = |source: io::Error| ReportError::Unwritable {
        plugin: plugin.to_string(),
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        return Err(fail(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a directory",
        )));
    }
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(fail)?;
    tempfile::Builder::new()
        .prefix(".atex-write-check.")
        .tempfile_in(dir)
        .map_err(fail)?;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes a reporter's output file atomically and returns it as the list
/// `finish` hands back; a failure names the plugin and the path.
pub fn finish_report(
    plugin: &str,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<Vec<PathBuf>, ReportError> {
    write_atomically(path, write).map_err(|source| ReportError::Unwritable {
        plugin: plugin.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(vec![path.to_path_buf()])
}

/// Writes `path` through a temporary file in the same directory and a
/// rename, so readers never see half a report.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    {
        let mut w = BufWriter::with_capacity(256 * 1024, tmp.as_file());
        write(&mut w)?;
        w.flush()?;
    }
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Reports are meant to be read (CI artifact servers, other users);
        // the temporary file starts out as 0600.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_utc(ms: u64) -> String {
    format!("{}Z", UtcTime::from_unix_ms(ms).iso_seconds())
}

/// Milliseconds as seconds with three decimals, e.g. `12.345`.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Whether XML 1.0 allows the character (and it is not a C1 control or a
/// non-character, which tmt strips as well). Tab, LF and CR stay.
pub fn allowed_char(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => true,
        '\u{0}'..='\u{1f}' => false,
        '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' => false,
        '\u{fdd0}'..='\u{fdef}' => false,
        c => (c as u32) & 0xfffe != 0xfffe,
    }
}

/// Removes ANSI escape sequences (CSI, OSC and friends, two- and
/// three-character escapes) and characters XML 1.0 does not allow.
pub fn clean(s: &str) -> Cow<'_, str> {
    if s.chars().all(allowed_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\x1b' {
            if allowed_char(c) {
                out.push(c);
            }
            continue;
        }
        match it.peek().copied() {
            // CSI: parameters and intermediates 0x20-0x3f, then a final
            // byte 0x40-0x7e. Anything else ends the sequence unconsumed.
            Some('[') => {
                it.next();
                while let Some(&n) = it.peek() {
                    if ('\x20'..='\x3f').contains(&n) {
                        it.next();
                    } else {
                        if ('\x40'..='\x7e').contains(&n) {
                            it.next();
                        }
                        break;
                    }
                }
            }
            // OSC, DCS, SOS, PM, APC: a string up to BEL or ESC \ (or, to
            // not swallow a log after a broken sequence, the end of line).
            Some(']' | 'P' | 'X' | '^' | '_') => {
                it.next();
                while let Some(&n) = it.peek() {
                    if n == '\n' {
                        break;
                    }
                    it.next();
                    if n == '\x07' {
                        break;
                    }
                    if n == '\x1b' {
                        if it.peek() == Some(&'\\') {
                            it.next();
                        }
                        break;
                    }
                }
            }
            // nF escapes (ESC ( B and the like): intermediates, then a final.
            Some(n) if ('\x20'..='\x2f').contains(&n) => {
                while it.peek().is_some_and(|n| ('\x20'..='\x2f').contains(n)) {
                    it.next();
                }
                if it.peek().is_some_and(|n| ('\x30'..='\x7e').contains(n)) {
                    it.next();
                }
            }
            // Two-character escapes (ESC 7, ESC M, ESC =, ...).
            Some(n) if ('\x30'..='\x7e').contains(&n) => {
                it.next();
            }
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// Cuts `s` to at most `max` bytes at a character boundary, adding `…`.
pub fn truncate_chars(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// The end of a log file, cleaned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tail {
    /// The text shown (ANSI escapes and control characters removed).
    pub text: String,
    /// Size of the whole file in bytes.
    pub total_bytes: u64,
    /// Whether the beginning of the file was left out.
    pub truncated: bool,
}

/// Reads at most `max` bytes from the end of `path`, starting at a line
/// (when one starts within the tail) and at a character boundary.
pub fn read_tail(path: &Path, max: u64) -> io::Result<Tail> {
    let mut file = File::open(path)?;
    let total_bytes = file.metadata()?.len();
    let start = total_bytes.saturating_sub(max);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(usize::try_from(max.min(total_bytes)).unwrap_or(0));
    file.take(max).read_to_end(&mut buf)?;
    let mut slice = buf.as_slice();
    let truncated = start > 0;
    if truncated {
        // Drop the partial line (and so any partial UTF-8 sequence), unless
        // the tail is a single line.
        if let Some(nl) = slice.iter().position(|&b| b == b'\n')
            && nl + 1 < slice.len()
        {
            slice = &slice[nl + 1..];
        } else {
            while slice.first().is_some_and(|b| b & 0xc0 == 0x80) {
                slice = &slice[1..];
            }
        }
    }
    let text = clean(&String::from_utf8_lossy(slice)).into_owned();
    Ok(Tail {
        text,
        total_bytes,
        truncated,
    })
}

/// Picks the log of a result: `output.txt` (the test's own output) if
/// present, else the first `.log` or `.txt` file.
pub fn pick_log(files: &[String]) -> Option<&str> {
    let base = |f: &str| f.rsplit('/').next().unwrap_or(f).to_string();
    files
        .iter()
        .find(|f| base(f) == "output.txt")
        .or_else(|| {
            files
                .iter()
                .find(|f| f.ends_with(".log") || f.ends_with(".txt"))
        })
        .map(String::as_str)
}

/// `target` relative to the directory `from`, both absolute, lexically
/// (`..` where needed). Falls back to `target` when they share no root.
pub fn relative_path(from: &Path, target: &Path) -> PathBuf {
    fn norm(p: &Path) -> Vec<Component<'_>> {
        let mut out: Vec<Component<'_>> = Vec::new();
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                    out.pop();
                }
                c => out.push(c),
            }
        }
        out
    }
    let (a, b) = (norm(from), norm(target));
    if a.first() != b.first() {
        return target.to_path_buf();
    }
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Where a log tail kept before finish lives in the spool file.
#[derive(Debug, Clone, Copy)]
pub struct SpoolRef {
    offset: u64,
    len: u64,
    total_bytes: u64,
    truncated: bool,
}

/// Log tails of earlier attempts, kept in an anonymous temporary file so
/// that memory stays bounded (a rerun may overwrite the files).
#[derive(Default)]
pub struct Spool {
    file: Option<File>,
    end: u64,
}

impl Spool {
    /// Stores a tail.
    pub fn put(&mut self, tail: &Tail) -> io::Result<SpoolRef> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(tempfile::tempfile()?),
        };
        file.seek(SeekFrom::Start(self.end))?;
        file.write_all(tail.text.as_bytes())?;
        let r = SpoolRef {
            offset: self.end,
            len: tail.text.len() as u64,
            total_bytes: tail.total_bytes,
            truncated: tail.truncated,
        };
        self.end += r.len;
        Ok(r)
    }

    /// Reads a stored tail back.
    pub fn get(&mut self, r: SpoolRef) -> io::Result<Tail> {
        let Some(file) = &mut self.file else {
            return Err(io::Error::other("spool is empty"));
        };
        file.seek(SeekFrom::Start(r.offset))?;
        let mut buf = Vec::new();
        file.take(r.len).read_to_end(&mut buf)?;
        Ok(Tail {
            text: String::from_utf8_lossy(&buf).into_owned(),
            total_bytes: r.total_bytes,
            truncated: r.truncated,
        })
    }
}

/// A named sub-result of one attempt.
#[derive(Debug, Clone)]
pub struct Sub {
    /// Sub-result name.
    pub name: String,
    /// Status string.
    pub status: String,
    /// Note, cleaned and bounded.
    pub note: Option<String>,
    /// Start, ms since the epoch.
    pub started_ms: u64,
    /// Duration in ms.
    pub duration_ms: u64,
    /// Files relative to the results directory.
    pub files: Vec<String>,
}

/// One attempt at running a test.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    /// Attempt number, from 1.
    pub number: u32,
    /// Status of the test-level result; `None` when only sub-results came.
    pub status: Option<String>,
    /// Note, cleaned and bounded.
    pub note: Option<String>,
    /// Start, ms since the epoch.
    pub started_ms: u64,
    /// Duration in ms.
    pub duration_ms: u64,
    /// System that ran it.
    pub remote: String,
    /// Files relative to the results directory.
    pub files: Vec<String>,
    /// Extra keys as a JSON object text (empty when none).
    pub extra_json: String,
    /// Whether the host said this is the last attempt.
    pub final_attempt: bool,
    /// The log tail, when it was read as the result landed.
    pub spooled_log: Option<SpoolRef>,
    /// Named sub-results, in arrival order.
    pub subs: Vec<Sub>,
}

impl Attempt {
    /// The status, or for an attempt with only sub-results, the worst of
    /// theirs.
    pub fn effective_status(&self) -> &str {
        if let Some(s) = &self.status {
            return s;
        }
        self.subs
            .iter()
            .map(|s| s.status.as_str())
            .max_by_key(|s| severity(s))
            .unwrap_or("error")
    }
}

/// How bad a status is, for "worst of" and sorting (higher is worse).
pub fn severity(status: &str) -> u8 {
    match status {
        "pass" => 0,
        "info" => 1,
        "skip" => 2,
        "warn" => 3,
        "fail" => 5,
        "error" => 6,
        "infra" => 7,
        _ => 4,
    }
}

/// All attempts of one test on one platform.
#[derive(Debug, Clone)]
pub struct Test {
    /// Platform name.
    pub platform: String,
    /// Full test name.
    pub name: String,
    /// Results directory the files are relative to.
    pub results_dir: PathBuf,
    /// Attempts, sorted by number.
    pub attempts: Vec<Attempt>,
}

impl Test {
    /// The attempt that counts: the highest one.
    pub fn last(&self) -> Option<&Attempt> {
        self.attempts.last()
    }
    /// Attempts before the last one.
    pub fn earlier(&self) -> &[Attempt] {
        let n = self.attempts.len().saturating_sub(1);
        &self.attempts[..n]
    }
}

/// Groups results into tests and attempts as they land.
pub struct Collector {
    plugin: String,
    tests: Vec<Test>,
    index: HashMap<(String, String), usize>,
    spool: Spool,
    log_limit: u64,
}

impl Collector {
    /// A collector that keeps at most `log_limit` bytes of log per earlier
    /// attempt.
    pub fn new(plugin: &str, log_limit: u64) -> Self {
        Collector {
            plugin: plugin.to_string(),
            tests: Vec::new(),
            index: HashMap::new(),
            spool: Spool::default(),
            log_limit,
        }
    }

    /// Adds one result.
    pub fn add(&mut self, r: &TestResult) -> Result<(), ReportError> {
        let key = (r.platform.to_string(), r.test.to_string());
        let idx = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.tests.push(Test {
                    platform: key.0.clone(),
                    name: key.1.clone(),
                    results_dir: PathBuf::from(r.results_dir.as_str()),
                    attempts: Vec::new(),
                });
                self.index.insert(key, self.tests.len() - 1);
                self.tests.len() - 1
            }
        };
        let test = &mut self.tests[idx];
        let number = r.attempt.max(1);
        let pos = match test.attempts.binary_search_by_key(&number, |a| a.number) {
            Ok(p) => p,
            Err(p) => {
                test.attempts.insert(
                    p,
                    Attempt {
                        number,
                        ..Attempt::default()
                    },
                );
                p
            }
        };
        let attempt = &mut test.attempts[pos];
        let note = r
            .note
            .as_ref()
            .into_option()
            .map(|n| truncate_chars(&clean(n), MAX_NOTE_BYTES).into_owned());
        let files: Vec<String> = r.files.iter().map(|f| f.to_string()).collect();
        match r.subtest.as_ref().map(|s| s.as_str()).into_option() {
            Some(name) => attempt.subs.push(Sub {
                name: clean(name).into_owned(),
                status: clean(&r.status).into_owned(),
                note,
                started_ms: r.started_unix_ms,
                duration_ms: r.duration_ms,
                files,
            }),
            None => {
                attempt.status = Some(clean(&r.status).into_owned());
                attempt.note = note;
                attempt.started_ms = r.started_unix_ms;
                attempt.duration_ms = r.duration_ms;
                attempt.remote = clean(&r.remote).into_owned();
                attempt.final_attempt = r.final_attempt;
                let extra = r.extra_json.trim();
                attempt.extra_json = if extra.is_empty() || extra == "{}" {
                    String::new()
                } else {
                    extra.to_string()
                };
                // A rerun may write to the same files: keep this attempt's
                // log tail now. The final attempt's is read at finish.
                if !r.final_attempt
                    && self.log_limit > 0
                    && let Some(log) = pick_log(&files)
                    && let Ok(tail) = read_tail(&test.results_dir.join(log), self.log_limit)
                {
                    let plugin = &self.plugin;
                    attempt.spooled_log =
                        Some(self.spool.put(&tail).map_err(|source| ReportError::Spool {
                            plugin: plugin.clone(),
                            source,
                        })?);
                }
                attempt.files = files;
            }
        }
        Ok(())
    }

    /// The tests, sorted by platform, then name.
    pub fn sorted(&mut self) -> Vec<&Test> {
        let mut v: Vec<&Test> = self.tests.iter().collect();
        v.sort_by(|a, b| (&a.platform, &a.name).cmp(&(&b.platform, &b.name)));
        v
    }

    /// The tests in arrival order, and the spool to read tails from.
    pub fn parts(&mut self) -> (&[Test], &mut Spool) {
        (&self.tests, &mut self.spool)
    }

    /// The log tail of an attempt: spooled, else read from its file now.
    /// `Ok(None)` when it has no log file.
    pub fn attempt_log(
        spool: &mut Spool,
        test: &Test,
        attempt: &Attempt,
        limit: u64,
    ) -> Option<(String, io::Result<Tail>)> {
        let log = pick_log(&attempt.files)?.to_string();
        if let Some(r) = attempt.spooled_log {
            return Some((log, spool.get(r)));
        }
        let path = test.results_dir.join(&log);
        Some((log, read_tail(&path, limit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_767_323_045_000), "2026-01-02T03:04:05Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn clean_strips_ansi_and_controls() {
        assert_eq!(clean("\x1b[1;31mred\x1b[0m ok"), "red ok");
        assert_eq!(
            clean("a\x00b\x07c\x0bd\u{fffe}e\u{85}f\u{9b}"),
            "abcde\u{85}f"
        );
        assert_eq!(clean("\x1b]0;title\x07after"), "after");
        assert_eq!(clean("\x1b(Bx\x1b7y"), "xy");
        assert_eq!(clean("tab\tnl\ncr\r"), "tab\tnl\ncr\r");
        assert_eq!(clean("\x1b]broken\nnext"), "\nnext");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/a/b/c/d")),
            Path::new("c/d")
        );
        assert_eq!(
            relative_path(Path::new("/a/x/y"), Path::new("/a/b/c")),
            Path::new("../../b/c")
        );
    }

    #[test]
    fn seconds_format() {
        assert_eq!(seconds(0), "0.000");
        assert_eq!(seconds(61_005), "61.005");
    }
}
