#!/usr/bin/env bash
# Re-make the shipped pre-trained weights (weights/bundled/) from the bundled real ECG and
# synthetic ECG, exactly as committed. About 15 minutes on a 2-core machine.
#   bash weights/make_bundled.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/cardiaffect-bundled-weights}
BIN=${CARDIAFFECT_BIN:-target/release/cardiaffect}
[ -x "$BIN" ] || cargo build --release
rm -rf "$W" && mkdir -p "$W"
"$BIN" prepare --out "$W/real" --window 4s --stride 2s
"$BIN" synth --out "$W/synth-raw" --subjects 16 --minutes 5 --seed 7
"$BIN" prepare --source "$W/synth-raw" --out "$W/synth" --window 4s --stride 2s
"$BIN" pretrain --corpus "$W/real" --corpus "$W/synth" --corpus-weight 1 --corpus-weight 1 \
  --config weights/small-4s.json --out "$W/run" --steps 3000 --batch 32 --lr 1e-3 \
  --eval-every 250 --checkpoint-every 250 --seed 1
mkdir -p weights/bundled
for f in model.safetensors config.json preprocess.json summary.json pretrain.json loss.svg reconstructions.svg reconstructions.png; do
  cp "$W/run/$f" weights/bundled/
done
echo "weights/bundled/ updated; update MODEL_CARD.md with summary.json's numbers"
