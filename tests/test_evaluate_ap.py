"""AP conventions: COCO 101-point interpolation, every detection by default, ``--max-dets N``
equal to pycocotools' ``maxDets`` (``--max-dets 100`` = pycocotools' default AP50)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from irstd_bench.cli import cli

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

SIZE = 96
DETS_PER_IMAGE = 160  # more than pycocotools' default cap of 100


def _fixture(tmp_path: Path) -> tuple[Path, Path, list[dict]]:
    """Three images with four targets each; 160 detections per image, most of them false, and
    some of the hits ranked below 100 in their image, so the cap changes AP50."""
    rng = np.random.default_rng(7)
    images, annotations, results = [], [], []
    for image_id in (1, 2, 3):
        images.append({"id": image_id, "file_name": f"img{image_id}.png", "width": SIZE, "height": SIZE})
        gt = [[8 + 20 * k, 10 + 15 * k, 5, 4] for k in range(4)]
        for box in gt:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        scores = rng.uniform(0.01, 1.0, DETS_PER_IMAGE)
        for d in range(DETS_PER_IMAGE):
            if d < 4:  # a hit on target d, at a low or a high rank
                x, y, w, h = gt[d]
                box = [x + float(rng.uniform(-0.5, 0.5)), y, w, h]
            else:  # a false alarm somewhere else
                box = [float(rng.uniform(0, SIZE - 6)), float(rng.uniform(75, SIZE - 6)), 4.0, 4.0]
            results.append({"image_id": image_id, "category_id": 1, "bbox": box, "score": float(scores[d])})
        # Two of the four hits of each image rank beyond 100.
        low = np.sort(scores)[DETS_PER_IMAGE - 130]
        for r in results[-DETS_PER_IMAGE:][:2]:
            r["score"] = float(low * rng.uniform(0.5, 0.99))
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "dets.json"
    gt_path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "target"}]})
    )
    res_path.write_text(json.dumps(results))
    return gt_path, res_path, results


def _pycocotools_ap50(gt_path: Path, results: list[dict], max_dets: int) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, 0, 0, 2]  # IoU 0.5, every recall point, area "all", last cap
    return float(np.mean(precision[precision > -1]))


def _eval(tmp_path: Path, gt_path: Path, res_path: Path, *extra) -> dict:
    out = tmp_path / f"res{len(extra)}.json"
    args = ["eval", str(res_path), "--gt-coco", str(gt_path), "--workers", "1", "--out", str(out), *extra]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_max_dets_100_equals_pycocotools_default_ap50(tmp_path):
    gt_path, res_path, results = _fixture(tmp_path)
    capped = _eval(tmp_path, gt_path, res_path, "--max-dets", "100")
    uncapped = _eval(tmp_path, gt_path, res_path)
    reference_100 = _pycocotools_ap50(gt_path, results, 100)
    assert capped["metrics"]["ap50"] == pytest.approx(reference_100, abs=1e-12)
    # Without a cap every detection counts: pycocotools with a cap above the detection count.
    assert uncapped["metrics"]["ap50"] == pytest.approx(_pycocotools_ap50(gt_path, results, 10**6), abs=1e-12)
    assert uncapped["metrics"]["ap50"] > capped["metrics"]["ap50"]  # the cap drops low-ranked hits
    # The cap touches AP only: the counts at conf are the same.
    for key in ("tp", "fp", "fn", "best_f1"):
        assert capped["metrics"][key] == uncapped["metrics"][key]


def test_results_state_the_ap_conventions(tmp_path):
    gt_path, res_path, _ = _fixture(tmp_path)
    capped = _eval(tmp_path, gt_path, res_path, "--max-dets", "100")
    uncapped = _eval(tmp_path, gt_path, res_path)
    assert capped["settings"]["ap"] == {
        "interpolation": "coco-101-point",
        "max_dets": 100,
        "ap50_iou": 0.5,
        "assignment": "greedy by decreasing score (pycocotools)",
        "ap50_undefined": None,  # boxes: AP50 means something under any matcher
    }
    assert uncapped["settings"]["ap"]["max_dets"] is None


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "many"])
def test_max_dets_must_be_a_positive_integer(tmp_path, value):
    gt_path, res_path, _ = _fixture(tmp_path)
    args = ["eval", str(res_path), "--gt-coco", str(gt_path), "--max-dets", value, "--out", str(tmp_path / "r.json")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--max-dets" in result.output
    assert not (tmp_path / "r.json").exists()


def test_a_tie_between_equally_overlapped_targets_is_broken_as_pycocotools_does(tmp_path):
    """Detection A overlaps targets G1 and G2 equally (IoU 1/3 each); the lower-scored B overlaps
    G1 only. pycocotools gives A the last of the equal targets (G2), so B still finds G1: AP at
    IoU 0.3 is 1.0. Taking the first (G1) would leave B unmatched: AP 51/101 = 0.505."""
    images = [{"id": 1, "file_name": "a.png", "width": 32, "height": 32}]
    g1, g2 = [8, 10, 4, 4], [12, 10, 4, 4]  # [x, y, w, h]
    annotations = [
        {"id": k + 1, "image_id": 1, "category_id": 1, "bbox": box, "area": 16, "iscrowd": 0}
        for k, box in enumerate([g1, g2])
    ]
    results = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 4, 4], "score": 0.9},  # A: IoU 1/3 with each
        {"image_id": 1, "category_id": 1, "bbox": [7, 10, 4, 4], "score": 0.8},  # B: IoU 0.6 with G1, 0 with G2
    ]
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "dets.json"
    gt_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1}]}))
    res_path.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.iouThrs = np.array([0.3])
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, 0, 0, 2]
    reference = float(np.mean(precision[precision > -1]))
    assert reference == pytest.approx(1.0)
    ours = _eval(tmp_path, gt_path, res_path, "--match", "iou:0.3")["metrics"]
    assert ours["ap"] == pytest.approx(reference, abs=1e-12)
    assert (ours["tp"], ours["fp"]) == (2, 0)  # the optimal assignment at conf agrees
