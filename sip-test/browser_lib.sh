# shellcheck shell=bash
# Shared by the Chromium checks (login_chromium.sh, workspace_chromium.sh, report_chromium.sh):
# a fresh output folder, FAIL and clean-up (plus the caller's cleanup_more, when it defines one),
# and a fresh daemon on free loopback ports that has made its demo accounts (start_daemon).
# Set NAME (the check's name in PASS/FAIL lines) and OUT (its output folder, emptied here)
# before sourcing; run from the repository root.

HOTLINED=${HOTLINED:-target/debug/hotlined}
DAEMON_PID=
rm -rf "$OUT"
mkdir -p "$OUT"

fail() {
    echo "FAIL $NAME ($1)"
    [ -f "$OUT/hotlined.stderr.log" ] && tail -n 20 "$OUT/hotlined.stderr.log" >&2
    exit 1
}

cleanup() {
    if [ -n "$DAEMON_PID" ]; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    if declare -F cleanup_more >/dev/null; then cleanup_more; fi
}
trap cleanup EXIT

# start_daemon CONFIG [VAR=VALUE...]: `hotlined run --config CONFIG` with the extra environment,
# SIP on free ports (IPv4 and IPv6), the admin API on BASE (set here, as are SIP_PORT and
# DAEMON_PID), its database, spool and recordings in OUT; back once it answers /health and has
# logged its demo accounts.
start_daemon() {
    local config=$1 sip6 admin i
    shift
    [ -x "$HOTLINED" ] || fail "no daemon binary at $HOTLINED: build it first"
    SIP_PORT=$(python3 sip-test/free_port.py 1) || fail "no free port"
    sip6=$(python3 sip-test/free_port.py 1 "$SIP_PORT") || fail "no free port"
    admin=$(python3 sip-test/free_port.py 1 "$SIP_PORT" "$sip6") || fail "no free port"
    BASE="http://127.0.0.1:$admin"
    env "$@" \
        HOTLINE__SIP__LISTEN="127.0.0.1:$SIP_PORT" \
        HOTLINE__SIP__LISTEN_V6="[::1]:$sip6" \
        HOTLINE__ADMIN__LISTEN="127.0.0.1:$admin" \
        HOTLINE__DATABASE__URL="sqlite://$OUT/hotline.db" \
        HOTLINE__DATABASE__SPOOL_DIR="$OUT/spool" \
        HOTLINE__RECORDING__DIR="$OUT/recordings" \
        HOTLINE__CALLS__SHUTDOWN_GRACE=1 \
        "$HOTLINED" run --config "$config" >/dev/null 2>"$OUT/hotlined.stderr.log" &
    DAEMON_PID=$!
    for ((i = 0; i < 300; i++)); do
        grep -q "demo accounts made" "$OUT/hotlined.stderr.log" 2>/dev/null &&
            curl -fsS -o /dev/null --max-time 1 "$BASE/health" 2>/dev/null && break
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon exited at start"
        sleep 0.1
    done
    grep -q "demo accounts made" "$OUT/hotlined.stderr.log" || fail "no demo accounts in the log"
}
