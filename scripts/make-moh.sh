#!/usr/bin/env bash
# Make the default music on hold: config/prompts/moh/default.wav, 8 kHz mono 16-bit, 20 s.
#
# Synthesised with sox, so it is ours and free of royalties: a slow I–vi–IV–V progression in
# C major (C, Am, F, G; 5 s each) as soft sine pads with a bass note and a gentle plucked
# arpeggio on top. Each chord swells in and out over half a second, so the joins between
# chords and the loop point (media::moh cross-fades it as well) are quiet. Low-passed at
# 3 kHz (the telephone band keeps what matters), normalised to -6 dBFS so it sits under speech.
#
# Usage: scripts/make-moh.sh [output-file]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-config/prompts/moh/default.wav}"
scripts/ensure-tools.sh sox
mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fmt=(-r 8000 -c 1 -b 16 -e signed-integer)
i=0
# name | bass | pad notes | arpeggio notes
while IFS='|' read -r name bass pad arp; do
  i=$((i + 1))
  # pad: three sines and the bass an octave down, mixed to mono, slow swell
  args=()
  for n in $bass $pad; do args+=(sine "$n"); done
  sox -n -r 8000 -c "$((${#args[@]} / 2))" -b 16 "$tmp/tones.wav" synth 5 "${args[@]}"
  sox "$tmp/tones.wav" "${fmt[@]}" "$tmp/pad$i.wav" remix - tremolo 0.5 20 fade q 0.5 5 0.5 vol 0.5
  # arpeggio: four plucked notes, 1.25 s apart
  notes=()
  for n in $arp; do
    sox -n "${fmt[@]}" "$tmp/n.wav" synth 1.25 pluck "$n" fade q 0.005 1.25 0.6 vol 0.35
    notes+=("$tmp/n$i-${#notes[@]}.wav")
    mv "$tmp/n.wav" "${notes[-1]}"
  done
  sox "${notes[@]}" "$tmp/arp$i.wav"
  sox -m "$tmp/pad$i.wav" "$tmp/arp$i.wav" "${fmt[@]}" "$tmp/chord$i.wav"
  echo "chord $name"
done <<'CHORDS'
C|C3|C4 E4 G4|C5 E5 G5 E5
Am|A2|A3 C4 E4|A4 C5 E5 C5
F|F2|F3 A3 C4|F4 A4 C5 A4
G|G2|G3 B3 D4|G4 B4 D5 B4
CHORDS
sox "$tmp"/chord{1,2,3,4}.wav "${fmt[@]}" "$out" lowpass 3000 norm -6
echo "made $out: $(soxi -D "$out") s"
