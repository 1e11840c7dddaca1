"""The bundled EFLNet-n weights work out of the box: `irstd-bench predict --weights nuaa-eflnet-n`.

The published figure (reports/nuaa-sirst, seed 1, split_EFLNet/test, centroid 3 px, threshold 0.5
chosen on val) is F1 0.870 from predictions made on an H100 with bf16 autocast; on the CPU in float32
the same weights must land within a few hundredths of it.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from irstd_bench.cli import cli
from reference_model.engine.checkpoint import load_checkpoint, resolve_weights

PUBLISHED_F1 = 0.870


def test_bundled_weights_resolve_and_are_released():
    path = resolve_weights("nuaa-eflnet-n")
    assert path.name == "nuaa-eflnet-n.pt" and path.stat().st_size < 20 * 2**20
    checkpoint = load_checkpoint(path)
    assert checkpoint["model_name"] == "eflnet-n"
    assert checkpoint["optimizer"] is None and checkpoint["released"] is True
    assert checkpoint["train_args"]["split"] == "split_EFLNet"


def test_bundled_weights_reproduce_the_published_f1(nuaa_root, tmp_path):
    runner = CliRunner()
    preds = tmp_path / "preds.json"
    result = runner.invoke(cli, ["predict", "--weights", "nuaa-eflnet-n", "--dataset", "nuaa", "--root",
                                 str(nuaa_root), "--split", "split_EFLNet/test", "--out", str(preds),
                                 "--format", "coco", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "res.json"
    result = runner.invoke(cli, ["eval", str(preds), "--root", str(nuaa_root), "--split", "split_EFLNet/test",
                                 "--match", "centroid:3", "--conf", "0.5", "--resize-masks", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())["metrics"]
    assert abs(metrics["f1"] - PUBLISHED_F1) < 0.03, metrics
