//! tmt's test helpers (`tmt-report-result`, `tmt-file-submit`,
//! `tmt-reboot`, `tmt-abort` and their restraint/rhts names), as one bash
//! script the agent puts into `<workdir>/bin` (on every test's `PATH`),
//! with a symbolic link per name. Nothing goes into system paths.
//!
//! Each helper speaks the test-control protocol on `$ATEX_TEST_CONTROL`,
//! holding a lock (`flock` when present) so that helpers run from
//! background processes of one test do not interleave their writes:
//!
//! | helper | control words |
//! |---|---|
//! | report-result `NAME RESULT [SCORE]` | `result` named `/NAME` (status, optional log as `output.txt` or `<log>.txt`); `/` is the test's own result; marked so that a shell test's verdict is the worst reported result, as in tmt |
//! | file-submit `-l FILE` | a nameless `partial` result carrying the file |
//! | reboot `[-c CMD] [-t SEC] [-s]` | `disconnect SEC`, `noop` until the write fails, then `sync` and the reboot command (`systemctl reboot`, else `reboot`, or CMD) |
//! | abort | a nameless `partial` result marked as an abort of the run, then the test's shell is killed |
//!
//! Needs bash and coreutils only (`flock` from util-linux when present).

/// Names the helper answers to, each a link to [`HELPER`]
/// (`<workdir>/bin/atex-helper`).
pub const HELPER_NAMES: [&str; 13] = [
    "tmt-report-result",
    "rstrnt-report-result",
    "rhts-report-result",
    "tmt-file-submit",
    "rstrnt-report-log",
    "rhts-submit-log",
    "rhts_submit_log",
    "tmt-reboot",
    "rstrnt-reboot",
    "rhts-reboot",
    "tmt-abort",
    "rstrnt-abort",
    "rhts-abort",
];

/// Key of a result a report-result helper sent (removed by the host).
pub const REPORTED_KEY: &str = "atex-report-result";
/// Key of the partial result `tmt-abort` sends (removed by the host).
pub const ABORT_KEY: &str = "atex-abort";
/// Key of the partial result with BeakerLib's `TestResults` (removed by
/// the host).
pub const BEAKERLIB_KEY: &str = "atex-beakerlib";

/// The helper script.
pub const HELPER: &str = r#"#!/bin/bash
# atex's tmt-style test helpers; see `<name> -h` for tmt-reboot
export LC_ALL=C
me=${0##*/}
die() { echo "$me: $*" >&2; exit 1; }
[ -n "${ATEX_TEST_CONTROL:-}" ] || die "not running inside a test (no ATEX_TEST_CONTROL)"
fd=$ATEX_TEST_CONTROL
# A write after the host stopped reading must fail, not kill.
trap '' PIPE
lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>>"${0%/*}/../ctl.lock" && flock 9
}
json_str() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}; s=${s//$'\t'/\\t}; s=${s//$'\r'/\\r}
  s=${s//[$'\001'-$'\037']/_}
  printf '"%s"' "$s"
}
# send JSON [FILE-NAME FILE-PATH]: one `result` with at most one file.
send() {
  local json=$1 name=${2:-} path=${3:-} len=0 tmp=
  if [ -n "$name" ]; then
    tmp=$(mktemp "${TMPDIR:-/tmp}/atex-helper.XXXXXX") || die "cannot make a temporary file"
    cp -fL -- "$path" "$tmp" || { rm -f "$tmp"; die "cannot read $path"; }
    len=$(wc -c < "$tmp")
    json="${json%\}},\"files\":[{\"name\":$(json_str "$name"),\"length\":$len}]}"
  fi
  lock
  { printf 'result %d\n%s' "${#json}" "$json"; [ -z "$tmp" ] || cat "$tmp"; } >&"$fd"
  local rc=$?
  [ -z "$tmp" ] || rm -f "$tmp"
  [ $rc -eq 0 ] || die "cannot write to the test control channel"
}
report_result() {
  local pos=() log=
  while [ $# -gt 0 ]; do
    case $1 in
      -o|--outputfile) log=${2:-}; shift 2 || shift ;;
      -s|--server|-p|--disable-plugin|-t|--message|--port) shift 2 || shift ;;
      --no-plugins) shift ;;
      --) shift; pos+=("$@"); break ;;
      *) pos+=("$1"); shift ;;
    esac
  done
  local name=${pos[0]:-} result=${pos[1]:-} file=
  [ -n "$name" ] && [ -n "$result" ] || die "usage: $me [-o FILE] NAME RESULT [SCORE]"
  if [ "$me" = rhts-report-result ]; then
    log=${pos[2]:-$log}
    file=output.txt
  elif [ -n "$log" ]; then
    file=${log##*/}.txt
  fi
  if [ -n "$log" ] && ! [ -f "$log" ]; then
    echo "$me: no such log file: $log" >&2
    log=
  fi
  result=${result,,}
  name=${name%:}
  [ "${name:0:1}" = / ] || name=/$name
  local json="{\"status\":$(json_str "$result"),\"$REPORTED\":true"
  if [ "$name" = / ]; then
    json="$json,\"partial\":true}"
  else
    json="$json,\"name\":$(json_str "$name")}"
  fi
  if [ -n "$log" ]; then send "$json" "$file" "$log"; else send "$json"; fi
}
file_submit() {
  local file=
  [ $# -eq 2 ] && file=$2
  while [ $# -gt 0 ]; do
    case $1 in
      -l|--filename) file=${2:-}; shift 2 || shift ;;
      -s|-T|--server|--port) shift 2 || shift ;;
      *) shift ;;
    esac
  done
  [ -n "$file" ] || die "usage: $me -l FILE"
  [ -e "$file" ] || die "no such file: $file"
  send '{"partial":true}' "${file##*/}" "$file"
}
reboot_now() {
  local cmd= timeout=
  while getopts c:t:seh opt; do
    case $opt in
      c) cmd=$OPTARG ;;
      t) timeout=$OPTARG ;;
      s|e) ;;
      h) echo "usage: $me [-c COMMAND] [-t TIMEOUT] [-s]"; exit 0 ;;
      *) die "usage: $me [-c COMMAND] [-t TIMEOUT] [-s]" ;;
    esac
  done
  case $timeout in ''|*[!0-9]*) timeout= ;; esac
  lock
  trap '' HUP
  printf 'disconnect%s\n' "${timeout:+ $timeout}" >&"$fd" || die "cannot write to the test control channel"
  # The host stops reading once it has `disconnect`; from then on a write fails.
  while printf 'noop\n' >&"$fd"; do sleep 0.1; done 2>/dev/null
  sync
  if [ -n "$cmd" ]; then
    bash -c "$cmd" || die "the reboot command failed: $cmd"
  elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl reboot || die "systemctl reboot failed"
  else
    reboot || die "reboot failed"
  fi
  # Wait to be ended by the shutdown.
  while :; do sleep 3600; done
}
REPORTED=atex-report-result
case $me in
  tmt-report-result|rstrnt-report-result|rhts-report-result) report_result "$@" ;;
  tmt-file-submit|rstrnt-report-log|rhts-submit-log|rhts_submit_log) file_submit "$@" ;;
  tmt-reboot|rstrnt-reboot|rhts-reboot) reboot_now "$@" ;;
  tmt-abort|rstrnt-abort|rhts-abort)
    send '{"partial":true,"atex-abort":true}'
    # As tmt does: end the shell that called it.
    kill "$PPID"
    ;;
  *) die "call it by one of its names (tmt-report-result, tmt-file-submit, tmt-reboot, tmt-abort, ...)" ;;
esac
"#;

/// The version the agent compares with `<workdir>/bin/.version` before
/// it rewrites the helpers.
pub fn version() -> String {
    format!("1-{}", HELPER.len())
}

/// [`HELPER_NAMES`] as one space-separated word list for the agent.
pub fn names() -> String {
    HELPER_NAMES.join(" ")
}
