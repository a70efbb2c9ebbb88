//! Finding and killing the QEMU processes of a run, e.g. those left behind
//! by a run that was killed with SIGKILL and never got to `stop`.

use std::path::{Path, PathBuf};

use crate::{PROVISIONER_MARKER, QemuError, RUN_MARKER, config::default_state_root};

/// One QEMU process atex started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuProcess {
    /// Its process id.
    pub pid: u32,
    /// The run marker (`label`, by default the run id).
    pub run: String,
    /// The provisioner's token.
    pub provisioner: Option<String>,
}

fn marker_value(args: &[String], marker: &str) -> Option<String> {
    let prefix = format!("name={marker},string=");
    args.windows(2)
        .find(|w| w[0] == "-fw_cfg" && w[1].starts_with(&prefix))
        .map(|w| w[1][prefix.len()..].to_string())
}

/// Every process on this machine whose command line carries atex's run
/// marker; with `Some(run)`, only that run's.
pub fn list_processes(run: Option<&str>) -> Result<Vec<QemuProcess>, QemuError> {
    let entries =
        std::fs::read_dir("/proc").map_err(|e| QemuError::Io(format!("reading /proc: {e}")))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go; one that vanished is simply skipped.
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(r) = marker_value(&args, RUN_MARKER) else {
            continue;
        };
        if run.is_some_and(|want| want != r) {
            continue;
        }
        found.push(QemuProcess {
            pid,
            run: r,
            provisioner: marker_value(&args, PROVISIONER_MARKER),
        });
    }
    Ok(found)
}

/// Kills processes with SIGKILL (QEMU keeps nothing worth saving).
pub(crate) fn kill_pids(pids: &[u32]) {
    for &pid in pids {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            continue;
        };
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// The state directories of `run` (all runs with `None`) under `root`.
fn state_dirs(root: &Path, run: Option<&str>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            match run {
                Some(r) => name
                    .strip_prefix(r)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => true,
            }
        })
        .map(|e| e.path())
        .collect()
}

/// Kills the QEMU processes atex left behind and removes their state
/// directories (overlays, saved states) under the default state directory.
///
/// With `Some(run)`, those of one run (the `label` option, by default the
/// run id); with `None`, those of every run (so only when no other atex run
/// is going on). Returns how many processes were killed. By hand: kill the
/// pids in `$TMPDIR/atex-qemu/RUN.*/*.pid`, then remove those directories.
pub fn remove_leftovers(run: Option<&str>) -> Result<usize, QemuError> {
    remove_leftovers_in(&default_state_root(), run)
}

/// [`remove_leftovers`] for a provisioner configured with another
/// `state_dir`.
pub fn remove_leftovers_in(state_root: &Path, run: Option<&str>) -> Result<usize, QemuError> {
    let procs = list_processes(run)?;
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    kill_pids(&pids);
    // Wait (briefly) until they are gone, so callers can check.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline
        && pids
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}/cmdline")).exists() && !is_zombie(*p))
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for dir in state_dirs(state_root, run) {
        let _ = std::fs::remove_dir_all(dir);
    }
    if !pids.is_empty() {
        tracing::info!(target: "atex_qemu", "killed {} leftover QEMU process(es)", pids.len());
    }
    Ok(pids.len())
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found() {
        let args: Vec<String> = ["qemu", "-fw_cfg", "name=opt/atex/run,string=r1", "-m", "1"]
            .map(String::from)
            .to_vec();
        assert_eq!(marker_value(&args, RUN_MARKER).as_deref(), Some("r1"));
        assert_eq!(marker_value(&args, PROVISIONER_MARKER), None);
    }

    #[test]
    fn state_dirs_of_one_run() {
        let root = tempfile::tempdir().expect("tempdir");
        for d in ["run1.aa", "run1.bb", "run10.cc", "run2.dd"] {
            std::fs::create_dir(root.path().join(d)).expect("mkdir");
        }
        let mut found: Vec<String> = state_dirs(root.path(), Some("run1"))
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        found.sort();
        assert_eq!(found, ["run1.aa", "run1.bb"]);
        assert_eq!(state_dirs(root.path(), None).len(), 4);
    }
}
