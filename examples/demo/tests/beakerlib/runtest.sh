#!/bin/bash
# A small BeakerLib test: each phase becomes a sub-result, the journal and
# the submitted file become files of the result.
. /usr/share/beakerlib/beakerlib.sh || exit 1

rlJournalStart
    rlPhaseStartSetup
        rlRun "tmp=\$(mktemp -d)" 0 "a scratch directory"
        rlRun "pushd $tmp"
    rlPhaseEnd

    rlPhaseStartTest "words are counted"
        rlRun "printf 'one two three\n' > words.txt"
        rlAssertEquals "three words" "$(wc -w < words.txt)" 3
        rlFileSubmit words.txt
    rlPhaseEnd

    rlPhaseStartCleanup
        rlRun "popd"
        rlRun "rm -r $tmp" 0 "the scratch directory is gone"
    rlPhaseEnd
rlJournalEnd
