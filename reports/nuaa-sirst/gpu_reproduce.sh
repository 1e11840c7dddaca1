#!/usr/bin/env bash
# Issue 14: the EFLNet paper's Table I on NUAA-SIRST (split_EFLNet) in ONE device command.
#
# Run in the repository root on the device machine (one GPU, no network):
#
#   COMMIT=$(git rev-parse --short HEAD) bash reports/nuaa-sirst/gpu_reproduce.sh
#
# with `.gpu_data` carried (the lead copies ../shared/datasets/NUAA-SIRST to the git-ignored
# .gpu_data/NUAA-SIRST first; nothing else is copied from outside the repository). Writes into $OUT
# (default ./gpu_out): reproduce.log (this script's whole output) and the packed files of
# `irstd-bench reproduce` (RUNS.md, summary.json, report.tar.gz, runs.tar.gz, weights.tar, at most
# 8 files of at most 16 MB together with the log). Unpack report.tar.gz into reports/nuaa-sirst/.
#
# Installs nothing. The device image has no package registry; its python3 already holds torch,
# torchvision, numpy, scipy, click, matplotlib, pillow, tqdm and pyyaml (everything irstd-bench
# imports at run time; pycocotools, a test-only dependency, is not needed), so the repository runs
# from source with PYTHONPATH instead of `make`/scripts/setup.sh (whose pip install would need the
# network and torch>=2.14, newer than the image's). The check below fails loudly if an import or
# torchvision's compiled ops do not work there.
#
# Time: BUDGET_S (default 480 s) covers probe, trainings, predictions, scoring, report and packing;
# `timeout` stops the command 30 s after that at the latest, inside the 9-minute limit of one
# device command. Environment: OUT, DATA (default .gpu_data/NUAA-SIRST), BUDGET_S, COMMIT, PY.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-$PWD/gpu_out}
DATA=${DATA:-.gpu_data/NUAA-SIRST}
BUDGET_S=${BUDGET_S:-480}
PY=${PY:-python3}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo "unknown (no git on the device; pass COMMIT)")}
WORK=$(mktemp -d /tmp/irstd-reproduce.XXXXXX)
mkdir -p "$OUT"
LOG="$OUT/reproduce.log"

{
    echo "# $(date -u +%FT%TZ) commit $COMMIT, data $DATA, budget ${BUDGET_S}s, work $WORK"
    if [ ! -d "$DATA" ]; then
        echo "error: $DATA not found (copy ../shared/datasets/NUAA-SIRST there and carry .gpu_data)"
        exit 2
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    $PY - <<'PY' || { echo "error: the device's python3 cannot run irstd-bench (see above)"; exit 2; }
import click, matplotlib, numpy, PIL, scipy, torch, torchvision, tqdm, yaml  # noqa: F401  (run-time imports)
from torchvision.ops import deform_conv2d, nms
keep = nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10]]), torch.tensor([0.9, 0.8]), 0.5)
assert keep.tolist() == [0], keep
import irstd_bench, reference_model.reproduce  # noqa: F401
print(f"python ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"cuda {torch.cuda.is_available()} ({torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'})")
PY
    timeout --signal=TERM --kill-after=5 $((BUDGET_S + 30)) \
        $PY -m irstd_bench reproduce --root "$DATA" --dataset nuaa --split-family split_EFLNet \
        --device cuda --budget-s "$BUDGET_S" --out "$WORK/out" --pack-dir "$OUT" --commit "$COMMIT"
    echo "# reproduce exit $? at $(date -u +%FT%TZ)"
} 2>&1 | tee "$LOG"
