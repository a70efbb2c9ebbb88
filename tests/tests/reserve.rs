//! `atex reserve` without a terminal: it prints how to reach the system,
//! holds it until signalled (or until `--for` runs out), and releases it.
//! On podman (`localhost/atex-test:bookworm`) and on an ssh stand-in host
//! with a non-root user going through sudo.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use atex_integration_tests::{
    atex_bin, ensure_image, plugin_dir_with, podman,
    reserve::{Reservation, type_into},
    ssh_hosts::SshHosts,
};

#[test]
fn podman_container_is_held_until_sigterm_then_removed() {
    ensure_image("base");
    let mut r = Reservation::start(
        "atex_podman",
        "podman:image=localhost/atex-test:bookworm",
        &[],
    );
    let line = r.connect_line(Duration::from_secs(120));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"podman"), "{line}");
    assert!(line.contains(" exec -t "), "a person gets a TTY: {line}");
    let at = words.iter().position(|w| *w == "bash").expect("runs bash");
    let id = words[at - 1].to_string();
    // Held: still there a while later, and usable.
    std::thread::sleep(Duration::from_secs(2));
    let out = podman()
        .args(["exec", &id, "cat", "/etc/debian_version"])
        .output()
        .expect("podman exec");
    assert!(out.status.success(), "{id} is not usable while held");
    assert!(
        r.child.try_wait().expect("try_wait").is_none(),
        "exited early"
    );

    r.signal(libc::SIGTERM);
    let (code, err) = r.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("released"), "{err}");
    let exists = podman()
        .args(["container", "exists", &id])
        .status()
        .expect("podman container exists");
    assert!(!exists.success(), "container {id} left behind");
}

#[test]
fn for_duration_releases_by_itself() {
    ensure_image("base");
    let started = Instant::now();
    let mut r = Reservation::start(
        "atex_podman",
        "podman:image=localhost/atex-test:bookworm",
        &["--for", "3s"],
    );
    let line = r.connect_line(Duration::from_secs(120));
    let (code, err) = r.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("time is up; released"), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "bash").expect("bash");
    let exists = podman()
        .args(["container", "exists", words[at - 1]])
        .status()
        .expect("podman container exists");
    assert!(!exists.success(), "container left behind");
}

#[test]
fn ssh_host_with_sudo_is_reachable_by_the_printed_command_until_ctrl_c() {
    let hosts = SshHosts::start(1);
    hosts.add_sudo_user(0, "tester");
    let spec = format!(
        "ssh:hosts=tester@{},key={},known_hosts={}",
        hosts.hosts[0].addr,
        hosts.key().display(),
        hosts.known_hosts().display()
    );
    let mut r = Reservation::start("atex_ssh", &spec, &[]);
    let line = r.connect_line(Duration::from_secs(60));
    assert!(line.starts_with("ssh "), "{line}");
    assert!(line.ends_with("sudo -i"), "{line}");
    // What a person would type, with the commands on stdin instead of a
    // keyboard: it lands in a root shell on the machine.
    let (text, err) = type_into(&line, "id -u\nhostname >/dev/null && echo reached\n");
    assert!(
        text.lines().any(|l| l == "0") && text.contains("reached"),
        "stdout: {text}\nstderr: {err}"
    );

    r.signal(libc::SIGINT);
    let (code, err) = r.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("released ssh-"), "{err}");
    // Released, never destroyed.
    assert!(hosts.exists(0));
}

#[test]
fn unknown_provisioner_is_a_usage_error() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let out = Command::new(atex_bin())
        .arg("reserve")
        .arg("--plugin-dir")
        .arg(plugins.path())
        .args(["-p", "nosuchplugin"])
        .output()
        .expect("run atex");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no provisioner plugin named `nosuchplugin`") && err.contains("local"),
        "{err}"
    );
}
