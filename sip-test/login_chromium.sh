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
NAME=login-chromium
OUT="$ROOT/sip-test/out/login-chromium"
# shellcheck source=sip-test/browser_lib.sh
. "$ROOT/sip-test/browser_lib.sh"

scripts/ensure-tools.sh chromium chromedriver selenium curl python3 >/dev/null ||
    fail "cannot install chromium, chromium-driver, python3-selenium"
start_daemon config/hotline.toml

# Debian's python3: python3-selenium is installed for it, whatever python3 comes first in PATH
timeout -k 5 180 /usr/bin/python3 sip-test/login_chromium.py "$BASE" "$OUT" || fail "see the lines above"
echo "PASS login-chromium (screenshots in $OUT)"
