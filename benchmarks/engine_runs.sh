#!/usr/bin/env bash
# The engine's acceptance runs: JSRT train split with half the masks corrupted by 5-13 px
# (erode or dilate, and dilate only), default `train` settings, qam_ocm vs baseline.
# Usage: bash benchmarks/engine_runs.sh [OUT] [STRATEGIES] [OPS]   (run from the repo root)
# TRAIN_ARGS="--qam-loss bce+dice" bash benchmarks/engine_runs.sh OUT   passes options to train.
set -euo pipefail
OUT=${1:-bench/engine}
STRATEGIES=${2:-"qam_ocm baseline"}
OPS_LIST=${3:-"erode,dilate dilate"}
JSRT=../shared/data/jsrt256
PAL=.venv/bin/napari-pal
PY=.venv/bin/python
mkdir -p "$OUT"
for ops in $OPS_LIST; do
  tag=${ops/,/-}
  noisy="$OUT/noisy-$tag"
  [ -f "$noisy/corruption.csv" ] || $PAL corrupt "$JSRT" "$noisy" --fraction 0.5 --pixels 5 13 \
      --seed 0 --ops "$ops" --split "$JSRT/split.csv:train"
  for strategy in $STRATEGIES; do
    run="$OUT/$strategy-$tag"
    [ -f "$run/done" ] && continue
    rm -rf "$run"
    start=$SECONDS
    # shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
    $PAL train "$noisy" --out "$run" --strategy "$strategy" --split "$noisy/split.csv:train" \
      ${TRAIN_ARGS:-}
    $PAL score "$run" "$noisy" --split "$noisy/split.csv:train" --out "$run/scores.csv"
    echo "train+score seconds: $((SECONDS - start))" | tee "$run/time.txt"
    $PAL predict "$run" "$JSRT" --split "$JSRT/split.csv:test" --out "$run/pred"
    $PAL evaluate "$run/pred" "$JSRT" --split "$JSRT/split.csv:test" --out "$run/dice.csv" \
      | tee "$run/dice.txt"
    $PY benchmarks/detection_from_csv.py "$run/scores.csv" "$noisy/corruption.csv" \
      quality qam dist offset dice | tee "$run/detection.txt"
    touch "$run/done"
  done
done
