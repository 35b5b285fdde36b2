#!/usr/bin/env bash
# Make the menu prompts listed in config/prompts/ru/prompts.toml ("name" = "text"): one
# 8 kHz mono 16-bit WAV per line, at config/prompts/ru/<name>.wav.
#
# prompts.toml is the single list of names and texts, so the menus, `hotlined check` (which
# reports a prompt missing from it) and these files cannot drift apart.
# Speech: espeak-ng, Russian voice, slow (120 words per minute, 10 ms more pause between words)
# for elderly callers; sox trims leading silence, normalises to -3 dBFS, leaves 300 ms of silence
# at the end (a breath before the next prompt) and converts to 8 kHz mono 16-bit.
#
# Usage: scripts/make-ivr-prompts.sh [prompt-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-config/prompts/ru}"
list="$dir/prompts.toml"
scripts/ensure-tools.sh espeak-ng sox
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
count=0
# Lines look like:  "city/greeting" = "Здравствуйте! …"
while IFS='|' read -r name text; do
  file="$dir/$name.wav"
  mkdir -p "$(dirname "$file")"
  espeak-ng -v ru -s 120 -g 10 -w "$tmp/raw.wav" "$text"
  sox "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$file" \
    silence 1 0.01 0.5% norm -3 pad 0 0.3
  count=$((count + 1))
done < <(sed -n 's/^"\([^"]*\)" *= *"\([^"]*\)"$/\1|\2/p' "$list")
[ "$count" -gt 0 ] || { echo "no prompts found in $list" >&2; exit 1; }
echo "made $count prompts from $list"
