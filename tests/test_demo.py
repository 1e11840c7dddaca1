"""The README's main command, end to end on a small synthetic sample (what `make demo` runs, smaller)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from irstd_bench.cli import cli


def test_demo_runs_the_whole_pipeline(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli,
        ["demo", "--out", str(out), "--n-images", "20", "--size", "64", "--epochs", "2", "--imgsz", "64",
         "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    # Not a terminal (a log, CI): no progress bar from any step, training's included.
    assert "\r" not in result.stdout and "\r" not in result.stderr
    assert "epoch 2/2 " in result.stderr
    # Every stage left its product: boxes, predictions of three methods, their results, the report.
    assert (out / "boxes" / "summary.json").is_file()
    methods = ["tophat", "mpcm", "eflnet-n"]
    for method in methods:
        data = json.loads((out / "results" / f"{method}.json").read_text())
        assert data["method"] == method
        assert data["split"] == "split_synth/test"
        assert 0.0 <= data["metrics"]["recall"] <= 1.0
    assert (out / "report" / "index.html").stat().st_size > 10_000
    # EFLNet trains with augmentation: flips, photometric jitter and target-keeping crops.
    args = json.loads((out / "runs" / "eflnet-n" / "args.json").read_text())
    assert args["augment"] is True and args["crop"] == 0.5 and args["fliplr"] > 0 and args["scale"] == 0
    table = (out / "report" / "tables" / "main.md").read_text()
    assert all(method in table for method in methods)
    # It ends with the comparison table in the terminal: the matcher of each column above it; the
    # classical methods' AP50 (score maps at a centroid-chosen threshold) a dash with its footnote.
    lines = result.stdout.rstrip().splitlines()
    table = lines[next(i for i, ln in enumerate(lines) if ln.startswith("Matching: ")) :]
    assert "centroid:3 (centroid distance < 3 px)" in table[0] and "AP50: box IoU >= 0.5" in table[0]
    rows = {ln.split("|")[0].strip(): ln.split("|")[1].split() for ln in table if "|" in ln}
    assert rows["tophat"][-1] == rows["mpcm"][-1] == "-*" and rows["eflnet-n"][-1].startswith("0.")
    assert table[-1].startswith("* AP50 undefined for score maps scored under centroid:3")


def test_expected_range_line_states_every_method_and_the_runs_behind_it():
    from irstd_bench.demo import DEMO_BASELINES, EXPECTED_F1, EXPECTED_RUNS, expected_range_line

    line = expected_range_line()
    assert set(EXPECTED_F1) == {*DEMO_BASELINES, "eflnet-n"} and EXPECTED_RUNS in line
    for name, (lo, hi) in EXPECTED_F1.items():
        assert 0 < lo <= hi <= 1 and name in line
