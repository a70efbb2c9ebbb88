//! The qemu provisioner on real QEMU virtual machines (TCG where KVM does
//! not work), booted from the image `tests/images/build-vm.sh` builds (it
//! runs here when the image is missing).
//!
//! - `atex plugin check` passes for the plugin;
//! - a suite on VMs: a test that reboots its VM in the middle (disconnect,
//!   reboot, reconnect), destructive tests each on a fresh VM, and a failing
//!   test rerun on a fresh VM (`--reruns`);
//! - SIGINT and SIGTERM while VMs boot leave no QEMU process.
//!
//! After SIGKILL the VMs stay, and `remove_leftovers` kills them: that is in
//! the plugin's own tests (`plugins/qemu/tests/`), which link the plugin.
//!
//! The tests are in one nextest group of one thread (`.config/nextest.toml`):
//! at most 2 VMs run at once on the machine.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use atex_integration_tests::{
    TestDir, atex_bin, jsonl, plugin_dir_with, plugin_lib,
    reserve::{Reservation, type_into},
};

/// The plugin's default image (`tests/images/build-vm.sh` builds it there).
/// The plugin crate is not linked here: two plugin libraries in one test
/// binary would export the same entry points.
fn default_image() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("atex/vm/bookworm/disk.qcow2")
}

/// The plugin's default state directory.
fn state_root() -> PathBuf {
    std::env::temp_dir().join("atex-qemu")
}

/// Pids of the processes whose command line carries the run marker
/// `label` (`-fw_cfg name=opt/atex/run,string=<label>`).
fn qemu_of(label: &str) -> Vec<u32> {
    let marker = format!("name=opt/atex/run,string={label}");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(e.path().join("cmdline")).ok()?;
            cmdline
                .split(|b| *b == 0)
                .any(|a| a == marker.as_bytes())
                .then_some(pid)
        })
        .collect()
}

/// Builds the VM image when it is missing (once per test process) and
/// returns the base image's path.
fn image() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/images/build-vm.sh"))
                .output()
                .expect("run tests/images/build-vm.sh");
            assert!(
                out.status.success(),
                "build-vm.sh: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let image = default_image();
            assert!(
                image.is_file(),
                "{} missing after build-vm.sh",
                image.display()
            );
            image
        })
        .clone()
}

fn label(what: &str) -> String {
    format!("atex-qemu-{what}-{}", std::process::id())
}

/// Waits until no QEMU process of `label` is left (they may take a moment
/// to exit after a kill); returns those still there.
fn wait_gone(label: &str, limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<u32> = qemu_of(label)
            .into_iter()
            .filter(|pid| !is_zombie(*pid))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')))
        .unwrap_or(true)
}

fn state_dirs_of(label: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(state_root()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{label}."))
        })
        .map(|e| e.path())
        .collect()
}

/// Kills whatever a failed test left, so that one failure does not leave
/// VMs running on the machine.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in qemu_of(&self.0) {
            signal(pid, libc::SIGKILL);
        }
        for dir in state_dirs_of(&self.0) {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn qemu_plugin_check_passes() {
    image();
    let label = label("check");
    let _cleanup = Cleanup(label.clone());
    let lib = plugin_lib("atex_qemu");
    let out = Command::new(atex_bin())
        .args(["plugin", "check"])
        .arg(&lib)
        .args(["-o", "accel=tcg", "-o", &format!("label={label}")])
        .env_remove("RUST_LOG")
        .output()
        .expect("atex plugin check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(
        stdout.contains("via ssh"),
        "the connection is ssh: {stdout}"
    );
    assert_eq!(
        wait_gone(&label, Duration::from_secs(10)),
        Vec::<u32>::new()
    );
    assert_eq!(state_dirs_of(&label), Vec::<PathBuf>::new());
}

const REBOOT_TEST: &str = r#"
echo "boot $TMT_REBOOT_COUNT"
if [ "$TMT_REBOOT_COUNT" = 0 ]; then
  echo before > /var/tmp/atex-reboot-state
  cat /proc/sys/kernel/random/boot_id > /var/tmp/atex-boot-id
  trap '' PIPE
  echo disconnect >&$ATEX_TEST_CONTROL
  while echo noop >&$ATEX_TEST_CONTROL 2>/dev/null; do sleep 0.1; done
  sync
  for i in $(seq 60); do systemctl reboot && break; sleep 1; done
  sleep infinity
fi
test "$(cat /var/tmp/atex-reboot-state)" = before
test "$(cat /proc/sys/kernel/random/boot_id)" != "$(cat /var/tmp/atex-boot-id)"
echo "after reboot $TMT_REBOOT_COUNT"
"#;

/// A test that fails unless its VM is fresh (nothing ran there before),
/// then marks the VM as used.
const FRESH_CHECK: &str = r#"
if [ -e /var/tmp/atex-used ]; then echo "REUSED by $(cat /var/tmp/atex-used)"; exit 2; fi
echo "$TMT_TEST_NAME" > /var/tmp/atex-used
echo FRESH
"#;

fn write_suite(dir: &TestDir) {
    dir.create(".fmf/version", "1\n");
    dir.create("reboot.sh", REBOOT_TEST);
    dir.create("fresh.sh", FRESH_CHECK);
    dir.create(
        "main.fmf",
        r#"/reboot:
    test: bash reboot.sh
    duration: 10m
    extra-priority: 10
/destructive-a:
    test: bash fresh.sh
    tag: [destructive]
/destructive-b:
    test: bash fresh.sh
    tag: [destructive]
/destructive-c:
    test: bash fresh.sh
    tag: [destructive]
/flaky:
    test: bash fresh.sh && exit 1
/beakerlib:
    test: |
        . /usr/share/beakerlib/beakerlib.sh
        rlJournalStart
        rlPhaseStartTest
        rlRun "true" 0 "beakerlib works"
        rlPhaseEnd
        rlJournalEnd
"#,
    );
}

#[test]
fn qemu_suite_with_reboot_destructive_tests_and_reruns() {
    image();
    let label = label("suite");
    let _cleanup = Cleanup(label.clone());
    let plugins = plugin_dir_with(&["atex_qemu"]);
    let dir = TestDir::new();
    write_suite(&dir);
    let started = Instant::now();
    let out = Command::new(atex_bin())
        .current_dir(dir.path())
        .args(["run", "--plugin-dir"])
        .arg(plugins.path())
        .args([
            "-p",
            &format!("qemu:max=2,accel=auto,label={label}"),
            "--workers",
            "2",
            "--reruns",
            "1",
            "--results",
            "out",
            "--plain",
        ])
        .env_remove("ATEX_PLUGIN_PATH")
        .env("RUST_LOG", "warn,atex::plugin=info")
        .output()
        .expect("atex run");
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{err}\nrun took {:.1} s", started.elapsed().as_secs_f64());
    // /flaky fails on purpose (twice): exit 1.
    assert_eq!(out.status.code(), Some(1), "{err}");
    let results = jsonl(&dir.path().join("out/results.jsonl"));
    let status = |test: &str| -> String {
        results
            .iter()
            .find(|r| r[2] == test && r[3].is_null())
            .map(|r| r[1].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no result for {test}: {results:?}"))
    };
    for t in [
        "/reboot",
        "/destructive-a",
        "/destructive-b",
        "/destructive-c",
        "/beakerlib",
    ] {
        assert_eq!(status(t), "pass", "{t}\n{err}");
    }
    assert_eq!(status("/flaky"), "fail", "{err}");

    let attempts = jsonl(&dir.path().join("out/attempts.jsonl"));
    let of = |test: &str| -> Vec<&serde_json::Value> {
        attempts.iter().filter(|a| a["test"] == test).collect()
    };
    let reboot = of("/reboot");
    assert_eq!(reboot.len(), 1, "{attempts:?}");
    assert_eq!(reboot[0]["reboots"], 1, "{attempts:?}");
    // Each destructive test and each attempt of /flaky had a system of its
    // own (and FRESH_CHECK made sure it was unused).
    let flaky = of("/flaky");
    assert_eq!(flaky.len(), 2, "one rerun: {attempts:?}");
    let mut systems = BTreeSet::new();
    for a in flaky
        .iter()
        .chain(of("/destructive-a").iter())
        .chain(of("/destructive-b").iter())
        .chain(of("/destructive-c").iter())
    {
        let s = a["remote"].as_str().expect("remote").to_string();
        assert!(systems.insert(s.clone()), "{s} used twice: {attempts:?}");
    }
    // The first attempt of /flaky failed on a fresh VM (exit 1, not the
    // checker's 2), and so did the rerun.
    for a in &flaky {
        assert_eq!(a["exit_code"], 1, "{a}");
    }
    // The log says how VMs came to be: booted once (the template),
    // restored after that.
    assert!(err.contains("template booted and saved"), "{err}");
    assert!(err.contains("restored in"), "{err}");
    assert!(
        !err.contains(" booted in"),
        "no VM booted without the template: {err}"
    );
    assert_eq!(
        wait_gone(&label, Duration::from_secs(10)),
        Vec::<u32>::new()
    );
    assert_eq!(state_dirs_of(&label), Vec::<PathBuf>::new());
}

fn slow_suite(dir: &TestDir) {
    dir.create(".fmf/version", "1\n");
    dir.create(
        "main.fmf",
        "/a:\n    test: sleep 600\n/b:\n    test: sleep 600\n/c:\n    test: sleep 600\n",
    );
}

fn start_run(dir: &TestDir, plugins: &Path, label: &str, snapshot: bool) -> Child {
    Command::new(atex_bin())
        .current_dir(dir.path())
        .args(["run", "--plugin-dir"])
        .arg(plugins)
        .args([
            "-p",
            &format!("qemu:max=2,accel=tcg,snapshot={snapshot},label={label}"),
            "--results",
            "out",
            "--plain",
        ])
        .env_remove("ATEX_PLUGIN_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn atex run")
}

/// Waits until `n` QEMU processes of `label` run.
fn wait_for_qemu(label: &str, n: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while qemu_of(label).len() < n {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "atex ended before starting VMs"
        );
        assert!(Instant::now() < deadline, "no QEMU process within 60 s");
        thread::sleep(Duration::from_millis(100));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    err
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, sig) };
}

fn interrupt_during_boot(sig: i32, code: i32) {
    image();
    let label = label(if sig == libc::SIGINT { "int" } else { "term" });
    let _cleanup = Cleanup(label.clone());
    let plugins = plugin_dir_with(&["atex_qemu"]);
    let dir = TestDir::new();
    slow_suite(&dir);
    // Without snapshot both VMs boot at once.
    let mut child = start_run(&dir, plugins.path(), &label, false);
    wait_for_qemu(&label, 2, &mut child);
    thread::sleep(Duration::from_secs(2));
    signal(child.id(), sig);
    let t = Instant::now();
    let status = child.wait().expect("wait");
    let err = stderr_of(&mut child);
    println!("stopped in {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(status.code(), Some(code), "{err}");
    assert_eq!(
        wait_gone(&label, Duration::from_secs(5)),
        Vec::<u32>::new(),
        "QEMU processes left\n{err}"
    );
    assert_eq!(state_dirs_of(&label), Vec::<PathBuf>::new(), "{err}");
}

#[test]
fn qemu_sigint_during_boot_leaves_no_process() {
    interrupt_during_boot(libc::SIGINT, 130);
}

#[test]
fn qemu_sigterm_during_boot_leaves_no_process() {
    interrupt_during_boot(libc::SIGTERM, 143);
}

/// `atex reserve` on a VM, without a terminal: it prints the ssh command,
/// which reaches the guest as root while the reservation holds; SIGTERM
/// releases it and no QEMU process or state directory is left.
#[test]
fn qemu_reserve_prints_a_working_ssh_command_and_releases_on_sigterm() {
    image();
    let label = label("reserve");
    let _cleanup = Cleanup(label.clone());
    let spec = format!("qemu:accel=tcg,snapshot=false,label={label}");
    let mut r = Reservation::start("atex_qemu", &spec, &[]);
    let command = r.connect_line(Duration::from_secs(240));
    assert!(command.starts_with("ssh "), "{command}");
    let (text, shell_err) = type_into(&command, "id -u\necho reached\n");
    assert!(
        text.lines().any(|l| l == "0") && text.contains("reached"),
        "stdout: {text}\nstderr: {shell_err}"
    );
    assert_eq!(qemu_of(&label).len(), 1, "one VM while held");
    r.signal(libc::SIGTERM);
    let (code, err) = r.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("released"), "{err}");
    assert_eq!(
        wait_gone(&label, Duration::from_secs(10)),
        Vec::<u32>::new(),
        "QEMU processes left\n{err}"
    );
    assert_eq!(state_dirs_of(&label), Vec::<PathBuf>::new(), "{err}");
}

/// `prepare=suite`: the packages the tests require are installed once,
/// into a prepared disk kept in `prepare_dir`, before the first VM; a
/// second run boots from the cached disk. Each test checks that `jq` was
/// installed before its VM booted, which a per-test install cannot fake.
#[test]
fn qemu_prepare_suite_installs_once_into_a_cached_disk() {
    image();
    let label = label("prepare");
    let _cleanup = Cleanup(label.clone());
    let plugins = plugin_dir_with(&["atex_qemu"]);
    let cache = TestDir::new();
    let dir = TestDir::new();
    dir.create(".fmf/version", "1\n");
    dir.create(
        "main.fmf",
        "require: [jq]\nduration: 5m\n\
         test: |\n    \
         jq --version\n    \
         installed=$(stat -c %Y /var/lib/dpkg/info/jq.list)\n    \
         booted=$(( $(date +%s) - $(cut -d. -f1 /proc/uptime) ))\n    \
         echo \"installed $installed, booted $booted\"\n    \
         test \"$installed\" -lt \"$booted\"\n\
         /a: {}\n/b: {}\n",
    );
    let run = |results: &str| {
        let started = Instant::now();
        let out = Command::new(atex_bin())
            .current_dir(dir.path())
            .args(["run", "--plugin-dir"])
            .arg(plugins.path())
            .args([
                "-p",
                &format!(
                    "qemu:max=1,snapshot=false,prepare=suite,label={label},prepare_dir={}",
                    cache.path().display()
                ),
                "--results",
                results,
                "--plain",
            ])
            .env_remove("ATEX_PLUGIN_PATH")
            .env("RUST_LOG", "warn,atex::plugin=info")
            .output()
            .expect("atex run");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        println!(
            "{err}\n{results} took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(out.status.code(), Some(0), "{err}");
        let results = jsonl(&dir.path().join(results).join("results.jsonl"));
        assert_eq!(results.len(), 2, "{results:?}");
        assert!(results.iter().all(|r| r[1] == "pass"), "{results:?}");
        err
    };
    let disks = || -> Vec<(PathBuf, std::time::SystemTime)> {
        fs::read_dir(cache.path())
            .expect("prepare_dir exists")
            .flatten()
            .map(|e| {
                (
                    e.path(),
                    e.metadata().and_then(|m| m.modified()).expect("mtime"),
                )
            })
            .collect()
    };
    let first = run("first");
    assert!(first.contains("prepared disk"), "{first}");
    let made = disks();
    assert_eq!(
        made.len(),
        1,
        "one complete disk, no partial file: {made:?}"
    );
    assert!(
        made[0].0.extension().is_some_and(|e| e == "qcow2"),
        "{made:?}"
    );

    let second = run("second");
    assert!(second.contains("is cached"), "{second}");
    assert_eq!(disks(), made, "the second run made the disk again");
}
