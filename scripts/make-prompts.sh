#!/usr/bin/env bash
# Make the Russian number prompts used by crates/media/src/numbers_ru.rs:
# one 8 kHz mono 16-bit WAV per piece in config/prompts/ru/numbers/.
#
# The list of pieces (prompt name and text) is read from the PIECES table in numbers_ru.rs, so
# the code and the files cannot drift apart (a test in crates/media checks every file exists).
# Speech: espeak-ng, Russian voice, slow (130 words per minute) for elderly callers; sox then
# trims the leading/trailing silence (so pieces join without gaps), normalises to -3 dBFS, adds
# 40 ms of silence at the end and converts to 8 kHz mono 16-bit.
#
# Usage: scripts/make-prompts.sh [output-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-config/prompts/ru/numbers}"
src=crates/media/src/numbers_ru.rs
scripts/ensure-tools.sh espeak-ng sox
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
count=0
# Lines look like:    ("numbers/ord3", "третий"),
while IFS='|' read -r name text; do
  file="$out/${name#numbers/}.wav"
  espeak-ng -v ru -s 130 -w "$tmp/raw.wav" "$text"
  sox "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$file" \
    silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse norm -3 pad 0 0.04
  count=$((count + 1))
done < <(sed -n 's/^ *("\(numbers\/[^"]*\)", "\([^"]*\)"),$/\1|\2/p' "$src")
[ "$count" -gt 0 ] || { echo "no pieces found in $src" >&2; exit 1; }
echo "made $count prompts in $out ($(du -sh "$out" | cut -f1))"
