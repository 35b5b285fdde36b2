#!/usr/bin/env bash
# The login form in headless Chromium against the real daemon (issue 11, "Must show"):
# a fresh daemon on free loopback ports makes its demo accounts; login_chromium.py drives
# Debian's chromium through chromium-driver (python3-selenium): op1 logs in and sees their
# name, op1's session gets 403 on a supervisor route, five wrong passwords lock op2 with the
# message. Screenshots in sip-test/out/login-chromium/.
#
# Usage: sip-test/login_chromium.sh   (after a build; $HOTLINED overrides the binary)
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
OUT="$ROOT/sip-test/out/login-chromium"
rm -rf "$OUT"
mkdir -p "$OUT"
HOTLINED=${HOTLINED:-target/debug/hotlined}
DAEMON_PID=

fail() {
    echo "FAIL login-chromium ($1)"
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

scripts/ensure-tools.sh chromium chromedriver selenium curl python3 >/dev/null ||
    fail "cannot install chromium, chromium-driver, python3-selenium"
[ -x "$HOTLINED" ] || fail "no daemon binary at $HOTLINED: build it first"

SIP_PORT=$(python3 sip-test/free_port.py 1) || fail "no free port"
ADMIN_PORT=$(python3 sip-test/free_port.py 1 "$SIP_PORT") || fail "no free port"
BASE="http://127.0.0.1:$ADMIN_PORT"

HOTLINE__SIP__LISTEN="127.0.0.1:$SIP_PORT" \
    HOTLINE__SIP__LISTEN_V6="[::1]:$SIP_PORT" \
    HOTLINE__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT" \
    HOTLINE__DATABASE__URL="sqlite://$OUT/hotline.db" \
    HOTLINE__DATABASE__SPOOL_DIR="$OUT/spool" \
    HOTLINE__RECORDING__DIR="$OUT/recordings" \
    HOTLINE__CALLS__SHUTDOWN_GRACE=1 \
    "$HOTLINED" run --config config/hotline.toml >/dev/null 2>"$OUT/hotlined.stderr.log" &
DAEMON_PID=$!
# up, with its demo accounts made
for ((i = 0; i < 300; i++)); do
    grep -q "demo accounts made" "$OUT/hotlined.stderr.log" 2>/dev/null &&
        curl -fsS -o /dev/null --max-time 1 "$BASE/" 2>/dev/null && break
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon exited at start"
    sleep 0.1
done
grep -q "demo accounts made" "$OUT/hotlined.stderr.log" || fail "no demo accounts in the log"

# Debian's python3: python3-selenium is installed for it, whatever python3 comes first in PATH
timeout -k 5 180 /usr/bin/python3 sip-test/login_chromium.py "$BASE" "$OUT" || fail "see the lines above"
echo "PASS login-chromium (screenshots in $OUT)"
