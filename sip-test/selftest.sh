#!/usr/bin/env bash
# Tests the harness itself without the daemon: each scenario runs against a
# SIPp fake that should make it pass and, where possible, one that should make
# it fail. A check that cannot fail proves nothing, so the expected failures
# matter as much as the expected passes.
# Usage: sip-test/selftest.sh [CASE-GLOB...]     Output: sip-test/out/selftest/
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
# shellcheck source=sip-test/lib.sh
. "$ROOT/sip-test/lib.sh"

OUT="$ROOT/sip-test/out/selftest"
rm -rf "$OUT"
mkdir -p "$OUT"
FAKES="$SCENARIOS/fake"
SELECT=("$@")

trap 'trap - EXIT INT TERM; kill_children' EXIT
trap 'exit 130' INT TERM

# start_fake NAME LOCAL_IP TRANSPORT SIPP-SCENARIO-ARGS...: a SIPp server on
# fresh ports, left running (killed on exit); sets FAKE_PORT.
start_fake() {
    local name=$1 ip=$2 t=$3 sp mp cp
    shift 3
    pick_port sp 1 && pick_port mp 4 && pick_port cp 1 || exit 2
    mkdir -p "$OUT/fake-$name"
    (cd "$OUT/fake-$name" && exec timeout 600 sipp "$@" -t "$t" -i "$ip" -bind_local -mi "$ip" \
        -p "$sp" -mp "$mp" -ci 127.0.0.1 -cp "$cp" -nostdin -deadcall_wait 1 \
        -trace_msg -message_file messages.log -trace_err -error_file errors.log \
        >sipp.stdout 2>sipp.stderr) &
    CHILD_PIDS+=($!)
    FAKE_PORT=$sp
    sleep 0.3
}

MISMATCHES=0
# expect PASS|FAIL: compare with the result of the scenario just run.
expect() {
    if [ "$LAST_RESULT" = SKIP ]; then
        return 0
    elif [ "$LAST_RESULT" = "$1" ]; then
        echo "  ok: expected $1"
    else
        echo "  MISMATCH: expected $1, got $LAST_RESULT"
        MISMATCHES=$((MISMATCHES + 1))
    fi
}

start_fake uas 127.0.0.1 u1 -sn uas; UAS=127.0.0.1:$FAKE_PORT
start_fake uas-tcp 127.0.0.1 t1 -sn uas; UAS_TCP=127.0.0.1:$FAKE_PORT
start_fake uas-v6 ::1 u1 -sn uas; UAS6="[::1]:$FAKE_PORT"
start_fake 404 127.0.0.1 u1 -sf "$FAKES/uas_404.xml"; F404=127.0.0.1:$FAKE_PORT
start_fake options 127.0.0.1 u1 -sf "$FAKES/uas_options_allow.xml"; FOPT=127.0.0.1:$FAKE_PORT
start_fake options-tcp 127.0.0.1 t1 -sf "$FAKES/uas_options_allow.xml"; FOPT_TCP=127.0.0.1:$FAKE_PORT
start_fake options-v6 ::1 u1 -sf "$FAKES/uas_options_allow.xml"; FOPT6="[::1]:$FAKE_PORT"
start_fake options-noallow 127.0.0.1 u1 -sf "$FAKES/uas_options_noallow.xml"; FNOALLOW=127.0.0.1:$FAKE_PORT
start_fake cancel 127.0.0.1 u1 -sf "$FAKES/uas_cancel.xml"; FCANCEL=127.0.0.1:$FAKE_PORT
start_fake race-lost 127.0.0.1 u1 -sf "$FAKES/uas_race_lost.xml"; FRACE=127.0.0.1:$FAKE_PORT
start_fake registrar 127.0.0.1 u1 -sf "$FAKES/uas_register.xml"; FREG=127.0.0.1:$FAKE_PORT

TARGET4=$FOPT; sc_options options-vs-allow u1 "$FOPT" 127.0.0.1; expect PASS
sc_options options-vs-noallow u1 "$FNOALLOW" 127.0.0.1; expect FAIL
sc_options options-ipv6-vs-allow u1 "$FOPT6" ::1; expect PASS

TARGET4=$F404; sc_unknown_number unknown-vs-404 u1; expect PASS
TARGET4=$UAS; sc_unknown_number unknown-vs-uas u1; expect FAIL

TARGET4=$FCANCEL; sc_cancel cancel-vs-cancel u1; expect PASS
TARGET4=$UAS; sc_cancel cancel-vs-uas u1; expect FAIL
TARGET4=$FRACE; sc_cancel cancel-vs-race-lost u1; expect FAIL

TARGET4=$FREG; sc_register register-vs-registrar u1 op1 op1-secret; expect PASS
sc_register register-wrongpass-vs-registrar u1 op1 not-the-secret; expect FAIL
sc_register_badpass badpass-vs-registrar u1 op1 not-the-secret; expect PASS
sc_register_badpass badpass-rightpass-vs-registrar u1 op1 op1-secret; expect FAIL

sc_call call-ipv6-vs-uas u1 "$UAS6" ::1; expect PASS
sc_call call-vs-404 u1 "$F404" 127.0.0.1; expect FAIL

TARGET4=$UAS_TCP; sc_uac uac-tcp-vs-uas t1 20 20; expect PASS
TARGET4=$F404; sc_uac uac-vs-404 u1 20 20; expect FAIL
TARGET4=$UAS; sc_uac uac-vs-uas u1 200 20; expect PASS
sc_uac_lossy uac-lost10-vs-uas 200 20; expect PASS

host=${FOPT%:*}; port=${FOPT##*:}
sc_torture torture-vs-options-fake "$host" "$port" "${FOPT_TCP##*:}"; expect PASS
pick_port dead 1
sc_torture torture-vs-nothing 127.0.0.1 "$dead"; expect FAIL

echo "selftest: $PASSED passed, $FAILED failed, $MISMATCHES not as expected"
[ "$MISMATCHES" -eq 0 ]
