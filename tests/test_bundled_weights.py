"""The bundled EFLNet-n weights work out of the box: `irstd-bench predict --weights nuaa-eflnet-n`.

The published figure (reports/nuaa-sirst, the bundled row, split_EFLNet/test, centroid 3 px,
threshold 0.502 chosen on val) is F1 0.878 from predictions made on the CPU in float32
(`score_classical.py weights:nuaa-eflnet-n --keep-predictions`); the same weights predicted again
must land within a few hundredths of it (on the H100 with bf16 autocast they gave 0.870).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import NUAA_ROOT

from irstd_bench.cli import cli
from reference_model.engine.checkpoint import load_checkpoint, resolve_weights

PUBLISHED_F1 = 0.878


def test_bundled_weights_resolve_and_are_released():
    path = resolve_weights("nuaa-eflnet-n")
    assert path.name == "nuaa-eflnet-n.pt" and path.stat().st_size < 20 * 2**20
    checkpoint = load_checkpoint(path)
    assert checkpoint["model_name"] == "eflnet-n"
    assert checkpoint["optimizer"] is None and checkpoint["released"] is True
    assert checkpoint["train_args"]["split"] == "split_EFLNet"


def bundled_f1(nuaa_root, work) -> float:
    """F1 of the bundled weights predicted on the CPU (float32) and scored as the published figure was."""
    runner = CliRunner()
    preds = work / "preds.json"
    result = runner.invoke(cli, ["predict", "--weights", "nuaa-eflnet-n", "--dataset", "nuaa", "--root",
                                 str(nuaa_root), "--split", "split_EFLNet/test", "--out", str(preds),
                                 "--format", "coco", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    out = work / "res.json"
    result = runner.invoke(cli, ["eval", str(preds), "--root", str(nuaa_root), "--split", "split_EFLNet/test",
                                 "--match", "centroid:3", "--conf", "0.5", "--resize-masks", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["metrics"]["f1"]


def outcome_bundled_f1(seed: int, work) -> dict[str, float]:
    """:func:`bundled_f1` (nothing is drawn: ``seed`` is unused; only the thread count can move it)."""
    return {"f1": bundled_f1(NUAA_ROOT, work)}


@pytest.mark.train
def test_bundled_weights_reproduce_the_published_f1(nuaa_root, tmp_path):
    # Measured on the CPU with 1 and 2 threads (2026-12-07, AVX-512): 0.8783 both, at conf 0.5:
    # bench/test_margins.py tests/test_bundled_weights.py::outcome_bundled_f1 --seeds 1
    # The 0.03 margin covers other CPUs' kernels and the GPU's 0.870.
    f1 = bundled_f1(nuaa_root, tmp_path)
    assert abs(f1 - PUBLISHED_F1) < 0.03, f1
