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
NAME=workspace
OUT="$ROOT/sip-test/out/workspace"
# shellcheck source=sip-test/browser_lib.sh
. "$ROOT/sip-test/browser_lib.sh"
TOKEN=workspace-test-token
MODE=()
[ "${1:-}" = --sip-only ] && MODE=(--sip-only)

scripts/ensure-tools.sh sipp chromium chromedriver selenium curl python3 >/dev/null ||
    fail "cannot install sip-tester, chromium, chromium-driver, python3-selenium"
cp -r config "$OUT/config"
/usr/bin/python3 sip-test/workspace_chromium.py config "$OUT/config" ||
    fail "could not prepare the config copy"
start_daemon "$OUT/config/hotline.toml" HOTLINE__ADMIN__TOKEN="$TOKEN"

# Debian's python3: python3-selenium is installed for it, whatever python3 comes first in PATH
timeout -k 5 300 /usr/bin/python3 sip-test/workspace_chromium.py run "$BASE" "$OUT" \
    "127.0.0.1:$SIP_PORT" "$OUT/hotline.db" "$TOKEN" "$OUT/config" "${MODE[@]}" ||
    fail "see the lines above; SIPp traces and screenshots in $OUT"
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died during the test"
echo "PASS workspace (screenshots in $OUT)"
