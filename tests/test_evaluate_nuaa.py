"""The evaluator on the real NUAA-SIRST masks: ground truth against itself and perturbed copies."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from irstd_bench.cli import cli
from irstd_bench.datasets import load_ground_truth, open_dataset
from irstd_bench.evaluate import Prediction, evaluate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
NUAA = SHARED / "NUAA-SIRST"
SPLIT = "idx_427/test"  # 86 images; includes the Misc_111 release defect (needs --resize-masks)
pytestmark = pytest.mark.skipif(not NUAA.is_dir(), reason=f"real NUAA-SIRST not found at {NUAA}")

DELETED = 5  # targets removed from the prediction
FALSE_BLOBS = 10  # images that get a false 2x2 blob
BLOB_PX = 4
SHIFT_PX = 1


@pytest.fixture(scope="module")
def ground_truth():
    ds = open_dataset(NUAA, "nuaa")
    return [
        load_ground_truth(s, resize_masks=True, known_defect=ds.known_defect(s.stem))
        for s in ds.samples(SPLIT)
    ]


def _masks(ground_truth):
    return {g.sample.stem: g.targets.label_image > 0 for g in ground_truth}


def test_ground_truth_against_itself_is_perfect(ground_truth):
    preds = [Prediction.from_score_map(stem, m) for stem, m in _masks(ground_truth).items()]
    for matcher in ("iou:0.5", "nwd:0.9", "centroid:3", "legacy-pd"):
        m = evaluate(ground_truth, preds, matcher=matcher).metrics
        assert m["precision"] == m["recall"] == m["f1"] == 1.0, matcher
        assert m["pd"] == 1.0 and m["fa_e6"] == 0.0 and m["iou"] == 1.0 and m["niou"] == 1.0
        assert m["ap50"] == 1.0


def test_deleting_targets_lowers_recall_exactly(ground_truth):
    masks = _masks(ground_truth)
    n_gt = sum(len(g.targets) for g in ground_truth)
    removed_px = 0
    deleted = 0
    for g in ground_truth:
        if deleted == DELETED:
            break
        if len(g.targets):
            masks[g.sample.stem] = masks[g.sample.stem] & (g.targets.label_image != 1)
            removed_px += int(g.targets.area_px[0])
            deleted += 1
    preds = [Prediction.from_score_map(stem, m) for stem, m in masks.items()]
    m = evaluate(ground_truth, preds, matcher="iou:0.5").metrics
    assert (m["tp"], m["fp"], m["fn"]) == (n_gt - DELETED, 0, DELETED)
    assert m["recall"] == pytest.approx((n_gt - DELETED) / n_gt) and m["precision"] == 1.0
    assert m["pd"] == pytest.approx((n_gt - DELETED) / n_gt) and m["fa_e6"] == 0.0
    total_gt_px = sum(int(g.targets.area_px.sum()) for g in ground_truth)
    assert m["iou"] == pytest.approx((total_gt_px - removed_px) / total_gt_px)


def _far_corner(mask: np.ndarray) -> tuple[int, int]:
    """Top-left of a 2x2 spot at least 10 px from every target pixel."""
    distance = ndimage.distance_transform_edt(~mask) if mask.any() else np.full(mask.shape, np.inf)
    for r, c in (
        (1, 1),
        (1, mask.shape[1] - 3),
        (mask.shape[0] - 3, 1),
        (mask.shape[0] - 3, mask.shape[1] - 3),
    ):
        if distance[r : r + 2, c : c + 2].min() > 10:
            return r, c
    raise AssertionError("no free corner")


def test_false_blobs_give_known_fp_and_fa_pixels(ground_truth):
    masks = _masks(ground_truth)
    total_px = sum(m.size for m in masks.values())
    n_gt = sum(len(g.targets) for g in ground_truth)
    for g in ground_truth[:FALSE_BLOBS]:
        mask = masks[g.sample.stem].copy()
        r, c = _far_corner(mask)
        mask[r : r + 2, c : c + 2] = True
        masks[g.sample.stem] = mask
    preds = [Prediction.from_score_map(stem, m) for stem, m in masks.items()]
    m = evaluate(ground_truth, preds, matcher="centroid:3").metrics
    assert (m["tp"], m["fp"], m["fn"]) == (n_gt, FALSE_BLOBS, 0)
    assert m["pd"] == 1.0
    assert m["fa_e6"] == pytest.approx(1e6 * FALSE_BLOBS * BLOB_PX / total_px)


def test_shifted_boxes_have_known_iou_and_nwd(ground_truth):
    preds = []
    expected_iou_hits = 0
    n_gt = 0
    for g in ground_truth:
        boxes = g.targets.boxes.astype(np.float64) + [SHIFT_PX, 0, SHIFT_PX, 0]
        h, w = g.targets.image_size
        keep = boxes[:, 2] <= w
        preds.append(Prediction.from_boxes(g.sample.stem, boxes[keep], np.full(keep.sum(), 0.9), (h, w)))
        widths = (g.targets.boxes[:, 2] - g.targets.boxes[:, 0])[keep]
        expected_iou_hits += int(np.count_nonzero((widths - SHIFT_PX) / (widths + SHIFT_PX) >= 0.5))
        n_gt += len(g.targets)
    n_pred = sum(len(p.boxes) for p in preds)
    # A 1 px shift of a w-wide box has IoU (w - 1) / (w + 1): a hit at iou:0.5 exactly when w >= 3.
    assert evaluate(ground_truth, preds, matcher="iou:0.5").metrics["tp"] == expected_iou_hits
    # Its Wasserstein distance is 1 px, so NWD = exp(-1 / 11) ~ 0.9131 for every box.
    assert math.exp(-SHIFT_PX / 11) == pytest.approx(0.9131, abs=1e-4)
    assert evaluate(ground_truth, preds, matcher="nwd:0.913").metrics["tp"] == n_pred
    assert evaluate(ground_truth, preds, matcher="nwd:0.914").metrics["tp"] == 0


def test_cli_on_real_masks_with_workers(tmp_path):
    out = tmp_path / "nuaa.json"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(NUAA / "masks"),
            "--root",
            str(NUAA),
            "--dataset",
            "nuaa",
            "--split",
            SPLIT,
            "--resize-masks",
            "--resize",
            "--workers",
            "2",
            "--out",
            str(out),
            "--name",
            "gt",
        ],
    )
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    assert res["metrics"]["f1"] == 1.0 and res["metrics"]["pd"] == 1.0 and res["counts"]["images"] == 86
    assert res["counts"]["gt_masks_resized"] == 1 and res["counts"]["predictions_not_in_split"] == 427 - 86
    assert res["dataset_title"] == "NUAA-SIRST" and res["split"] == SPLIT and res["method"] == "gt"
