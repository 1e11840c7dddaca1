"""Reports researchers can paste: seeds as mean ± std, both F1 protocols named, the matcher's AP."""

from __future__ import annotations

import csv
import io

import pytest

from irstd_bench.report import build_report, format_terminal_table, load_runs
from irstd_bench.report._plots import matcher_ap
from irstd_bench.report._tables import detailed_table, main_table


def _run(method, f1, *, best_f1=None, config=None, ap=None, matcher="iou:0.5"):
    return {
        "schema": "irstd-bench/results",
        "schema_version": 1,
        "method": method,
        "dataset": "nudt",
        "dataset_title": "NUDT-SIRST",
        "split": "50_50/test",
        "matcher": matcher,
        "conf": 0.5,
        "metrics": {"tp": 1, "fp": 0, "fn": 0, "precision": f1, "recall": f1, "f1": f1,
                    "best_f1": best_f1, "ap": ap},  # fmt: skip
        "config": config or {},
    }


SEEDS = [_run(f"EFLNet-n (seed {k})", f1, best_f1=f1 + 0.05) for k, f1 in enumerate((0.7, 0.8, 0.9))]


def test_seeds_become_one_mean_std_row_and_are_listed_in_detail():
    runs = load_runs([*SEEDS, _run("IPI", 0.5, best_f1=0.5)])
    main = main_table(runs)
    assert main.rows == ["EFLNet-n (3 seeds)", "IPI"]
    f1 = [c.metric for c in main.columns].index("f1")
    assert main.values[0][f1] == pytest.approx(0.8) and main.spread[0][f1] == pytest.approx(0.1)  # sample std
    assert main.spread[1][f1] is None and main.formatted(1, f1) == "0.500"
    assert main.formatted(0, f1) == "0.800 \u00b1 0.100"
    assert "0.800 $\\pm$ 0.100" in main.to_latex() and "0.800 \u00b1 0.100" in main.to_markdown()
    assert "mean \u00b1 std" in main.caption and "F1 (best on test)" in main.caption
    rows = list(csv.DictReader(io.StringIO(main.to_csv())))
    assert float(rows[0]["nudt/f1"]) == pytest.approx(0.8) and float(rows[0]["nudt/f1_std"]) == pytest.approx(0.1)
    assert rows[1]["nudt/f1_std"] == ""
    detail = detailed_table(runs)
    assert detail.rows == ["EFLNet-n (3 seeds)", "  EFLNet-n (seed 0)", "  EFLNet-n (seed 1)", "  EFLNet-n (seed 2)",
                           "IPI"]  # fmt: skip
    best = [c.metric for c in detail.columns].index("best_f1")
    assert [row[best] for row in detail.values[1:4]] == pytest.approx([0.75, 0.85, 0.95])
    assert detail.best_rows(best) == {0}  # the mean competes with other methods, single seeds do not
    text = format_terminal_table(runs)
    assert text.isascii() and "0.800+-0.100" in text


def test_seed_from_config_keeps_one_method_name(tmp_path):
    runs = [_run("EFLNet-n", 0.6, config={"seed": 0}), _run("EFLNet-n", 0.8, config={"seed": 1})]
    main = main_table(load_runs(runs))
    assert main.rows == ["EFLNet-n (2 seeds)"]
    assert detailed_table(load_runs(runs)).rows[1:] == ["  EFLNet-n (seed 0)", "  EFLNet-n (seed 1)"]
    report = build_report(runs, tmp_path / "r", qualitative=0)
    page = report.index.read_text()
    assert "EFLNet-n (seed 1)" in page and 'href="tables/main.md"' in page


def test_pr_legend_names_the_matcher_ap():
    run = load_runs([_run("tophat", 0.4, ap=0.31, matcher="centroid:3")])[0]
    assert matcher_ap(run) == 0.31
    assert matcher_ap(load_runs([_run("x", 0.4)])[0]) is None


def test_pixel_metrics_do_not_depend_on_matcher_or_conf():
    """IoU/nIoU/Pd/Fa of a score map are taken at score >= 0.5 whatever conf and matcher are:
    two reports with thresholds chosen for different matchers show the same pixel metrics."""
    import numpy as np

    from irstd_bench.datasets import GroundTruth, Sample
    from irstd_bench.evaluate import Prediction, evaluate
    from irstd_bench.targets import mask_to_targets

    gt_mask = np.zeros((20, 20), np.uint8)
    gt_mask[2:4, 2:4] = 255  # target 1: 4 px
    gt_mask[10:13, 10:13] = 255  # target 2: 9 px
    scores = np.zeros((20, 20), np.float32)
    scores[2:4, 2:4] = 0.9  # found at every level
    scores[10:13, 10:12] = 0.3  # found only below 0.5
    scores[17, 17] = 0.6  # a false alarm from 0.5 up
    gt = GroundTruth(sample=Sample("a", None, None), targets=mask_to_targets(gt_mask))
    pred = [Prediction.from_score_map("a", scores)]
    keys = ("iou", "niou", "pd", "fa_e6")
    runs = [evaluate([gt], pred, matcher=m, conf=c).metrics for m, c in
            (("iou:0.5", 0.2), ("centroid:3", 0.8), ("iou:0.5", 0.5))]  # fmt: skip
    assert [[r[k] for k in keys] for r in runs[:2]] == [[runs[2][k] for k in keys]] * 2
    assert runs[2]["iou"] == pytest.approx(4 / 14)  # 4 px shared; 13 GT px + 1 false px
    assert runs[2]["pd"] == pytest.approx(0.5) and runs[2]["fa_e6"] == pytest.approx(1 / 400 * 1e6)
    assert runs[0]["recall"] == 1.0 and runs[1]["recall"] == 0.5  # box metrics do follow conf
