#!/usr/bin/env bash
# One-time set-up: a virtual environment in .venv with irstd-bench and its dependencies.
# Safe to re-run: it reinstalls only when pyproject.toml changed. Fails loudly when
# torchvision's compiled ops (nms, deform_conv2d) do not run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.irstd-bench-installed

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "[setup] installing irstd-bench and its dependencies (torch is about 3 GB the first time)" >&2
    # No torch pin that admits 2.13.0: a CPU-only 2.13.0 wheel on these machines breaks torchvision.
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]" >&2
    echo "$want" > "$STAMP"
fi
"$VENV/bin/python" - <<'PY' >&2 || { echo "[setup] FAILED: torchvision's compiled ops do not run (see above). Reinstall torch and torchvision as a matching pair: .venv/bin/pip install --force-reinstall 'torch>=2.14' 'torchvision>=0.29'" >&2; exit 1; }
import torch, torchvision
from torchvision.ops import deform_conv2d, nms
keep = nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10]]), torch.tensor([0.9, 0.8]), 0.5)
assert keep.tolist() == [0], keep
out = deform_conv2d(torch.ones(1, 1, 4, 4), torch.zeros(1, 18, 4, 4), torch.ones(1, 1, 3, 3), padding=1)
assert out.shape == (1, 1, 4, 4)
print(f"[setup] torch {torch.__version__}, torchvision {torchvision.__version__}: nms and deform_conv2d run")
PY
