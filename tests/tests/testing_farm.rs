//! The testing-farm provisioner against the local Testing Farm stand-in
//! (`atex_integration_tests::testing_farm_fake`): real reservations of real
//! (container) machines over ssh, with faults injected.
//!
//! Tests that start machines need podman and the image
//! `localhost/atex-test-ssh:bookworm` (built on demand by
//! `tests/images/build.sh ssh`).

use std::{
    process::{Command, Stdio},
    sync::{
        Once,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use atex::{
    backend::{Connection, Provisioner, Remote},
    executor::transport::command_for,
    plugins::{LoadedPlugin, PluginHost, load_plugin},
};
use atex_integration_tests::{
    atex_bin, plugin_lib, stderr, stdout,
    testing_farm_fake::{self as fake, FakeOptions, FakeTf},
};
use atex_testing_farm::api::{Api, ApiError, RetryPolicy, Secret};

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        fake::ensure_ssh_image();
        fake::remove_all_fake_containers();
    });
}

/// Options for a fast client (short polls and backoffs); `extra` lines
/// (`key: value`) replace or add to them.
fn config(fake: &FakeTf, extra: &str) -> String {
    let defaults = format!(
        "api_url: {}\ntoken: {}\ncompose: Fedora-Rawhide\npoll_interval: 0.2\nmin_interval: 0.01\n\
         http_backoff: 0.2\nhttp_timeout: 3\nssh_timeout: 30\nsource_cidr_url: {}/myip\n",
        fake.url(),
        fake::TOKEN,
        fake.url()
    );
    let key = |l: &str| l.split(':').next().unwrap_or_default().trim().to_string();
    let overridden: Vec<String> = extra.lines().map(key).collect();
    let mut lines: Vec<&str> = defaults
        .lines()
        .filter(|l| !overridden.contains(&key(l)))
        .collect();
    lines.extend(extra.lines());
    lines.join("\n") + "\n"
}

struct Plugin {
    _lib: LoadedPlugin,
    _host: PluginHost,
    prov: Box<dyn Provisioner>,
    _dir: tempfile::TempDir,
}

fn provisioner(fake: &FakeTf, extra: &str) -> Plugin {
    let lib = load_plugin(&plugin_lib("atex_testing_farm")).expect("plugin loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new("tf-test", dir.path());
    let prov = lib
        .new_provisioner(&host, &config(fake, extra))
        .expect("constructs");
    Plugin {
        _lib: lib,
        _host: host,
        prov: Box::new(prov),
        _dir: dir,
    }
}

fn run(remote: &dyn Remote, script: &str) -> (i32, String) {
    let conn = remote.connection().expect("connection");
    let out = command_for(&conn, &["bash", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("run ssh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Gets `n` remotes, runs a command on each over ssh, releases them.
fn use_machines(p: &Plugin, n: u32) -> Vec<String> {
    p.prov.start().expect("start");
    p.prov.provision(n);
    let mut remotes = Vec::new();
    for _ in 0..n {
        let r = p
            .prov
            .get_remote(Duration::from_secs(120))
            .expect("get_remote")
            .expect("a remote within 120 s");
        remotes.push(r);
    }
    let mut hosts = Vec::new();
    for r in &remotes {
        let Connection::Ssh(target) = r.connection().expect("connection") else {
            panic!("not an ssh connection");
        };
        assert_eq!(target.port, 22);
        assert_eq!(target.user, "root");
        assert!(target.host.starts_with("127.0.0."), "{}", target.host);
        let (code, out) = run(r.as_ref(), "echo hello from $(hostname); exit 7");
        assert_eq!(code, 7, "{out}");
        assert!(out.starts_with("hello from "), "{out}");
        assert!(r.alive().expect("alive"));
        assert_eq!(r.platform(), "Fedora-Rawhide@x86_64");
        hosts.push(target.host.clone());
    }
    for r in &remotes {
        r.release().expect("release");
        r.release().expect("second release");
        assert!(!r.alive().unwrap_or(false));
    }
    p.prov.stop().expect("stop");
    hosts
}

fn count(fake: &FakeTf, method: &str, status: u16) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.method == method && c.status == status)
        .count()
}

fn api(fake: &FakeTf, token: Option<&str>) -> Api {
    Api::new(
        fake.url(),
        token.map(Secret::new),
        RetryPolicy {
            attempts: 1,
            backoff: Duration::ZERO,
            backoff_max: Duration::ZERO,
            min_interval: Duration::ZERO,
            http_timeout: Duration::from_secs(5),
        },
    )
}

#[test]
fn the_fake_speaks_the_testing_farm_api() {
    let fake = FakeTf::start();
    let never = AtomicBool::new(false);
    let anon = api(&fake, None);
    let about = anon.get_json("/v0.1/about", false, &never).expect("about");
    assert!(about["version"].is_string());
    match api(&fake, Some("wrong")).whoami(&never) {
        Err(ApiError::Status {
            status: 401,
            message,
        }) => {
            assert_eq!(message, "Not authorized to perform this action");
        }
        other => panic!("{other:?}"),
    }
    match api(&fake, Some(fake::EXPIRED_TOKEN)).whoami(&never) {
        Err(ApiError::Status {
            status: 401,
            message,
        }) => assert_eq!(message, "Token has expired"),
        other => panic!("{other:?}"),
    }
    let me = api(&fake, Some(fake::TOKEN))
        .whoami(&never)
        .expect("whoami");
    assert_eq!(me.ranch, "public");
    let composes = anon.composes("public", &never).expect("composes");
    assert!(composes.contains(&("Fedora-Rawhide".to_string(), false)));
    assert!(composes.iter().any(|(_, re)| *re));
    // Search needs a state; nothing found is `null`.
    match anon.get_json("/v0.1/requests", false, &never) {
        Err(ApiError::Status { status: 422, .. }) => {}
        other => panic!("{other:?}"),
    }
    let none = anon
        .search_requests("running", &me.token_id, "2000-01-01T00:00:00", &never)
        .expect("search");
    assert!(none.is_empty());
    match anon.get_request("not-a-uuid", &never) {
        Err(ApiError::Status { status: 422, .. }) => {}
        other => panic!("{other:?}"),
    }
    match anon.get_request("7d6a6cbf-3cd5-49fb-aca1-f76ffa0734aa", &never) {
        Err(ApiError::Status { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    // A request without a test is refused; one with a test gets a uuid4 id
    // and goes new → queued → running → (no compose) error.
    let authed = api(&fake, Some(fake::TOKEN));
    let nofind = || Ok(None);
    match authed.submit_request(&serde_json::json!({"environments": []}), &never, &nofind) {
        Err(ApiError::Status {
            status: 400,
            message,
        }) => {
            assert!(message.contains("Test section"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let body = serde_json::json!({
        "test": {"fmf": {"url": "https://example.invalid/x"}},
        "environments": [{"arch": "x86_64", "os": {"compose": "NoSuchCompose"},
                          "secrets": {"S": "secret-value"}}],
    });
    let created = authed
        .submit_request(&body, &never, &nofind)
        .expect("submitted");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(id.as_bytes()[14], b'4', "uuid4: {id}");
    assert_eq!(created["state"], "new");
    // Secrets are masked for anyone but the owner.
    let seen = anon.get_request(&id, &never).expect("get");
    assert_eq!(seen["environments_requested"][0]["secrets"]["S"], "hidden");
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let r = anon.get_request(&id, &never).expect("get");
        if r["state"] == "error" {
            assert!(
                r["result"]["summary"]
                    .as_str()
                    .expect("summary")
                    .contains("NoSuchCompose")
            );
            break;
        }
        assert!(Instant::now() < end, "{r}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Cancelling a finished request: 409; unknown: 404.
    assert!(matches!(
        authed.cancel_request("7d6a6cbf-3cd5-49fb-aca1-f76ffa0734aa"),
        Err(ApiError::Status { status: 404, .. })
    ));
    assert_eq!(authed.cancel_request(&id).expect("409 is fine"), 409);
    let states = &fake.requests()[0].history;
    assert_eq!(states, &["new", "queued", "error"]);
}

#[test]
fn three_machines_are_reserved_used_and_cancelled() {
    setup();
    let fake = FakeTf::start();
    let p = provisioner(&fake, "max: 3\n");
    let hosts = use_machines(&p, 3);
    let mut distinct = hosts.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{hosts:?}");
    fake.assert_all_cancelled();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    // What the reserve request carries.
    let env = &reqs[0].body["environments"][0];
    assert_eq!(reqs[0].body["test"]["fmf"]["name"], "/testing-farm/reserve");
    assert_eq!(env["os"]["compose"], "Fedora-Rawhide");
    assert_eq!(
        env["settings"]["provisioning"]["tags"]["ArtemisUseSpot"],
        "false"
    );
    assert!(env["secrets"]["TF_RESERVATION_AUTHORIZED_KEYS_BASE64"].is_string());
    assert_eq!(reqs[0].body["settings"]["pipeline"]["timeout"], 60);
    // pipeline.log was read with HEAD, then ranged GETs.
    let calls = fake.calls();
    assert!(calls.iter().any(|c| c.method == "HEAD" && c.status == 200));
    assert!(count(&fake, "GET", 206) >= 3);
    assert_eq!(count(&fake, "POST", 200), 3);
    assert_eq!(count(&fake, "DELETE", 200), 3);
}

/// Starts a provisioner, asks for one machine and waits until the stand-in
/// has its request; returns the submitted body.
fn first_request_body(fake: &FakeTf, p: &Plugin) -> serde_json::Value {
    p.prov.start().expect("start");
    p.prov.provision(1);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = fake.requests().first() {
            return r.body.clone();
        }
        assert!(Instant::now() < end, "no request submitted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn base64_text(v: &serde_json::Value) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("a string"))
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8")
}

#[test]
fn option_ssh_key_reserves_with_the_users_own_key() {
    setup();
    let fake = FakeTf::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("team_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "team@example", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    // No KEY.pub: the public key is derived from the private one.
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
    std::fs::remove_file(key.with_extension("pub")).expect("rm pub");
    let p = provisioner(&fake, &format!("ssh_key: {}\n", key.display()));
    let body = first_request_body(&fake, &p);
    let sent =
        base64_text(&body["environments"][0]["secrets"]["TF_RESERVATION_AUTHORIZED_KEYS_BASE64"]);
    let material = public.split_whitespace().nth(1).expect("key material");
    assert_eq!(sent, format!("ssh-ed25519 {material} atex@testing-farm\n"));
    let r = p
        .prov
        .get_remote(Duration::from_secs(120))
        .expect("get_remote")
        .expect("a remote");
    let Connection::Ssh(target) = r.connection().expect("connection") else {
        panic!("not ssh");
    };
    assert_eq!(target.identity_file.as_deref(), Some(key.as_path()));
    assert_eq!(run(r.as_ref(), "exit 5").0, 5);
    r.release().expect("release");
    p.prov.stop().expect("stop");
    fake.assert_all_cancelled();
    assert!(key.exists(), "the user's key is left alone");
    // An unreadable key fails at start, naming the option.
    let p = provisioner(&fake, "ssh_key: /nonexistent/team_key\n");
    let err = p.prov.start().expect_err("no key").to_string();
    assert!(err.contains("`ssh_key` /nonexistent/team_key"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let _ = p.prov.stop();
}

#[test]
fn option_artifacts_tmt_and_post_install_script_go_into_the_request_body() {
    setup();
    let fake = FakeTf::start();
    // The compact form, as given on the command line.
    let p = provisioner(
        &fake,
        "artifacts: fedora-koji-build:123 repository:https://example.org/repo/x86_64 repository-file:https://example.org/r.repo\n\
         tmt: {context: {trigger: commit}, environment: {TEAM_VAR: shown-to-tmt}}\n\
         post_install_script: \"#!/bin/sh\\ndnf -y remove cloud-init\\n\"\n",
    );
    let body = first_request_body(&fake, &p);
    p.prov.stop().expect("stop");
    let env = &body["environments"][0];
    assert_eq!(
        env["artifacts"],
        serde_json::json!([
            {"type": "fedora-koji-build", "id": "123"},
            {"type": "repository", "id": "https://example.org/repo/x86_64"},
            {"type": "repository-file", "id": "https://example.org/r.repo"},
        ])
    );
    assert_eq!(env["tmt"]["context"]["trigger"], "commit");
    assert_eq!(env["tmt"]["environment"]["TEAM_VAR"], "shown-to-tmt");
    assert_eq!(
        env["settings"]["provisioning"]["post_install_script"],
        "#!/bin/sh\ndnf -y remove cloud-init\n"
    );
    // The full form from a YAML file.
    let fake = FakeTf::start();
    let p = provisioner(
        &fake,
        "artifacts:\n  - {type: fedora-copr-build, id: '1784470:fedora-32-x86_64', packages: [foo, foo-devel], install: true, order: 30}\n  - redhat-brew-build:999\n",
    );
    let body = first_request_body(&fake, &p);
    p.prov.stop().expect("stop");
    assert_eq!(
        body["environments"][0]["artifacts"],
        serde_json::json!([
            {"type": "fedora-copr-build", "id": "1784470:fedora-32-x86_64",
             "packages": ["foo", "foo-devel"], "install": true, "order": 30},
            {"type": "redhat-brew-build", "id": "999"},
        ])
    );
    assert!(fake.wait_settled(Duration::from_secs(30)));
    // A bad artifact is refused when the provisioner is made.
    let lib = load_plugin(&plugin_lib("atex_testing_farm")).expect("loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new("tf-test", dir.path());
    let err = lib
        .new_provisioner(&host, &config(&fake, "artifacts: koji:1\n"))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("`artifacts`") && err.contains("koji"), "{err}");
}

#[test]
fn option_source_cidr_is_detected_for_the_public_ranch_only() {
    setup();
    // Public ranch, no `source_cidr`: looked up at `source_cidr_url` (the
    // stand-in answers the caller's address), sent as an ingress rule, and
    // the machine is reachable (the stand-in firewalls it otherwise).
    let fake = FakeTf::start();
    let p = provisioner(&fake, "");
    use_machines(&p, 1);
    let body = &fake.requests()[0].body;
    assert_eq!(
        body["environments"][0]["settings"]["provisioning"]["security_group_rules_ingress"],
        serde_json::json!([{"type": "ingress", "protocol": "-1", "cidr": "127.0.0.1/32",
                            "port_min": 0, "port_max": 65535}])
    );
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.path == "/myip" && c.status == 200)
            .count(),
        1
    );
    fake.assert_all_cancelled();
    // Given by hand: no lookup.
    let fake = FakeTf::start();
    let p = provisioner(&fake, "source_cidr: 127.0.0.0/8\n");
    let body = first_request_body(&fake, &p);
    p.prov.stop().expect("stop");
    assert_eq!(
        body["environments"][0]["settings"]["provisioning"]["security_group_rules_ingress"][0]["cidr"],
        "127.0.0.0/8"
    );
    assert!(!fake.calls().iter().any(|c| c.path == "/myip"));
    assert!(fake.wait_settled(Duration::from_secs(30)));
    // The redhat ranch needs no rule: no lookup, none sent.
    let fake = FakeTf::start();
    let p = provisioner(&fake, &format!("token: {}\n", fake::REDHAT_TOKEN));
    let body = first_request_body(&fake, &p);
    p.prov.stop().expect("stop");
    assert!(
        body["environments"][0]["settings"]["provisioning"]
            .get("security_group_rules_ingress")
            .is_none(),
        "{body}"
    );
    assert!(!fake.calls().iter().any(|c| c.path == "/myip"));
    assert!(fake.wait_settled(Duration::from_secs(30)));
    // A lookup that fails stops `start` with one line naming the option.
    let p = provisioner(
        &fake,
        &format!("source_cidr_url: {}/no-such-service\n", fake.url()),
    );
    let err = p.prov.start().expect_err("lookup fails").to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("`source_cidr`")
            && err.contains("/no-such-service")
            && err.contains("HTTP 404"),
        "{err}"
    );
    let _ = p.prov.stop();
}

/// Readiness lag: from the `Guest is ready` line in pipeline.log to the
/// machine handed out by `get_remote`, three machines at the default poll
/// interval (5 s); and the calls each machine cost until then. As on the
/// real service, the guest comes up a while after the request runs, and
/// the reserve test installs the key a moment after tests start.
#[test]
fn readiness_lag_under_two_seconds_without_more_api_calls() {
    setup();
    let fake = FakeTf::with_options(FakeOptions {
        new_delay: Duration::from_secs(1),
        queue_delay: Duration::from_secs(3),
        provision_delay: Duration::from_secs(8),
        ..FakeOptions::default()
    });
    let p = provisioner(&fake, "poll_interval: 5\nmin_interval: 0.1\nmax: 3\n");
    p.prov.start().expect("start");
    let begin = Instant::now();
    p.prov.provision(3);
    let mut handed = Vec::new();
    for _ in 0..3 {
        let r = p
            .prov
            .get_remote(Duration::from_secs(120))
            .expect("get_remote")
            .expect("a remote within 120 s");
        handed.push((Instant::now(), r));
    }
    let waited = begin.elapsed();
    let calls = fake.calls();
    let reqs = fake.requests();
    // Raw lags, and the same without the stand-in's own lateness: when it
    // starts installing the key later than `key_delay` after the guest line
    // (a loaded machine), that wait is not the client's. The install itself
    // (`podman exec`) stays counted.
    let mut lags = Vec::new();
    let mut client_lags = Vec::new();
    for (at, r) in &handed {
        let name = r.name();
        let req = reqs
            .iter()
            .find(|q| name.ends_with(&q.id[..8]))
            .expect("request of the remote");
        let ready = req.ready_at.expect("guest ready line written");
        let key = req.key_at.expect("key installed");
        let lag = at.duration_since(ready).as_secs_f64();
        let late = (key.duration_since(ready).as_secs_f64()
            - FakeOptions::default().key_delay.as_secs_f64())
        .max(0.0);
        lags.push(lag);
        client_lags.push(lag - late);
        assert_eq!(run(r.as_ref(), "exit 3").0, 3);
    }
    // Calls about the requests (whoami, composes and the address lookup
    // happen once, at start).
    let api_calls = calls
        .iter()
        .filter(|c| c.server == "api" && c.path.starts_with("/v0.1/requests"))
        .count() as f64
        / 3.0;
    let log_calls = calls.iter().filter(|c| c.server == "artifacts").count() as f64 / 3.0;
    eprintln!(
        "READINESS lags {lags:.2?} s ({client_lags:.2?} s without the stand-in's lateness); per machine: {api_calls:.1} API calls, {log_calls:.1} artifacts calls; {:.1} s to get all three",
        waited.as_secs_f64()
    );
    for (_, r) in &handed {
        r.release().expect("release");
    }
    p.prov.stop().expect("stop");
    fake.assert_all_cancelled();
    let worst = client_lags.iter().copied().fold(0.0, f64::max);
    assert!(worst < 2.0, "lags {lags:?}, {client_lags:?}");
    // Not more API calls than one POST and one state GET per poll
    // interval of waiting (the polling rate before this change).
    let budget = 1.0 + (waited.as_secs_f64() / 5.0).ceil() + 1.0;
    assert!(
        api_calls <= budget,
        "{api_calls} API calls per machine, budget {budget}"
    );
}

#[test]
fn fault_rate_limits_and_server_errors_are_retried() {
    setup();
    let fake = FakeTf::start();
    fake.faults(|f| {
        f.rate_limit = 3;
        f.retry_after = 1;
    });
    let p = provisioner(&fake, "");
    let start = Instant::now();
    p.prov.start().expect("start survives 429s");
    // whoami was refused three times with Retry-After: 1.
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    fake.faults(|f| f.server_errors = 5);
    p.prov.provision(2);
    let a = p
        .prov
        .get_remote(Duration::from_secs(120))
        .expect("ok")
        .expect("remote");
    fake.faults(|f| {
        f.rate_limit = 2;
        f.server_errors = 2;
    });
    let b = p
        .prov
        .get_remote(Duration::from_secs(120))
        .expect("ok")
        .expect("remote");
    assert_eq!(run(a.as_ref(), "exit 0").0, 0);
    assert_eq!(run(b.as_ref(), "exit 0").0, 0);
    p.prov.stop().expect("stop");
    assert!(count(&fake, "GET", 429) + count(&fake, "POST", 429) >= 3);
    assert!(fake.calls().iter().filter(|c| c.status >= 500).count() >= 5);
    fake.assert_all_cancelled();
    assert_eq!(fake.requests().len(), 2, "no duplicate requests");
}

#[test]
fn fault_dropped_post_response_creates_no_duplicate() {
    setup();
    let fake = FakeTf::start();
    fake.faults(|f| f.drop_post_responses = 2);
    let p = provisioner(&fake, "");
    let hosts = use_machines(&p, 2);
    assert_eq!(hosts.len(), 2);
    let calls = fake.calls();
    let posts: Vec<u16> = calls
        .iter()
        .filter(|c| c.method == "POST")
        .map(|c| c.status)
        .collect();
    // Both replies were lost (status 0: no answer); the client searched
    // its own requests and found them instead of submitting again.
    assert_eq!(posts, vec![0, 0], "{posts:?}");
    assert!(
        calls
            .iter()
            .any(|c| c.method == "GET" && c.path.starts_with("/v0.1/requests?state="))
    );
    assert_eq!(fake.requests().len(), 2, "no duplicate requests");
    fake.assert_all_cancelled();
}

#[test]
fn fault_hung_socket_and_log_race() {
    setup();
    let fake = FakeTf::start();
    fake.faults(|f| {
        f.hang = 2;
        f.hang_for = Duration::from_secs(6);
        f.log_404 = 3;
    });
    let p = provisioner(&fake, "");
    use_machines(&p, 1);
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.method == "HEAD" && c.status == 404)
    );
    assert_eq!(fake.requests().len(), 1);
    fake.assert_all_cancelled();
}

#[test]
fn fault_errored_request_is_replaced_with_its_reason_logged() {
    setup();
    let fake = FakeTf::start();
    fake.faults(|f| {
        f.error_requests = 1;
        f.error_summary = "Guest provisioning failed: pool exhausted".into();
    });
    let p = provisioner(&fake, "");
    use_machines(&p, 1);
    fake.assert_all_cancelled();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "one failed request, one replacement");
    assert_eq!(reqs[0].state, "error");
    assert_eq!(reqs[1].state, "canceled");
}

#[test]
fn fault_permanent_errors_fail_with_one_line_after_the_budget() {
    setup();
    let fake = FakeTf::start();
    fake.faults(|f| {
        f.error_requests = 100;
        f.error_summary = "Guest provisioning failed: pool exhausted".into();
    });
    let p = provisioner(&fake, "retries: 2\n");
    p.prov.start().expect("start");
    p.prov.provision(1);
    let err = p
        .prov
        .get_remote(Duration::from_secs(60))
        .err()
        .expect("must fail");
    let text = err.to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("3 failed reservation") && text.contains("pool exhausted"),
        "{text}"
    );
    p.prov.stop().expect("stop");
    assert_eq!(fake.requests().len(), 3, "budget of 2 retries");
    fake.assert_all_cancelled();
}

#[test]
fn fault_slow_queue_and_ssh_that_never_comes_up() {
    setup();
    let fake = FakeTf::start();
    fake.faults(|f| {
        f.slow_queue = Duration::from_secs(3);
        f.ssh_never_up = 1;
    });
    let p = provisioner(&fake, "ssh_timeout: 4\n");
    use_machines(&p, 1);
    fake.assert_all_cancelled();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "the machine without ssh was replaced");
    assert!(reqs.iter().all(|r| r.state == "canceled"));
}

#[test]
fn wrong_token_or_compose_fails_at_start_with_one_line() {
    let fake = FakeTf::start();
    for (extra, expect) in [
        ("token: nope\n", "token was refused"),
        (
            &format!("token: {}\n", fake::EXPIRED_TOKEN) as &str,
            "Token has expired",
        ),
        ("compose: Fedora-1\n", "compose `Fedora-1` is not offered"),
    ] {
        let text = config(&fake, extra);
        let lib = load_plugin(&plugin_lib("atex_testing_farm")).expect("loads");
        let dir = tempfile::tempdir().expect("tempdir");
        let host = PluginHost::new("tf-test", dir.path());
        let prov = lib.new_provisioner(&host, &text).expect("constructs");
        let err = prov.start().expect_err("start must fail").to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{err}");
        assert!(!err.contains(fake::TOKEN), "{err}");
        prov.stop().expect("stop");
    }
    assert!(fake.requests().is_empty());
    // No token at all.
    let lib = load_plugin(&plugin_lib("atex_testing_farm")).expect("loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new("tf-test", dir.path());
    let text = format!(
        "api_url: {}\ncompose: Fedora-Rawhide\nsource_cidr_url: {}/myip\n",
        fake.url(),
        fake.url()
    );
    let prov = lib.new_provisioner(&host, &text).expect("constructs");
    if std::env::var_os("TESTING_FARM_API_TOKEN").is_none() {
        let err = prov.start().expect_err("no token").to_string();
        assert!(err.contains("TESTING_FARM_API_TOKEN"), "{err}");
    }
    let _ = prov.stop();
}

#[test]
fn passes_atex_plugin_check_against_the_fake() {
    setup();
    let fake = FakeTf::start();
    let lib = plugin_lib("atex_testing_farm");
    let opts = format!(
        "api_url={},compose=Fedora-Rawhide,max=10,poll_interval=0.2,min_interval=0.01,http_backoff=0.2,ssh_timeout=30,source_cidr_url={}/myip",
        fake.url(),
        fake.url()
    );
    let mut cmd = Command::new(atex_bin());
    cmd.args([
        "plugin",
        "check",
        lib.to_str().expect("utf-8"),
        "--timeout",
        "120",
    ]);
    for o in opts.split(',') {
        cmd.args(["-o", o]);
    }
    // The token comes from the environment, as users give it.
    let out = cmd
        .env("TESTING_FARM_API_TOKEN", fake::TOKEN)
        // Debug logs too must not show the token or the private key.
        .env("RUST_LOG", "debug")
        .env_remove("ATEX_PLUGIN_PATH")
        .env_remove("TESTING_FARM_API_URL")
        .output()
        .expect("run atex");
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "conformance failed:\n{text}\n{}",
        stderr(&out)
    );
    assert!(
        text.lines()
            .last()
            .unwrap_or_default()
            .ends_with(" passed, 0 failed"),
        "{text}"
    );
    let log = stderr(&out);
    assert!(
        log.contains("atex_testing_farm"),
        "debug log expected:\n{log}"
    );
    assert!(!text.contains(fake::TOKEN) && !log.contains(fake::TOKEN));
    assert!(!log.contains("PRIVATE KEY") && !log.contains("TF_RESERVATION_AUTHORIZED_KEYS"));
    fake.assert_all_cancelled();
}

static SIGINT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    SIGINT.store(true, Ordering::SeqCst);
}

/// The child of `sigint_cancels_every_reservation`: does nothing unless
/// started by it.
#[test]
fn sigint_child_process() {
    let Ok(url) = std::env::var("ATEX_TF_SIGINT_CHILD_URL") else {
        return;
    };
    // SAFETY: installs an async-signal-safe handler (one atomic store).
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    let lib = load_plugin(&plugin_lib("atex_testing_farm")).expect("plugin loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new("tf-sigint", dir.path());
    let text = format!(
        "api_url: {url}\ntoken: {}\ncompose: Fedora-Rawhide\npoll_interval: 0.2\nmin_interval: 0.01\nssh_timeout: 300\nsource_cidr_url: {url}/myip\n",
        fake::TOKEN
    );
    let prov = lib.new_provisioner(&host, &text).expect("constructs");
    prov.start().expect("start");
    prov.provision(3);
    println!("CHILD PROVISIONING");
    loop {
        if SIGINT.load(Ordering::SeqCst) {
            // What the host does on Ctrl-C: cancel, then stop.
            host.cancel.store(true, Ordering::SeqCst);
            prov.stop().expect("stop");
            println!("CHILD STOPPED");
            std::process::exit(0);
        }
        if let Ok(Some(_)) = prov.get_remote(Duration::from_millis(200)) {
            panic!("no machine should be ready: its key is installed late");
        }
    }
}

#[test]
fn sigint_cancels_every_reservation() {
    setup();
    let fake = FakeTf::with_options(FakeOptions {
        // Machines run but their key comes late: reservations in flight.
        key_delay: Duration::from_secs(120),
        ..FakeOptions::default()
    });
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            // A substring: the module is `testing_farm::` in the main test
            // binary and the root in its own.
            "sigint_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ATEX_TF_SIGINT_CHILD_URL", fake.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let end = Instant::now() + Duration::from_secs(90);
    while fake.live_containers().len() < 3 {
        assert!(Instant::now() < end, "3 machines never started");
        assert!(child.try_wait().expect("wait").is_none(), "child exited");
        std::thread::sleep(Duration::from_millis(200));
    }
    let running = fake
        .requests()
        .iter()
        .filter(|r| r.state == "running")
        .count();
    assert_eq!(running, 3);
    // SAFETY: signalling our own child.
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < end, "child did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    assert!(
        status.success() && stdout(&out).contains("CHILD STOPPED"),
        "{status:?}\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    fake.assert_all_cancelled();
    assert_eq!(fake.requests().len(), 3);
    assert!(fake.live_containers().is_empty());
}

/// A small FMF suite: passes, a failure, a result with a file.
fn small_suite() -> atex_integration_tests::TestDir {
    let tree = atex_integration_tests::TestDir::new();
    tree.create(".fmf/version", "1\n");
    tree.create(
        "main.fmf",
        r#"duration: 2m
/pass-1:
    test: sleep 1; echo one
/pass-2:
    test: sleep 1; test -d "$TMT_TREE"
/pass-3:
    test: sleep 1; hostname
/fails:
    test: sleep 1; exit 1
/with-file:
    test: |
        j='{"status": "pass", "files": [{"name": "note.txt", "length": 3}]}'
        { printf 'result %s\n%s' "${#j}" "$j"; printf 'abc'; } >&$ATEX_TEST_CONTROL
/pass-4:
    test: sleep 2
"#,
    );
    tree
}

fn atex_run_tf(fake: &FakeTf, tree: &std::path::Path, results: &std::path::Path) -> Command {
    let spec = format!(
        "testing-farm:api_url={},compose=Fedora-Rawhide,max=3,poll_interval=0.2,min_interval=0.01,http_backoff=0.2,ssh_timeout=60,source_cidr_url={}/myip",
        fake.url(),
        fake.url()
    );
    let mut cmd = Command::new(atex_bin());
    cmd.arg("run")
        .arg(tree)
        .args(["-p", &spec, "--plain", "--results"])
        .arg(results)
        .arg("--plugin-dir")
        .arg(atex_integration_tests::profile_dir())
        .env("TESTING_FARM_API_TOKEN", fake::TOKEN)
        .env_remove("ATEX_PLUGIN_PATH")
        .env_remove("TESTING_FARM_API_URL");
    cmd
}

#[test]
fn atex_run_on_three_machines_from_the_stand_in() {
    setup();
    let fake = FakeTf::start();
    let tree = small_suite();
    let results = tempfile::tempdir().expect("tempdir");
    let dir = results.path().join("r");
    let out = atex_run_tf(&fake, tree.path(), &dir)
        .output()
        .expect("run atex");
    // One test fails on purpose.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("results.jsonl"))
        .expect("results.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let status = |t: &str| {
        lines
            .iter()
            .find(|l| l[2] == t && l[3].is_null())
            .map(|l| l[1].as_str().unwrap_or_default().to_string())
    };
    for t in ["/pass-1", "/pass-2", "/pass-3", "/pass-4", "/with-file"] {
        assert_eq!(status(t).as_deref(), Some("pass"), "{t}: {lines:?}");
    }
    assert_eq!(status("/fails").as_deref(), Some("fail"));
    let platform = lines[0][0].as_str().expect("platform");
    assert_eq!(
        std::fs::read_to_string(dir.join("files").join(platform).join("with-file/note.txt"))
            .expect("file"),
        "abc"
    );
    // Three machines were reserved, used over ssh and cancelled.
    assert_eq!(fake.requests().len(), 3, "{:?}", fake.requests());
    let attempts = std::fs::read_to_string(dir.join("attempts.jsonl")).expect("attempts");
    let remotes: std::collections::BTreeSet<String> = attempts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["remote"].to_string())
        .collect();
    assert!(remotes.len() >= 2, "tests ran on {remotes:?}");
    assert!(fake.wait_settled(Duration::from_secs(30)));
    fake.assert_all_cancelled();
}

#[test]
fn atex_run_sigint_while_reservations_are_in_flight() {
    setup();
    let fake = FakeTf::with_options(FakeOptions {
        key_delay: Duration::from_secs(120),
        ..FakeOptions::default()
    });
    let tree = small_suite();
    let results = tempfile::tempdir().expect("tempdir");
    let dir = results.path().join("r");
    let mut child = atex_run_tf(&fake, tree.path(), &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn atex");
    let end = Instant::now() + Duration::from_secs(90);
    while fake.live_containers().len() < 3 {
        assert!(Instant::now() < end, "3 machines never started");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "atex exited early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(fake.wait_settled(Duration::from_secs(30)));
    fake.assert_all_cancelled();
    assert!(fake.live_containers().is_empty());
}

// ------------------------------------------------ plugin commands (atex testing-farm ...)

/// Runs `atex testing-farm ARGS` against `fake`, with `token` (if any) in
/// the environment, finding only the testing-farm plugin.
fn tf_command(
    fake: &FakeTf,
    plugins: &tempfile::TempDir,
    token: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new(atex_bin());
    cmd.arg("testing-farm")
        .args(args)
        .env("ATEX_PLUGIN_PATH", plugins.path())
        .env("TESTING_FARM_API_URL", fake.url())
        .env_remove("TESTING_FARM_API_TOKEN")
        .env_remove("RUST_LOG");
    if let Some(t) = token {
        cmd.env("TESTING_FARM_API_TOKEN", t);
    }
    cmd.output().expect("run atex testing-farm")
}

fn wait_state(fake: &FakeTf, id: &str, states: &[&str]) {
    let end = Instant::now() + Duration::from_secs(20);
    while !fake
        .state_of(id)
        .is_some_and(|s| states.contains(&s.as_str()))
    {
        assert!(
            Instant::now() < end,
            "request {id} is {:?}, not one of {states:?}",
            fake.state_of(id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn plugin_commands_whoami_composes_requests_and_cancel() {
    let fake = FakeTf::start();
    let plugins = atex_integration_tests::plugin_dir_with(&["atex_testing_farm"]);
    // One of my requests ends in error (finished), then the queue is slow
    // enough that the others stay queued: no machines are started.
    fake.faults(|f| f.error_requests = 1);
    let finished = fake.submit_as(fake::TOKEN, "Fedora-Rawhide");
    wait_state(&fake, &finished, &["error"]);
    fake.faults(|f| f.slow_queue = Duration::from_secs(600));
    let mine_a = fake.submit_as(fake::TOKEN, "Fedora-Rawhide");
    let mine_b = fake.submit_as(fake::TOKEN, "Fedora-42");
    let theirs = fake.submit_as(fake::OTHER_TOKEN, "Fedora-Rawhide");
    for id in [&mine_a, &mine_b, &theirs] {
        wait_state(&fake, id, &["queued"]);
    }

    // Help comes from the plugin.
    let out = tf_command(&fake, &plugins, None, &["--help"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for c in ["whoami", "composes", "requests", "cancel"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(c)),
            "{c}:\n{text}"
        );
    }
    let out = tf_command(&fake, &plugins, None, &["cancel", "--help"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).starts_with("usage: atex testing-farm cancel ID... | --mine"),
        "{}",
        stdout(&out)
    );

    // whoami
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["whoami", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).expect("whoami json");
    let my_token_id = me["token"]["id"].as_str().expect("token id").to_string();
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["whoami"]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "token: atex-tests (id {my_token_id}), ranch public"
        )),
        "{text}"
    );
    let out = tf_command(&fake, &plugins, None, &["whoami"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("TESTING_FARM_API_TOKEN"),
        "{}",
        stderr(&out)
    );

    // composes (ranch from whoami; the regex marked)
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["composes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    let expected: Vec<String> = fake::COMPOSES
        .iter()
        .map(|(n, t)| {
            if *t == "regex" {
                format!("{n} (regex)")
            } else {
                n.to_string()
            }
        })
        .collect();
    assert_eq!(lines, expected);

    // requests: everyone's alive ones, or only mine.
    let ids_of = |out: &std::process::Output| -> Vec<String> {
        stdout(out)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["requests"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut all = ids_of(&out);
    all.sort();
    let mut expected = vec![mine_a.clone(), mine_b.clone(), theirs.clone()];
    expected.sort();
    assert_eq!(all, expected, "{}", stdout(&out));
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["requests", "--mine"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut mine = ids_of(&out);
    mine.sort();
    let mut expected = vec![mine_a.clone(), mine_b.clone()];
    expected.sort();
    assert_eq!(mine, expected, "{text}");
    assert!(
        text.lines().any(|l| l.starts_with(&mine_b)
            && l.contains("queued")
            && l.ends_with("Fedora-42@x86_64")),
        "{text}"
    );
    let out = tf_command(
        &fake,
        &plugins,
        Some(fake::TOKEN),
        &["requests", "--mine", "--state", "error"],
    );
    assert_eq!(ids_of(&out), vec![finished.clone()], "{}", stdout(&out));
    assert!(
        fake.calls().iter().any(
            |c| c.path.starts_with("/v0.1/requests?state=queued&token_id=")
                && c.path.ends_with(&my_token_id)
        ),
        "--mine searches by the token's id"
    );

    // cancel by id: mine, a finished one, someone else's.
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["cancel", &mine_a]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{mine_a}: cancel requested\n"));
    wait_state(&fake, &mine_a, &["cancel-requested", "canceled"]);
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["cancel", &finished]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), format!("{finished}: already finished\n"));
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["cancel", &theirs]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with(&format!("{theirs}: not cancelled: HTTP 403")),
        "{}",
        stdout(&out)
    );
    assert_eq!(fake.state_of(&theirs).as_deref(), Some("queued"));

    // cancel --mine: the rest of mine, nobody else's.
    wait_state(&fake, &mine_a, &["canceled"]);
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["cancel", "--mine"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{mine_b}: cancel requested\n"));
    wait_state(&fake, &mine_b, &["cancel-requested", "canceled"]);
    assert_eq!(fake.state_of(&theirs).as_deref(), Some("queued"));
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["cancel", "--mine"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("no requests to cancel")
            || stdout(&out).contains("already cancelled"),
        "{}",
        stdout(&out)
    );
    // Bad usage is one line naming the command.
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["cancel"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("give request ids or --mine"),
        "{}",
        stderr(&out)
    );
    let out = tf_command(&fake, &plugins, Some(fake::TOKEN), &["reserve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no command `reserve`"),
        "{}",
        stderr(&out)
    );
}
