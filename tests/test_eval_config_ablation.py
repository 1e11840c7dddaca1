"""`eval --config/--config-from` records a run's settings, and `report` builds the ablation table from them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from irstd_bench.cli import cli
from irstd_bench.datasets import load_ground_truth, open_dataset


def _csv_of_ground_truth(nuaa_root, path, drop_every: int = 0) -> None:
    ds = open_dataset(nuaa_root)
    rows = ["image,x0,y0,x1,y1,score"]
    n = 0
    for sample in ds.samples("split_EFLNet/test"):
        for box in load_ground_truth(sample).targets.boxes.tolist():
            n += 1
            if drop_every and n % drop_every == 0:
                continue
            rows.append(f"{sample.stem},{box[0]},{box[1]},{box[2]},{box[3]},0.9")
    path.write_text("\n".join(rows) + "\n")


def test_config_is_recorded_and_groups_an_ablation(nuaa_root, tmp_path):
    runner = CliRunner()
    results = []
    for blocks, drop in ((4, 0), (0, 3)):
        preds = tmp_path / f"b{blocks}.csv"
        _csv_of_ground_truth(nuaa_root, preds, drop)
        out = tmp_path / f"b{blocks}.json"
        args = ["eval", str(preds), "--root", str(nuaa_root), "--split", "split_EFLNet/test", "--name",
                f"EFLNet-n b{blocks}", "--out", str(out), "--config-from", "nuaa-eflnet-n", "--config",
                f"dyhead_blocks={blocks}", "--config", "note=crafted"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        config = json.loads(out.read_text())["config"]
        assert config["model"] == "eflnet-n" and config["nwd_constant"] == 11.0
        assert config["dyhead_blocks"] == blocks and config["note"] == "crafted"
        results.append(str(out))
    report = tmp_path / "report"
    result = runner.invoke(cli, ["report", *results, "--out", str(report), "--group-by", "dyhead_blocks",
                                 "--qualitative", "0"])
    assert result.exit_code == 0, result.output
    tables = sorted(p.name for p in (report / "tables").glob("ablation_*dyhead_blocks.md"))
    assert tables, sorted(p.name for p in (report / "tables").iterdir())
    text = (report / "tables" / tables[0]).read_text()
    assert "1.000" in text  # the perfect run's F1, next to the degraded one


def test_bad_config_pair_exits_2(nuaa_root, tmp_path):
    preds = tmp_path / "p.csv"
    _csv_of_ground_truth(nuaa_root, preds)
    result = CliRunner().invoke(cli, ["eval", str(preds), "--root", str(nuaa_root), "--split", "split_EFLNet/test",
                                      "--out", str(tmp_path / "r.json"), "--config", "novalue"])
    assert result.exit_code == 2
    assert "--config 'novalue': expected KEY=VALUE" in result.output
    assert not (tmp_path / "r.json").exists()
