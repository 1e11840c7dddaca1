#!/usr/bin/env bash
# Issue 7: train EFLNet and the segmentation baselines on NUAA-SIRST on one GPU, then predict on
# the val and test splits of the same split family. All trainings of a family run at once on one
# GPU (small models: one process alone does not fill an H100).
#
#   bash reports/nuaa-sirst/train_gpu.sh DATA_ROOT FAMILY OUT_DIR TRAIN_BUDGET_S
#
# FAMILY is split_EFLNet or idx_427. Each training is stopped at TRAIN_BUDGET_S seconds at the
# latest (`timeout`); best.pt is chosen on val by the engine, so a stopped run still has a usable
# best.pt, and results.csv says how many epochs it completed. Predictions of segmenters are stored
# as 8-bit PNG score maps (score x 255; evaluate them with `irstd-bench eval --format scoremaps`)
# to keep the transfer small.
# Environment: SEEDS (EFLNet seeds, default "0 1 2"; " " for none), EFL_EPOCHS, EFL_IMGSZ, SEG_EPOCHS,
# SEG_LR, PY.
set -uo pipefail
DATA=$1; FAMILY=$2; OUT=$3; BUDGET=${4:-330}
PY=${PY:-python3}
mkdir -p "$OUT/runs" "$OUT/logs" "$OUT/preds"
common=(--dataset nuaa --root "$DATA" --split "$FAMILY" --device cuda --workers 1 --no-progress
        --no-deterministic --resize-masks --val-every 2)

train() {  # name, then train options
    local name=$1; shift
    timeout "$BUDGET" $PY -m irstd_bench train "${common[@]}" --out "$OUT/runs/$name" "$@" \
        > "$OUT/logs/train_$name.log" 2>&1
    echo "$name: train exit $?" >> "$OUT/logs/exit_codes.txt"
}

for seed in ${SEEDS:-0 1 2}; do
    train "eflnet-n-s$seed" --model eflnet-n --epochs "${EFL_EPOCHS:-40}" --imgsz "${EFL_IMGSZ:-384}" --batch 16 \
        --seed "$seed" &
done
train dnanet-s0 --model dnanet --epochs "${SEG_EPOCHS:-60}" --imgsz 256 --batch 16 --optimizer adamw \
    --lr "${SEG_LR:-0.001}" --seed 0 &
train acm-s0 --model acm --epochs "${SEG_EPOCHS:-60}" --imgsz 256 --batch 16 --optimizer adamw \
    --lr "${SEG_LR:-0.001}" --seed 0 &
wait

predict() {  # run name, part
    local run=$1 part=$2 name; name=$(basename "$1")
    case $name in
        eflnet*) args=(--out "$OUT/preds/$name-$part.json" --format coco --conf 0.001) ;;
        *) args=(--out "$OUT/preds/$name-$part" --format scoremaps) ;;
    esac
    timeout 90 $PY -m irstd_bench predict --weights "$run/best.pt" --dataset nuaa --root "$DATA" \
        --split "$FAMILY/$part" --device cuda "${args[@]}" > "$OUT/logs/predict_$name-$part.log" 2>&1
    echo "$name $part: predict exit $?" >> "$OUT/logs/exit_codes.txt"
}
for run in "$OUT"/runs/*; do
    [ -f "$run/best.pt" ] || { echo "$(basename "$run"): no best.pt" >> "$OUT/logs/exit_codes.txt"; continue; }
    predict "$run" val & predict "$run" test &
done
wait

# Score maps as 8-bit PNG (eval scales by 1/255); released weights (EMA weights + metadata).
$PY - "$OUT" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from reference_model.engine.checkpoint import release_checkpoint
out = Path(sys.argv[1])
for npy in out.glob("preds/*/*.npy"):
    q = np.round(np.clip(np.load(npy), 0, 1) * 255).astype(np.uint8)
    Image.fromarray(q).save(npy.with_suffix(".png"))
    npy.unlink()
for best in sorted(out.glob("runs/*/best.pt")):
    release_checkpoint(best, best.with_name("released.pt"))
PY
