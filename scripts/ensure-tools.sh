#!/usr/bin/env bash
# Install the Debian packages the tests and `make run` need, when they are missing.
# Usage: scripts/ensure-tools.sh sipp sipsak curl ...
set -euo pipefail
declare -A pkg=( [sipp]=sip-tester [sipsak]=sipsak [curl]=curl [baresip]=baresip-core [espeak-ng]=espeak-ng [sox]=sox [python3]=python3 [psql]=postgresql-client [chromedriver]=chromium-driver [selenium]=python3-selenium )
present() { # a command, or (selenium) a python3 module
  case "$1" in
    selenium) /usr/bin/python3 -c 'import selenium' >/dev/null 2>&1 ;;  # Debian's python3, not a pyenv one
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
missing=()
for tool in "$@"; do
  present "$tool" || missing+=("${pkg[$tool]:-$tool}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
