#!/usr/bin/env bash
# The workspace in headless Chromium against the real daemon with real SIP peers (issue 13,
# "Must show"): a fresh daemon on free loopback ports runs a copy of config/ (the city line
# recorded, home-care with a music of its own: workspace_chromium.py config); then
# workspace_chromium.py drives SIPp (op1's phone with digest REGISTER, an earlier call and the
# caller from one number) and Debian's chromium through chromium-driver (python3-selenium):
# op1's desk pops the caller within 1 s of the INVITE reaching op1's phone, with the earlier
# appeal; op1 answers on the phone, fills and routes the appeal, the registry and the card show
# it; the supervisor's board shows the caller waiting, op1 on_call, then wrap_up; the desk's
# transfer button moves the caller to home-care, whose music the caller then gets; op1 gets 403
# on /board; an organisation account sees only its application at /org. Screenshots of each
# page and every SIPp's traces in sip-test/out/workspace/.
#
# Usage: sip-test/workspace_chromium.sh [--sip-only]   (after a build; $HOTLINED overrides the
# binary). --sip-only leaves the browser out: op1 is driven through the API and transfers by
# REFER from its phone; the SIP, timing and audio checks still run.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
OUT="$ROOT/sip-test/out/workspace"
rm -rf "$OUT"
mkdir -p "$OUT"
HOTLINED=${HOTLINED:-target/debug/hotlined}
TOKEN=workspace-test-token
DAEMON_PID=
MODE=()
[ "${1:-}" = --sip-only ] && MODE=(--sip-only)

fail() {
    echo "FAIL workspace ($1)"
    [ -f "$OUT/hotlined.stderr.log" ] && tail -n 20 "$OUT/hotlined.stderr.log" >&2
    exit 1
}

cleanup() {
    if [ -n "$DAEMON_PID" ]; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
}
trap cleanup EXIT

scripts/ensure-tools.sh sipp chromium chromedriver selenium curl python3 >/dev/null ||
    fail "cannot install sip-tester, chromium, chromium-driver, python3-selenium"
[ -x "$HOTLINED" ] || fail "no daemon binary at $HOTLINED: build it first"

cp -r config "$OUT/config"
/usr/bin/python3 sip-test/workspace_chromium.py config "$OUT/config" || fail "could not prepare the config copy"
SIP_PORT=$(python3 sip-test/free_port.py 1) || fail "no free port"
SIP_PORT6=$(python3 sip-test/free_port.py 1 "$SIP_PORT") || fail "no free port"
ADMIN_PORT=$(python3 sip-test/free_port.py 1 "$SIP_PORT" "$SIP_PORT6") || fail "no free port"
BASE="http://127.0.0.1:$ADMIN_PORT"

HOTLINE__SIP__LISTEN="127.0.0.1:$SIP_PORT" \
    HOTLINE__SIP__LISTEN_V6="[::1]:$SIP_PORT6" \
    HOTLINE__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT" \
    HOTLINE__ADMIN__TOKEN="$TOKEN" \
    HOTLINE__DATABASE__URL="sqlite://$OUT/hotline.db" \
    HOTLINE__DATABASE__SPOOL_DIR="$OUT/spool" \
    HOTLINE__RECORDING__DIR="$OUT/recordings" \
    HOTLINE__CALLS__SHUTDOWN_GRACE=1 \
    "$HOTLINED" run --config "$OUT/config/hotline.toml" >/dev/null 2>"$OUT/hotlined.stderr.log" &
DAEMON_PID=$!
# up, with its demo accounts made
for ((i = 0; i < 300; i++)); do
    grep -q "demo accounts made" "$OUT/hotlined.stderr.log" 2>/dev/null &&
        curl -fsS -o /dev/null --max-time 1 "$BASE/health" 2>/dev/null && break
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon exited at start"
    sleep 0.1
done
grep -q "demo accounts made" "$OUT/hotlined.stderr.log" || fail "no demo accounts in the log"

# Debian's python3: python3-selenium is installed for it, whatever python3 comes first in PATH
timeout -k 5 300 /usr/bin/python3 sip-test/workspace_chromium.py run "$BASE" "$OUT" \
    "127.0.0.1:$SIP_PORT" "$OUT/hotline.db" "$TOKEN" "$OUT/config" "${MODE[@]}" ||
    fail "see the lines above; SIPp traces and screenshots in $OUT"
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died during the test"
echo "PASS workspace (screenshots in $OUT)"
