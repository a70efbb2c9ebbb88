//! Files for reports: options, where the report goes, writing it
//! atomically, and reading the tails of logs.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Component, Path, PathBuf},
};

use super::{Collector, Error, text::clean};
use crate::{PluginError, sdk::PluginContext, view::ResultView};

/// Parses a plugin's options into `T`, refusing anything but a mapping at
/// the top. Messages do not name the plugin: the host prefixes its name.
///
/// serde's derived `Deserialize` for structs also accepts a sequence (fields
/// by position), so a YAML list would otherwise be taken as options.
pub fn parse_options<T: serde::de::DeserializeOwned>(
    ctx: &PluginContext,
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
/// Call it in the constructor, so a bad path fails the run at its start.
pub fn check_writable(path: &Path) -> Result<(), Error> {
    let fail = |source: io::Error| Error::Unwritable {
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
        // The probe file is ours, not the user's: keep only what the
        // system said, not the probe's path the temp-file library adds.
        .map_err(|e| {
            fail(
                e.raw_os_error()
                    .map_or_else(|| io::Error::from(e.kind()), io::Error::from_raw_os_error),
            )
        })?;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes a reporter's output file atomically ([`write_atomically`]) and
/// returns it as the list [`ReporterImpl::finish`] hands back; a failure
/// names the path.
///
/// [`ReporterImpl::finish`]: crate::sdk::ReporterImpl::finish
pub fn finish_report(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<Vec<PathBuf>, Error> {
    write_atomically(path, write).map_err(|source| Error::Unwritable {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(vec![path.to_path_buf()])
}

/// Writes `path` through a temporary file in the same directory and a
/// rename, so readers never see half a report. The file is readable by
/// everyone (0644), like a file written the usual way.
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

/// A reporter's one output file and the [`Collector`] that feeds it: the
/// usual shape of a reporter that writes a file at the end of the run.
///
/// [`ReportFile::new`] resolves and checks the path when the plugin is
/// constructed, [`ReportFile::add`] collects each result, and
/// [`ReportFile::write`] writes the file atomically at finish.
pub struct ReportFile {
    path: PathBuf,
    collector: Collector,
}

impl ReportFile {
    /// The file at the `option` path, else `default_name` in `work_dir`
    /// ([`output_path`]), checked with [`check_writable`]; earlier attempts
    /// keep at most `log_limit` bytes of log ([`Collector::new`]).
    pub fn new(
        option: Option<&Path>,
        work_dir: &Path,
        default_name: &str,
        log_limit: u64,
    ) -> Result<Self, Error> {
        let path = output_path(option, work_dir, default_name);
        check_writable(&path)?;
        Ok(ReportFile {
            path,
            collector: Collector::new(log_limit),
        })
    }

    /// Where the file goes (an absolute path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Collects one result.
    pub fn add(&mut self, result: &ResultView) -> Result<(), Error> {
        self.collector.add(result)
    }

    /// Writes the file atomically ([`finish_report`]): `write` gets the
    /// collected tests, the directory of the report (links to result files
    /// are relative to it, see [`relative_path`]) and the writer.
    pub fn write(
        &mut self,
        write: impl FnOnce(&mut Collector, &Path, &mut dyn Write) -> io::Result<()>,
    ) -> Result<Vec<PathBuf>, Error> {
        let dir = self.path.parent().unwrap_or(Path::new(""));
        let collector = &mut self.collector;
        finish_report(&self.path, |w| write(collector, dir, w))
    }
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
/// (when one starts within the tail) and at a character boundary, and
/// [`clean`]s it.
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

/// Where a tail kept in a [`Spool`] lives.
#[derive(Debug, Clone, Copy)]
pub struct SpoolRef {
    offset: u64,
    len: u64,
    total_bytes: u64,
    truncated: bool,
}

/// Log tails kept in an anonymous temporary file, so that memory stays
/// bounded however many attempts a run has.
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn tail_starts_at_a_line_and_a_character() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("output.txt");
        std::fs::write(&log, "first ü line\nsecond\nthird\n").expect("write");
        let t = read_tail(&log, 13).expect("tail");
        assert_eq!(t.text, "third\n");
        assert!(t.truncated);
        assert_eq!(t.total_bytes, 27);
        // One long line: cut inside it, but not inside a character.
        std::fs::write(&log, "üüüü").expect("write");
        let t = read_tail(&log, 3).expect("tail");
        assert_eq!(t.text, "ü");
        let whole = read_tail(&log, 100).expect("tail");
        assert_eq!((whole.text.as_str(), whole.truncated), ("üüüü", false));
    }

    #[test]
    fn the_log_is_output_txt_else_the_first_text_file() {
        let files = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pick_log(&files(&["a/x.log", "a/output.txt"])),
            Some("a/output.txt")
        );
        assert_eq!(pick_log(&files(&["a/x.bin", "a/y.log"])), Some("a/y.log"));
        assert_eq!(pick_log(&files(&["a/x.bin"])), None);
    }

    #[test]
    fn atomic_write_leaves_only_the_file_readable_by_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/report.txt");
        check_writable(&path).expect("writable");
        let paths = finish_report(&path, |w| w.write_all(b"hello")).expect("write");
        assert_eq!(paths, std::slice::from_ref(&path));
        assert_eq!(std::fs::read(&path).expect("read"), b"hello");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["report.txt"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        // A failing writer leaves the old report in place.
        let e = finish_report(&path, |_| Err(io::Error::other("boom"))).expect_err("fails");
        assert!(e.to_string().contains("report.txt: boom"), "{e}");
        assert_eq!(std::fs::read(&path).expect("read"), b"hello");
        // A directory is not a report.
        let e = check_writable(dir.path()).expect_err("a directory");
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[test]
    fn spool_gives_back_what_it_kept() {
        let mut spool = Spool::default();
        let a = Tail {
            text: "first".into(),
            total_bytes: 9,
            truncated: true,
        };
        let b = Tail {
            text: "second ✓".into(),
            total_bytes: 10,
            truncated: false,
        };
        let (ra, rb) = (spool.put(&a).expect("put"), spool.put(&b).expect("put"));
        assert_eq!(spool.get(rb).expect("get"), b);
        assert_eq!(spool.get(ra).expect("get"), a);
    }
}
