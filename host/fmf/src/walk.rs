//! Reading an FMF tree from disk: which directories and `.fmf` files the
//! reference visits, in which order, and the parsed content of each file.
//! What the files mean is left to [`super::tree`].
//!
//! The order is python fmf's `Tree.grow()`: in each directory `main.fmf`
//! first, then the other `.fmf` files sorted, then the sub-directories
//! sorted; hidden entries only when `explore.include` names them; a
//! directory holding its own `.fmf/` (a nested tree) is skipped; a
//! symlinked directory is visited once per real path, in walk order.
//!
//! Most trees hold no symlinked directories. Those are walked by
//! [`scan`]: every directory is a task on the rayon pool, listed through
//! its own file descriptor (`getdents64`, no `stat` per entry), and its
//! files are opened relative to it and parsed on the same thread. The
//! "once per real path" rule depends on the order of a sequential walk,
//! so a tree where [`scan`] meets a symlinked directory is walked again by
//! [`Walker`], one directory after another, and its files parsed in
//! parallel afterwards.

use std::{
    cell::RefCell,
    fs,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::Arc,
};

use rayon::prelude::*;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use serde_json::{Map, Value};

use super::{
    error::{Error, Result},
    yaml::{self, Yaml},
};

/// What the walk found in one directory.
#[derive(Default)]
pub(super) struct DirPlan {
    /// `.fmf` files in processing order.
    pub(super) files: Vec<PlanFile>,
    /// Sub-directories to grow, in order.
    pub(super) dirs: Vec<(String, DirPlan)>,
}

impl DirPlan {
    /// How many nodes the plan's directories and files (other than
    /// `main.fmf`) make below its own.
    pub(super) fn node_count(&self) -> usize {
        let files = self.files.iter().filter(|f| f.name != "main.fmf").count();
        let dirs: usize = self.dirs.iter().map(|(_, d)| 1 + d.node_count()).sum();
        files + dirs
    }
}

/// One `.fmf` file of a [`DirPlan`].
pub(super) struct PlanFile {
    /// File name.
    pub(super) name: String,
    /// Full path.
    pub(super) path: Arc<Path>,
    /// Parsed content.
    pub(super) data: Result<FileData>,
}

/// A parsed file.
#[derive(Debug)]
pub(super) enum FileData {
    /// A file [`yaml::parse_simple_map`] reads, kept as text.
    Simple(Box<str>),
    /// A mapping with only plain keys (strings, no `/` directives or
    /// children), already as node data.
    Plain(Map<String, Value>),
    /// Anything else, for `Tree::update` to take apart.
    Yaml(Yaml),
}

/// Walk the tree at `root` (with the `explore.include` names) and parse
/// every `.fmf` file found.
pub(super) fn walk_and_load(root: &Path, include: &[String]) -> DirPlan {
    match scan(root, include) {
        Ok(Some(plan)) => plan,
        _ => walk_sequential(root, include),
    }
}

/// The sequential walk, then every file parsed (in parallel).
fn walk_sequential(root: &Path, include: &[String]) -> DirPlan {
    let mut walker = Walker {
        include: include.to_vec(),
        symlinkdirs: Vec::new(),
    };
    let mut plan = walker.walk(root, true).unwrap_or_default();
    let mut files = Vec::new();
    collect_files(&mut plan, &mut files);
    files
        .into_par_iter()
        // Files the walk already refused keep their error.
        .filter(|file| file.data.is_ok())
        .for_each(|file| file.data = load_file(&file.path));
    plan
}

/// Every file of `plan`, in walk order.
fn collect_files<'a>(plan: &'a mut DirPlan, out: &mut Vec<&'a mut PlanFile>) {
    out.extend(plan.files.iter_mut());
    for (_, sub) in &mut plan.dirs {
        collect_files(sub, out);
    }
}

/// `os.path.isdir`: whether `path` is a directory, following symlinks.
pub(super) fn is_dir_following(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

/// Directories the reference never descends into.
fn is_skipped(path: &Path) -> bool {
    [Path::new("/dev"), Path::new("/proc"), Path::new("/sys")].contains(&path)
}

/// Sort `.fmf` files the way `grow()` processes them: `main.fmf` first,
/// the rest by name (`T` sorts by its name first).
fn sort_files<T: Ord>(files: &mut Vec<T>, name: impl Fn(&T) -> &str) {
    files.sort_unstable();
    if let Some(pos) = files.iter().position(|f| name(f) == "main.fmf") {
        let main = files.remove(pos);
        files.insert(0, main);
    }
}

/// Whether a hidden entry is skipped.
fn is_hidden(name: &str, include: &[String]) -> bool {
    name.starts_with('.') && !include.iter().any(|i| i == name)
}

/// The sequential walk, for trees with symlinked directories.
struct Walker {
    include: Vec<String>,
    symlinkdirs: Vec<PathBuf>,
}

impl Walker {
    /// Walk a directory; `None` when it holds a `.fmf` directory and is
    /// not the root (a nested tree, which the reference skips).
    fn walk(&mut self, path: &Path, is_root: bool) -> Option<DirPlan> {
        let mut plan = DirPlan::default();
        if is_skipped(path) {
            return Some(plan);
        }
        let Ok(entries) = fs::read_dir(path) else {
            return Some(plan);
        };
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let mut dirs: Vec<(String, bool, PathBuf)> = Vec::new();
        let mut not_utf8: Vec<PathBuf> = Vec::new();
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let is_link = ft.is_symlink();
            let is_dir = if is_link {
                is_dir_following(&entry.path())
            } else {
                ft.is_dir()
            };
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                if self.holds_metadata(&entry.path(), is_dir) {
                    not_utf8.push(entry.path());
                }
                continue;
            };
            if is_dir {
                if name == ".fmf" && !is_root {
                    return None;
                }
                dirs.push((name, is_link, entry.path()));
            } else if name.ends_with(".fmf") {
                files.push((name, entry.path()));
            }
        }
        not_utf8.sort_unstable();
        for full in not_utf8 {
            plan.files.push(refused_name(full));
        }
        sort_files(&mut files, |(name, _)| name);
        for (name, full) in files {
            if is_hidden(&name, &self.include) {
                continue;
            }
            plan.files.push(PlanFile {
                name,
                path: Arc::from(full),
                // Parsed after the walk.
                data: Ok(FileData::Yaml(Yaml::Null)),
            });
        }
        dirs.sort_unstable();
        for (name, is_link, full) in dirs {
            if is_hidden(&name, &self.include) {
                continue;
            }
            if is_link {
                let real = fs::canonicalize(&full).unwrap_or_else(|_| full.clone());
                if self.symlinkdirs.contains(&real) {
                    continue;
                }
                self.symlinkdirs.push(real);
            }
            // A nested tree (with its own .fmf/) is skipped.
            if let Some(sub) = self.walk(&full, false) {
                plan.dirs.push((name, sub));
            }
        }
        Some(plan)
    }
}

impl Walker {
    /// Whether an entry whose name is not UTF-8 would have made a node:
    /// a visible `.fmf` file, or a visible directory with metadata below.
    fn holds_metadata(&mut self, path: &Path, is_dir: bool) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let name = path.file_name().map_or(&[][..], |n| n.as_bytes());
        if name.starts_with(b".") {
            return false;
        }
        if !is_dir {
            return name.ends_with(b".fmf");
        }
        self.walk(path, false)
            .is_some_and(|sub| !sub.files.is_empty() || sub.node_count() > 0)
    }
}

/// A file or directory whose name is not UTF-8 and would have made a
/// node: test names are text, and a name changed on the way (python fmf
/// and the test system see the original bytes) would point at a directory
/// that does not exist there. Discovery fails on it with the path named.
fn refused_name(path: PathBuf) -> PlanFile {
    PlanFile {
        name: path.to_string_lossy().into_owned(),
        data: Err(Error::Io {
            path: path.clone(),
            message: "the name is not valid UTF-8; FMF node names must be text: rename it".into(),
        }),
        path: Arc::from(path),
    }
}

/// [`scan`] met what only the sequential walk handles exactly: a
/// symlinked directory, or a name that is not UTF-8.
struct Fallback;

/// Walk and parse the tree at `root` in parallel; `Ok(None)` only for a
/// root that is itself skipped.
fn scan(root: &Path, include: &[String]) -> std::result::Result<Option<DirPlan>, Fallback> {
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok();
    scan_dir(fd, root.to_path_buf(), true, include)
}

/// List and parse one directory (open as `fd`; `None` when it could not
/// be opened, which the reference treats as empty), then its
/// sub-directories in parallel. `Ok(None)` for a nested tree.
fn scan_dir(
    fd: Option<OwnedFd>,
    path: PathBuf,
    is_root: bool,
    include: &[String],
) -> std::result::Result<Option<DirPlan>, Fallback> {
    let mut out = DirPlan::default();
    let Some(fd) = fd.filter(|_| !is_skipped(&path)) else {
        return Ok(Some(out));
    };
    let Ok(mut dir) = Dir::new(fd) else {
        return Ok(Some(out));
    };
    let mut files: Vec<String> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    while let Some(entry) = dir.read() {
        // A failed read ends the listing; what was read so far is kept.
        let Ok(entry) = entry else { break };
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let name = std::str::from_utf8(raw).map_err(|_| Fallback)?;
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::RegularFile => false,
            FileType::Symlink => {
                let Ok(dfd) = dir.fd() else { continue };
                let target = rustix::fs::statat(dfd, entry.file_name(), AtFlags::empty());
                if target.is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_dir()) {
                    if name == ".fmf" && !is_root {
                        return Ok(None);
                    }
                    if !is_hidden(name, include) {
                        return Err(Fallback);
                    }
                    continue;
                }
                false
            }
            _ => {
                // Unknown (some filesystems) or special: ask lstat.
                let Ok(dfd) = dir.fd() else { continue };
                match rustix::fs::statat(dfd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                        FileType::Directory => true,
                        // Resolving the link is the sequential walk's job.
                        FileType::Symlink => return Err(Fallback),
                        _ => false,
                    },
                    Err(_) => continue,
                }
            }
        };
        let name = name.to_string();
        if is_dir {
            if name == ".fmf" && !is_root {
                return Ok(None);
            }
            dirs.push(name);
        } else if name.ends_with(".fmf") {
            files.push(name);
        }
    }
    let Ok(dfd) = dir.fd() else {
        return Ok(Some(out));
    };
    sort_files(&mut files, String::as_str);
    for name in files {
        if is_hidden(&name, include) {
            continue;
        }
        let full: Arc<Path> = Arc::from(path.join(&name));
        let data = rustix::fs::openat(
            dfd,
            name.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .and_then(|fd| with_contents(fd, |bytes| parse_bytes(bytes, &full)))
        .unwrap_or_else(|e| Err(io_error(&full, e)));
        out.files.push(PlanFile {
            name,
            path: full,
            data,
        });
    }
    dirs.sort_unstable();
    dirs.retain(|name| !is_hidden(name, include));
    let subs = dirs
        .into_par_iter()
        .map(|name| {
            let sub = path.join(&name);
            let fd = rustix::fs::openat(
                dfd,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok();
            scan_dir(fd, sub, false, include).map(|found| (name, found))
        })
        .collect::<std::result::Result<Vec<_>, Fallback>>()?;
    out.dirs = subs
        .into_iter()
        .filter_map(|(name, found)| found.map(|f| (name, f)))
        .collect();
    Ok(Some(out))
}

thread_local! {
    /// A read buffer per thread, reused from file to file.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Read a whole file from `fd` into this thread's buffer and hand the
/// bytes to `f`.
fn with_contents<T>(fd: OwnedFd, f: impl FnOnce(&[u8]) -> T) -> std::io::Result<T> {
    /// A buffer above this size is given back after use.
    const KEEP: usize = 1 << 20;
    let mut file = fs::File::from(fd);
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        if buffer.is_empty() {
            buffer.resize(16 * 1024, 0);
        }
        let mut len = 0;
        loop {
            if len == buffer.len() {
                let grown = buffer.len() * 2;
                buffer.resize(grown, 0);
            }
            match std::io::Read::read(&mut file, &mut buffer[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let result = f(&buffer[..len]);
        if buffer.len() > KEEP {
            *buffer = Vec::new();
        }
        Ok(result)
    })
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Read and parse one file (the sequential walk's files).
fn load_file(path: &Path) -> Result<FileData> {
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    parse_bytes(&bytes, path)
}

/// Parse the bytes of one file, converting plain node data on the spot.
fn parse_bytes(bytes: &[u8], path: &Path) -> Result<FileData> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Yaml {
        path: path.to_path_buf(),
        line: Some(
            bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
        ),
        message: format!("invalid UTF-8: {e}"),
    })?;
    // Most files are a flat mapping of plain keys, which the fast path
    // reads without the full YAML machinery. Their text is smaller than
    // the parsed data, and parsed again when its node is reached.
    if yaml::parse_simple_map(text).is_some() {
        return Ok(FileData::Simple(text.into()));
    }
    match yaml::parse(text, path)? {
        Yaml::Map(pairs)
            if pairs
                .iter()
                .all(|(k, _)| matches!(k, Yaml::Str(s) if !s.starts_with('/'))) =>
        {
            let mut map = Map::with_capacity(pairs.len());
            for (k, v) in pairs {
                if let Yaml::Str(k) = k {
                    map.insert(k, v.into_json());
                }
            }
            Ok(FileData::Plain(map))
        }
        other => Ok(FileData::Yaml(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of a plan in order, with its directory path, file path
    /// and parsed content, one line each.
    fn describe(plan: &DirPlan, at: &str, out: &mut Vec<String>) {
        for f in &plan.files {
            out.push(format!("{at} {} {} {:?}", f.name, f.path.display(), f.data));
        }
        for (name, sub) in &plan.dirs {
            out.push(format!("{at}/{name}/"));
            describe(sub, &format!("{at}/{name}"), out);
        }
    }

    fn sequential(root: &Path, include: &[String]) -> Vec<String> {
        let plan = walk_sequential(root, include);
        let mut out = Vec::new();
        describe(&plan, "", &mut out);
        out
    }

    fn parallel(root: &Path, include: &[String]) -> Option<Vec<String>> {
        let plan = scan(root, include).ok()??;
        let mut out = Vec::new();
        describe(&plan, "", &mut out);
        Some(out)
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// The parallel walk visits the same files in the same order, with
    /// the same content, as the sequential one on every corpus tree it
    /// takes (those without symlinked directories).
    #[test]
    fn parallel_walk_matches_sequential_on_corpus() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fmf-corpus");
        let (mut compared, mut fell_back) = (0, 0);
        for case in fs::read_dir(&corpus).unwrap() {
            let root = case.unwrap().path().join("tree");
            if !root.join(".fmf").is_dir() {
                continue;
            }
            let include = ["include".to_string(), ".hidden".to_string()];
            for include in [&[][..], &include[..]] {
                match parallel(&root, include) {
                    Some(found) => {
                        assert_eq!(found, sequential(&root, include), "{}", root.display());
                        compared += 1;
                    }
                    None => fell_back += 1,
                }
            }
        }
        assert!(compared > 150, "only {compared} trees compared");
        assert!(fell_back > 0, "no corpus tree has a symlinked directory");
    }

    /// Order, hidden entries, `explore.include`, nested trees, files that
    /// fail to parse and empty directories, on a tree wide enough to be
    /// split between threads.
    #[test]
    fn parallel_walk_matches_sequential_on_a_wide_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join(".fmf/version"), "1\n");
        write(&root.join("main.fmf"), "x: 1\n");
        write(&root.join("b.fmf"), "/c:\n  y: 2\n");
        write(&root.join("a.fmf"), "[broken\n");
        write(&root.join(".hidden.fmf"), "h: 1\n");
        write(&root.join(".seen/main.fmf"), "s: 1\n");
        write(&root.join("nested/.fmf/version"), "1\n");
        write(&root.join("nested/main.fmf"), "n: 1\n");
        write(&root.join("notes.txt"), "not fmf\n");
        fs::create_dir_all(root.join("empty/deeper")).unwrap();
        for i in 0..300 {
            let d = root.join(format!("tests/t{:03}", 299 - i));
            write(&d.join("main.fmf"), &format!("test: ./run {i}\n"));
            if i % 7 == 0 {
                write(&d.join("extra.fmf"), "summary: extra\n");
            }
        }
        let include = [".seen".to_string()];
        let found = parallel(root, &include).unwrap();
        assert_eq!(found, sequential(root, &include));
        let first: Vec<&str> = found.iter().take(3).map(|l| l.as_str()).collect();
        assert!(first[0].starts_with(" main.fmf "), "{first:?}");
        assert!(
            first[1].starts_with(" a.fmf ") && first[1].contains("Err("),
            "{first:?}"
        );
        assert!(first[2].starts_with(" b.fmf "), "{first:?}");
        assert!(found.iter().any(|l| l.starts_with("/.seen ")));
        assert!(
            !found
                .iter()
                .any(|l| l.contains("hidden") || l.contains("nested"))
        );
        assert_eq!(
            found.iter().filter(|l| l.contains("/tests/t")).count(),
            300 + 300 + 43
        );
    }

    /// A symlinked directory, or a name that is not UTF-8, sends the walk
    /// down the sequential path, which follows only the first of two
    /// links to one directory (the directory itself is still walked).
    #[test]
    fn symlinks_and_odd_names_take_the_sequential_walk() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join(".fmf/version"), "1\n");
        write(&root.join("real/main.fmf"), "test: ./t\n");
        std::os::unix::fs::symlink(root.join("real"), root.join("link1")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link2")).unwrap();
        assert!(parallel(root, &[]).is_none());
        let plan = walk_and_load(root, &[]);
        let mut out = Vec::new();
        describe(&plan, "", &mut out);
        assert_eq!(out, sequential(root, &[]));
        let dirs: Vec<&str> = out
            .iter()
            .filter(|l| l.ends_with('/'))
            .map(|l| l.as_str())
            .collect();
        assert_eq!(dirs, ["/link1/", "/real/"], "{out:?}");

        let odd = tempfile::tempdir().unwrap();
        write(&odd.path().join(".fmf/version"), "1\n");
        let name = std::ffi::OsStr::from_bytes(b"bad-\xff.fmf");
        fs::write(odd.path().join(name), "x: 1\n").unwrap();
        assert!(parallel(odd.path(), &[]).is_none());
        let plan = walk_and_load(odd.path(), &[]);
        assert_eq!(plan.files.len(), 1);
        assert!(plan.files[0].data.is_err());
    }

    /// Regression: a directory whose name is not UTF-8 became a node with
    /// U+FFFD in its name, whose test then failed as infra on the system
    /// ("directory does not exist"). Now discovery refuses it, naming the
    /// path; such a name without metadata below is ignored as before.
    #[test]
    fn names_that_are_not_utf8_are_refused_with_the_path() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join(".fmf/version"), "1\n");
        write(&root.join("ok/main.fmf"), "test: ./t\n");
        let bad = root.join(std::ffi::OsStr::from_bytes(b"t-\xe9t\xe9"));
        write(&bad.join("main.fmf"), "test: ./t\n");
        let plain = root.join(std::ffi::OsStr::from_bytes(b"data-\xff"));
        write(&plain.join("blob.bin"), "x");
        let plan = walk_and_load(root, &[]);
        let errors: Vec<String> = plan
            .files
            .iter()
            .filter_map(|f| f.data.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("t-\u{fffd}t\u{fffd}"), "{errors:?}");
        assert!(errors[0].contains("not valid UTF-8"), "{errors:?}");
        assert_eq!(plan.dirs.len(), 1, "only /ok is a node");
    }
}
