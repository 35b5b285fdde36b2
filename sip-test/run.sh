#!/usr/bin/env bash
# End-to-end SIP tests: start the real `hotlined` on free ports and drive it
# with SIPp. Usage: sip-test/run.sh [SCENARIO-GLOB...]   (default: all)
#
# Builds nothing (the Makefile builds first). The binary is
# target/debug/hotlined unless $HOTLINED says otherwise. Prints one
# `PASS name (...)` / `FAIL name (...)` line per scenario and finally
# `N passed, N failed`; exits 1 when anything failed. Output, logs and SIPp
# traces land in sip-test/out/ (see sip-test/README.md).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
# shellcheck source=sip-test/lib.sh
. "$ROOT/sip-test/lib.sh"
SELECT=("$@")

OUT="$ROOT/sip-test/out"
rm -rf "$OUT"
mkdir -p "$OUT"

HOTLINED=${HOTLINED:-target/debug/hotlined}
DAEMON_DB="$OUT/hotline.db"
# The daemon runs on its own copy of config/: the reload scenario edits it.
CONFIG_DIR="$OUT/config"
cp -r config "$CONFIG_DIR"
ADMIN_TOKEN=sip-test-token
DAEMON_PID=
DAEMON_LOG="$OUT/hotlined.stderr.log"

stop_daemon() {
    [ -z "$DAEMON_PID" ] && return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null
    local i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
}

cleanup() {
    trap - EXIT INT TERM
    kill_children
    stop_daemon
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

for tool in sipp python3 curl timeout; do
    if ! command -v "$tool" >/dev/null; then
        echo "FAIL setup (missing tool: $tool)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
if [ ! -x "$HOTLINED" ]; then
    echo "FAIL setup (no daemon binary at $HOTLINED: build it first, e.g. make build)"
    echo "0 passed, 1 failed"
    exit 1
fi

pick_port SIP_PORT 1 && pick_port SIP_PORT6 1 && pick_port ADMIN_PORT 1 || {
    echo "FAIL setup (no free ports)"
    echo "0 passed, 1 failed"
    exit 1
}
TARGET4="127.0.0.1:$SIP_PORT"
TARGET6="[::1]:$SIP_PORT6"
ADMIN_ADDR="127.0.0.1:$ADMIN_PORT"
# Calls SIPp abandoned (the lossy run can drop a final ACK and BYE) may still
# be up at the end; a short grace keeps the shutdown check quick.
GRACE=5

{
    echo "HOTLINED=$HOTLINED"
    echo "HOTLINE__SIP__LISTEN=127.0.0.1:$SIP_PORT"
    echo "HOTLINE__SIP__LISTEN_V6=[::1]:$SIP_PORT6"
    echo "HOTLINE__ADMIN__LISTEN=127.0.0.1:$ADMIN_PORT"
    echo "HOTLINE__DATABASE__URL=sqlite://$OUT/hotline.db"
    echo "HOTLINE__DATABASE__SPOOL_DIR=$OUT/spool"
    echo "HOTLINE__RECORDING__DIR=$OUT/recordings"
    echo "HOTLINE__CALLS__SHUTDOWN_GRACE=$GRACE"
    echo "HOTLINE__ADMIN__TOKEN=$ADMIN_TOKEN"
    echo "config: $CONFIG_DIR/hotline.toml"
} >"$OUT/env.txt"

HOTLINE__SIP__LISTEN="127.0.0.1:$SIP_PORT" \
    HOTLINE__SIP__LISTEN_V6="[::1]:$SIP_PORT6" \
    HOTLINE__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT" \
    HOTLINE__DATABASE__URL="sqlite://$OUT/hotline.db" \
    HOTLINE__DATABASE__SPOOL_DIR="$OUT/spool" \
    HOTLINE__RECORDING__DIR="$OUT/recordings" \
    HOTLINE__CALLS__SHUTDOWN_GRACE="$GRACE" \
    HOTLINE__ADMIN__TOKEN="$ADMIN_TOKEN" \
    "$HOTLINED" run --config "$CONFIG_DIR/hotline.toml" >"$OUT/hotlined.stdout.log" 2>"$DAEMON_LOG" &
DAEMON_PID=$!

ready=0
for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then break; fi
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/health" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ $ready -ne 1 ]; then
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        why="no 200 from http://127.0.0.1:$ADMIN_PORT/health within 30 s"
    else
        wait "$DAEMON_PID"
        why="daemon exited with status $? before it was ready"
        DAEMON_PID=
    fi
    echo "FAIL startup ($why)"
    tail_of "$DAEMON_LOG" 40 "daemon stderr" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
echo "daemon pid $DAEMON_PID: sip udp+tcp $TARGET4 and $TARGET6, admin 127.0.0.1:$ADMIN_PORT" >&2

# Registration first: the wrong-password scenarios run last so that a
# per-source lock-out after failed attempts cannot refuse the good ones.
sc_register register-udp u1 op1 op1-secret
sc_register register-tcp t1 op2 op2-secret
sc_feature_login feature-login-udp u1
sc_options options-udp u1 "$TARGET4" 127.0.0.1
sc_options options-tcp t1 "$TARGET4" 127.0.0.1
sc_options options-ipv6 u1 "$TARGET6" ::1
sc_unknown_number unknown-number-udp u1
sc_unknown_number unknown-number-tcp t1
sc_cancel cancel-udp u1
sc_cancel cancel-tcp t1
sc_call call-udp u1 "$TARGET4" 127.0.0.1
sc_call call-ipv6 u1 "$TARGET6" ::1
sc_dtmf dtmf-udp u1
sc_ivr_benefits ivr-benefits-udp u1
sc_uac uac-udp u1 200 20
sc_uac uac-tcp t1 50 20
sc_reload_during_calls reload-during-calls
sc_uac_lossy uac-udp-lost10 200 20
sc_register_badpass register-badpass-udp u1 op3 wrong-secret
sc_register_badpass register-badpass-tcp t1 op3 wrong-secret
sc_torture torture-rfc4475 127.0.0.1 "$SIP_PORT"

# Graceful stop: SIGTERM must end the daemon within the grace period + 10 s
# with status 0.
if wanted shutdown; then
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID"
        started=$SECONDS
        for ((i = 0; i < (GRACE + 10) * 10; i++)); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$DAEMON_PID" 2>/dev/null; then
            fail shutdown "still running $((GRACE + 10)) s after SIGTERM"
            stop_daemon
        else
            wait "$DAEMON_PID"
            status=$?
            DAEMON_PID=
            if [ $status -eq 0 ]; then
                pass shutdown "SIGTERM, exit 0 after $((SECONDS - started))s"
            else
                fail shutdown "exit status $status after SIGTERM"
            fi
        fi
    else
        fail shutdown "daemon was not running"
    fi
fi

# The queue end to end (operators, 50 callers, live state, baresip) runs its own
# daemon on its own configuration: sip-test/queue.sh, with the same globs.
bash "$ROOT/sip-test/queue.sh" "${SELECT[@]}" >"$OUT/queue.out"
grep -v '^[0-9]* passed, [0-9]* failed$' "$OUT/queue.out"
if read -r qp _ qf _ < <(grep '^[0-9]* passed, [0-9]* failed$' "$OUT/queue.out" | tail -n 1); then
    PASSED=$((PASSED + qp))
    FAILED=$((FAILED + qf))
else
    fail queue "sip-test/queue.sh printed no summary; see $OUT/queue.out"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
