"""Tests of ``irstd-bench report``: tables, figures, the qualitative grid, index.html, refusals.

Fixtures are written by hand following docs/CONTRACTS.md: results JSON files, per-target CSVs
and small dataset trees (NUDT-SIRST and IRSTD-1k layouts) in temporary folders.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench.cli import cli
from irstd_bench.errors import InputError
from irstd_bench.evaluate import PER_TARGET_COLUMNS
from irstd_bench.report import (
    FIGURE_SIZE_PX,
    build_report,
    format_terminal_table,
    grid_size_px,
    load_results,
    load_runs,
)
from irstd_bench.report import _qualitative as qual
from irstd_bench.report._ablation import ablation_tables
from irstd_bench.report._tables import MISSING, main_table

# -- fixture builders -----------------------------------------------------------------------------

NUDT_SPLIT = "50_50/test"
IRSTD_SPLIT = "test"


def _square_mask(size_hw, squares):
    """A {0, 255} mask with ``(x, y, side)`` squares (top-left corner, side in px)."""
    mask = np.zeros(size_hw, np.uint8)
    for x, y, side in squares:
        mask[y : y + side, x : x + side] = 255
    return mask


def make_nudt(root: Path, images: dict[str, tuple[tuple[int, int], list[tuple[int, int, int]]]]) -> Path:
    """A NUDT-SIRST tree: ``images/``, ``masks/`` and ``50_50/test.txt``; dark images, bright targets."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "50_50").mkdir()
    for stem, (hw, squares) in images.items():
        mask = _square_mask(hw, squares)
        Image.fromarray((40 + mask // 2).astype(np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\n".join(images) + "\n")
    return root


def make_irstd1k(root: Path, images: dict[str, tuple[tuple[int, int], list[tuple[int, int, int]]]]) -> Path:
    """An IRSTD-1k tree: ``IRSTD1k_Img/``, ``IRSTD1k_Label/`` and ``test.txt``."""
    (root / "IRSTD1k_Img").mkdir(parents=True)
    (root / "IRSTD1k_Label").mkdir()
    for stem, (hw, squares) in images.items():
        mask = _square_mask(hw, squares)
        Image.fromarray((40 + mask // 2).astype(np.uint8)).save(root / "IRSTD1k_Img" / f"{stem}.png")
        Image.fromarray(mask).save(root / "IRSTD1k_Label" / f"{stem}.png")
    (root / "test.txt").write_text("\n".join(images) + "\n")
    (root / "trainval.txt").write_text("")
    return root


def target_row(image, kind, cx, cy, half=2, score=0.9, matched=""):
    """A per-target CSV row for a square box of side ``2 * half`` centred at ``(cx, cy)``."""
    return {
        "image": image,
        "kind": kind,
        "x0": cx - half,
        "y0": cy - half,
        "x1": cx + half,
        "y1": cy + half,
        "cx": cx,
        "cy": cy,
        "area_px": (2 * half) ** 2,
        "score": "" if kind == "fn" else score,
        "matched_with": matched,
    }


def write_run(
    folder: Path,
    name: str,
    *,
    method: str,
    dataset: str = "nudt",
    root: Path | str = "/nowhere",
    split: str = NUDT_SPLIT,
    matcher: str = "iou:0.5",
    metrics: dict | None = None,
    rows: list[dict] | None = None,
    config: dict | None = None,
    curves: dict | None = None,
    size_bins: list | None = None,
    **extra,
) -> Path:
    """Write ``<name>.json`` (and ``<name>.per_target.csv`` when ``rows`` is given) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    base = {
        "tp": 9,
        "fp": 1,
        "fn": 1,
        "precision": 0.9,
        "recall": 0.9,
        "f1": 0.9,
        "best_f1": None,
        "best_f1_threshold": None,
        "ap50": None,
        "iou": None,
        "niou": None,
        "pd": None,
        "fa_e6": None,
    }
    base.update(metrics or {})
    data = {
        "schema": "irstd-bench/results",
        "schema_version": 1,
        "method": method,
        "dataset": dataset,
        "dataset_title": {"nudt": "NUDT-SIRST", "irstd1k": "IRSTD-1k", "nuaa": "NUAA-SIRST"}.get(
            dataset, dataset
        ),
        "root": str(root),
        "split": split,
        "matcher": matcher,
        "conf": 0.5,
        "pred_format": "csv",
        "kind": "boxes",
        "counts": {
            "images": 2,
            "gt_targets": 10,
            "pred_targets": 10,
            "images_without_prediction": 0,
            "predictions_not_in_split": 0,
        },
        "metrics": base,
        "size_bins": size_bins if size_bins is not None else [],
        "curves": curves if curves is not None else {},
        "per_image_csv": None,
        "per_target_csv": None,
        "settings": {"threshold": 127, "connectivity": 8},
        "created": "2024-01-01T00:00:00+00:00",
        "irstd_bench_version": "0.1.0",
    }
    if rows is not None:
        csv_name = f"{name}.per_target.csv"
        with (folder / csv_name).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(PER_TARGET_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        data["per_target_csv"] = csv_name
    if config is not None:
        data["config"] = config
    data.update(extra)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def size_bins(recalls):
    names = [("<=9", 0, 9), ("10-36", 10, 36), ("37-81", 37, 81), (">81", 82, None)]
    return [
        {
            "name": n,
            "min_area_px": lo,
            "max_area_px": hi,
            "gt": 4,
            "tp": None if r is None else round(4 * r),
            "recall": r,
            "pred": 4,
            "pred_tp": 3,
            "precision": 0.75,
        }
        for (n, lo, hi), r in zip(names, recalls, strict=True)
    ]


def pr_curve(scale):
    thresholds = [0.9, 0.7, 0.5, 0.3, 0.1]
    recall = [0.2 * scale, 0.4 * scale, 0.6 * scale, 0.8 * scale, 0.9 * scale]
    precision = [1.0, 0.95, 0.9, 0.8, 0.6]
    return {"thresholds": thresholds, "precision": precision, "recall": recall}


# Full-precision numbers so the CSV round trip is a real check.
METRICS = {
    ("EFLNet-n", "nudt"): {
        "precision": 0.9411764705882353,
        "recall": 0.8888888888888888,
        "f1": 0.9142857142857143,
        "ap50": 0.9012345678901234,
        "best_f1": 0.92,
        "best_f1_threshold": 0.41,
    },
    ("ACM", "nudt"): {
        "precision": 0.8,
        "recall": 0.9230769230769231,
        "f1": 0.8571428571428571,
        "iou": 0.7123456,
        "niou": 0.7012,
        "pd": 0.9230769230769231,
        "fa_e6": 12.345678,
    },
    ("EFLNet-n", "irstd1k"): {
        "precision": 0.75,
        "recall": 0.6666666666666666,
        "f1": 0.7058823529411765,
        "ap50": 0.6543210987654321,
        "best_f1": 0.71,
        "best_f1_threshold": 0.33,
    },
    ("ACM", "irstd1k"): {
        "precision": 0.7142857142857143,
        "recall": 0.8333333333333334,
        "f1": 0.7692307692307693,
        "iou": 0.6,
        "niou": 0.55,
        "pd": 0.8333333333333334,
        "fa_e6": 3.21,
    },
}

# NUDT: one 64x64 image with two targets (the crafted colour case), one with a single target.
NUDT_IMAGES = {"0001": ((64, 64), [(18, 18, 5), (43, 38, 5)]), "0002": ((64, 64), [(30, 30, 3)])}
# IRSTD-1k: one 400x400 image (cropped in the grid) with a target at (301.5, 321.5).
IRSTD_IMAGES = {"XDU1": ((400, 400), [(300, 320, 3)])}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Two methods on two datasets, a full report built once (qualitative grid included)."""
    base = tmp_path_factory.mktemp("report")
    nudt = make_nudt(base / "data" / "NUDT", NUDT_IMAGES)
    irstd = make_irstd1k(base / "data" / "IRSTD", IRSTD_IMAGES)
    runs = base / "runs"
    paths = [
        write_run(
            runs / "efl",
            "nudt",
            method="EFLNet-n",
            dataset="nudt",
            root=nudt,
            metrics=METRICS[("EFLNet-n", "nudt")],
            curves={"pr": pr_curve(1.0)},
            size_bins=size_bins([0.5, 1.0, 1.0, None]),
            rows=[
                target_row("0001", "tp", 20.5, 20.5),
                target_row("0001", "fp", 50.5, 12.5),
                target_row("0001", "fn", 45.5, 40.5, score=""),
                target_row("0002.png", "tp", 31.5, 31.5),
            ],
        ),
        write_run(
            runs / "acm",
            "nudt",
            method="ACM",
            dataset="nudt",
            root=nudt,
            metrics=METRICS[("ACM", "nudt")],
            size_bins=size_bins([0.25, 0.75, 1.0, None]),
            curves={
                "pr": pr_curve(0.9),
                "pd_fa": {"thresholds": [0.9, 0.5, 0.1], "pd": [0.5, 0.8, 0.95], "fa_e6": [0.0, 4.0, 40.0]},
            },
            rows=[
                target_row("0001", "tp", 20.5, 20.5),
                target_row("0001", "tp", 45.5, 40.5),
                target_row("0002", "tp", 31.5, 31.5),
            ],
        ),
        write_run(
            runs / "efl",
            "irstd",
            method="EFLNet-n",
            dataset="irstd1k",
            root=irstd,
            split=IRSTD_SPLIT,
            metrics=METRICS[("EFLNet-n", "irstd1k")],
            curves={"pr": pr_curve(0.8)},
            rows=[target_row("XDU1", "tp", 301.5, 321.5)],
        ),
        write_run(
            runs / "acm",
            "irstd",
            method="ACM",
            dataset="irstd1k",
            root=irstd,
            split=IRSTD_SPLIT,
            metrics=METRICS[("ACM", "irstd1k")],
            rows=[target_row("XDU1", "fn", 301.5, 321.5, score=""), target_row("XDU1", "fp", 100.5, 80.5)],
        ),
    ]
    out = base / "reports" / "main"
    report = build_report(paths, out, title="Test report", qualitative=2)
    return {"base": base, "paths": paths, "out": out, "report": report, "nudt": nudt, "irstd": irstd}


def _cli(args):
    return CliRunner().invoke(cli, ["report", *[str(a) for a in args]])


# -- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"schema": "something/else"}, "schema"),
        ({"schema_version": 2}, "schema_version 2"),
        ({"method": ""}, "'method'"),
        ({"metrics": {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0}}, "metrics.f1"),
        (
            {"metrics": {"tp": 1, "fp": 0, "fn": 0, "precision": "high", "recall": 1.0, "f1": 1.0}},
            "precision",
        ),
        (
            {"curves": {"pr": {"thresholds": [0.5], "precision": [1.0, 0.5], "recall": [0.1]}}},
            "differ in length",
        ),
    ],
)
def test_invalid_results_raise_input_error_naming_the_file(tmp_path, change, expected):
    path = write_run(tmp_path, "bad", method="M")
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=re.escape(expected)) as info:
        load_results(path)
    assert str(path) in str(info.value)


def test_pixel_threshold_is_read_when_recorded_and_optional_in_older_files(tmp_path):
    older = write_run(tmp_path / "runs", "older", method="Older")  # settings without pixel_threshold
    newer = write_run(tmp_path / "runs", "newer", method="Newer", settings={"pixel_threshold": 0.5})
    boxes = write_run(tmp_path / "runs", "boxes", method="Boxes", settings={"pixel_threshold": None})
    run = load_results(older)
    assert not run.records_pixel_threshold and run.pixel_threshold is None
    run = load_results(newer)
    assert run.records_pixel_threshold and run.pixel_threshold == 0.5
    run = load_results(boxes)
    assert run.records_pixel_threshold and run.pixel_threshold is None
    result = _cli([older, newer, boxes, "--out", tmp_path / "rep", "--qualitative", 0])
    assert result.exit_code == 0, result.output
    assert "Older" in (tmp_path / "rep" / "tables" / "main.md").read_text()
    for bad in ("high", 1.5, True):
        path = write_run(tmp_path / "bad", "bad", method="M", settings={"pixel_threshold": bad})
        with pytest.raises(InputError, match="settings.pixel_threshold") as info:
            load_results(path)
        assert str(path) in str(info.value)


def test_missing_key_and_broken_json_are_refused(tmp_path):
    path = write_run(tmp_path, "a", method="M")
    data = json.loads(path.read_text())
    del data["split"]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="missing key.*split"):
        load_results(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_results(path)


def test_per_target_csv_is_resolved_next_to_the_results_file(tmp_path, monkeypatch):
    path = write_run(tmp_path / "deep" / "er", "r", method="M", rows=[target_row("a", "tp", 3.5, 3.5)])
    monkeypatch.chdir(tmp_path)
    run = load_results(path)
    assert run.per_target_csv == (tmp_path / "deep" / "er" / "r.per_target.csv").resolve()
    assert qual.read_per_target_csv(run.per_target_csv)["a"][0].kind == "tp"


# -- tables -----------------------------------------------------------------------------------


def test_main_csv_round_trip_carries_exact_numbers(suite):
    rows = list(csv.DictReader(io.StringIO((suite["out"] / "tables" / "main.csv").read_text())))
    assert [r["Method"] for r in rows] == ["EFLNet-n", "ACM"]
    assert list(rows[0])[1:] == [
        f"{d}/{m}" for d in ("nudt", "irstd1k") for m in ("precision", "recall", "f1", "best_f1")
    ]
    for row in rows:
        for dataset in ("nudt", "irstd1k"):
            for metric in ("precision", "recall", "f1"):
                assert float(row[f"{dataset}/{metric}"]) == METRICS[(row["Method"], dataset)][metric]


def _markdown_cells(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    body = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    return header, body


def test_main_markdown_round_trip_and_best_in_bold(suite):
    header, body = _markdown_cells((suite["out"] / "tables" / "main.md").read_text())
    labels = ("P", "R", "F1 (val thr.)", "F1 (best on test)")  # both F1 protocols, named
    assert header == ["Method"] + [f"{d} {m}" for d in ("NUDT-SIRST", "IRSTD-1k") for m in labels]
    methods = [row[0] for row in body]
    keys = [(d, m) for d in ("nudt", "irstd1k") for m in ("precision", "recall", "f1", "best_f1")]
    for row in body:
        for cell, (dataset, metric) in zip(row[1:], keys, strict=True):
            value = METRICS[(row[0], dataset)].get(metric)
            if value is None:
                assert cell == MISSING
                continue
            assert cell.strip("*") == f"{value:.3f}"
            others = [METRICS[(m, dataset)].get(metric) for m in methods if m != row[0]]
            others = [o for o in others if o is not None]
            best = bool(others) and round(value, 3) >= max(round(o, 3) for o in others)
            assert cell.startswith("**") == best


def test_detailed_table_marks_best_fa_as_lowest_and_fills_missing(suite):
    header, body = _markdown_cells((suite["out"] / "tables" / "detailed.md").read_text())
    rows = {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in body}
    # Box run: no pixel metrics; mask run: no AP50.
    assert rows["EFLNet-n"]["NUDT-SIRST IoU"] == MISSING
    assert rows["ACM"]["NUDT-SIRST AP50"] == MISSING
    assert rows["ACM"]["NUDT-SIRST Fa x1e-6"] == "12.35"  # two decimals for Fa
    assert rows["ACM"]["IRSTD-1k Fa x1e-6"] == "3.21"  # only one value: nothing to beat
    assert rows["EFLNet-n"]["NUDT-SIRST thr. of best F1"] == "0.410"  # thresholds are never "best"
    tex = (suite["out"] / "tables" / "detailed.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\multicolumn{8}{c}{NUDT-SIRST}" in tex
    # Only the F1 (val thr.) columns have two values here: the one bold cell of each dataset.
    assert tex.count("\\textbf") == 2 and "\\textbf{0.914}" in tex


def test_best_marking_ties_lower_is_better_and_latex_html(tmp_path):
    a = write_run(
        tmp_path,
        "a",
        method="A",
        metrics={"precision": 0.9004, "recall": 0.5, "f1": 0.6, "fa_e6": 5.0, "pd": 0.9},
    )
    b = write_run(
        tmp_path,
        "b",
        method="B_2",
        metrics={"precision": 0.8996, "recall": 0.7, "f1": 0.5, "fa_e6": 2.0, "pd": 0.8},
    )
    c = write_run(
        tmp_path,
        "c",
        method="C",
        metrics={"precision": 0.1, "recall": 0.6, "f1": 0.4, "fa_e6": None, "pd": None},
    )
    runs = load_runs([a, b, c])
    table = main_table(runs)
    # P: 0.9004 and 0.8996 both print 0.900, so both are best.
    assert [table.best_rows(j) for j in range(3)] == [{0, 1}, {1}, {0}]
    tex = table.to_latex()
    assert "B\\_2 & \\textbf{0.900} & \\textbf{0.700} & 0.500 \\\\" in tex
    html = table.to_html()
    assert html.count("<b>") == 4 and '<td class="best"><b>0.600</b></td>' in html
    from irstd_bench.report._tables import detailed_table

    detailed = detailed_table(runs)
    fa = [c.metric for c in detailed.columns].index("fa_e6")
    assert detailed.best_rows(fa) == {1}
    assert detailed.formatted(2, fa) == MISSING
    assert "--" in detailed.to_latex().splitlines()[-4]  # C's row: missing in LaTeX


def test_terminal_table_is_plain_text_with_all_numbers(suite):
    text = format_terminal_table(suite["paths"])
    assert text.isascii()
    lines = text.splitlines()
    # The line above the table says which matcher each column uses.
    assert lines[0] == ("Matching: P, R, F1 (val thr.), F1 (best on test): iou:0.5 (box IoU >= 0.5); "
                        "AP50: box IoU >= 0.5 (COCO AP), whatever the matcher.")  # fmt: skip
    assert "NUDT-SIRST" in lines[1] and "IRSTD-1k" in lines[1]
    efl = next(ln for ln in lines if ln.startswith("EFLNet-n"))
    assert "0.941" in efl and "0.889" in efl and "0.914" in efl and "0.901" in efl
    acm = next(ln for ln in lines if ln.startswith("ACM"))
    assert acm.split("|")[1].split() == ["0.800", "0.923", "0.857", "-", "-"]


def test_undefined_ap50_is_a_dash_with_its_footnote_in_every_table(tmp_path):
    """AP50 of a score map under a centroid matcher: an older file's 0.000 and a newer file's null
    both print as a dash with a footnote saying why; a detector's AP50 on the same dataset stays."""
    from irstd_bench.evaluate import ap50_undefined

    reason = ap50_undefined("scoremaps", "centroid:3")
    folder = tmp_path / "runs"
    common = dict(matcher="centroid:3", kind="scoremaps")
    paths = [
        write_run(folder, "tophat_old", method="Top-Hat", metrics={"f1": 0.392, "ap50": 0.0}, **common),
        write_run(folder, "mpcm_s0", method="MPCM (seed 0)", metrics={"f1": 0.29, "ap50": None},
                  settings={"ap": {"ap50_undefined": reason}}, **common),
        write_run(folder, "mpcm_s1", method="MPCM (seed 1)", metrics={"f1": 0.31, "ap50": None}, **common),
        write_run(folder, "efl", method="EFLNet-n", matcher="centroid:3", metrics={"f1": 0.5, "ap50": 0.25}),
    ]  # fmt: skip
    runs = load_runs(paths)
    assert runs[0].metrics["ap50"] is None and runs[0].undefined == {"ap50": reason}
    assert runs[3].metrics["ap50"] == 0.25 and runs[3].undefined == {}
    result = CliRunner().invoke(cli, ["report", *map(str, paths), "--out", str(tmp_path / "rep"), "--qualitative", "0"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("Matching: P, R, F1 (val thr.): centroid:3 (centroid distance < 3 px); "
                        "AP50: box IoU >= 0.5 (COCO AP), whatever the matcher.")  # fmt: skip
    row = {ln.split("|")[0].strip(): ln.split("|")[1].split() for ln in lines if "|" in ln}
    assert row["Top-Hat"][-1] == "-*" and row["MPCM (2 seeds)"][-1] == "-*" and row["EFLNet-n"][-1] == "0.250"
    assert f"* {reason}" in lines and result.output.isascii()
    tables = tmp_path / "rep" / "tables"
    md = (tables / "detailed.md").read_text()
    assert "| Top-Hat |" in md and "–† |" in md and f"† {reason}" in md and "0.000" not in md
    assert md.count("–†") == 4  # Top-Hat, MPCM's mean and both seeds
    assert "Matching: " in md.split("| Method")[0]  # above the table
    html = (tables / "detailed.html").read_text()
    assert 'class="note">\u2020 AP50 undefined' in html and "centroid distance &lt; 3 px" in html
    tex = (tables / "detailed.tex").read_text()
    assert "centroid distance \\textless{} 3 px" in tex and "IoU \\textgreater{}= 0.5" in tex
    assert "--\\textsuperscript{\\dag}" in tex and "\\footnotesize\\textsuperscript{\\dag} AP50 undefined" in tex
    csv_rows = list(csv.DictReader(io.StringIO((tables / "detailed.csv").read_text())))
    assert [r["nudt/ap50"] for r in csv_rows if r["Method"] in ("Top-Hat", "EFLNet-n")] == ["", "0.25"]


# -- ablations --------------------------------------------------------------------------------


def _ablation_inputs(folder):
    specs = [
        ("EFLNet-n a", {"atfl_lambda": 1.0, "nwd_constant": 11}, 0.81),
        ("EFLNet-n b", {"atfl_lambda": 3.5, "nwd_constant": 11}, 0.86),
        ("EFLNet-n c", {"atfl_lambda": 3.5, "nwd_constant": 5}, 0.83),
        ("ACM", {"blocks": 3}, 0.7),
    ]
    return [
        write_run(folder, f"r{i}", method=m, config=cfg, metrics={"f1": f1, "ap50": f1 - 0.01})
        for i, (m, cfg, f1) in enumerate(specs)
    ]


def test_ablation_tables_group_runs_differing_in_one_setting(tmp_path):
    runs = load_runs(_ablation_inputs(tmp_path))
    tables = {t.name: t for t in ablation_tables(runs)}
    assert set(tables) == {"ablation_eflnet_atfl_lambda", "ablation_eflnet_nwd_constant"}
    atfl = tables["ablation_eflnet_atfl_lambda"]
    assert atfl.row_header == "atfl_lambda" and atfl.rows == ["1", "3.5"]
    assert [c.label for c in atfl.columns] == ["P", "R", "F1 (val thr.)", "AP50"]
    assert [row[2] for row in atfl.values] == [0.81, 0.86]
    assert "nwd_constant=11" in atfl.caption
    nwd = tables["ablation_eflnet_nwd_constant"]
    assert nwd.rows == ["5", "11"] and [row[2] for row in nwd.values] == [0.83, 0.86]
    only = ablation_tables(runs, group_by="nwd_constant")
    assert [t.name for t in only] == ["ablation_eflnet_nwd_constant"]
    with pytest.raises(InputError, match="--group-by dyhead_blocks"):
        ablation_tables(runs, group_by="dyhead_blocks")


def test_cli_group_by_writes_ablation_files_and_unknown_key_exits_2(tmp_path):
    paths = _ablation_inputs(tmp_path / "runs")
    out = tmp_path / "rep"
    result = _cli([*paths, "--out", out, "--qualitative", "0", "--group-by", "atfl_lambda"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader((out / "tables" / "ablation_eflnet_atfl_lambda.csv").open()))
    assert rows[0] == ["atfl_lambda", "nudt/precision", "nudt/recall", "nudt/f1", "nudt/ap50"]
    assert [(r[0], float(r[3])) for r in rows[1:]] == [("1", 0.81), ("3.5", 0.86)]
    assert not (out / "tables" / "ablation_eflnet_nwd_constant.csv").exists()
    bad = _cli([*paths, "--out", tmp_path / "rep2", "--qualitative", "0", "--group-by", "nope"])
    assert bad.exit_code == 2 and "--group-by nope" in bad.output
    assert not (tmp_path / "rep2").exists()


# -- figures ----------------------------------------------------------------------------------


def test_every_figure_is_written_with_the_expected_size(suite):
    report = suite["report"]
    names = sorted(f.name for f in report.figures)
    assert names == sorted(["bars_f1", "pr_nudt", "pr_irstd1k", "pdfa_nudt", "size_recall_nudt"])
    for figure in report.figures:
        with Image.open(figure.png) as image:
            assert image.size == FIGURE_SIZE_PX
        assert figure.pdf.read_bytes()[:5] == b"%PDF-" and figure.pdf.stat().st_size > 1000
        # Not a blank canvas: plenty of distinct colours.
        assert len(np.unique(np.asarray(Image.open(figure.png).convert("RGB")).reshape(-1, 3), axis=0)) > 20
    grids = report.qualitative
    assert [g.figure.name for g in grids] == ["qualitative_nudt", "qualitative_irstd1k"]
    for grid in grids:
        with Image.open(grid.figure.png) as image:
            assert image.size == grid_size_px(len(grid.stems), 3) == grid.size_px
        assert grid.figure.pdf.stat().st_size > 1000


def test_metric_option_changes_the_bar_chart(tmp_path, suite):
    report = build_report(suite["paths"], tmp_path / "r", metric="ap50", qualitative=0)
    assert [f.name for f in report.figures if f.name.startswith("bars")] == ["bars_ap50"]
    with pytest.raises(InputError, match="--metric iou: no input run"):
        build_report(suite["paths"][:1], tmp_path / "r2", metric="iou", qualitative=0)
    assert not (tmp_path / "r2").exists()


def _near(rgb, colour, tol=70):
    return np.abs(rgb.astype(int) - np.array(colour)).sum(axis=-1) <= tol


def _hex(colour):
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_qualitative_grid_circles_tp_fp_fn_at_the_right_places(suite):
    grid = suite["report"].qualitative[0]
    assert grid.stems[0] == "0001"  # the methods disagree on 0001 (fp and fn of EFLNet)
    assert grid.columns == ["Ground truth", "EFLNet-n", "ACM"]
    rgb = np.asarray(Image.open(grid.figure.png).convert("RGB"))
    dpi = 150
    scale = (qual.TILE_IN - 2 * qual.PAD_IN) * dpi / 64  # whole 64 px image in the tile
    top_px = qual.TOP_IN * dpi

    def expected_xy(column, x, y):
        return (
            (qual.LEFT_IN + column * qual.TILE_IN + qual.PAD_IN) * dpi + x * scale,
            top_px + qual.PAD_IN * dpi + y * scale,
        )

    row0 = {(m.column, m.kind, round(m.x_px), round(m.y_px)): m for m in grid.marks if m.row == 0}
    cases = [
        (1, "tp", 20.5, 20.5),
        (1, "fp", 50.5, 12.5),
        (1, "fn", 45.5, 40.5),
        (2, "tp", 20.5, 20.5),
        (2, "tp", 45.5, 40.5),
        (0, "gt", 20.5, 20.5),
        (0, "gt", 45.5, 40.5),
    ]
    assert len(row0) == len(cases)
    for column, kind, x, y in cases:
        ex, ey = expected_xy(column, x, y)
        mark = next(
            m
            for m in grid.marks
            if m.row == 0
            and m.column == column
            and m.kind == kind
            and abs(m.x_px - ex) < 1.5
            and abs(m.y_px - ey) < 1.5
        )
        colour = _hex(qual.KIND_COLORS[kind])
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        ring = [
            _near(
                rgb[
                    round(mark.y_px + mark.radius_px * np.sin(a)),
                    round(mark.x_px + mark.radius_px * np.cos(a)),
                ],
                colour,
            )
            for a in angles
        ]
        assert sum(ring) >= 20, (column, kind, sum(ring))
        # The centre shows the image (grey/bright target), not the circle colour.
        assert not _near(rgb[round(mark.y_px), round(mark.x_px)], colour)

    def tile(column):
        x0 = round((qual.LEFT_IN + column * qual.TILE_IN) * dpi)
        y0 = round(top_px)
        return rgb[y0 : y0 + round(qual.TILE_IN * dpi), x0 : x0 + round(qual.TILE_IN * dpi)]

    # Orange and purple only where EFLNet-n has a false alarm and a miss; none for ACM or the truth.
    for colour in (qual.FP_COLOR, qual.FN_COLOR):
        assert _near(tile(1), _hex(colour), 30).sum() > 50
        assert _near(tile(2), _hex(colour), 30).sum() == 0
        assert _near(tile(0), _hex(colour), 30).sum() == 0
    assert _near(tile(0), _hex(qual.GT_COLOR), 30).sum() > 50
    assert _near(tile(0), _hex(qual.TP_COLOR), 30).sum() == 0


def test_large_images_are_cropped_around_the_targets(suite):
    grid = suite["report"].qualitative[1]
    assert grid.stems == ["XDU1"]
    crop_scale = (qual.TILE_IN - 2 * qual.PAD_IN) * 150 / qual.CROP_PX
    gt = next(m for m in grid.marks if m.kind == "gt")
    # Crop of 192 px around (301.5, 321.5) in a 400 px image: x from 205, y clamped to 208.
    x0 = (qual.LEFT_IN + qual.PAD_IN) * 150
    assert gt.x_px == pytest.approx(x0 + (301.5 - 205) * crop_scale, abs=1.5)
    assert gt.y_px == pytest.approx((qual.TOP_IN + qual.PAD_IN) * 150 + (321.5 - 208) * crop_scale, abs=1.5)
    # The false alarm at (100.5, 80.5) lies outside the crop and is not drawn.
    assert [m.kind for m in grid.marks if m.column == 2] == ["fn"]


def test_choose_images_prefers_disagreement_then_errors_then_name():
    row = qual.TargetRow
    a = {
        "x": [row("tp", (0, 0, 1, 1), 0.5, 0.5)],
        "y": [row("fp", (0, 0, 1, 1), 0.5, 0.5)],
        "z": [row("tp", (0, 0, 1, 1), 0.5, 0.5)],
        "w": [row("fn", (0, 0, 1, 1), 0.5, 0.5)],
    }
    b = {
        "x": [row("tp", (0, 0, 1, 1), 0.5, 0.5)],
        "y": [row("tp", (0, 0, 1, 1), 0.5, 0.5)],
        "z": [row("tp", (0, 0, 1, 1), 0.5, 0.5)],
        "w": [row("tp", (0, 0, 1, 1), 0.5, 0.5)],
    }
    # y and w disagree (2 each) with one error each: name breaks the tie; then x, z agree.
    assert qual.choose_images([a, b], 3) == ["w", "y", "x"]
    assert qual.choose_images([a, b], 10) == ["w", "y", "x", "z"]


def test_bad_per_target_csv_is_refused(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image,kind,x0,y0,x1,y1,cx,cy,area_px,score,matched_with\na,hit,0,0,1,1,,,1,0.5,\n")
    with pytest.raises(InputError, match=r"p\.csv:2: kind 'hit'"):
        qual.read_per_target_csv(path)


# -- index.html ------------------------------------------------------------------------------


def test_index_html_embeds_figures_and_tables_and_links_nothing(suite):
    page = (suite["out"] / "index.html").read_text()
    report = suite["report"]
    n_figures = len(report.figures) + len(report.qualitative)
    assert page.count('src="data:image/png;base64,') == n_figures
    # Nothing loaded from anywhere; links only to the report's own table and figure files.
    links = re.findall(r'(?:src|href)\s*=\s*"(?!data:)([^"]*)"', page)
    assert links and all(re.fullmatch(r"(tables/[\w.]+\.(md|tex|csv)|figures/[\w.]+\.(pdf|png))", x) for x in links)
    for x in links:
        assert (suite["out"] / x).is_file(), x
    assert 'href="tables/main.tex"' in page and 'href="tables/detailed.csv"' in page
    assert sum(1 for x in links if x.endswith(".pdf")) == n_figures
    assert "http" not in page and "<link" not in page and "<script" not in page
    assert 'id="table-main"' in page and 'id="table-detailed"' in page
    assert "<title>Test report</title>" in page and "irstd-bench report" in page
    for path in suite["paths"]:
        assert str(path) in page
    assert "<b>0.941</b>" in page  # EFLNet-n's best NUDT precision
    manifest = json.loads((suite["out"] / "report.json").read_text())
    assert "index.html" in manifest["files"] and all((suite["out"] / f).is_file() for f in manifest["files"])


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["split", "matcher"])
def test_mismatched_split_or_matcher_exits_2_without_output(tmp_path, what):
    a = write_run(tmp_path / "in", "a", method="A")
    b = write_run(
        tmp_path / "in",
        "b",
        method="B",
        **({"split": "other/test"} if what == "split" else {"matcher": "nwd:0.5"}),
    )
    out = tmp_path / "reports" / "x"
    result = _cli([a, b, "--out", out])
    assert result.exit_code == 2
    assert str(a) in result.output and str(b) in result.output and what in result.output
    assert not out.exists()
    assert not (tmp_path / "reports").exists() or list((tmp_path / "reports").iterdir()) == []


def test_duplicate_method_dataset_exits_2(tmp_path):
    a = write_run(tmp_path / "in", "a", method="A")
    b = write_run(tmp_path / "in", "b", method="A")
    c = write_run(tmp_path / "in", "c", method="A", dataset="irstd1k", split="test")  # other dataset: fine
    result = _cli([a, b, "--out", tmp_path / "out"])
    assert result.exit_code == 2 and "each (method, dataset) pair may appear once" in result.output
    assert not (tmp_path / "out").exists()
    assert _cli([a, c, "--out", tmp_path / "ok", "--qualitative", "0"]).exit_code == 0


def test_failed_rebuild_keeps_the_previous_report(tmp_path):
    a = write_run(tmp_path / "in", "a", method="A")
    out = tmp_path / "rep"
    assert _cli([a, "--out", out, "--qualitative", "0"]).exit_code == 0
    before = (out / "index.html").read_bytes()
    bad = tmp_path / "in" / "bad.json"
    bad.write_text(json.dumps({"schema": "irstd-bench/results", "schema_version": 1}))
    result = _cli([a, bad, "--out", out])
    assert result.exit_code == 2 and str(bad) in result.output
    assert (out / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "rep"]  # no temporary left behind


def test_missing_images_for_the_grid_exit_2_and_zero_skips_it(tmp_path):
    a = write_run(
        tmp_path / "in", "a", method="A", root=tmp_path / "gone", rows=[target_row("s", "tp", 5.5, 5.5)]
    )
    result = _cli([a, "--out", tmp_path / "out"])
    assert result.exit_code == 2 and "--qualitative 0" in result.output
    assert not (tmp_path / "out").exists()
    assert _cli([a, "--out", tmp_path / "out", "--qualitative", "0"]).exit_code == 0


def test_out_folder_guards(tmp_path):
    a = write_run(tmp_path / "in", "a", method="A")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = _cli([a, "--out", foreign, "--qualitative", "0", "--force"])
    assert result.exit_code == 2 and "not written by irstd-bench" in result.output
    assert (foreign / "notes.txt").read_text() == "keep me"
    inside = _cli([a, "--out", tmp_path / "in", "--qualitative", "0", "--force"])
    assert inside.exit_code == 2 and "contains the input" in inside.output
    assert (tmp_path / "in" / "a.json").is_file()
