//! Pulling and preparing images, against real podman and a real registry.
//!
//! Each pull test starts its own registry (Debian's `docker-registry`, run
//! by hand on 127.0.0.1 with a free port and a temporary storage
//! directory), pushes the test image to it, and stops it and removes what
//! it pulled at the end. The registry's access log counts the pulls.
//! The prepare tests install packages from the Debian mirror into a
//! derived image (network needed) and remove it at the end.

use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::Once,
    thread,
    time::{Duration, Instant},
};

use atex_plugin_api::sdk::ProvisionerImpl;
use atex_podman::{
    PREPARED_LABEL, PackageSet, PodmanConfig, PodmanProvisioner, PodmanRemote, PullPolicy,
    remove_leftovers,
};

const SUITE_LABEL: &str = "atex.test-suite=atex-podman";
const IMAGE: &str = "localhost/atex-test:bookworm";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn containers_conf() -> PathBuf {
    repo().join("tests/containers.conf")
}

fn ensure_images() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let status = Command::new(repo().join("tests/images/build.sh"))
            .arg("base")
            .env("CONTAINERS_CONF", containers_conf())
            .status()
            .expect("run tests/images/build.sh");
        assert!(status.success(), "tests/images/build.sh failed: {status}");
    });
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("run podman")
}

fn image_exists(image: &str) -> bool {
    podman(&["image", "exists", image]).status.success()
}

fn label(test: &str) -> String {
    format!("images-it-{test}-{}", std::process::id())
}

/// Removes a test's containers (and images), even when it panics.
struct Cleanup {
    run: String,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = remove_leftovers(Some(&self.run));
        for i in &self.images {
            let _ = podman(&["rmi", "--ignore", i]);
        }
    }
}

fn config(image: &str, run: &str) -> PodmanConfig {
    PodmanConfig {
        image: image.into(),
        run_options: vec!["--label".into(), SUITE_LABEL.into()],
        containers_conf: Some(containers_conf()),
        label: Some(run.into()),
        ..PodmanConfig::default()
    }
}

fn provisioner(config: PodmanConfig) -> PodmanProvisioner {
    PodmanProvisioner::from_config(config, "unused", Box::new(|| false))
        .expect("construct the provisioner")
}

fn get(p: &PodmanProvisioner) -> PodmanRemote {
    match p.get_remote(Duration::from_secs(120)) {
        Ok(Some(r)) => r,
        Ok(None) => panic!("no remote within 120 s"),
        Err(e) => panic!("get_remote: {e}"),
    }
}

/// Runs a shell command in the remote through its connection prefix.
fn sh(r: &PodmanRemote, script: &str) -> Output {
    let prefix = r.command_prefix();
    Command::new(&prefix[0])
        .args(&prefix[1..])
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("run the prefix")
}

/// A `docker-registry serve` on 127.0.0.1, stopped and deleted on drop.
struct Registry {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Registry {
    fn start(test: &str) -> Registry {
        ensure_images();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("atex-registry-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("storage")).expect("registry dir");
        let conf = dir.join("config.yml");
        fs::write(
            &conf,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )
        .expect("registry config");
        let log = fs::File::create(dir.join("log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)");
        let mut registry = Registry { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited with {status}: {}", registry.log());
            }
            assert!(
                Instant::now() < deadline,
                "registry not listening: {}",
                registry.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn name(&self, repo_tag: &str) -> String {
        format!("127.0.0.1:{}/{repo_tag}", self.port)
    }

    /// Pushes the local test image as `atex-test:bookworm`.
    fn push_test_image(&self) -> String {
        let name = self.name("atex-test:bookworm");
        let out = podman(&["push", "--quiet", "--tls-verify=false", IMAGE, &name]);
        assert!(
            out.status.success(),
            "podman push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        name
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Requests for a manifest of `repo` answered so far (`podman pull`
    /// asks once per pull; a push only asks with HEAD and PUT).
    fn manifest_gets(&self, repo: &str) -> usize {
        let needle = format!("\"GET /v2/{repo}/manifests/");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn pull_missing_pulls_once_for_four_containers() {
    let registry = Registry::start("missing");
    let image = registry.push_test_image();
    let run = label("missing");
    let _cleanup = Cleanup {
        run: run.clone(),
        images: vec![image.clone()],
    };
    let _ = podman(&["rmi", "--ignore", &image]);
    assert!(!image_exists(&image), "{image} is still in local storage");
    let before = registry.manifest_gets("atex-test");

    let mut c = config(&image, &run);
    c.pull = PullPolicy::Missing;
    c.tls_verify = false;
    c.max = 4;
    let p = provisioner(c.clone());
    p.start().expect("start pulls the image");
    assert!(image_exists(&image), "start did not pull {image}");
    p.provision(4);
    let remotes: Vec<PodmanRemote> = (0..4).map(|_| get(&p)).collect();
    for r in &remotes {
        let out = sh(r, "echo up");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "up");
    }
    assert_eq!(
        registry.manifest_gets("atex-test") - before,
        1,
        "one pull for 4 containers; registry log:\n{}",
        registry.log()
    );
    p.stop().expect("stop");

    // Present now: `missing` does not ask the registry again, `always` does.
    let p = provisioner(c.clone());
    p.start().expect("start with the image present");
    p.stop().expect("stop");
    assert_eq!(registry.manifest_gets("atex-test") - before, 1);
    c.pull = PullPolicy::Always;
    let p = provisioner(c);
    p.start().expect("start with pull=always");
    p.stop().expect("stop");
    assert_eq!(registry.manifest_gets("atex-test") - before, 2);
}

#[test]
fn pull_never_refuses_with_one_line() {
    let registry = Registry::start("never");
    let image = registry.push_test_image();
    let run = label("never");
    let _cleanup = Cleanup {
        run: run.clone(),
        images: vec![image.clone()],
    };
    let _ = podman(&["rmi", "--ignore", &image]);
    let before = registry.manifest_gets("atex-test");
    let mut c = config(&image, &run);
    c.pull = PullPolicy::Never;
    c.tls_verify = false;
    let p = provisioner(c);
    let e = p.start().expect_err("start must refuse a missing image");
    let msg = e.to_string();
    eprintln!("start failed as expected: {msg}");
    assert!(!msg.contains('\n'), "not one line: {msg}");
    assert!(msg.contains(&image), "does not name the image: {msg}");
    assert!(msg.contains("pull"), "does not mention pull: {msg}");
    assert_eq!(
        registry.manifest_gets("atex-test"),
        before,
        "it asked the registry"
    );
    assert!(!image_exists(&image));
}

#[test]
fn an_unknown_image_ends_start_promptly_with_the_registry_answer() {
    let registry = Registry::start("unknown");
    let image = registry.name("atex-nope:1");
    let run = label("unknown");
    let _cleanup = Cleanup {
        run: run.clone(),
        images: vec![],
    };
    let mut c = config(&image, &run);
    c.tls_verify = false;
    let p = provisioner(c);
    let started = Instant::now();
    let e = p.start().expect_err("start must fail");
    let took = started.elapsed();
    let msg = e.to_string();
    eprintln!("start failed after {took:?}: {msg}");
    assert!(took < Duration::from_secs(30), "took {took:?}: {msg}");
    assert!(!msg.contains('\n'), "not one line: {msg}");
    assert!(msg.contains(&format!("cannot pull image {image}")), "{msg}");
    assert!(
        msg.contains("manifest unknown"),
        "no registry answer: {msg}"
    );
    assert!(
        registry.manifest_gets("atex-nope") >= 1,
        "{}",
        registry.log()
    );
}

/// The cache key the provisioner uses for `packages` on the test image.
fn prepared_tag(packages: &[&str]) -> String {
    let id = podman(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    format!(
        "localhost/atex-prepared:{}",
        PackageSet::new(packages.iter().copied()).key(&id)
    )
}

fn created(image: &str) -> String {
    let out = podman(&["image", "inspect", "--format", "{{.Created}}", image]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn prepare_builds_once_and_reuses_the_cached_image() {
    ensure_images();
    let run = label("prepare");
    let tag = prepared_tag(&["tree", "file"]);
    let _cleanup = Cleanup {
        run: run.clone(),
        images: vec![tag.clone()],
    };
    let _ = podman(&["rmi", "--ignore", &tag]);
    let mut c = config(IMAGE, &run);
    c.prepare = vec!["tree".into(), "file".into(), "tree".into()];

    let p = provisioner(c.clone());
    p.start().expect("start builds the prepared image");
    assert!(p.image_was_built(), "the first start must build");
    let id = p.image();
    assert_ne!(id, IMAGE);
    let labels = podman(&[
        "image",
        "inspect",
        "--format",
        &format!("{{{{index .Labels \"{PREPARED_LABEL}\"}}}} {{{{index .Labels \"atex.base\"}}}}"),
        &tag,
    ]);
    let labels = String::from_utf8_lossy(&labels.stdout).trim().to_string();
    assert!(labels.ends_with(&format!(" {IMAGE}")), "labels: {labels}");
    assert!(
        tag.ends_with(labels.split(' ').next().unwrap_or("?")),
        "{labels}"
    );
    let first_created = created(&tag);
    p.provision(2);
    for r in [get(&p), get(&p)] {
        let out = sh(
            &r,
            "command -v tree && dpkg -s file | grep -c '^Status: install ok'",
        );
        assert!(
            out.status.success(),
            "packages missing in a container: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // What a test's own `require` install does finds everything there.
        let out = sh(&r, "apt-get install -y --no-download tree file");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    p.stop().expect("stop");

    // The same set in another order: the cached image, not a new build.
    c.prepare = vec!["file".into(), "tree".into()];
    let p = provisioner(c);
    let started = Instant::now();
    p.start().expect("start reuses the cache");
    assert!(
        !p.image_was_built(),
        "the second start must reuse the cache"
    );
    assert_eq!(p.image(), id, "image id changed");
    assert_eq!(created(&tag), first_created);
    assert!(started.elapsed() < Duration::from_secs(10));
    p.stop().expect("stop");

    // The base image does not have them: the containers got them from
    // the prepared image.
    let plain = provisioner(config(IMAGE, &run));
    plain.start().expect("start");
    plain.provision(1);
    let out = sh(&get(&plain), "command -v tree");
    assert!(!out.status.success(), "the base image already has tree");
    plain.stop().expect("stop");
}

#[test]
fn a_package_that_does_not_exist_fails_start_with_one_line() {
    ensure_images();
    let run = label("badpkg");
    let _cleanup = Cleanup {
        run: run.clone(),
        images: vec![],
    };
    let mut c = config(IMAGE, &run);
    c.prepare = vec!["atex-no-such-package".into()];
    let p = provisioner(c);
    let e = p.start().expect_err("start must fail");
    let msg = e.to_string();
    eprintln!("start failed as expected: {msg}");
    assert!(!msg.contains('\n'), "not one line: {msg}");
    assert!(msg.contains("cannot prepare an image from"), "{msg}");
    // apt's own message: "E: Unable to locate package atex-no-such-package".
    assert!(
        msg.contains("Unable to locate package atex-no-such-package"),
        "{msg}"
    );
    // A failed build leaves no image labelled with its key behind.
    let id = podman(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    let key =
        PackageSet::new(["atex-no-such-package"]).key(String::from_utf8_lossy(&id.stdout).trim());
    let left = podman(&[
        "images",
        "-aq",
        "--filter",
        &format!("label={PREPARED_LABEL}={key}"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "a failed build left an image"
    );
}

#[test]
fn a_containerfile_is_built_once_per_run() {
    ensure_images();
    let run = label("containerfile");
    let dir = std::env::temp_dir().join(format!("atex-cf-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("dir");
    fs::write(dir.join("marker"), "from the context\n").expect("marker");
    fs::write(
        dir.join("Containerfile"),
        format!("FROM {IMAGE}\nCOPY marker /etc/atex-marker\n"),
    )
    .expect("Containerfile");
    let mut c = config(IMAGE, &run);
    c.containerfile = Some(dir.join("Containerfile"));
    let p = provisioner(c);
    p.start().expect("start builds the Containerfile");
    let _cleanup = Cleanup {
        run: run.clone(),
        images: vec![p.image()],
    };
    assert!(p.image_was_built());
    p.provision(2);
    for r in [get(&p), get(&p)] {
        let out = sh(&r, "cat /etc/atex-marker");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "from the context\n");
    }
    p.stop().expect("stop");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn two_provisioners_starting_at_once_pull_once() {
    let registry = Registry::start("two");
    let image = registry.push_test_image();
    let run = label("two");
    let _cleanup = Cleanup {
        run: run.clone(),
        images: vec![image.clone()],
    };
    let _ = podman(&["rmi", "--ignore", &image]);
    let before = registry.manifest_gets("atex-test");
    let mut c = config(&image, &run);
    c.tls_verify = false;
    let (a, b) = (provisioner(c.clone()), provisioner(c));
    thread::scope(|s| {
        let ta = s.spawn(|| a.start());
        let tb = s.spawn(|| b.start());
        for t in [ta, tb] {
            t.join().expect("join").expect("start");
        }
    });
    assert_eq!(
        registry.manifest_gets("atex-test") - before,
        1,
        "{}",
        registry.log()
    );
    a.stop().expect("stop");
    b.stop().expect("stop");
}
