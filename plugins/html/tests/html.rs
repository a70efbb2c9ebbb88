//! Integration tests of the html reporter, through its Rust API.
//!
//! `ATEX_BLESS=1 cargo test -p atex-html` rewrites tests/golden/.
//! The browser tests use headless Chromium (`apt-get install chromium`) and
//! skip, saying so, only when it is not installed. The 10,000-result timing
//! is a benchmark, ignored by default:
//! `cargo test -p atex-html --release -- --ignored --nocapture bench_10k`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use atex_html::{HtmlReporter, new};
use atex_plugin_api::{
    ErrorKind, PluginError, Status,
    sdk::{ReporterImpl, SummaryView},
    testkit::{
        self, RUN_START_MS, ReporterHarness, ResultSpec, SyntheticRun, check_golden, result,
        run_command as run, which,
    },
};

const PLUGIN: ReporterHarness<HtmlReporter> = ReporterHarness::new("html", new);

fn reporter(config: &str, work_dir: &Path) -> Result<HtmlReporter, PluginError> {
    PLUGIN.construct(config, work_dir)
}

fn render(config: &str) -> (SyntheticRun, PathBuf, String) {
    PLUGIN.render(SyntheticRun::golden(), config)
}

/// The embedded data, parsed: the head object, with the tests of every
/// chunk, in file order, as `tests`.
fn data(html: &str) -> serde_json::Value {
    let json_in = |open: &str, from: usize| -> Option<(serde_json::Value, usize)> {
        let start = from + html[from..].find(open)? + open.len();
        let end = start + html[start..].find("</script>").expect("end of data");
        Some((
            serde_json::from_str(&html[start..end]).expect("data is JSON"),
            end,
        ))
    };
    let (mut head, mut at) =
        json_in("<script type=\"application/json\" id=\"atex-data\">", 0).expect("head");
    let mut tests = Vec::new();
    while let Some((chunk, end)) = json_in(
        "<script type=\"application/json\" class=\"atex-chunk\">",
        at,
    ) {
        tests.extend(
            chunk
                .as_array()
                .expect("a chunk is an array")
                .iter()
                .cloned(),
        );
        at = end;
    }
    // As the page reads them: a pass has no status word, the platform is
    // an index into the list.
    for t in &mut tests {
        if t.get("s").is_none() {
            t["s"] = "pass".into();
        }
        let p = t["p"].as_u64().expect("platform index") as usize;
        t["p"] = head["platforms"][p].clone();
    }
    head["tests"] = serde_json::Value::Array(tests);
    head
}

/// How many data chunks the file has.
fn chunks(html: &str) -> usize {
    html.matches("<script type=\"application/json\" class=\"atex-chunk\">")
        .count()
}

#[test]
fn golden_file() {
    let (_run, _path, text) = render("max_log_bytes: 2048");
    check_golden(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.html"),
        &text,
    );
}

#[test]
fn self_contained_and_safe() {
    let (_run, path, text) = render("");
    assert!(path.ends_with("report.html"));
    // Nothing is fetched: no external scripts, styles, images or fetch().
    for bad in [
        "<script src",
        "<link",
        "http://",
        "https://",
        "fetch(",
        "XMLHttpRequest",
        "import(",
    ] {
        assert!(!text.contains(bad), "the report contains {bad:?}");
    }
    // The head, the code, one chunk of data with its decoder, the end;
    // no `</script>` inside any of them.
    assert_eq!(chunks(&text), 1);
    assert_eq!(text.matches("<script").count(), 5);
    assert_eq!(text.matches("</script>").count(), 5);
    assert!(!text.contains('\x1b') && !text.contains('\0'));
    let d = data(&text);
    let tests = d["tests"].as_array().expect("tests");
    assert_eq!(tests.len(), 12);
    // Failures first, in the data as on screen.
    assert_eq!(tests[0]["s"], "infra");
    assert_eq!(tests.last().expect("last")["s"], "pass");
    // Two platforms, several systems: both columns.
    assert_eq!(d["cols"]["platform"], true);
    assert_eq!(d["cols"]["system"], true);
    let weird = tests
        .iter()
        .find(|t| t["n"] == "/tests/weird/chars")
        .expect("weird");
    assert_eq!(weird["o"], "bad \"quoted\" <tag> & ]]>  done");
    assert!(
        weird["l"]
            .as_str()
            .expect("log")
            .contains("esc:red vt: ff:")
    );
    // The flaky test: its earlier attempt's log survived the rerun.
    let flaky = tests
        .iter()
        .find(|t| t["n"] == "/tests/flaky/network")
        .expect("flaky");
    assert_eq!(flaky["a"], 2);
    assert_eq!(flaky["x"][0]["s"], "fail");
    assert_eq!(flaky["x"][0]["l"], "attempt 1: connection reset by peer\n");
    assert_eq!(flaky["l"], "attempt 2: all fine\n");
    // The huge log is cut to max_log_bytes (default 16 KiB).
    let huge = tests
        .iter()
        .find(|t| t["n"] == "/tests/huge/log")
        .expect("huge");
    assert!(huge["l"].as_str().expect("tail").len() <= 16 * 1024);
    assert_eq!(huge["lt"], 1);
    let multi = tests
        .iter()
        .find(|t| t["n"] == "/tests/suite/multi")
        .expect("multi");
    assert_eq!(multi["u"].as_array().expect("subs").len(), 4);
}

#[test]
fn total_log_budget_goes_to_failures_first() {
    let (_run, _path, text) = render("max_log_bytes: 1000\nmax_total_log_bytes: 150");
    let d = data(&text);
    let tests = d["tests"].as_array().expect("tests");
    let shown: usize = tests
        .iter()
        .filter_map(|t| t["l"].as_str())
        .map(str::len)
        .sum();
    assert!(shown <= 150, "{shown} bytes of logs");
    let nfs = tests
        .iter()
        .find(|t| t["n"] == "/tests/storage/nfs")
        .expect("nfs");
    assert!(nfs["l"].is_string(), "the infra test's log comes first");
    let huge = tests
        .iter()
        .find(|t| t["n"] == "/tests/huge/log")
        .expect("huge");
    assert_eq!(huge["lx"], 1, "a pass gets no log once the budget is spent");
}

#[test]
fn output_option_and_relative_links() {
    let run = SyntheticRun::golden();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = out_dir.path().join("site/report.html");
    let config = format!(
        "output: {}\ntitle: Nightly <b>\nplatform_column: never\nsystem_column: always",
        out.display()
    );
    let mut rep = reporter(&config, run.results_dir()).expect("construct");
    assert_eq!(run.feed(&mut rep), vec![out.clone()]);
    let text = std::fs::read_to_string(&out).expect("read");
    assert!(text.contains("<title>Nightly &lt;b&gt;</title>"));
    let d = data(&text);
    let base = d["base"].as_str().expect("base");
    assert!(base.starts_with("../../") && base.ends_with('/'), "{base}");
    assert_eq!(d["cols"]["platform"], false);
    let names: Vec<_> = std::fs::read_dir(out.parent().expect("dir"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["report.html".to_string()],
        "only the report is left (atomic write)"
    );
}

#[test]
fn bad_configuration_is_an_error() {
    for config in [
        "{[}",
        "output: [",
        "- a\n- b",
        "bogus: 1",
        "max_log_bytes: lots",
        "platform_column: sometimes",
    ] {
        assert_eq!(PLUGIN.refusal(config).kind, ErrorKind::CONFIG, "{config:?}");
    }
    assert!(PLUGIN.refusal("- a").message.contains("must be a mapping"));
}

#[test]
fn unwritable_path_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").expect("write");
    let target = blocker.join("report.html");
    let e = match reporter(&format!("output: {}", target.display()), dir.path()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    assert!(e.message.contains("cannot write the report to"), "{e}");
    assert!(e.message.contains(&target.display().to_string()), "{e}");
}

// ---- headless Chromium ------------------------------------------------------

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(which)
}

fn browser(chromium: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

fn file_url(path: &Path, hash: &str) -> String {
    format!("file://{}#{hash}", path.display())
}

/// Opens `report#selftest`, which filters, searches, sorts and follows a
/// deep link, and returns what it wrote into the page.
fn selftest(chromium: &Path, report: &Path) -> serde_json::Value {
    selftest_at(chromium, report, "selftest")
}

/// Opens `report#HASH` and returns what the self-test wrote into the page:
/// `selftest` runs every step, `selftest:KEY` follows a deep link to KEY
/// at the end, and a state hash with `selftest=1` (`!q=x&selftest=1`) only
/// records what the page shows for that state.
fn selftest_at(chromium: &Path, report: &Path, hash: &str) -> serde_json::Value {
    let profile = tempfile::tempdir().expect("profile");
    let (ok, dom, err) = run(browser(chromium, profile.path())
        .arg("--window-size=1280,1400")
        .arg("--dump-dom")
        .arg(file_url(report, hash)));
    assert!(ok, "chromium --dump-dom failed: {err}");
    let start = dom.find("<pre id=\"selftest-result\">").unwrap_or_else(|| {
        panic!(
            "no self-test result in the page; stderr: {err}\n{}",
            &dom[..dom.len().min(2000)]
        )
    }) + "<pre id=\"selftest-result\">".len();
    let end = start + dom[start..].find("</pre>").expect("end");
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).expect("self-test JSON")
}

#[test]
fn chromium_renders_filters_searches_and_screenshots() {
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium not installed (apt-get install chromium)");
        return;
    };
    let (_run, path, _) = render("");
    let r = selftest(&chromium, &path);
    eprintln!("self-test: {r}");
    assert_eq!(r["total"], 12);
    assert_eq!(r["rows"], 12, "every row is drawn");
    assert_eq!(r["firstStatus"], "infra", "the worst first");
    // Failures are listed compactly above the table (warn and worse, 8
    // tests, each with why it ended), not opened as tall panels.
    assert_eq!(r["opened"], 0, "{r}");
    let fails = r["fails"].as_array().expect("failure list");
    assert_eq!(fails.len(), 8, "{fails:?}");
    assert_eq!(
        fails[0],
        serde_json::json!([
            "debian-12/tests/storage/nfs",
            "TestAbortedError(test duration timeout reached)"
        ])
    );
    assert!(fails.contains(&serde_json::json!([
        "debian-12/tests/suite/multi",
        "sub-result check-a: fail (mismatch in /etc/passwd)"
    ])));
    assert_eq!(r["subTags"]["debian-12/tests/suite/multi"], "1 sub fail");
    assert_eq!(r["emptyButtons"], 0, "no button without a label");
    // Expand all opens every test shown, collapse all closes them.
    assert_eq!(r["expanded"], 12);
    assert_eq!(r["collapsed"], 0);
    let fails = r["failFilter"].as_array().expect("fail filter");
    assert_eq!(fails.len(), 4, "{fails:?}");
    assert!(fails.iter().all(|k| k != "debian-12/tests/login/basic"));
    assert_eq!(r["failPressed"], "true");
    assert_eq!(r["afterAll"], 12);
    assert_eq!(
        r["search"],
        serde_json::json!([
            "debian-12/tests/login/bad-password",
            "rhel-9.6@x86_64/tests/login/basic",
            "debian-12/tests/login/basic"
        ])
    );
    assert_eq!(
        r["searchNote"],
        serde_json::json!(["debian-12/tests/login/bad-password"])
    );
    assert_eq!(r["longest"], "rhel-9.6@x86_64/tests/custom/status");
    assert_eq!(r["byName"][0], "debian-12/tests/broken/always");
    // Filter, search and sort are kept in the URL.
    assert_eq!(r["hashAfterFilter"], "#!only=fail");
    assert_eq!(r["hashAfterSearch"], "#!q=login");
    assert_eq!(r["hashAfterSort"], "#!sort=name");
    assert_eq!(r["deepLinkShown"], r["deepLink"]);
    assert_eq!(r["deepLinkOpen"], true);
    assert_eq!(r["logs"], 1, "only the opened test's log is in the page");
    let links: Vec<&str> = r["links"]
        .as_array()
        .expect("links")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        links.contains(&"files/debian-12/tests/login/basic/output.txt"),
        "{links:?}"
    );

    // A screenshot, for people (and the report) to look at.
    let shot_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let shot = shot_dir.join("atex-html-report.png");
    let profile = tempfile::tempdir().expect("profile");
    let (ok, _, err) = run(browser(&chromium, profile.path())
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,900")
        .arg(file_url(&path, "")));
    assert!(ok, "screenshot failed: {err}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot is {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}

/// A screenshot of `report#hash` into the target directory.
fn screenshot(chromium: &Path, report: &Path, hash: &str, name: &str) -> PathBuf {
    screenshot_sized(chromium, report, hash, name, "1280,900")
}

/// The same in a window of `size` (`W,H`).
fn screenshot_sized(chromium: &Path, report: &Path, hash: &str, name: &str, size: &str) -> PathBuf {
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let profile = tempfile::tempdir().expect("profile");
    let (ok, _, err) = run(browser(chromium, profile.path())
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={size}"))
        .arg(file_url(report, hash)));
    assert!(ok, "screenshot failed: {err}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot is {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
    shot
}

fn position(keys: &serde_json::Value, key: &str) -> usize {
    keys.as_array()
        .expect("keys")
        .iter()
        .position(|k| k == key)
        .unwrap_or_else(|| panic!("{key} not in {keys}"))
}

/// The run that says why tests ended: reasons in the failure list, rows and
/// details; tests that did not run listed by name; natural order; a log
/// opened at its end; search in logs; a sub-result's warn on its parent;
/// the tests × platforms matrix.
#[test]
fn chromium_shows_reasons_not_run_matrix_and_log_ends() {
    let (_run, path, text) = PLUGIN.render(SyntheticRun::ended(), "");
    let d = data(&text);
    assert_eq!(d["notRun"], testkit::ENDED_NOT_RUN);
    assert_eq!(d["total"], testkit::ENDED_JOBS);
    let tests = d["tests"].as_array().expect("tests");
    let exit3 = tests
        .iter()
        .find(|t| t["n"] == "/tests/basics/exit-code")
        .expect("exit-code");
    assert_eq!(exit3["y"], "exit code 3");
    assert_eq!(exit3["l"], "");
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium not installed (apt-get install chromium)");
        return;
    };
    let r = selftest_at(&chromium, &path, "selftest:debian-12/tests/slow/hang");
    eprintln!("self-test: {r}");
    assert_eq!(r["total"], testkit::ENDED_JOBS);
    // Failures first, each with why it ended.
    let fails = &r["fails"];
    for (key, why) in [
        ("debian-12/tests/slow/hang", "timed out after 5m"),
        ("debian-12/tests/basics/exit-code", "exit code 3"),
        ("fedora-41/tests/basics/exit-code", "exit code 3"),
        (
            "fedora-41/tests/signal/killed",
            "killed by signal 9 (SIGKILL)",
        ),
        ("debian-12/tests/legacy/noted", "assertion failed: 2 == 3"),
    ] {
        assert!(
            fails
                .as_array()
                .expect("fails")
                .contains(&serde_json::json!([key, why])),
            "{key}: {fails}"
        );
    }
    assert_eq!(fails.as_array().expect("fails").len(), 5);
    assert_eq!(
        r["rowWhy"]["debian-12/tests/basics/exit-code"],
        "exit code 3"
    );
    // Tests that did not run, by name, with the reason.
    assert_eq!(
        r["notRun"],
        serde_json::json!([
            "debian-12/tests/late/one",
            "fedora-41/tests/late/one",
            "debian-12/tests/late/two"
        ])
    );
    assert!(
        r["notRunText"]
            .as_str()
            .expect("not-run section")
            .contains(testkit::ENDED_NOT_RUN_REASON)
    );
    // A passing test with a warning sub-result says so on its row.
    assert_eq!(
        r["subTags"]["debian-12/tests/parent/with-subs"],
        "1 sub warn"
    );
    // Natural order: t1, t2, t10.
    let by_name = &r["byName"];
    let t = |n: &str| position(by_name, &format!("debian-12/tests/num/{n}"));
    assert!(t("t1") < t("t2") && t("t2") < t("t10"), "{by_name}");
    // Search covers log text.
    assert_eq!(
        r["searchLog"],
        serde_json::json!(["fedora-41/tests/signal/killed"])
    );
    assert_eq!(r["searchNone"], 0);
    // The matrix: a row per test, a column per platform.
    assert_eq!(
        r["matrixHead"],
        serde_json::json!(["Test", "debian-12", "fedora-41"])
    );
    let rows = r["matrixRows"].as_array().expect("matrix rows");
    assert!(rows.contains(&serde_json::json!([
        "/tests/basics/exit-code",
        "fail",
        "fail"
    ])));
    assert!(rows.contains(&serde_json::json!(["/tests/signal/killed", "–", "fail"])));
    assert!(rows.contains(&serde_json::json!(["/tests/late/two", "not run", "–"])));
    let m = |n: &str| {
        rows.iter()
            .position(|r| r[0] == format!("/tests/num/{n}"))
            .expect("num row")
    };
    assert!(m("t1") < m("t2") && m("t2") < m("t10"));
    assert_eq!(r["hashMatrix"], "#!view=matrix");
    // The deep link opens the hung test with its long log at the end.
    assert_eq!(r["deepLinkShown"], "debian-12/tests/slow/hang");
    assert_eq!(r["detailWhy"], "Reason: timed out after 5m");
    let log = &r["log"];
    assert_eq!(log["atEnd"], true, "{log}");
    assert!(
        log["scrollTop"].as_f64().expect("scrollTop") > 100.0,
        "{log}"
    );
    assert_eq!(r["emptyButtons"], 0);

    screenshot(&chromium, &path, "", "atex-html-ended-list.png");
    screenshot(
        &chromium,
        &path,
        "!view=matrix",
        "atex-html-ended-matrix.png",
    );
    // Tall enough that the whole opened test is on screen.
    screenshot_sized(
        &chromium,
        &path,
        "debian-12/tests/slow/hang",
        "atex-html-ended-log-end.png",
        "1280,1500",
    );
}

/// Filter, search, sort and view come back from the URL.
#[test]
fn chromium_restores_state_from_the_url() {
    let (_run, path, _) = PLUGIN.render(SyntheticRun::ended(), "");
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("atex-html-ended.html");
    std::fs::copy(&path, &keep).expect("keep a copy");
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium not installed (apt-get install chromium)");
        return;
    };
    let r = selftest_at(&chromium, &path, "!q=T1&only=pass&sort=name&selftest=1");
    let initial = &r["initial"];
    assert_eq!(initial["q"], "t1", "{r}");
    assert_eq!(initial["pressed"], serde_json::json!(["pass"]));
    assert_eq!(
        initial["visible"],
        serde_json::json!([
            "debian-12/tests/num/t1",
            "fedora-41/tests/num/t1",
            "debian-12/tests/num/t10",
            "fedora-41/tests/num/t10"
        ])
    );
    let r = selftest_at(
        &chromium,
        &path,
        "!only=not%20run&sort=name&dir=desc&selftest=1",
    );
    assert_eq!(
        r["initial"]["visible"],
        serde_json::json!([
            "debian-12/tests/late/two",
            "fedora-41/tests/late/one",
            "debian-12/tests/late/one"
        ]),
        "{r}"
    );
    let r = selftest_at(
        &chromium,
        &path,
        "!view=matrix&q=exit%20code%203&selftest=1",
    );
    assert_eq!(r["initial"]["view"], "matrix");
    assert_eq!(
        r["matrixRows"],
        serde_json::json!([["/tests/basics/exit-code", "fail", "fail"]])
    );
    screenshot(
        &chromium,
        &path,
        "!q=exit&only=fail",
        "atex-html-ended-url-state.png",
    );
}

/// 10,000 results with 1 MB of logs in total: file size and the time
/// Chromium takes to open and draw it. A benchmark: it reports, it does not
/// assert on time.
#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn bench_10k() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut rep = reporter("", d).expect("construct");
    let statuses = [
        "pass", "pass", "pass", "pass", "pass", "pass", "fail", "error", "skip", "infra",
    ];
    let line = "x".repeat(99) + "\n"; // 100 bytes a test: 1 MB in all
    for i in 0..10_000u32 {
        let platform = if i % 2 == 0 { "debian-12" } else { "fedora-41" };
        let test = format!("/tests/group-{:03}/test-{i:05}", i / 100);
        let file = format!("files/{platform}{test}/output.txt");
        let p = d.join(&file);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, &line).expect("write");
        let status = statuses[(i % 10) as usize];
        let note = (status != "pass").then(|| format!("note for test {i}"));
        let files = [file.as_str()];
        rep.on_result(&result(
            d,
            ResultSpec {
                platform,
                test: &test,
                status,
                note: note.as_deref(),
                files: &files,
                start_s: u64::from(i),
                dur_ms: u64::from(i * 37 % 100_000),
                remote: ["r1", "r2", "r3", "r4"][(i % 4) as usize],
                ..ResultSpec::default()
            },
        ))
        .expect("on_result");
    }
    let summary = SummaryView {
        run_id: "bench".into(),
        results_dir: d.to_path_buf(),
        started_unix_ms: RUN_START_MS,
        duration_ms: 3_600_000,
        tests_total: 10_000,
        counts: vec![(Status::Pass, 6000)],
        interrupted: false,
        extra_json: "{}".into(),
    };
    let t = Instant::now();
    let paths = rep.finish(&summary).expect("finish");
    let write_ms = t.elapsed().as_millis();
    let size = std::fs::metadata(&paths[0]).expect("stat").len();
    println!(
        "bench_10k: report written in {write_ms} ms, {size} bytes ({:.2} MB)",
        size as f64 / 1e6
    );
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-10k-report.html");
    std::fs::copy(&paths[0], &keep).expect("keep a copy");
    println!("bench_10k: a copy is in {}", keep.display());
    let Some(chromium) = chromium() else {
        println!("bench_10k: chromium not installed, no browser timing");
        return;
    };
    for round in 1..=3 {
        let profile = tempfile::tempdir().expect("profile");
        let t = Instant::now();
        let (ok, dom, err) = run(browser(&chromium, profile.path())
            .arg("--dump-dom")
            .arg(file_url(&paths[0], "timing")));
        let wall = t.elapsed().as_millis();
        assert!(ok, "chromium: {err}");
        let ready = dom
            .split("data-render-ms=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("?")
            .to_string();
        println!(
            "bench_10k: open {round}: page drawn {ready} ms after navigation start; \
             chromium process wall time {wall} ms (includes browser start-up)"
        );
    }
    for round in 1..=1 {
        let t = Instant::now();
        let r = selftest(&chromium, &paths[0]);
        let wall = t.elapsed().as_millis();
        println!(
            "bench_10k: self-test {round}: page drawn {} ms after navigation start (script {} ms), \
             self-test steps {} ms; chromium process wall time {wall} ms",
            r["renderMs"], r["scriptMs"], r["selftestMs"]
        );
        assert_eq!(r["total"], 10_000);
    }
}

/// 20,000 results: the data comes in several chunks, the page holds only
/// the rows on screen, and filter, search and sort still see every result.
#[test]
fn chromium_draws_only_the_rows_on_screen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut rep = reporter("", d).expect("construct");
    for i in 0..20_000u32 {
        let test = format!("/tests/t{i}");
        let status = if i % 10 == 3 { "fail" } else { "pass" };
        rep.on_result(&result(
            d,
            ResultSpec {
                platform: ["a", "b"][(i % 2) as usize],
                test: &test,
                status,
                dur_ms: u64::from(i),
                ..ResultSpec::default()
            },
        ))
        .expect("on_result");
    }
    let summary = SummaryView {
        run_id: "many".into(),
        results_dir: d.to_path_buf(),
        started_unix_ms: RUN_START_MS,
        duration_ms: 1000,
        tests_total: 20_000,
        counts: vec![(Status::Pass, 18_000), (Status::Fail, 2_000)],
        interrupted: false,
        extra_json: "{}".into(),
    };
    let paths = rep.finish(&summary).expect("finish");
    let text = std::fs::read_to_string(&paths[0]).expect("read");
    assert!(chunks(&text) >= 4, "{} chunks", chunks(&text));
    let tests = data(&text)["tests"].as_array().expect("tests").len();
    assert_eq!(tests, 20_000);
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium not installed (apt-get install chromium)");
        return;
    };
    let r = selftest(&chromium, &paths[0]);
    assert_eq!(r["total"], 20_000);
    let rows = r["rows"].as_u64().expect("rows");
    assert!(rows > 5 && rows < 200, "{rows} rows in the page");
    assert_eq!(r["failCount"], 2_000);
    // Natural order over every result: /tests/t0, t1, t2 ... not t10.
    assert_eq!(r["byName"][0], "a/tests/t0");
    assert_eq!(r["byName"][1], "b/tests/t1");
    assert_eq!(r["byName"][2], "a/tests/t2");
    assert_eq!(r["longest"], "b/tests/t19999");
    assert!(r["expanded"].as_u64().expect("expanded") < 200);
    // The compact failure list is bounded, with a way to the rest.
    assert_eq!(r["fails"].as_array().expect("fails").len(), 100);
    // The deep link to the last test reaches it.
    assert_eq!(r["deepLinkShown"], r["deepLink"]);
}

/// CPU time (user + system) of this process's waited-for children so far,
/// in ms (Linux, from /proc/self/stat; assumes 100 ticks a second).
fn children_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // cutime and cstime are fields 16 and 17 of the line, 14 and 15 here.
    f.get(13).copied().unwrap_or(0) * 10 + f.get(14).copied().unwrap_or(0) * 10
}

/// Peak resident memory of this process so far, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// 300,000 results (100,000 tests on 3 platforms; 9 % failing with a log
/// and a reason, 1,000 not run) through the reporter API: the time to
/// write the report, its size, and in headless Chromium the time to the
/// first rows drawn, to every result decoded and drawn, and the response of
/// filter, search, sort and the matrix. A benchmark: it prints the numbers
/// and asserts only what is not a time (the size limit, that only the rows
/// on screen are in the page, that every result arrived).
/// `cargo test -p atex-html --release --test html -- --ignored --nocapture bench_300k`
#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn bench_300k() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut rep = reporter("", d).expect("construct");
    let platforms = ["debian-12", "fedora-41", "rhel-9.6@x86_64"];
    let rss0 = peak_rss_kib();
    let t = Instant::now();
    let mut n = 0u64;
    for i in 0..100_000u32 {
        let test = format!("/tests/group-{:03}/test-{i}", i / 1000);
        for (pi, platform) in platforms.into_iter().enumerate() {
            let k = (i as usize * 3 + pi) % 100;
            let (status, extra, note) = match k {
                0..=4 => ("fail", r#"{"reason": "exit code 1", "exit_code": 1}"#, None),
                5..=6 => (
                    "error",
                    r#"{"reason": "timed out after 5m"}"#,
                    Some("test duration timeout reached"),
                ),
                7 => (
                    "infra",
                    r#"{"reason": "system lost: connection closed"}"#,
                    None,
                ),
                8 => (
                    "skip",
                    r#"{"reason": "exit code 0"}"#,
                    Some("needs a second disk"),
                ),
                _ => ("pass", r#"{"reason": "exit code 0", "exit_code": 0}"#, None),
            };
            let not_run = i >= 99_667 && pi == 0;
            let file = format!("files/{platform}{test}/output.txt");
            let files: Vec<&str> = if status != "pass" && status != "skip" && !not_run {
                let p = d.join(&file);
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(
                    &p,
                    format!("step 1 ok\nERROR: check {i} failed on {platform}\nstep 3\n"),
                )
                .expect("write");
                vec![file.as_str()]
            } else {
                Vec::new()
            };
            let view = if not_run {
                result(
                    d,
                    ResultSpec {
                        platform,
                        test: &test,
                        status: "skip",
                        dur_ms: 0,
                        attempt: 0,
                        remote: "",
                        extra: r#"{"not_run": true, "reason": "not run: --max-fail 9000 reached"}"#,
                        ..ResultSpec::default()
                    },
                )
            } else {
                result(
                    d,
                    ResultSpec {
                        platform,
                        test: &test,
                        status,
                        note,
                        files: &files,
                        start_s: u64::from(i / 10),
                        dur_ms: u64::from(i * 37 % 100_000),
                        remote: ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"][(i % 8) as usize],
                        extra,
                        ..ResultSpec::default()
                    },
                )
            };
            rep.on_result(&view).expect("on_result");
            n += 1;
        }
    }
    let feed_ms = t.elapsed().as_millis();
    let summary = SummaryView {
        run_id: "bench-300k".into(),
        results_dir: d.to_path_buf(),
        started_unix_ms: RUN_START_MS,
        duration_ms: 36_000_000,
        tests_total: n,
        counts: vec![(Status::Pass, n)],
        interrupted: false,
        extra_json: "{}".into(),
    };
    let t = Instant::now();
    let paths = rep.finish(&summary).expect("finish");
    let write_ms = t.elapsed().as_millis();
    let size = std::fs::metadata(&paths[0]).expect("stat").len();
    println!(
        "bench_300k: {n} results fed in {feed_ms} ms (files written by the test included), \
         report written in {write_ms} ms, {size} bytes ({:.1} MB); \
         test process peak RSS {} MiB (was {} MiB before the run)",
        size as f64 / 1e6,
        peak_rss_kib() / 1024,
        rss0 / 1024
    );
    assert!(size < 60_000_000, "the report is {size} bytes");
    let Some(chromium) = chromium() else {
        println!("bench_300k: chromium not installed, no browser timing");
        return;
    };
    // What the browser costs with a 12-result report, to set against.
    let (_small, small_path, _) = render("");
    let cpu0 = children_cpu_ms();
    let t = Instant::now();
    selftest(&chromium, &small_path);
    println!(
        "bench_300k: baseline, the 12-result report: chromium wall time {} ms, {} ms of CPU",
        t.elapsed().as_millis(),
        children_cpu_ms() - cpu0
    );
    for round in 1..=3 {
        let t = Instant::now();
        let cpu0 = children_cpu_ms();
        let r = selftest(&chromium, &paths[0]);
        let wall = t.elapsed().as_millis();
        let cpu = children_cpu_ms() - cpu0;
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "bench_300k: open {round}: first rows drawn {} ms, first frame after them {} ms, all {} \
             results decoded and drawn {} ms after navigation start (decoding chunks {} ms, \
             finishing {} ms); rows in the page {}; steps (ms) {}; chromium wall time {wall} ms \
             and {cpu} ms of CPU in all its processes (both include browser start-up and the \
             self-test); load average {}",
            r["firstDrawMs"],
            r["firstFrameMs"],
            r["total"],
            r["renderMs"],
            r["decodeMs"],
            r["doneMs"],
            r["rows"],
            r["laps"],
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert_eq!(r["total"], n);
        assert!(
            r["rows"].as_u64().expect("rows") < 200,
            "only what is on screen is drawn: {}",
            r["rows"]
        );
        assert_eq!(r["searchNone"], 0);
    }
}

/// The nasty run: every status, an unknown and an upper-case word, markup,
/// quotes, controls and non-ASCII text in every name, a test with only
/// sub-results, three attempts.
#[test]
fn nasty_run_stays_inside_its_script_and_keeps_statuses() {
    let (_run, path, text) = PLUGIN.render(SyntheticRun::nasty(), "");
    assert_eq!(text.matches("<script").count(), 5);
    assert_eq!(text.matches("</script>").count(), 5);
    for c in ['\0', '\x01', '\x1b', '\u{9b}'] {
        assert!(!text.contains(c), "raw {c:?} in the file");
    }
    let d = data(&text);
    let tests = d["tests"].as_array().expect("tests");
    assert_eq!(tests.len() as u64, testkit::NASTY_TESTS);
    let by_name = |n: &str| {
        tests
            .iter()
            .find(|t| t["n"] == n)
            .unwrap_or_else(|| panic!("no test {n}"))
    };
    // Worst first; an upper-case word is the status it names.
    assert_eq!(tests[0]["s"], "infra");
    assert_eq!(by_name("/nasty/status/FAIL")["s"], "fail");
    assert_eq!(by_name("/nasty/status/custom-word")["s"], "custom-word");
    assert_eq!(by_name("/nasty/only-subs")["s"], "fail");
    let nasty = tests
        .iter()
        .find(|t| {
            t["n"]
                .as_str()
                .is_some_and(|n| n.starts_with("/nasty/name"))
        })
        .expect("the nasty name");
    let name = nasty["n"].as_str().expect("name");
    assert!(
        name.contains("<&>\"' ]]>") && name.contains("ümlaut ✓ 日本"),
        "{name}"
    );
    assert!(nasty["u"][0]["n"].as_str().expect("sub").contains("<&>\"'"));
    assert_eq!(nasty["u"][0]["s"], "warn");
    assert!(nasty["e"]["key <&>\"'"].is_string(), "{}", nasty["e"]);
    // Three attempts, each with the log it wrote.
    let rerun = by_name("/nasty/rerun");
    assert_eq!(rerun["a"], 3);
    let earlier = rerun["x"].as_array().expect("earlier attempts");
    assert_eq!(earlier.len(), 2);
    assert!(
        earlier[1]["l"]
            .as_str()
            .expect("log")
            .starts_with("attempt 2 <&>")
    );
    assert_eq!(earlier[1]["s"], "error");
    // And a browser draws every row.
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium not installed (apt-get install chromium)");
        return;
    };
    let r = selftest(&chromium, &path);
    assert_eq!(r["total"], 12, "{r}");
    assert_eq!(r["rows"], 12, "{r}");
    assert_eq!(r["firstStatus"], "infra", "{r}");
}
