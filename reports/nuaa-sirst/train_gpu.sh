#!/usr/bin/env bash
# Issue 7: train EFLNet and the segmentation baselines on NUAA-SIRST on one GPU, then predict on
# the val and test splits of the same split family. Runs all trainings of a family at once on one
# GPU (small models; one process alone does not fill an H100).
#
#   bash reports/nuaa-sirst/train_gpu.sh DATA_ROOT FAMILY OUT_DIR BUDGET_S
#
# FAMILY is split_EFLNet or idx_427. Each training is stopped at BUDGET_S seconds at the latest
# (`timeout`); best.pt is chosen on val by the engine, so a stopped run still has a usable best.pt,
# and results.csv says how many epochs it completed. Predictions of segmenters are stored as 16-bit
# PNG score maps (what `irstd-bench eval` reads as score maps) to keep the transfer small.
set -uo pipefail
DATA=$1; FAMILY=$2; OUT=$3; BUDGET=${4:-480}
PY=${PY:-python3}
mkdir -p "$OUT/runs" "$OUT/logs" "$OUT/preds"
common=(--dataset nuaa --root "$DATA" --split "$FAMILY" --device cuda --workers 2 --no-progress
        --no-deterministic --resize-masks --val-every 2)

train() {  # name, then train options
    local name=$1; shift
    timeout "$BUDGET" $PY -m irstd_bench train "${common[@]}" --out "$OUT/runs/$name" "$@" \
        > "$OUT/logs/$name.log" 2>&1
    echo "$name: exit $?" >> "$OUT/logs/exit_codes.txt"
}

# Fail fast: one epoch of the detector and a segmenter before anything long starts.
$PY -m irstd_bench train "${common[@]}" --out "$OUT/smoke/eflnet" --model eflnet-n --epochs 1 --imgsz 512 \
    --batch 16 > "$OUT/logs/smoke_eflnet.log" 2>&1 || { tail -20 "$OUT/logs/smoke_eflnet.log"; exit 1; }
$PY -m irstd_bench train "${common[@]}" --out "$OUT/smoke/dnanet" --model dnanet --epochs 1 --imgsz 256 \
    --batch 16 > "$OUT/logs/smoke_dnanet.log" 2>&1 || { tail -20 "$OUT/logs/smoke_dnanet.log"; exit 1; }
rm -rf "$OUT/smoke"

for seed in ${SEEDS:-0 1 2}; do
    train "eflnet-n-s$seed" --model eflnet-n --epochs ${EFL_EPOCHS:-100} --imgsz 512 --batch 16 --seed "$seed" &
done
if [ -n "${EFL_S_EPOCHS:-}" ]; then
    train "eflnet-s-s0" --model eflnet-s --epochs "$EFL_S_EPOCHS" --imgsz 512 --batch 16 --seed 0 &
fi
train dnanet-s0 --model dnanet --epochs ${SEG_EPOCHS:-100} --imgsz 256 --batch 16 --optimizer adamw --seed 0 &
train acm-s0 --model acm --epochs ${SEG_EPOCHS:-100} --imgsz 256 --batch 16 --optimizer adamw --seed 0 &
wait

for run in "$OUT"/runs/*; do
    name=$(basename "$run")
    [ -f "$run/best.pt" ] || { echo "$name: no best.pt" >> "$OUT/logs/exit_codes.txt"; continue; }
    for part in val test; do
        case $name in
            eflnet*) $PY -m irstd_bench predict --weights "$run/best.pt" --dataset nuaa --root "$DATA" \
                        --split "$FAMILY/$part" --out "$OUT/preds/$name-$part.json" --format coco --conf 0.001 \
                        --device cuda >> "$OUT/logs/predict.log" 2>&1 ;;
            *) $PY -m irstd_bench predict --weights "$run/best.pt" --dataset nuaa --root "$DATA" \
                  --split "$FAMILY/$part" --out "$OUT/preds/$name-$part" --format scoremaps \
                  --device cuda >> "$OUT/logs/predict.log" 2>&1 ;;
        esac
    done
done
# Score maps as 16-bit PNG (eval scales by 1/65535).
$PY - "$OUT/preds" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
for npy in Path(sys.argv[1]).glob("*/*.npy"):
    q = np.round(np.clip(np.load(npy), 0, 1) * 65535).astype(np.uint16)
    Image.fromarray(q).save(npy.with_suffix(".png"))
    npy.unlink()
PY
# Released weights (EMA weights and metadata only) for each run.
$PY - "$OUT" <<'PY'
import sys
from pathlib import Path
from reference_model.engine.checkpoint import release_checkpoint
out = Path(sys.argv[1])
for best in sorted(out.glob("runs/*/best.pt")):
    release_checkpoint(best, best.with_name("released.pt"))
PY
