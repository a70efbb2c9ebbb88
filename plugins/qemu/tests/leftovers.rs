//! A process that started VMs and was killed with SIGKILL never got to
//! `stop`: its QEMU processes keep running (each in its own process group),
//! and `remove_leftovers` finds them by their run marker and kills them.
//!
//! Needs QEMU and the image `tests/images/build-vm.sh` builds; no VM has to
//! finish booting.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use atex_qemu::{
    QemuConfig, QemuProvisioner, default_image, default_state_root, list_processes,
    remove_leftovers,
};

fn ensure_image() {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/images/build-vm.sh"
        ))
        .output()
        .expect("run tests/images/build-vm.sh");
    assert!(
        out.status.success(),
        "build-vm.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pids(label: &str) -> Vec<u32> {
    list_processes(Some(label))
        .expect("list")
        .iter()
        .map(|p| p.pid)
        .collect()
}

fn state_dirs(label: &str) -> usize {
    std::fs::read_dir(default_state_root())
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{label}."))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Run in a child process by the test below, which kills it with SIGKILL.
#[test]
#[ignore = "helper of leftovers_of_a_sigkilled_run_are_found_and_removed"]
fn helper_start_two_vms_and_hang() {
    let Ok(label) = std::env::var("ATEX_QEMU_HELPER_LABEL") else {
        return;
    };
    let config = QemuConfig {
        max: 2,
        snapshot: false,
        accel: atex_qemu::Accel::Tcg,
        label: Some(label.clone()),
        ..QemuConfig::for_image(default_image())
    };
    let p = QemuProvisioner::from_config(config, "unused", Box::new(|| false)).expect("config");
    use atex_plugin_api::sdk::ProvisionerImpl as _;
    p.provision(2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pids(&label).len() < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    println!("READY");
    std::io::stdout().flush().expect("flush");
    // Never stopped: the parent kills this process.
    std::mem::forget(p);
    thread::sleep(Duration::from_secs(600));
}

#[test]
fn leftovers_of_a_sigkilled_run_are_found_and_removed() {
    ensure_image();
    let label = format!("atex-qemu-sigkill-{}", std::process::id());
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "helper_start_two_vms_and_hang",
            "--ignored",
            "--nocapture",
        ])
        .env("ATEX_QEMU_HELPER_LABEL", &label)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the helper");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let ready = out
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("READY"));
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL
    let _ = child.wait();
    thread::sleep(Duration::from_millis(500));
    let left = pids(&label);
    // Clean up before asserting, so a failure leaves nothing running.
    let removed = remove_leftovers(Some(&label)).expect("remove_leftovers");
    assert!(ready, "the helper never started its VMs");
    assert_eq!(left.len(), 2, "a SIGKILLed run leaves its VMs: {left:?}");
    assert_eq!(removed, 2);
    assert_eq!(pids(&label), Vec::<u32>::new());
    assert_eq!(state_dirs(&label), 0, "state directory removed");
    assert_eq!(remove_leftovers(Some(&label)).expect("again"), 0);
}
