#!/usr/bin/env bash
# Make the lines' greeting prompts (the `greeting` key of config/lines.toml):
# one 8 kHz mono 16-bit WAV per line in config/prompts/ru/. Texts from PRODUCT.md.
#
# Same voice and processing as scripts/make-prompts.sh: espeak-ng, Russian, slow (130 words per
# minute) for elderly callers; sox trims leading/trailing silence, normalises to -3 dBFS, pads
# 200 ms of silence at the end and converts to 8 kHz mono 16-bit. An admin may replace any file
# with a real recording in the same format (`hotlined check` validates them).
#
# Usage: scripts/make-greetings.sh [output-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-config/prompts/ru}"
scripts/ensure-tools.sh espeak-ng sox
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
while IFS='|' read -r name text; do
  espeak-ng -v ru -s 130 -w "$tmp/raw.wav" "$text"
  sox "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$name.wav" \
    silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse norm -3 pad 0 0.2
  echo "made $out/$name.wav: $text"
done <<'TEXTS'
greeting-city|Здравствуйте! Вы позвонили в городскую социальную справочную службу.
greeting-regional|Здравствуйте! Вы позвонили в региональный единый колл-центр системы долговременного ухода.
TEXTS
