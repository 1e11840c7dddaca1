"""Strict values and one-line errors (issue 11, item 6; prediction-file parsing is tested elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench._csv import csv_cell, read_csv_cell
from irstd_bench.cli import cli

H = W = 32
STEMS = ("000001", "000002")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "Traceback" not in result.output, result.output
    for needle in needles:
        assert str(needle) in last, (needle, last)


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "nudt"
    for folder in ("images", "masks", "50_50"):
        (root / folder).mkdir(parents=True)
    for stem in STEMS:
        Image.fromarray(np.full((H, W), 30, np.uint8)).save(root / "images" / f"{stem}.png")
        mask = np.zeros((H, W), np.uint8)
        mask[5:7, 5:7] = 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\n".join(STEMS) + "\n")
    (root / "50_50" / "train.txt").write_text("000001\n")
    return root


def test_momentum_out_of_range_is_refused(data, tmp_path):
    from test_engine_models import TINY_DETECTOR

    from irstd_bench.errors import InputError
    from reference_model.engine.trainer import TrainConfig

    result = run("train", "--root", data, "--model", TINY_DETECTOR, "--momentum", "5", "--device", "cpu",
                 "--out", tmp_path / "r")
    one_line_error(result, "--momentum 5.0")
    assert not (tmp_path / "r").exists()
    for value in (-0.1, float("nan"), 1.0):
        with pytest.raises(InputError, match="--momentum"):
            TrainConfig(root=str(data), model=TINY_DETECTOR, momentum=value).check()


@pytest.mark.parametrize(("param", "needle"), [("size=100001", "size=100001"), ("size=0", "size=0"),
                                               ("scales=3,0", "scales=")])
def test_baseline_window_out_of_range_is_refused_before_any_work(data, tmp_path, param, needle):
    method = "mpcm" if param.startswith("scales") else "maxmedian"
    result = run("baseline", method, "--root", data, "--split", "test", "--out", tmp_path / "b", "--param", param)
    one_line_error(result, needle)
    assert not (tmp_path / "b").exists()


def _results(tmp_path: Path, **metrics) -> Path:
    from test_report import write_run

    return write_run(tmp_path / "in", "run", method="m", metrics=metrics)


@pytest.mark.parametrize(
    ("metrics", "needle"),
    [({"recall": 1.5}, "metrics.recall"), ({"tp": -1}, "metrics.tp"), ({"fp": 2.5}, "metrics.fp"),
     ({"fa_e6": -3.0}, "metrics.fa_e6"), ({"ap50": 1.0000001}, "metrics.ap50")],
)
def test_report_refuses_out_of_range_metrics(tmp_path, metrics, needle):
    path = _results(tmp_path, **metrics)
    one_line_error(run("report", path, "--out", tmp_path / "rep", "--qualitative", 0), path, needle)
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_report_refuses_non_finite_metrics(tmp_path, literal):
    path = _results(tmp_path)
    data = json.loads(path.read_text())
    data["metrics"]["precision"] = "__X__"
    path.write_text(json.dumps(data).replace('"__X__"', literal))
    one_line_error(run("report", path, "--out", tmp_path / "rep", "--qualitative", 0), "metrics.precision")


def test_report_unwritable_out_is_one_line(tmp_path):
    path = _results(tmp_path)
    one_line_error(run("report", path, "--out", "/proc/irstd-nope/rep", "--qualitative", 0), "/proc/irstd-nope")


def test_split_file_that_is_a_folder_is_one_line(data, tmp_path):
    (data / "50_50" / "test.txt").unlink()
    (data / "50_50" / "test.txt").mkdir()
    preds = tmp_path / "p.csv"
    preds.write_text("image,x0,y0,x1,y1,score\n")
    one_line_error(run("eval", preds, "--root", data, "--split", "50_50/test", "--out", tmp_path / "r.json"),
                   "test.txt: is a folder")


def test_eval_skip_missing_exists_and_leaves_images_out(data, tmp_path):
    (data / "masks" / "000002.png").unlink()
    preds = tmp_path / "p.csv"
    preds.write_text("image,x0,y0,x1,y1,score\n000001,5,5,7,7,0.9\n")
    out = tmp_path / "r.json"
    one_line_error(run("eval", preds, "--root", data, "--workers", 1, "--out", out), "--skip-missing")
    result = run("eval", preds, "--root", data, "--workers", 1, "--out", out, "--skip-missing")
    assert result.exit_code == 0, result.output
    assert "left out 1 split image(s) without a mask" in result.stderr
    assert json.loads(out.read_text())["counts"]["images"] == 1


def test_csv_cells_that_start_a_formula_are_escaped_and_numbers_kept():
    assert [csv_cell(v) for v in ("=A1", "+A1", "-A1", "@A1", "\tx", "Misc_1", "-1.5", "+2", "1e-3", -3, None)] == [
        "'=A1", "'+A1", "'-A1", "'@A1", "'\tx", "Misc_1", "-1.5", "+2", "1e-3", "-3", ""]
    assert read_csv_cell(csv_cell("=A1")) == "=A1" and read_csv_cell("'quoted") == "'quoted"


def test_report_csv_tables_escape_method_names(tmp_path):
    from test_report import write_run

    path = write_run(tmp_path / "in", "run", method="=HYPERLINK(\"http://x\")")
    assert run("report", path, "--out", tmp_path / "rep", "--qualitative", 0).exit_code == 0
    rows = (tmp_path / "rep" / "tables" / "main.csv").read_text().splitlines()
    assert rows[1].startswith("\"'=HYPERLINK(") or rows[1].startswith("'=HYPERLINK(")
