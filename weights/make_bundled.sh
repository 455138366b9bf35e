#!/usr/bin/env bash
# Re-make the shipped pre-trained weights (weights/bundled/) from the bundled real ECG and a
# large, varied synthetic corpus: the committed tensors, value for value. About 15 minutes on 2 cores.
#   bash weights/make_bundled.sh [WORK_DIR]
# ABLATION=real-only pre-trains on the real ECG alone (for the model card's comparison) and
# leaves weights/bundled/ untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/cardiaffect-bundled-weights}
BIN=${CARDIAFFECT_BIN:-target/release/cardiaffect}
[ -x "$BIN" ] || cargo build --release
mkdir -p "$W"
# Real ECG: every recording bundled in data/ (MIT-BIH 208, biosignalsnotebooks; data/README.md).
[ -f "$W/real/manifest.json" ] || "$BIN" prepare --out "$W/real" --window 4s --stride 2s
if [ "${ABLATION:-}" = real-only ]; then
  rm -rf "$W/run-real-only"
  "$BIN" pretrain --corpus "$W/real" --config weights/small-4s.json --out "$W/run-real-only" \
    --steps 3000 --batch 32 --lr 1e-3 --eval-every 250 --checkpoint-every 250 --seed 1
  exit 0
fi
# Synthetic ECG (ECGSYN): 240 people x 2 minutes, each with their own beat shape, breathing and
# resting heart rate, heart rate/HRV/noise/baseline wander changing minute by minute.
if [ ! -f "$W/synth/manifest.json" ]; then
  rm -rf "$W/synth-raw"
  "$BIN" synth --out "$W/synth-raw" --subjects 240 --minutes 2 --seed 7
  "$BIN" prepare --source "$W/synth-raw" --out "$W/synth" --window 4s --stride 2s
fi
rm -rf "$W/run"
"$BIN" pretrain --corpus "$W/real" --corpus "$W/synth" --corpus-weight 1 --corpus-weight 1 \
  --config weights/small-4s.json --out "$W/run" --steps 3000 --batch 32 --lr 1e-3 \
  --eval-every 250 --checkpoint-every 250 --seed 1
mkdir -p weights/bundled
for f in model.safetensors config.json preprocess.json summary.json pretrain.json loss.svg reconstructions.svg reconstructions.png; do
  cp "$W/run/$f" weights/bundled/
done
echo "weights/bundled/ updated; update MODEL_CARD.md with summary.json's numbers"
