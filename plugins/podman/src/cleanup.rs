//! Finding and removing containers by label, e.g. those left behind by a
//! run that was killed with SIGKILL and never got to `stop`.

use std::time::Duration;

use crate::{
    RUN_LABEL,
    podman::{PodmanError, Runner, args},
    prepare::PREPARED_LABEL,
};

fn default_runner() -> Runner {
    Runner {
        timeout: Duration::from_secs(300),
        containers_conf: None,
    }
}

/// Ids of all containers (running or not) matching a label filter, which is
/// `key` (any value) or `key=value`.
pub fn list_containers(label_filter: &str) -> Result<Vec<String>, PodmanError> {
    list_with(&default_runner(), label_filter)
}

/// Removes containers (`podman rm --force --time=0 --ignore`), all in one
/// podman command.
pub fn remove_containers(ids: &[String]) -> Result<(), PodmanError> {
    remove_with(&default_runner(), ids)
}

pub(crate) fn list_with(runner: &Runner, label_filter: &str) -> Result<Vec<String>, PodmanError> {
    let a = args([
        "ps",
        "--all",
        "--quiet",
        "--no-trunc",
        "--filter",
        &format!("label={label_filter}"),
    ]);
    let out = runner.run(&a)?;
    Ok(out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

pub(crate) fn remove_with(runner: &Runner, ids: &[String]) -> Result<(), PodmanError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut a = args(["rm", "--force", "--time=0", "--ignore"]);
    a.extend(ids.iter().cloned());
    runner.run(&a).map(|_| ())
}

/// Removes the containers atex left behind.
///
/// With `Some(run)`, those labelled `atex.run=<run>` (one run); with `None`,
/// every container with an `atex.run` label, whatever its value (every
/// run's, so only when no other atex run is going on). Returns how many
/// were removed. The same by hand:
///
/// ```sh
/// podman rm -f -t 0 $(podman ps -aq --filter label=atex.run=RUN_ID)
/// ```
pub fn remove_leftovers(run: Option<&str>) -> Result<usize, PodmanError> {
    let filter = match run {
        Some(r) => format!("{RUN_LABEL}={r}"),
        None => RUN_LABEL.to_string(),
    };
    let runner = default_runner();
    let ids = list_with(&runner, &filter)?;
    remove_with(&runner, &ids)?;
    if !ids.is_empty() {
        tracing::info!(target: "atex_podman", "removed {} leftover container(s) ({filter})", ids.len());
    }
    Ok(ids.len())
}

/// Ids of the images atex built for `prepare` and `containerfile` (label
/// `atex.prepared`). The same by hand:
/// `podman images --filter label=atex.prepared`.
pub fn list_prepared_images() -> Result<Vec<String>, PodmanError> {
    let a = args([
        "images",
        "--quiet",
        "--no-trunc",
        "--filter",
        &format!("label={PREPARED_LABEL}"),
    ]);
    let out = default_runner().run(&a)?;
    let mut ids: Vec<String> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    ids.dedup();
    Ok(ids)
}

/// Removes the images atex prepared (the next run with `prepare` builds
/// again). Images still used by a container are refused by podman and the
/// error names them. Returns how many were removed.
pub fn remove_prepared_images() -> Result<usize, PodmanError> {
    let ids = list_prepared_images()?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut a = args(["rmi"]);
    a.extend(ids.iter().cloned());
    default_runner().run(&a)?;
    Ok(ids.len())
}
