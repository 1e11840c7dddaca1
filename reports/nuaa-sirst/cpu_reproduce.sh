#!/usr/bin/env bash
# The CPU comparison of issue 21 (protocol cpu-windows-256, RUNS.md "Training (CPU protocol)"):
# every run of reproduce's CPU plan at its full schedule, as a queue that each call continues.
#   bash reports/nuaa-sirst/cpu_reproduce.sh OUT BUDGET_S [PARALLEL]
# First call: OUT absent or empty. Later calls continue every unfinished run from its last
# checkpoint (--resume); runs that finished are predicted, scored and reported in OUT/report.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?run folder (outside the repository)}
BUDGET=${2:?seconds for this call}
PARALLEL=${3:-2}
RESUME=()
if [ -d "$OUT/work/runs" ]; then RESUME=(--resume); fi
exec .venv/bin/irstd-bench reproduce --root ../shared/datasets/NUAA-SIRST --dataset nuaa --split-family split_EFLNet \
    --device cpu --protocol cpu-windows-256 --parallel "$PARALLEL" --threads 1 --budget-s "$BUDGET" \
    --out "$OUT" --commit "$(git rev-parse --short HEAD)" "${RESUME[@]}"
