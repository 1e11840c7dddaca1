"""Matchers: hand-computed pairs, the count-maximal rule, and legacy-pd against BasicIRSTD's rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import measure

from irstd_bench.errors import InputError
from irstd_bench.evaluate import UNMATCHED, match_targets, parse_matcher
from irstd_bench.targets import boxes_to_targets, mask_to_targets

IMAGE = (40, 40)

# Two ground-truth boxes and two predictions; IoU(p0, g1) = 6/8, IoU(p1, g0) = 16/20.
GT_BOXES = np.array([[0, 0, 4, 4], [10, 10, 12, 14]])
PRED_BOXES = np.array([[10, 11, 12, 14], [0, 0, 4, 5]])

# Count-maximal case for centroid:3 (box centres on one row): p0 sits on g0 (distance 0), p0-g1 and
# p1-g0 are 2.9 px apart. Maximising similarity alone would take p0-g0 only; we take two matches.
CM_GT = np.array([[9, 9, 11, 11], [11.9, 9, 13.9, 11]])  # centres (10, 10), (12.9, 10)
CM_PRED = np.array([[9, 9, 11, 11], [6.1, 9, 8.1, 11]])  # centres (10, 10), (7.1, 10)

# Legacy greedy vs optimal: g0 (row 5, col 5), g1 (row 5, col 9); pA (row 5, col 7) is 2 px from both,
# pB (row 7, col 4) is near g0 only. Label order: pA first (row 5), then pB.
LEGACY_GT = np.zeros((12, 14), np.uint8)
LEGACY_GT[5, 5] = LEGACY_GT[5, 9] = 255
LEGACY_PRED = np.zeros((12, 14), np.uint8)
LEGACY_PRED[5, 7] = LEGACY_PRED[7, 4] = 255


def _t(boxes):
    return boxes_to_targets(np.asarray(boxes, np.float64), IMAGE)


def naive_basicirstd_matches(pred_mask: np.ndarray, gt_mask: np.ndarray) -> int:
    """A deliberately plain re-statement of BasicIRSTD's PD_FA rule: labels via skimage,
    ground truth in label order, each taking the first remaining prediction closer than 3 px."""
    pred_regions = list(measure.regionprops(measure.label(pred_mask > 0, connectivity=2)))
    gt_regions = measure.regionprops(measure.label(gt_mask > 0, connectivity=2))
    matched = 0
    for g in gt_regions:
        for position in range(len(pred_regions)):
            dy = pred_regions[position].centroid[0] - g.centroid[0]
            dx = pred_regions[position].centroid[1] - g.centroid[1]
            if math.hypot(dx, dy) < 3:
                matched += 1
                pred_regions.pop(position)
                break
    return matched


@pytest.mark.parametrize(
    ("spec", "kind", "threshold", "constant", "canonical"),
    [
        ("iou:0.5", "iou", 0.5, 11.0, "iou:0.5"),
        ("iou", "iou", 0.5, 11.0, "iou:0.5"),
        ("nwd:0.6", "nwd", 0.6, 11.0, "nwd:0.6:11"),
        ("nwd:0.6:8", "nwd", 0.6, 8.0, "nwd:0.6:8"),
        ("centroid", "centroid", 3.0, 11.0, "centroid:3"),
        ("CENTROID:4.5", "centroid", 4.5, 11.0, "centroid:4.5"),
        ("legacy-pd", "legacy-pd", 3.0, 11.0, "legacy-pd"),
    ],
)
def test_parse_matcher(spec, kind, threshold, constant, canonical):
    m = parse_matcher(spec)
    assert (m.kind, m.threshold, m.constant, m.spec) == (kind, threshold, constant, canonical)


@pytest.mark.parametrize(
    "spec",
    [
        "box:0.5",
        "iou:abc",
        "iou:0",
        "iou:1.5",
        "nwd:0.5:0",
        "centroid:-1",
        "legacy-pd:3",
        "iou:0.5:2",
        "nwd:nan",
    ],
)
def test_parse_matcher_rejects(spec):
    with pytest.raises(InputError, match="matcher"):
        parse_matcher(spec)


def test_iou_matcher_hand_fixture():
    m = match_targets(_t(GT_BOXES), _t(PRED_BOXES), "iou:0.5")
    assert m.pred_to_gt.tolist() == [1, 0]
    assert m.gt_to_pred.tolist() == [1, 0]
    assert m.similarity.tolist() == pytest.approx([6 / 8, 16 / 20])
    # IoU 0.75 fails at 0.8; IoU 0.8 passes (>=).
    strict = match_targets(_t(GT_BOXES), _t(PRED_BOXES), "iou:0.8")
    assert strict.pred_to_gt.tolist() == [UNMATCHED, 0]
    assert strict.tp == 1


def test_nwd_matcher_hand_fixture():
    # Same size, centres 11 px apart: W2 = 11, NWD = exp(-11 / 11) = e^-1 ~ 0.368.
    gt, pred = _t([[0, 0, 2, 2]]), _t([[11, 0, 13, 2]])
    assert match_targets(gt, pred, "nwd:0.36").similarity[0] == pytest.approx(math.exp(-1))
    assert match_targets(gt, pred, "nwd:0.36").tp == 1
    assert match_targets(gt, pred, "nwd:0.37").tp == 0
    # With C = 22 the same pair has NWD exp(-0.5) ~ 0.607.
    assert match_targets(gt, pred, "nwd:0.6:22").tp == 1


def test_centroid_matcher_is_strictly_closer_than_distance():
    gt = _t([[0, 0, 2, 2]])
    assert match_targets(gt, _t([[2.9, 0, 4.9, 2]]), "centroid:3").tp == 1
    assert match_targets(gt, _t([[3, 0, 5, 2]]), "centroid:3").tp == 0  # exactly 3 px: not < 3
    assert match_targets(gt, _t([[3, 0, 5, 2]]), "centroid:3.01").tp == 1


def test_optimal_matching_is_count_maximal_first():
    m = match_targets(_t(CM_GT), _t(CM_PRED), "centroid:3")
    assert m.tp == 2
    assert m.pred_to_gt.tolist() == [1, 0]


def test_optimal_matching_prefers_similarity_among_equal_counts():
    # One target, two candidates: the closer one wins.
    m = match_targets(_t([[10, 10, 12, 12]]), _t([[12, 10, 14, 12], [10.5, 10, 12.5, 12]]), "centroid:3")
    assert m.pred_to_gt.tolist() == [UNMATCHED, 0]


def test_one_to_one_two_predictions_on_one_target():
    m = match_targets(_t([[10, 10, 14, 14]]), _t([[10, 10, 14, 14], [10, 10, 14, 14]]), "iou:0.5")
    assert m.tp == 1 and sorted(m.pred_to_gt.tolist()) == [UNMATCHED, 0]


def test_empty_inputs():
    empty = _t(np.zeros((0, 4)))
    assert match_targets(empty, _t(GT_BOXES), "iou:0.5").pred_to_gt.tolist() == [UNMATCHED, UNMATCHED]
    assert match_targets(_t(GT_BOXES), empty, "legacy-pd").gt_to_pred.tolist() == [UNMATCHED, UNMATCHED]


def test_legacy_pd_is_greedy_in_label_order():
    gt, pred = mask_to_targets(LEGACY_GT), mask_to_targets(LEGACY_PRED)
    legacy = match_targets(gt, pred, "legacy-pd")
    assert legacy.tp == 1
    assert legacy.gt_to_pred.tolist() == [0, UNMATCHED]  # g0 took pA (label 1), g1 found nothing
    assert match_targets(gt, pred, "centroid:3").tp == 2
    assert naive_basicirstd_matches(LEGACY_PRED, LEGACY_GT) == 1


def test_legacy_pd_equals_basicirstd_rule_on_random_masks():
    rng = np.random.default_rng(7)
    for _ in range(60):
        gt = (rng.random((24, 24)) > 0.93).astype(np.uint8) * 255
        pred = (rng.random((24, 24)) > 0.9).astype(np.uint8) * 255
        ours = match_targets(mask_to_targets(gt), mask_to_targets(pred), "legacy-pd").tp
        assert ours == naive_basicirstd_matches(pred, gt)


def test_numpy_iou_and_nwd_constant_agree_with_shared_boxes_module():
    from irstd_bench import boxes
    from irstd_bench.evaluate._matching import DEFAULT_NWD_CONSTANT, box_iou_matrix

    assert DEFAULT_NWD_CONSTANT == boxes.DEFAULT_NWD_CONSTANT
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 20, (30, 2))
    a = np.concatenate([xy, xy + rng.uniform(0, 6, (30, 2))], axis=1)
    b = a[rng.permutation(30)] + rng.normal(0, 1, (30, 4))
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2])
    expected = np.nan_to_num(boxes.iou(boxes.as_tensor(a), boxes.as_tensor(b)).numpy())
    np.testing.assert_allclose(box_iou_matrix(a, b), expected, atol=1e-12)


def test_eval_imports_no_torch_unless_nwd():
    import subprocess
    import sys

    code = (
        "import sys; import irstd_bench.evaluate as e; from irstd_bench.evaluate import cli; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
