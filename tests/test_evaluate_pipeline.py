"""The path ``eval`` runs, driven through ``evaluate()`` / ``evaluate_split()``: one assignment for
every caller, nIoU per image, the confidence rule, legacy-pd, the worker pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irstd_bench.evaluate import PIXEL_THRESHOLD, Prediction, evaluate, evaluate_split, match_targets, open_predictions
from irstd_bench.targets import boxes_to_targets, mask_to_targets

EVALUATE_DIR = Path(__file__).resolve().parents[1] / "irstd_bench" / "evaluate"


def _mask(size, boxes):
    m = np.zeros(size, bool)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def test_niou_is_the_mean_of_per_image_ious_whatever_the_target_count():
    # Image a: two 2x2 targets; the first predicted exactly, the second's left column only:
    # IoU_a = (4 + 2) / 8. Image b: one 2x2 target inside a 2x6 prediction: IoU_b = 4 / 12.
    size = (16, 16)
    gt = [
        ("a", mask_to_targets(_mask(size, [[0, 0, 2, 2], [10, 10, 12, 12]]))),
        ("b", mask_to_targets(_mask(size, [[4, 4, 6, 6]]))),
    ]
    pred = [
        Prediction.from_score_map("a", _mask(size, [[0, 0, 2, 2], [10, 10, 11, 12]])),
        Prediction.from_score_map("b", _mask(size, [[4, 2, 6, 8]])),
    ]
    m = evaluate(gt, pred, matcher="centroid:3").metrics
    assert m["niou"] == pytest.approx((6 / 8 + 4 / 12) / 2)  # per image, not per target
    assert m["niou"] != pytest.approx((1 + 2 / 4 + 4 / 12) / 3)
    assert m["iou"] == pytest.approx((6 + 4) / (8 + 12))  # split-summed


@pytest.mark.parametrize(
    ("score", "kept"),
    [(0.5, True), (float(np.nextafter(0.5, 0.0)), False), (float(np.nextafter(0.5, 1.0)), True)],
)
def test_a_box_scoring_exactly_conf_is_kept(score, kept):
    gt = [("a", boxes_to_targets(np.array([[10, 10, 14, 14]]), (32, 32)))]
    pred = [Prediction.from_boxes("a", [[10, 10, 14, 14]], [score], (32, 32))]
    m = evaluate(gt, pred, matcher="iou:0.5", conf=0.5).metrics
    assert (m["tp"], m["fp"], m["fn"]) == ((1, 0, 0) if kept else (0, 0, 1))


def test_a_map_pixel_scoring_exactly_conf_is_foreground():
    size = (16, 16)
    gt = [("a", mask_to_targets(_mask(size, [[4, 4, 6, 6]])))]
    score_map = np.where(_mask(size, [[4, 4, 6, 6]]), 0.5, 0.1).astype(np.float32)
    assert evaluate(gt, [Prediction.from_score_map("a", score_map)], conf=0.5).metrics["tp"] == 1
    assert evaluate(gt, [Prediction.from_score_map("a", score_map)], conf=0.5001).metrics["tp"] == 0


def test_in_memory_results_record_the_pixel_level_of_their_kind():
    size = (16, 16)
    gt = [("a", mask_to_targets(_mask(size, [[4, 4, 6, 6]])))]
    score_map = np.where(_mask(size, [[4, 4, 6, 6]]), 0.9, 0.1).astype(np.float32)
    runs = {
        "scoremaps": Prediction.from_score_map("a", score_map),
        "masks": Prediction.from_score_map("a", _mask(size, [[4, 4, 6, 6]]) > 0),
        "boxes": Prediction.from_boxes("a", [[4, 4, 6, 6]], [0.9], size),
    }
    for kind, pred in runs.items():
        result = evaluate(gt, [pred], conf=0.2)
        assert result.kind == kind
        level = result.to_dict()["settings"]["pixel_threshold"]
        assert level == (None if kind == "boxes" else PIXEL_THRESHOLD), kind
        assert (result.metrics["iou"] is None) == (level is None), kind


def _legacy_fixture():
    """Two one-pixel targets at columns 10 and 14 of row 5; a prediction at (row 4, col 12),
    within 3 px of both and first in raster order, and one at (row 5, col 8), near the first
    target only. BasicIRSTD's greedy rule gives the shared one to the first target and then
    has nothing for the second; the optimal assignment matches both."""
    size = (12, 20)
    gt = np.zeros(size, bool)
    gt[5, 10] = gt[5, 14] = True
    pred = np.zeros(size, bool)
    pred[4, 12] = pred[5, 8] = True
    return [("a", mask_to_targets(gt))], [Prediction.from_score_map("a", pred)]


def test_legacy_pd_through_evaluate():
    gt, pred = _legacy_fixture()
    legacy = evaluate(gt, pred, matcher="legacy-pd").metrics
    optimal = evaluate(gt, pred, matcher="centroid:3").metrics
    assert (legacy["tp"], legacy["fp"], legacy["fn"]) == (1, 1, 1)
    assert (optimal["tp"], optimal["fp"], optimal["fn"]) == (2, 0, 0)
    # Pd and Fa always use the legacy rule, whatever the matcher.
    for m in (legacy, optimal):
        assert m["pd"] == 0.5
        assert m["fa_e6"] == pytest.approx(1e6 * 1 / (12 * 20))


@pytest.mark.parametrize("matcher", ["iou:0.5", "nwd:0.5", "centroid:3", "legacy-pd"])
def test_evaluate_assigns_exactly_as_match_targets(matcher):
    rng = np.random.default_rng(1)
    size = (64, 64)
    xy, wh = rng.integers(1, 56, (12, 2)), rng.integers(1, 7, (12, 2))
    gt_boxes = np.concatenate([xy, xy + wh], axis=1)
    shift = np.repeat(rng.integers(-2, 3, (12, 2)), 2, axis=0).reshape(12, 4)  # whole boxes move
    pred_boxes = np.concatenate([gt_boxes + shift, gt_boxes[::3] + 1])
    scores = rng.uniform(0.5, 1.0, len(pred_boxes))
    gt = boxes_to_targets(gt_boxes, size)
    result = evaluate([("a", gt)], [Prediction.from_boxes("a", pred_boxes, scores, size)], matcher=matcher, conf=0.5)
    expected = match_targets(gt, boxes_to_targets(pred_boxes, size), matcher)
    np.testing.assert_array_equal(result.records[0].pred_to_gt, expected.pred_to_gt)
    assert result.metrics["tp"] == expected.tp


def _folder_dataset(tmp_path: Path, n: int = 12) -> tuple[list, Path]:
    from irstd_bench.datasets import open_dataset

    root, preds = tmp_path / "data", tmp_path / "preds"
    for sub in ("images", "masks", "50_50"):
        (root / sub).mkdir(parents=True)
    preds.mkdir()
    stems = [f"{i:06d}" for i in range(1, n + 1)]
    for i, stem in enumerate(stems):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "images" / f"{stem}.png")
        gt = _mask((32, 32), [[i, 4, i + 3, 7], [20, 20, 22, 22]])
        pred = _mask((32, 32), [[i + 1, 4, i + 4, 7], [2, 25, 4, 27]])
        Image.fromarray(gt.astype(np.uint8) * 255).save(root / "masks" / f"{stem}.png")
        Image.fromarray(pred.astype(np.uint8) * 255).save(preds / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\n".join(stems) + "\n")
    (root / "50_50" / "train.txt").write_text(stems[0] + "\n")
    ds = open_dataset(root, "nudt")
    return [(s.stem, (s, "")) for s in ds.samples("test")], preds


def test_worker_pool_gives_the_same_records_and_leaves_torch_threads_alone(tmp_path):
    torch = pytest.importorskip("torch")
    items, preds = _folder_dataset(tmp_path)
    pset = open_predictions(preds, stems=[stem for stem, _ in items])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = evaluate_split(items, pset, matcher="nwd:0.5", workers=1)
        assert torch.get_num_threads() == 2
        two = evaluate_split(items, pset, matcher="nwd:0.5", workers=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert one.metrics == two.metrics and one.metrics["tp"] == 12
    assert [r.stem for r in two.records] == [stem for stem, _ in items]
    assert one.per_target_rows() == two.per_target_rows()


def test_no_evaluator_module_over_500_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in EVALUATE_DIR.glob("*.py")}
    assert sizes and max(sizes.values()) <= 500, sizes
