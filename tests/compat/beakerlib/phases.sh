#!/bin/bash
. /usr/share/beakerlib/beakerlib.sh || exit 1
rlJournalStart
    rlPhaseStartSetup
        rlRun "echo submitted > /tmp/compat-report.log"
        rlFileSubmit /tmp/compat-report.log
    rlPhaseEnd
    rlPhaseStartTest "all good"
        rlRun "true"
    rlPhaseEnd
    rlPhaseStartTest "broken rlRun"
        rlRun "false" 0 "a command that fails"
    rlPhaseEnd
    rlPhaseStart WARN "just a warning"
        rlAssertEquals "differ" 1 2
    rlPhaseEnd
    [ -z "${KILL_BEFORE_END:-}" ] || kill -KILL $$
rlJournalEnd
