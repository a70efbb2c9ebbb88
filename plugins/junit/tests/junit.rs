//! Integration tests of the junit reporter, through its Rust API.
//!
//! `ATEX_BLESS=1 cargo test -p atex-junit` rewrites tests/golden/.
//! Schema validation uses `xmllint` (Debian libxml2-utils) and the Jenkins
//! the vendored `tests/junit-10.xsd` (or `ATEX_JUNIT_XSD`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use atex_junit::{JunitReporter, new};
use atex_plugin_api::{
    ErrorKind, PluginError,
    sdk::ReporterImpl,
    testkit::{
        self, ReporterHarness, SyntheticRun, big_log, check_golden, run_command as run, which,
    },
};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

const PLUGIN: ReporterHarness<JunitReporter> = ReporterHarness::new("junit", new);

fn reporter(config: &str, work_dir: &Path) -> Result<JunitReporter, PluginError> {
    PLUGIN.construct(config, work_dir)
}

/// Runs the golden run with `config`; returns the file's text and path.
fn render(config: &str) -> (SyntheticRun, PathBuf, String) {
    PLUGIN.render(SyntheticRun::golden(), config)
}

fn xsd() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ATEX_JUNIT_XSD") {
        return Some(PathBuf::from(p));
    }
    // Vendored from the Jenkins xUnit plugin (MIT, notice kept in the file).
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/junit-10.xsd");
    p.is_file().then_some(p)
}

/// Validates with `xmllint --schema`; false (after saying why) when the
/// tool or the schema is missing.
fn validate(file: &Path) -> bool {
    let Some(xmllint) = which("xmllint") else {
        eprintln!("skipped: xmllint not installed (apt-get install libxml2-utils)");
        return false;
    };
    let Some(xsd) = xsd() else {
        eprintln!("skipped: junit-10.xsd not found (set ATEX_JUNIT_XSD)");
        return false;
    };
    let (ok, out, err) = run(Command::new(xmllint)
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(file));
    assert!(
        ok,
        "{} does not validate against {}:\n{out}{err}",
        file.display(),
        xsd.display()
    );
    true
}

fn xpath(file: &Path, expr: &str) -> Option<String> {
    let xmllint = which("xmllint")?;
    let (ok, out, err) = run(Command::new(xmllint).arg("--xpath").arg(expr).arg(file));
    assert!(ok, "xmllint --xpath {expr}: {err}");
    Some(out.trim().to_string())
}

/// The text of the first testcase called `name`.
fn case_of<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("<testcase name=\"{name}\""))
        .expect("testcase");
    let rest = &text[start..];
    let end = [rest.find("/>"), rest.find("</testcase>")]
        .into_iter()
        .flatten()
        .min()
        .expect("end");
    &rest[..end]
}

#[test]
fn golden_file() {
    let (_run, _path, text) = render("max_output_bytes: 2048");
    check_golden(&golden_dir().join("junit.xml"), &text);
}

#[test]
fn golden_output_validates_against_junit_10_xsd() {
    let (_run, path, _) = render("max_output_bytes: 2048");
    if validate(&path) {
        eprintln!("validated {} against junit-10.xsd", path.display());
    }
    // The committed golden file too, so a review of it is a review of valid XML.
    validate(&golden_dir().join("junit.xml"));
}

#[test]
fn default_options_validate_and_cap_output() {
    let (_run, path, text) = render("");
    validate(&path);
    assert!(path.ends_with("junit.xml"));
    // The 1 MiB log is cut to its last 64 KiB, with the full file named.
    let case = case_of(&text, "log");
    assert!(case.contains("[atex: last "), "no truncation header");
    let total = big_log(1 << 20).len();
    assert!(case.contains(&format!(
        "of {total} bytes shown; full output: files/rhel-9.6@x86_64/tests/huge/log/output.txt]"
    )));
    assert!(
        case.len() < 64 * 1024 + 1024,
        "system-out is {} bytes",
        case.len()
    );
    let log = String::from_utf8(big_log(1 << 20)).expect("utf-8");
    let last_line = log.lines().last().expect("a line");
    assert!(
        case.contains(&format!("{last_line}\n</system-out>")),
        "the last line is kept"
    );
}

#[test]
fn counts_outcomes_and_reruns() {
    let (_run, path, text) = render("max_output_bytes: 2048");
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"atex\" tests=\"16\" failures=\"5\" errors=\"4\" time=\"754.321\">"));
    let Some(n) = xpath(&path, "count(//testcase)") else {
        eprintln!("skipped: xmllint not installed");
        return;
    };
    assert_eq!(n, "16");
    assert_eq!(
        xpath(&path, "count(//testcase/failure)").as_deref(),
        Some("5")
    );
    assert_eq!(
        xpath(&path, "count(//testcase/error)").as_deref(),
        Some("4")
    );
    assert_eq!(
        xpath(&path, "count(//testcase/skipped)").as_deref(),
        Some("1")
    );
    // One suite per platform, with its counts.
    assert_eq!(xpath(&path, "count(//testsuite)").as_deref(), Some("2"));
    let deb = "//testsuite[@name='debian-12']";
    assert_eq!(
        xpath(&path, &format!("string({deb}/@tests)")).as_deref(),
        Some("13")
    );
    assert_eq!(
        xpath(&path, &format!("count({deb}/testcase)")).as_deref(),
        Some("13")
    );
    // Flaky: passed on attempt 2 after a failure.
    let flaky = "//testcase[@classname='tests.flaky'][@name='network']";
    assert_eq!(
        xpath(&path, &format!("count({flaky}/flakyFailure)")).as_deref(),
        Some("1")
    );
    assert_eq!(
        xpath(&path, &format!("count({flaky}/failure)")).as_deref(),
        Some("0")
    );
    // The earlier attempt's own output survived the rerun overwriting it.
    assert!(
        xpath(&path, &format!("string({flaky}/flakyFailure/system-out)"))
            .expect("xpath")
            .contains("attempt 1: connection reset by peer")
    );
    // Failed every time: rerunError for attempt 1, failure for attempt 2,
    // whose body is the output tail.
    let broken = "//testcase[@classname='tests.broken'][@name='always']";
    assert_eq!(
        xpath(&path, &format!("count({broken}/rerunError)")).as_deref(),
        Some("1")
    );
    assert_eq!(
        xpath(&path, &format!("string({broken}/failure/@message)")).as_deref(),
        Some("assertion failed")
    );
    assert!(
        xpath(&path, &format!("string({broken}/failure)"))
            .expect("xpath")
            .ends_with("attempt 2 broke differently")
    );
    // Sub-results are testcases whose classname is their test's path.
    assert_eq!(
        xpath(&path, "count(//testcase[@classname='tests.suite.multi'])").as_deref(),
        Some("4")
    );
    // The test itself: classname from its path, named by its last part.
    assert_eq!(
        xpath(
            &path,
            "string(//testsuite[@name='rhel-9.6@x86_64']/testcase[@name='basic']/@classname)"
        )
        .as_deref(),
        Some("tests.login")
    );
    // Timestamps carry a zone.
    assert_eq!(
        xpath(&path, &format!("string({deb}/@timestamp)")).as_deref(),
        Some("2026-01-02T03:04:06Z")
    );
}

/// Why tests ended: the reason is the message, the output tail the body;
/// tests that did not run are skipped with their reason.
#[test]
fn reasons_and_tests_that_did_not_run() {
    let (run, path, text) = PLUGIN.render(SyntheticRun::ended(), "");
    validate(&path);
    // A copy to look at.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("atex-junit-ended.xml");
    std::fs::copy(&path, &keep).expect("keep a copy");
    // Every job is a testcase, plus the sub-results of one test.
    let subs = 2;
    assert!(
        text.contains(&format!(
            "<testsuites name=\"atex\" tests=\"{}\" failures=\"4\" errors=\"2\"",
            testkit::ENDED_JOBS + subs
        )),
        "{}",
        &text[..300]
    );
    // A test that exits 3 without output.
    let exit3 = case_of(&text, "exit-code");
    assert!(
        exit3.contains("<failure type=\"fail\" message=\"exit code 3\">"),
        "{exit3}"
    );
    assert!(
        exit3.contains("[atex: no output; files/debian-12/tests/basics/exit-code/output.txt]"),
        "{exit3}"
    );
    let Some(msg) = xpath(
        &path,
        "string(//testsuite[@name='fedora-41']/testcase[@name='exit-code']/failure/@message)",
    ) else {
        return;
    };
    assert_eq!(msg, "exit code 3");
    let hang = "//testcase[@classname='tests.slow'][@name='hang']/error";
    assert_eq!(
        xpath(&path, &format!("string({hang}/@message)")).as_deref(),
        Some("timed out after 5m")
    );
    let body = xpath(&path, &format!("string({hang})")).expect("xpath");
    assert!(body.starts_with("test duration timeout reached\n[atex: full output: files/debian-12/tests/slow/hang/output.txt]"), "{body}");
    assert!(
        body.trim_end().ends_with(testkit::ENDED_LAST_LOG_LINE),
        "{body}"
    );
    // An older result without a reason: the note's first line.
    assert_eq!(
        xpath(&path, "string(//testcase[@name='noted']/failure/@message)").as_deref(),
        Some("assertion failed: 2 == 3")
    );
    // Not run: skipped, with the reason, counted per platform.
    assert_eq!(
        xpath(
            &path,
            "count(//testcase/skipped[@message='not run: --max-fail 3 reached'])"
        )
        .as_deref(),
        Some(testkit::ENDED_NOT_RUN.to_string().as_str())
    );
    for (platform, n) in [("debian-12", "2"), ("fedora-41", "1")] {
        let suite = format!("//testsuite[@name='{platform}']");
        assert_eq!(
            xpath(&path, &format!("string({suite}/@skipped)")).as_deref(),
            Some(n)
        );
        assert_eq!(
            xpath(
                &path,
                &format!("string({suite}/properties/property[@name='not_run']/@value)")
            )
            .as_deref(),
            Some(n)
        );
    }
    assert_eq!(
        xpath(&path, "count(//testsuite[@name='debian-12']/testcase)").as_deref(),
        Some("11")
    );
    drop(run);
}

#[test]
fn strips_characters_xml_forbids() {
    let (_run, path, text) = render("max_output_bytes: 2048");
    for c in [
        '\0', '\x01', '\x07', '\x0b', '\x0c', '\x1b', '\u{fffe}', '\u{ffff}', '\u{9b}',
    ] {
        assert!(!text.contains(c), "{c:?} left in the file");
    }
    assert!(!text.contains("]]>"), "a raw ]]> is left");
    assert!(text.contains("]]&gt; &lt;![CDATA[x]]&gt; &lt;/script&gt;&lt;b&gt;&amp;amp;"));
    assert!(text.contains("message=\"bad &quot;quoted&quot; &lt;tag&gt; &amp; ]]&gt;  done\""));
    assert!(text.contains("ümlaut ✓"));
    if let Some(v) = xpath(&path, "string(//testcase[@name='chars']/failure/@message)") {
        assert_eq!(v, "bad \"quoted\" <tag> & ]]>  done");
    }
}

#[test]
fn interrupted_run_is_an_error_and_valid() {
    let mut run = SyntheticRun::golden();
    run.summary.interrupted = true;
    let mut rep = reporter("include_output: none", run.results_dir()).expect("construct");
    let paths = run.feed(&mut rep);
    let text = std::fs::read_to_string(&paths[0]).expect("read");
    assert!(text.contains("<testcase name=\"run interrupted\" classname=\"atex\""));
    assert!(!text.contains("<system-out>"), "include_output: none");
    assert!(text.contains("tests=\"17\" failures=\"5\" errors=\"5\""));
    validate(&paths[0]);
}

#[test]
fn output_option_and_relative_links() {
    let run = SyntheticRun::golden();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = out_dir.path().join("ci/report/junit.xml");
    let mut rep = reporter(&format!("output: {}\nmax_output_bytes: 100\ninclude_output: failures\nname: nightly\nstatus_map: {{warn: failure, timeout: skipped}}", out.display()), run.results_dir())
        .expect("construct");
    let paths = run.feed(&mut rep);
    assert_eq!(paths, vec![out.clone()]);
    let text = std::fs::read_to_string(&out).expect("read");
    assert!(
        text.contains("<testsuites name=\"nightly\" tests=\"16\" failures=\"6\" errors=\"2\""),
        "{}",
        &text[..200]
    );
    // Links go from the report's directory to the results directory.
    let rel = atex_junit_rel(out.parent().expect("dir"), run.results_dir());
    assert!(text.contains(&format!(
        "full output: {rel}/files/debian-12/tests/login/bad-password/output.txt"
    )));
    // Passing testcases carry no output with include_output: failures.
    let case = case_of(&text, "basic");
    assert!(!case.contains("system-out"));
    validate(&out);
    // Nothing but the report is left in its directory (atomic write).
    let names: Vec<_> = std::fs::read_dir(out.parent().expect("dir"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["junit.xml".to_string()]);
}

fn atex_junit_rel(from: &Path, to: &Path) -> String {
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = (common..a.len()).map(|_| "..".to_string()).collect();
    parts.extend(
        b[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[test]
fn bad_configuration_is_an_error() {
    for config in [
        "output: [",
        "- a\n- b",
        "[1, 2]",
        "bogus: 1",
        "max_output_bytes: -1",
        "include_output: some",
        "42",
    ] {
        let e = PLUGIN.refusal(config);
        assert_eq!(e.kind, ErrorKind::CONFIG, "{config:?}: {e}");
    }
    assert!(PLUGIN.refusal("- a").message.contains("must be a mapping"));
    assert!(
        PLUGIN
            .refusal("bogus: 1")
            .message
            .contains("unknown field `bogus`")
    );
}

#[test]
fn unwritable_path_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").expect("write");
    let target = blocker.join("junit.xml");
    let e = match reporter(&format!("output: {}", target.display()), dir.path()) {
        Ok(_) => panic!("a path under a file was accepted"),
        Err(e) => e,
    };
    assert!(e.message.contains("cannot write the report to"), "{e}");
    assert!(e.message.contains(&target.display().to_string()), "{e}");
    // A directory in the way.
    let e = match reporter(&format!("output: {}", dir.path().display()), dir.path()) {
        Ok(_) => panic!("a directory was accepted as output"),
        Err(e) => e,
    };
    assert!(e.message.contains("is a directory"), "{e}");
}

#[test]
fn finish_without_results_writes_an_empty_valid_file() {
    let run = SyntheticRun::golden();
    let mut rep = reporter("", run.results_dir()).expect("construct");
    let paths = rep.finish(&run.summary).expect("finish");
    let text = std::fs::read_to_string(&paths[0]).expect("read");
    assert!(text.contains("tests=\"0\""));
    validate(&paths[0]);
}

/// The nasty run: every status, an unknown and an upper-case word, markup,
/// quotes, controls and non-ASCII text in every name, a test with only
/// sub-results, three attempts. The file must stay valid and say the same
/// as the statuses do.
#[test]
fn nasty_run_is_valid_and_maps_every_status() {
    let (_run, path, text) = PLUGIN.render(SyntheticRun::nasty(), "max_output_bytes: 512");
    validate(&path);
    for c in [
        '\0', '\x01', '\x07', '\x1b', '\u{9b}', '\u{fffe}', '\u{ffff}',
    ] {
        assert!(!text.contains(c), "{c:?} left in the file");
    }
    // 12 tests, plus 2 sub-results each for two of them.
    assert!(
        text.contains("<testsuites name=\"atex\" tests=\"16\" failures=\"4\" errors=\"5\""),
        "{}",
        &text[..300]
    );
    // The names, cleaned and escaped, and legible again to an XML reader.
    let shown = "&lt;&amp;&gt;&quot;' ]]&gt; red  ümlaut ✓ 日本";
    assert!(text.contains(&format!(
        "<testcase name=\"name {shown}\" classname=\"nasty\""
    )));
    assert!(text.contains(&format!(
        "<testcase name=\"sub {shown}\" classname=\"nasty.name {shown}\""
    )));
    let Some(n) = xpath(
        &path,
        "count(//testcase[starts-with(@classname, 'nasty.name <&>')])",
    ) else {
        eprintln!("skipped: xmllint not installed");
        return;
    };
    assert_eq!(n, "2");
    let case = |test: &str| format!("//testcase[@classname='nasty.status'][@name='{test}']");
    let status =
        |test: &str| xpath(&path, &format!("string({}/*[1]/@type)", case(test))).expect("xpath");
    // warn is an error (tmt's choice), like unknown words; FAIL is fail.
    assert_eq!(status("warn"), "warn");
    assert_eq!(
        xpath(&path, &format!("name({}/*[1])", case("warn"))).as_deref(),
        Some("error")
    );
    assert_eq!(status("custom-word"), "custom-word");
    assert_eq!(status("FAIL"), "fail");
    assert_eq!(
        xpath(&path, &format!("name({}/*[1])", case("FAIL"))).as_deref(),
        Some("failure")
    );
    // Only sub-results: the worst of them counts.
    assert_eq!(
        xpath(
            &path,
            "string(//testcase[@classname='nasty'][@name='only-subs']/*[1]/@type)"
        )
        .as_deref(),
        Some("fail")
    );
    // Passed on the third attempt: two flaky errors, each with its own log.
    let rerun = "//testcase[@classname='nasty'][@name='rerun']";
    assert_eq!(
        xpath(&path, &format!("count({rerun}/flakyError)")).as_deref(),
        Some("2")
    );
    let second = xpath(&path, &format!("string({rerun}/flakyError[2]/system-out)")).expect("xpath");
    assert!(second.contains("attempt 2 <&>\"' ]]> red"), "{second}");
    assert_eq!(xpath(&path, "count(//testsuite)").as_deref(), Some("1"));
}
