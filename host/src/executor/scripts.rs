//! Shell code that runs on the system under test.
//!
//! Everything here needs only bash, coreutils (`base64`, `dd`, `head`,
//! `mkfifo`), `sed`, `tar` and util-linux (`setsid`, and `script` for
//! `tty: true`).
//!
//! Every process of a test attempt inherits `ATEX_TEST_MARK`; when the test
//! exits, [`KILL_FUNCTION`] ends its session, everything carrying the mark
//! and everything still holding its control FIFO, so no daemon outlives
//! the attempt (or keeps it from ending).
//!
//! The **agent** is one long-lived bash per system. It reads one request
//! per line on stdin and answers with lines on stdout:
//!
//! | request | answer |
//! |---|---|
//! | (start) | `READY <workdir> <boot-token> <agent pid>` |
//! | `run <id> <base64 script>` | `P <id> <pid>`, then `C <id> <base64>` for each chunk of the test-control stream, then `O <id> <base64>` lines of the test output, then `E <id> <exit status of the script>` |
//! | `status <id>` | `S <id> done <rc>`, `S <id> running` or `S <id> gone` |
//! | `fetch <id> [<offset>]` | `O <id> <base64>` lines of the output from byte `offset` on, then `F <id>` |
//! | `put <key> <length>` + that many raw bytes | none; stores them as `meta/<key>` (test metadata, sent once per system) |
//!
//! A test's output is streamed while it runs: a helper the agent starts
//! once (the *streamer*) looks once a second at the running test (the
//! file `current`); from the test's first second on it sends what its
//! output file has gained as `O` lines. Who sends a test's output is
//! settled by who creates its claim file first (`set -C`): when the
//! streamer did, the agent asks it (`stop <id>` over a FIFO) how many
//! bytes it sent and sends only the rest at the end. A test that ends
//! before anything was streamed costs a file write and an exclusive
//! create, no process and no waiting.
//!
//! Base64 framing keeps arbitrary bytes (result file payloads) apart from
//! the agent's own lines. The boot token changes when the system reboots
//! (a container restart included), which is how a `disconnect` followed by
//! a reboot is recognised.

use std::fmt::Write as _;

use super::{TestSpec, transport::shell_quote};
use crate::fmf::{LocalLibrary, local_libraries};

/// The agent: `bash -c AGENT atex-agent WORKDIR [HELPER VERSION NAMES]`
/// (WORKDIR empty at first). With HELPER, it writes the test helpers to
/// `WORKDIR/bin` (see [`super::helpers`]) unless that VERSION is there.
pub const AGENT: &str = r#"
set -u
W=${1:-}
if [ -z "$W" ]; then
  for base in /var /var/tmp /tmp; do
    W=$(mktemp -d -p "$base" atex-XXXXXXXXXX 2>/dev/null) && break
  done
fi
mkdir -p "$W/bin" || exit 1
cur=
{ read -r cur < "$W/bin/.version"; } 2>/dev/null
if [ -n "${2:-}" ] && [ "$cur" != "${3:-}" ]; then
  printf '%s' "$2" > "$W/bin/atex-helper" && chmod 755 "$W/bin/atex-helper" &&
    for n in ${4:-}; do ln -sfn atex-helper "$W/bin/$n"; done &&
    echo "${3:-}" > "$W/bin/.version"
fi
for r in /run /dev/shm /tmp; do
  if [ -w "$r" ]; then
    tok="$r/atex-boot-token.$(id -u)"
    [ -s "$tok" ] || head -c 12 /dev/urandom | base64 > "$tok"
    break
  fi
done
read -r boot < /proc/sys/kernel/random/boot_id 2>/dev/null
read -r t < "$tok" 2>/dev/null
echo "READY $W ${boot:-}-${t:-} $$"
ctl="$W/ctl.$$"
rm -f "$ctl"; mkfifo "$ctl" || exit 1
trap '{ echo quit >&6; } 2>/dev/null; rm -f "$ctl" "$sq" "$sa" "$W/so.$$"' EXIT
# Few processes per request: forks dominate the cost of a test start.
# emit_output ID [OFFSET]: the output of test ID from byte OFFSET on.
emit_output() {
  # -s: an empty output (a quiet test) costs no process.
  if [ -s "$W/out-$1" ]; then
    if [ "${2:-0}" -gt 0 ] 2>/dev/null; then
      tail -c +$(($2 + 1)) "$W/out-$1" | base64 -w 3000 > "$W/o.$$"
    else
      base64 -w 3000 "$W/out-$1" > "$W/o.$$"
    fi
    while IFS= read -r l; do echo "O $1 $l"; done < "$W/o.$$"
  fi
}
# put_meta KEY LENGTH: stores the next LENGTH bytes of stdin (text, no
# NUL) as meta/KEY, only when all of them arrived.
mkdir -p "$W/meta" || exit 1
put_meta() {
  local LC_ALL=C data=
  IFS= read -r -N "$2" data
  [ "${#data}" -eq "$2" ] && printf '%s' "$data" > "$W/meta/$1"
}
# The streamer: one per agent; the running test is in $W/current. Told
# `stop ID` on fd 6, it answers `ID BYTES-SENT` on fd 7 when it sent any
# of that test's output. It ends with the agent.
sq="$W/sq.$$" sa="$W/sa.$$"
rm -f "$sq" "$sa"; mkfifo "$sq" "$sa" || exit 1
exec 6<>"$sq" 7<>"$sa"
agent=$$
# The streamer holds the agent's stdout: it must end as soon as the agent
# does (the host sees the agent gone when stdout closes). It is reparented
# then, even while the dead agent is a zombie that `kill -0` still finds.
agent_alive() {
  local st
  read -r st 2>/dev/null < "/proc/$BASHPID/stat" || { kill -0 "$agent" 2>/dev/null; return; }
  st=${st##*) }
  set -- $st
  [ "$2" = "$agent" ]
}
(
  trap '' PIPE
  sid=
  while :; do
    # Once a second, or at once for `stop ID` / `quit`.
    if read -r -t 1 -u 6 scmd sidx; then
      case $scmd in
        quit) exit 0 ;;
        stop)
          if [ "$sidx" = "$sid" ]; then
            [ -n "$mine" ] && echo "$sid $off" >&7
            mine= ended=1
          fi
          ;;
      esac
      continue
    fi
    agent_alive || exit 0
    cur=
    read -r cur _ 2>/dev/null < "$W/current"
    if [ "$cur" != "$sid" ]; then
      # A test seen for the first time: it has run a second at the next look.
      sid=$cur off=0 mine= ended=
      continue
    fi
    [ -n "$sid" ] && [ -z "$ended" ] || continue
    size=$(stat -c %s "$W/out-$sid" 2>/dev/null) || continue
    (( size > off )) || continue
    if [ -z "$mine" ]; then
      # Whoever creates the claim first sends the output: the streamer
      # while the test runs, or the agent once it ended.
      set -C; { : > "$W/claim-$sid"; } 2>/dev/null && mine=1; set +C
      [ -n "$mine" ] || { ended=1; continue; }
    fi
    tail -c +$((off + 1)) "$W/out-$sid" | head -c $((size - off)) | base64 -w 3000 > "$W/so.$$"
    while IFS= read -r l; do echo "O $sid $l"; done < "$W/so.$$"
    off=$size
  done
) </dev/null &
streamer=$!
while IFS=' ' read -r cmd id arg; do
  case $cmd in
    run)
      if ! base64 -d <<< "$arg" > "$W/run-$id.sh"; then
        echo "E $id 125"; continue
      fi
      setsid bash "$W/run-$id.sh" 3>"$ctl" </dev/null >"$W/out-$id" 2>&1 6>&- 7>&- &
      pid=$!
      echo "$pid" > "$W/pid-$id"
      echo "P $id $pid"
      echo "$id $pid" > "$W/current"
      exec 4<"$ctl"
      # base64 -w0 writes no newline, so read "fails" while still reading.
      while dd bs=3000 count=1 status=none <&4 | base64 -w0 > "$W/c.$$"; chunk=; read -r chunk < "$W/c.$$"; [ -n "$chunk" ]; do
        echo "C $id $chunk"
      done
      exec 4<&-
      wait "$pid"
      rc=$?
      # The claim is ours unless the streamer sent output already; then
      # it says how far it got (a streamer that is gone is not waited for).
      sent=0 streamed=
      set -C; { : > "$W/claim-$id"; } 2>/dev/null || streamed=1; set +C
      if [ -n "$streamed" ] && kill -0 "$streamer" 2>/dev/null; then
        echo "stop $id" >&6
        while read -r -t 10 -u 7 rid rsent; do
          [ "$rid" = "$id" ] && sent=$rsent && break
        done
      fi
      emit_output "$id" "$sent"
      echo "E $id $rc"
      # The test's invocation directory goes too: a restart gets a new
      # one, and a test continued after a reboot never gets here (the
      # agent is gone by then). One rm for all, here rather than in the
      # next test's setup.
      rm -rf "$W/run-$id.sh" "$W/c.$$" "$W/o.$$" "$W"/inv-* ${prev:+"$W/test-$prev" "$W/out-$prev" "$W/claim-$prev"}
      prev=$id
      ;;
    status)
      if [ -f "$W/status-$id" ]; then
        read -r rc < "$W/status-$id"
        echo "S $id done $rc"
      elif [ -f "$W/pid-$id" ] && read -r p < "$W/pid-$id" && kill -0 "$p" 2>/dev/null; then
        echo "S $id running"
      else
        echo "S $id gone"
      fi
      ;;
    fetch)
      emit_output "$id" "${arg:-0}"
      echo "F $id"
      ;;
    put)
      # Raw bytes follow the line; `read` takes a pipe byte by byte, so
      # the next request is intact. No process: a put per test is common.
      put_meta "$id" "$arg"
      ;;
    exit) exit 0 ;;
    *) echo "X unknown request $cmd" ;;
  esac
done
"#;

/// A bash function, `atex_kill SID MARK CTL AGENT [SPARE...]`, that kills
/// with SIGKILL everything a test attempt started: every process of session
/// SID, every process whose environment carries `ATEX_TEST_MARK=MARK`
/// (daemons that left the session with `setsid` keep it), and every
/// process holding the control FIFO CTL open. The agent AGENT and its own
/// children (its FIFO reader) and the SPARE pids are left alone. With
/// `ATEX_KILL_SINCE` set (a start time in clock ticks since boot, field 22
/// of `/proc/PID/stat`), processes started before it are not looked at
/// beyond their `stat`: nothing a test started is older than the test, and
/// that keeps the scan cheap on a host with many processes. It repeats
/// while it finds new ones. Only bash builtins inside the scan.
pub const KILL_FUNCTION: &str = r#"
atex_kill() {
  local sid=$1 mark="ATEX_TEST_MARK=$2" ctl=$3 agent=$4
  shift 4
  local spare=" $* " round p pid st found hit e f bulk= envs since=${ATEX_KILL_SINCE:-0}
  # mapfile -d (bash 4.4+) reads an environment in one go.
  (( BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 404 )) && bulk=1
  # The common case costs one grep: after a test that left nothing behind,
  # no process but the spared ones carries the mark, and the scan below is
  # skipped. (So a leftover that also cleared its environment is not
  # looked for; without grep, or without a start time, the scan runs.)
  if [[ $since != 0 ]] && command -v grep >/dev/null 2>&1; then
    local marked=() m left=
    # grep itself must not carry the mark, or it would find itself.
    mapfile -t marked < <(unset ATEX_TEST_MARK; exec grep -lsxzF -- "$mark" /proc/[0-9]*/environ 2>/dev/null)
    for m in "${marked[@]}"; do
      m=${m#/proc/}; m=${m%/environ}
      [[ $spare == *" $m "* || $m == "$agent" ]] || { left=1; break; }
    done
    [[ -n $left ]] || return 0
  fi
  for round in 1 2 3 4 5 6 7 8 9 10; do
    found=
    for p in /proc/[0-9]*; do
      pid=${p#/proc/}
      [[ $spare == *" $pid "* || $pid == "$agent" ]] && continue
      read -r st 2>/dev/null < "$p/stat" || continue
      st=${st##*) }
      set -- $st
      # $1 state, $2 parent, $4 session; zombies are already dead, and
      # kernel threads (children of kthreadd, pid 2) are none of ours.
      [[ $1 == Z || $2 == "$agent" || $2 == 2 || $pid == 2 ]] && continue
      # ${20}: its start time; older than the attempt, not the test's.
      (( ${20:-0} < since )) && continue
      hit=
      if [[ ${4:-} == "$sid" ]]; then
        hit=1
      else
        if [[ -n $bulk ]]; then
          envs=()
          mapfile -d '' -t envs 2>/dev/null < "$p/environ"
          for e in "${envs[@]}"; do
            if [[ $e == "$mark" ]]; then hit=1; break; fi
          done
        else
          while IFS= read -r -d '' e; do
            if [[ $e == "$mark" ]]; then hit=1; break; fi
          done 2>/dev/null < "$p/environ"
        fi
        if [[ -z $hit && -n $ctl ]]; then
          for f in "$p"/fd/*; do
            if [[ $f -ef $ctl ]]; then hit=1; break; fi
          done 2>/dev/null
        fi
      fi
      if [[ -n $hit ]]; then
        kill -KILL "$pid" 2>/dev/null && found=1
      fi
    done
    [[ -n $found ]] || return 0
    sleep 0.05
  done
}
"#;

/// Installs the missing ones of `required` (must succeed) and `recommended`
/// (best effort) with dnf, yum or apt-get; does nothing for empty lists.
pub fn package_install(required: &[String], recommended: &[String]) -> String {
    if required.is_empty() && recommended.is_empty() {
        return String::new();
    }
    format!(
        "{PACKAGE_FUNCTIONS}{}",
        package_calls(required, recommended)
    )
}

/// `atex_missing PKG...` prints those not installed; `atex_install
/// yes|no PKG...` installs them (`yes`: best effort).
const PACKAGE_FUNCTIONS: &str = r#"
atex_missing() {
  local p out=()
  for p in "$@"; do
    if command -v rpm >/dev/null; then
      rpm -q --whatprovides "$p" >/dev/null 2>&1 || out+=("$p")
    elif command -v dpkg-query >/dev/null; then
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out+=("$p")
    else
      out+=("$p")
    fi
  done
  if [ ${#out[@]} -gt 0 ]; then printf '%s\n' "${out[@]}"; fi
}
atex_install() {
  local best=$1; shift
  [ $# -gt 0 ] || return 0
  if command -v dnf >/dev/null; then
    if [ "$best" = yes ]; then dnf -q -y --setopt=install_weak_deps=False install --skip-broken "$@" || true
    else dnf -q -y --setopt=install_weak_deps=False install "$@"; fi
  elif command -v yum >/dev/null; then
    if [ "$best" = yes ]; then yum -q -y install --skip-broken "$@" || true; else yum -q -y install "$@"; fi
  elif command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    # Fresh images have no package lists yet.
    ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get -qq update || return 1
    if [ "$best" = yes ]; then
      for p in "$@"; do apt-get -qq -y install "$p" || true; done
    else apt-get -qq -y install "$@"; fi
  else
    echo "no supported package manager (dnf, yum, apt-get) to install: $*" >&2
    return 1
  fi
}
"#;

/// Calls of [`PACKAGE_FUNCTIONS`] that install what is missing of
/// `required` and `recommended` (in a `set -e` subshell).
fn package_calls(required: &[String], recommended: &[String]) -> String {
    let list = |pkgs: &[String]| {
        pkgs.iter()
            .map(|p| shell_quote(p))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        r#"# Explicit exits: `set -e` does not reach into a subshell that is part
# of a `||` list.
mapfile -t atex_req < <(atex_missing {req})
atex_install no "${{atex_req[@]}}" || exit 1
mapfile -t atex_rec < <(atex_missing {rec})
atex_install yes "${{atex_rec[@]}}" || true
"#,
        req = list(required),
        rec = list(recommended),
    )
}

/// The files a package manager changes when a package comes or goes
/// (dpkg's status file; rpm's database, its directory for a journal that
/// comes and goes, in both places it lives).
const PACKAGE_DATABASES: &str = "/var/lib/dpkg/status /var/lib/rpm /var/lib/rpm/rpmdb.sqlite /var/lib/rpm/rpmdb.sqlite-wal /var/lib/rpm/Packages /usr/lib/sysimage/rpm /usr/lib/sysimage/rpm/rpmdb.sqlite /usr/lib/sysimage/rpm/rpmdb.sqlite-wal";

/// Exit status of a run script whose setup checked the test's packages in
/// full (the package database changed since the last check, or this
/// check installed something): the system's packages known to be present
/// are then exactly the test's `require`. A run script that ends normally
/// otherwise exits 0.
pub const PACKAGES_RECHECKED: i32 = 92;

/// How a run script checks the test's `require` and `recommend`: the
/// host remembers per system which packages were found present (and which
/// recommended ones were tried), and only the others are checked while
/// the package database is unchanged since that check (a stamp file in
/// the work directory, touched after each check). A test whose packages
/// are all known costs a few `stat`s and no process.
#[derive(Debug, Clone, Copy)]
pub struct PackageCheck<'a> {
    /// Required packages not known to be present.
    pub require: &'a [String],
    /// Recommended packages neither known to be present nor tried.
    pub recommend: &'a [String],
}

impl PackageCheck<'_> {
    /// Setup lines for `test` (inside `atex_setup`): sets `atex_pk=1` when
    /// everything was checked, or else checks only the unknown ones.
    fn render(&self, test: &TestSpec, workdir: &str) -> String {
        let stamp = shell_quote(&format!("{workdir}/packages.checked"));
        let full = package_calls(&test.require, &test.recommend);
        let mut s = format!(
            "{PACKAGE_FUNCTIONS}atex_pk_changed() {{\n  local f\n  for f in {PACKAGE_DATABASES}; do\n    [ -e \"$f\" ] && ! [ \"$f\" -ot {stamp} ] && return 0\n  done\n  return 1\n}}\n"
        );
        if self.require.is_empty() && self.recommend.is_empty() {
            let _ = writeln!(
                s,
                "if atex_pk_changed; then\n( set -e\n{full}) || return 1\natex_pk=1; : > {stamp}\nfi"
            );
        } else {
            // What this check installs may have removed others (a
            // conflict): then everything is checked again.
            let _ = writeln!(
                s,
                "if atex_pk_changed; then\n( set -e\n{full}) || return 1\natex_pk=1\nelse\n( set -e\n{}) || return 1\nif atex_pk_changed; then\n( set -e\n{full}) || return 1\natex_pk=1\nfi\nfi\n: > {stamp}",
                package_calls(self.require, self.recommend)
            );
        }
        s
    }
}

/// Exit status of the run script when the test's setup failed.
pub const SETUP_FAILED: i32 = 90;
/// Exit status of the run script when the test directory is missing.
pub const NO_TEST_DIR: i32 = 91;

/// Everything needed to build a run script.
pub struct RunScript<'a> {
    /// The test.
    pub test: &'a TestSpec,
    /// The agent's work directory.
    pub workdir: &'a str,
    /// Unique id of this run (used in file names).
    pub id: &'a str,
    /// Environment, in precedence order (later wins).
    pub env: &'a [(String, String)],
    /// Name of the test's metadata under `<workdir>/meta/` (sent before
    /// with the agent's `put`).
    pub metadata_key: &'a str,
    /// Marker every process of this attempt inherits in its environment
    /// (`ATEX_TEST_MARK`), to find what the test left behind.
    pub mark: &'a str,
    /// The agent's pid on the system (spared when killing leftovers).
    pub agent_pid: &'a str,
    /// Kill everything the test started when it exits (upstream's
    /// `ATEX_DEBUG_NO_BG_KILL` turns this off).
    pub kill_leftovers: bool,
    /// Send `exitcode` when the test exits (upstream's
    /// `ATEX_DEBUG_NO_EXITCODE` turns this off).
    pub send_exitcode: bool,
    /// The test's invocation directory (`TMT_TEST_INVOCATION_PATH`; the
    /// `BEAKERLIB_DIR` of a BeakerLib test), made when missing.
    pub invocation: &'a str,
    /// `framework: beakerlib`, with the name of the YAML metadata under
    /// `<workdir>/meta/` that becomes `metadata.yaml` in its directory: the
    /// command runs as written (no `set -e`), BeakerLib is installed when
    /// missing, and its `TestResults` and `journal.txt` are sent when the
    /// test ends.
    pub beakerlib_metadata_key: Option<&'a str>,
    /// Which of the test's packages are checked.
    pub packages: PackageCheck<'a>,
}

/// Where BeakerLib's main script is once installed.
pub const BEAKERLIB_SH: &str = "/usr/share/beakerlib/beakerlib.sh";

/// `atex_bl_send DIR`: sends BeakerLib's verdict (`TESTRESULT_STATE` and
/// `TESTRESULT_RESULT_STRING` from `DIR/TestResults`) and `journal.txt`
/// as a partial result of the test on fd 3.
const BEAKERLIB_SEND: &str = r#"
atex_bl_send() {
  local d=$1 l state= result= found=false j n
  if [ -r "$d/TestResults" ]; then
    found=true
    while IFS= read -r l; do
      case $l in
        TESTRESULT_STATE=*) state=${l#*=} ;;
        TESTRESULT_RESULT_STRING=*) result=${l#*=} ;;
      esac
    done < "$d/TestResults"
  fi
  state=${state//[^A-Za-z0-9_-]/}; result=${result//[^A-Za-z0-9_-]/}
  j="{\"partial\":true,\"atex-beakerlib\":{\"found\":$found,\"state\":\"$state\",\"result\":\"$result\"}"
  if [ -f "$d/journal.txt" ] && cp -f "$d/journal.txt" "$d/.journal.sent"; then
    read -r n < <(wc -c < "$d/.journal.sent")
    j="$j,\"files\":[{\"name\":\"journal.txt\",\"length\":$n}]}"
    { printf 'result %d\n%s' "${#j}" "$j"; cat "$d/.journal.sent"; } 2>/dev/null >&3
  else
    j="$j}"
    printf 'result %d\n%s' "${#j}" "$j" 2>/dev/null >&3
  fi
}
"#;

impl RunScript<'_> {
    /// The bash script the agent runs for one test attempt. Its stdout and
    /// stderr are the test output; fd 3 is the control channel.
    pub fn render(&self) -> String {
        let w = shell_quote(self.workdir);
        let t = format!("{w}/test-{}", self.id);
        let mut s = String::from("set -u\natex_pk=0\n");
        // After `disconnect` the control channel breaks: writing to it must
        // fail, not kill (a caught signal, unlike an ignored one, is not
        // inherited by the test).
        s.push_str("trap : PIPE\n");
        // Setup: a fresh test dir, packages, metadata, test.sh. Its output
        // is kept apart and shown only when it fails.
        let inv = shell_quote(self.invocation);
        let _ = writeln!(
            s,
            "T={t}\natex_setup() {{\nmkdir -p \"$T\" {inv}/data || return 1"
        );
        // The invocation directories of earlier tests go (this one's stays
        // across the reboots of its test).
        let _ = writeln!(
            s,
            "for d in {w}/inv-*; do [ -e \"$d\" ] && [ \"$d\" != {inv} ] && rm -rf \"$d\"; done"
        );
        if self.beakerlib_metadata_key.is_some() {
            // tmt installs the `beakerlib` package for such tests; a
            // system that has BeakerLib some other way is left alone, and
            // where no package manager has such a package (Debian, SUSE)
            // nothing is tried.
            let _ = writeln!(
                s,
                "if ! [ -f {BEAKERLIB_SH} ]; then\n  if command -v dnf >/dev/null || command -v yum >/dev/null; then ( set -e\n{} ) || return 1\n  else echo 'BeakerLib is not installed ({BEAKERLIB_SH} is missing) and only dnf or yum have a beakerlib package: install it in a prepare step'; return 1; fi\nfi",
                package_install(&["beakerlib".to_string()], &[])
            );
        }
        let packages = !self.test.require.is_empty() || !self.test.recommend.is_empty();
        if packages {
            s.push_str(&self.packages.render(self.test, self.workdir));
        }
        let _ = writeln!(
            s,
            "ln -sf {w}/meta/{} \"$T/metadata.yaml\" && test -s \"$T/metadata.yaml\" || {{ echo 'the test metadata did not arrive'; return 1; }}",
            shell_quote(self.metadata_key)
        );
        // BeakerLib reads `metadata.yaml` from its directory (`rlImport --all`).
        if let Some(key) = self.beakerlib_metadata_key {
            let _ = writeln!(
                s,
                "ln -sf {w}/meta/{} {inv}/metadata.yaml || return 1",
                shell_quote(key)
            );
        }
        // In-tree libraries are importable where upstream puts them:
        // `libs/<nick>/<name>` inside the tree (a link to the library's
        // directory), unless the tree has something there already.
        for lib in test_libraries(self.test) {
            let name = lib.name.trim_matches('/');
            // `name: /` (the whole tree) is linked as `libs/<nick>`.
            let link = format!("{}/tests/libs/{}/{name}", self.workdir, lib.nick);
            let link = link.trim_end_matches('/');
            let parent = link.rsplit_once('/').map_or(link, |(p, _)| p);
            let _ = writeln!(
                s,
                "if ! [ -e {l} ] && ! [ -L {l} ]; then mkdir -p {p} && ln -s {t} {l} || return 1; fi",
                l = shell_quote(link),
                p = shell_quote(parent),
                t = shell_quote(&format!("{}/tests/{name}", self.workdir)),
            );
        }
        let mut body = String::from("#!/bin/bash\n");
        // The same for the test's own shell (not for what it runs): a
        // write to the control channel after `disconnect` is a failed
        // write, as upstream's reboot pattern expects.
        body.push_str("trap : PIPE\n");
        body.push_str(
            "if [ -f \"${TMT_PLAN_ENVIRONMENT_FILE:-}\" ]; then set -o allexport; . \"$TMT_PLAN_ENVIRONMENT_FILE\"; set +o allexport; fi\n",
        );
        let _ = writeln!(
            body,
            "if [ -d {w}/bin ]; then export PATH={w}/bin:\"$PATH\"; fi"
        );
        // tmt runs a BeakerLib test's command as written.
        if self.beakerlib_metadata_key.is_none() {
            body.push_str("set -e -o pipefail\n");
        }
        body.push_str(&self.test.script);
        let _ = writeln!(
            s,
            "printf '%s\\n' {} > \"$T/test.sh\" || return 1\n}}",
            shell_quote(&body)
        );
        let _ = writeln!(
            s,
            "if ! atex_setup > \"$T.setup\" 2>&1; then cat \"$T.setup\"; exit {SETUP_FAILED}; fi"
        );
        // The wrapper part.
        let dir = self.test.rel_dir.to_string_lossy();
        let dir = if dir.is_empty() {
            ".".to_string()
        } else {
            dir.into_owned()
        };
        let _ = writeln!(
            s,
            "cd {w}/tests/{} || exit {NO_TEST_DIR}",
            shell_quote(&dir)
        );
        for (k, v) in self.env {
            let _ = writeln!(s, "export {}={}", k, shell_quote(v));
        }
        s.push_str("export ATEX_TEST_CONTROL=3\n");
        let _ = writeln!(s, "export ATEX_TEST_MARK={}", shell_quote(self.mark));
        // Job control puts the test in a process group of its own.
        s.push_str("set -m\n");
        if self.test.tty {
            let _ = writeln!(
                s,
                "TERM=vt100 script -qefc {} /dev/null </dev/null &",
                shell_quote(&format!(
                    "stty cols 80 rows 24 2>/dev/null; exec bash {t}/test.sh"
                ))
            );
        } else {
            let _ = writeln!(s, "bash {t}/test.sh </dev/null &");
        }
        // The shell's own notice of a test killed by a signal (`line 37:
        // 57 Killed bash .../test.sh`) would land in the test's output
        // with the wrapper's paths; the exit status says it already.
        s.push_str("tpid=$!\n{ wait $tpid; } 2>/dev/null\nrc=$?\n");
        if self.kill_leftovers {
            // Everything the test started ends with it, daemons included:
            // they would otherwise hold the control channel open and keep
            // the attempt going.
            s.push_str(KILL_FUNCTION);
            s.push_str(
                "read -r st < /proc/$$/stat; st=${st##*) }; set -- $st; ATEX_KILL_SINCE=${20}\n",
            );
            let _ = writeln!(
                s,
                "atex_kill \"$4\" {} /proc/$$/fd/3 {} \"$$\" \"$BASHPID\"",
                shell_quote(self.mark),
                shell_quote(self.agent_pid)
            );
        }
        if self.beakerlib_metadata_key.is_some() {
            s.push_str(BEAKERLIB_SEND);
            let _ = writeln!(s, "atex_bl_send {inv}");
        }
        let _ = writeln!(s, "echo \"$rc\" > {w}/status-{}", self.id);
        if self.send_exitcode {
            s.push_str("echo \"exitcode $rc\" 2>/dev/null >&3\n");
        }
        if packages {
            let _ = writeln!(
                s,
                "if [ \"$atex_pk\" = 1 ]; then exit {PACKAGES_RECHECKED}; fi"
            );
        }
        s.push_str("exit 0\n");
        s
    }
}

/// The in-tree libraries (`require` entries with a `nick` and neither
/// `url` nor `path`) in the test's metadata.
pub fn test_libraries(test: &TestSpec) -> Vec<LocalLibrary> {
    match test.metadata.get("require") {
        Some(serde_json::Value::Array(list)) => local_libraries(list),
        Some(one @ serde_json::Value::Object(_)) => local_libraries(std::slice::from_ref(one)),
        _ => Vec::new(),
    }
}

/// Where `rlImport` finds the test's libraries (`BEAKERLIB_LIBRARY_PATH`),
/// when it requires any: the directory holding the `libs/` of its tree
/// (`<workdir>` for the plan's tree, `<workdir>/discover/<section>` for a
/// remote section's, see [`crate::remote`]); for in-tree libraries
/// (`<workdir>/tests/libs/<nick>`) the plan's tree itself, first.
pub fn library_path(test: &TestSpec, workdir: &str) -> Option<String> {
    let remote = ["require", "recommend"].iter().any(|key| {
        let list = match test.metadata.get(*key) {
            Some(serde_json::Value::Array(list)) => list.as_slice(),
            Some(one) => std::slice::from_ref(one),
            None => &[],
        };
        list.iter().any(|e| match e {
            serde_json::Value::String(s) => s.trim().starts_with("library("),
            serde_json::Value::Object(o) => {
                o.get("type").is_none_or(|t| t.as_str() == Some("library"))
                    && (o.contains_key("url") || o.contains_key("path"))
            }
            _ => false,
        })
    });
    let in_tree = !test_libraries(test).is_empty();
    let rel = test.rel_dir.to_string_lossy();
    let base = match rel.strip_prefix("../discover/") {
        Some(rest) => format!(
            "{workdir}/discover/{}",
            rest.split('/').next().unwrap_or_default()
        ),
        None => workdir.to_string(),
    };
    match (in_tree, remote) {
        (false, false) => None,
        (true, false) if base == workdir => Some(format!("{workdir}/tests")),
        (true, _) if base == workdir => Some(format!("{workdir}/tests:{workdir}")),
        _ => Some(base),
    }
}

/// Untars stdin into `$1/$2` (replacing what was there).
pub const UNPACK_TREE: &str = r#"set -e; rm -rf "$1/$2"; mkdir -p "$1/$2"; tar -x -C "$1/$2" -f -"#;

/// Runs a plan shell step with the plan environment file loaded.
pub fn plan_shell(workdir: &str, script: &str) -> String {
    let w = shell_quote(workdir);
    format!(
        "cd {w}/tests || exit 1\nif [ -f {w}/plan_env ]; then set -o allexport; . {w}/plan_env; set +o allexport; fi\nset -e -o pipefail\n{script}\n"
    )
}
