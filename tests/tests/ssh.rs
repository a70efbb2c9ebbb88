//! The `ssh` provisioner against sshd containers standing in for machines
//! that already exist (`tests/src/ssh_hosts.rs`; image from
//! `tests/images/build.sh ssh`): the conformance suite with a root host, a
//! non-root host going through sudo and an unreachable one; host key
//! checking; retirement of used slots; files copied over ssh with sudo; a
//! whole `atex run`.

use std::{process::Stdio, time::Duration};

use atex::{
    backend::{Connection, Provisioner},
    executor::{command_for, copy_from, copy_to},
    plugins::{LoadedPlugin, PluginHost, load_plugin},
};
use atex_integration_tests::{
    TestDir, atex, atex_bin, plugin_lib,
    ssh_hosts::{SshHosts, dead_address},
    stderr, stdout,
};

struct Plugin {
    _lib: LoadedPlugin,
    _host: PluginHost,
    prov: Box<dyn Provisioner>,
    _dir: tempfile::TempDir,
}

fn provisioner(config: &str) -> Plugin {
    let lib = load_plugin(&plugin_lib("atex_ssh")).expect("plugin loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new("ssh-test", dir.path());
    let prov = lib.new_provisioner(&host, config).expect("constructs");
    Plugin {
        _lib: lib,
        _host: host,
        prov: Box::new(prov),
        _dir: dir,
    }
}

fn base_config(hosts: &SshHosts, entries: &str) -> String {
    format!(
        "hosts: \"{entries}\"\nkey: {}\nknown_hosts: {}\nconnect_timeout: 5\n",
        hosts.key().display(),
        hosts.known_hosts().display()
    )
}

fn sh(conn: &Connection, script: &str) -> (Option<i32>, String, String) {
    let out = command_for(conn, &["bash", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("run through the connection");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugin_check_passes_with_root_sudo_and_unreachable_hosts() {
    let hosts = SshHosts::start(2);
    hosts.add_sudo_user(1, "tester");
    let dead = dead_address();
    let entries = format!(
        "root@{} tester@{} {dead}",
        hosts.hosts[0].addr, hosts.hosts[1].addr
    );
    let lib = plugin_lib("atex_ssh");
    let out = atex(&[
        "plugin",
        "check",
        lib.to_str().expect("utf-8"),
        "-o",
        &format!("hosts={entries}"),
        "-o",
        &format!("key={}", hosts.key().display()),
        "-o",
        &format!("known_hosts={}", hosts.known_hosts().display()),
        "-o",
        "connect_timeout=5",
        // The suite uses and releases 11 systems; each used slot is
        // retired, so two hosts need six slots each.
        "-o",
        "max_per_host=6",
        "--timeout",
        "60",
    ]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "stdout:\n{o}\nstderr:\n{e}");
    assert!(o.contains(" passed, 0 failed"), "{o}");
    assert!(!o.contains("FAIL"), "{o}");
    // Both hosts were used: the root one plainly, the other through sudo.
    assert!(
        o.contains(&format!("via ssh root@{}:22)", hosts.hosts[0].addr)),
        "{o}"
    );
    assert!(
        o.contains(&format!(
            "via ssh tester@{}:22 (sudo))",
            hosts.hosts[1].addr
        )),
        "{o}"
    );
    // The dead one was reported and skipped.
    assert!(
        e.contains(&format!("skipping root@{dead}")),
        "no line about the unreachable host:\n{e}"
    );
}

#[test]
fn non_root_user_runs_commands_as_root_and_copies_files() {
    let hosts = SshHosts::start(1);
    hosts.add_sudo_user(0, "tester");
    let p = provisioner(&base_config(
        &hosts,
        &format!("tester@{}", hosts.hosts[0].addr),
    ));
    p.prov.start().expect("start");
    p.prov.provision(1);
    let r = p
        .prov
        .get_remote(Duration::from_secs(30))
        .expect("get_remote")
        .expect("a remote");
    let conn = r.connection().expect("connection");
    let (code, out, err) = sh(&conn, "id -u; whoami");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "0\nroot\n");

    // Files there and back, through the same sudo connection.
    let local = TestDir::new();
    let src = local.create("payload/dir/data.txt", "some bytes\n");
    copy_to(
        &conn,
        src.parent().and_then(|d| d.parent()).expect("payload dir"),
        "/root/incoming",
    )
    .expect("copy_to");
    let (code, out, _) = sh(
        &conn,
        "stat -c %U /root/incoming/payload/dir/data.txt; cat /root/incoming/payload/dir/data.txt",
    );
    assert_eq!(code, Some(0));
    assert_eq!(out, "root\nsome bytes\n");
    copy_from(&conn, "/etc/debian_version", &local.path().join("back")).expect("copy_from");
    let version =
        std::fs::read_to_string(local.path().join("back/debian_version")).expect("copied back");
    assert!(version.starts_with("12"), "{version}");
    r.release().expect("release");
    p.prov.stop().expect("stop");
}

#[test]
fn user_without_sudo_is_skipped_with_the_reason() {
    let hosts = SshHosts::start(1);
    hosts.add_plain_user(0, "nobodyspecial");
    let p = provisioner(&base_config(
        &hosts,
        &format!("nobodyspecial@{}", hosts.hosts[0].addr),
    ));
    let err = p.prov.start().expect_err("no usable host");
    assert!(err.to_string().contains("cannot run `sudo -n`"), "{err}");
}

#[test]
fn unknown_host_key_is_refused_unless_checking_is_off() {
    let hosts = SshHosts::start(1);
    let entry = format!("root@{}", hosts.hosts[0].addr);
    // A known_hosts file without this host.
    let empty = hosts.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").expect("write");
    let config = format!(
        "hosts: {entry}\nkey: {}\nknown_hosts: {}\n",
        hosts.key().display(),
        empty.display()
    );
    let p = provisioner(&config);
    let err = p.prov.start().expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("host key is not in") && msg.contains("host_key_check=false"),
        "{msg}"
    );
    // A key that changed is refused too: a fresh key under this name (the
    // stand-ins all share the image's host keys, so it must be made here).
    let fresh = hosts.dir().join("fresh_host_key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&fresh)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let public = std::fs::read_to_string(fresh.with_extension("pub")).expect("public key");
    let mut words = public.split_whitespace();
    let (kind, key) = (words.next().expect("kind"), words.next().expect("key"));
    std::fs::write(&empty, format!("{} {kind} {key}\n", hosts.hosts[0].addr)).expect("write");
    let p = provisioner(&config);
    let err = p.prov.start().expect_err("a changed host key was accepted");
    assert!(err.to_string().contains("host key"), "{err}");

    let p = provisioner(&format!(
        "hosts: {entry}\nkey: {}\nhost_key_check: false\n",
        hosts.key().display()
    ));
    p.prov.start().expect("starts without checking");
    p.prov.provision(1);
    let r = p
        .prov
        .get_remote(Duration::from_secs(30))
        .expect("get_remote")
        .expect("a remote");
    let (code, out, err) = sh(&r.connection().expect("connection"), "echo in");
    assert_eq!((code, out.as_str()), (Some(0), "in\n"), "{err}");
    p.prov.stop().expect("stop");
}

#[test]
fn a_used_slot_is_retired_an_untouched_one_comes_back() {
    let hosts = SshHosts::start(1);
    let p = provisioner(&base_config(&hosts, &hosts.hosts[0].addr.to_string()));
    p.prov.start().expect("start");
    assert_eq!(p.prov.max_remotes(), Some(1));
    p.prov.provision(1);
    let first = p
        .prov
        .get_remote(Duration::from_secs(10))
        .expect("get_remote")
        .expect("a remote");
    // Released without being reached: nothing ran, it goes back.
    first.release().expect("release");
    p.prov.provision(1);
    let second = p
        .prov
        .get_remote(Duration::from_secs(10))
        .expect("get_remote")
        .expect("the same host again");
    assert_eq!(second.name(), first.name());
    let (code, _, err) = sh(&second.connection().expect("connection"), "true");
    assert_eq!(code, Some(0), "{err}");
    second.release().expect("release");
    // Used, then released: retired for the rest of the run.
    p.prov.provision(1);
    let third = p.prov.get_remote(Duration::from_secs(2));
    let err = match third {
        Err(e) => e.to_string(),
        Ok(r) => panic!(
            "a retired host was handed out again: {:?}",
            r.map(|r| r.name())
        ),
    };
    assert!(err.contains("retired"), "{err}");
    p.prov.stop().expect("stop");
    // The machine itself is untouched.
    assert!(hosts.exists(0));
}

#[test]
fn run_on_existing_hosts_retires_the_one_a_destructive_test_used() {
    let hosts = SshHosts::start(2);
    // The second host is reached as a user that is not root: the tests
    // after the destructive one run there through sudo.
    hosts.add_sudo_user(1, "tester");
    let tree = TestDir::new();
    tree.create(".fmf/version", "1\n");
    tree.create(
        "tests/main.fmf",
        "/break:\n  test: touch /root/broken; echo broke\n  tag: [destructive]\n  extra-priority: 10\n\
         /after-1:\n  test: test ! -e /root/broken && test $(id -u) = 0\n\
         /after-2:\n  test: test ! -e /root/broken && test $(id -u) = 0\n",
    );
    let results = tree.path().join("results");
    let entries = format!("{} tester@{}", hosts.hosts[0].addr, hosts.hosts[1].addr);
    let plugins = atex_integration_tests::plugin_dir_with(&["atex_ssh"]);
    let out = std::process::Command::new(atex_bin())
        .arg("run")
        .arg(tree.path())
        .args(["--plain", "--workers", "1", "--plugin-dir"])
        .arg(plugins.path())
        .arg("--results")
        .arg(&results)
        .arg("-p")
        .arg(format!(
            "ssh:hosts={entries},key={},known_hosts={}",
            hosts.key().display(),
            hosts.known_hosts().display()
        ))
        .env_remove("RUST_LOG")
        .output()
        .expect("atex run");
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{e}");
    let lines = std::fs::read_to_string(results.join("results.jsonl")).expect("results");
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(
        lines.lines().all(|l| l.contains("\"pass\"")),
        "a test after the destructive one saw its damage:\n{lines}"
    );
    // The destructive test ran on the root host, which was retired; the
    // others on the second host, through sudo.
    let attempts = std::fs::read_to_string(results.join("attempts.jsonl")).expect("attempts");
    assert_eq!(attempts.lines().count(), 3, "{attempts}");
    for line in attempts.lines() {
        let host = if line.contains("/tests/break") { 0 } else { 1 };
        assert!(
            line.contains(&format!("\"ssh-{}\"", hosts.hosts[host].addr)),
            "{line}"
        );
    }
    assert!(
        e.contains("not used again in this run"),
        "no line about the retired host:\n{e}"
    );
    // No machine was destroyed.
    assert!(hosts.exists(0) && hosts.exists(1));
}
