#!/bin/bash
# Reports a named sub-result with a log file, then the test's own result.
set -e
report() { # json [file...]
    local json=$1; shift
    { printf 'result %s\n%s' "${#json}" "$json"; cat "$@" </dev/null; } >&"$ATEX_TEST_CONTROL"
}
printf 'line one\nline two\n' > /tmp/demo-log.txt
size=$(stat -c %s /tmp/demo-log.txt)
report "{\"name\": \"collect/logs\", \"status\": \"pass\", \"files\": [{\"name\": \"logs/demo.txt\", \"length\": $size}]}" /tmp/demo-log.txt
report '{"name": "check/limits", "status": "warn", "note": "close to the limit"}'
report '{"status": "pass", "note": "all parts reported"}'
