"""Metrics on hand-computed fixtures, AP against pycocotools, pixel metrics and curves."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from skimage import measure

from irstd_bench.errors import InputError
from irstd_bench.evaluate import (
    Prediction,
    coco_average_precision,
    evaluate,
    legacy_pd_fa,
    level_components,
    pixel_stats,
)
from irstd_bench.targets import boxes_to_targets, mask_to_targets

# --- masks: 10 x 12 image ------------------------------------------------------------------
# GT: A one pixel at (row 1, col 1); B 2x2 at rows 4-5, cols 6-7; C 1x3 at row 8, cols 1-3.
GT_MASK = np.zeros((10, 12), np.uint8)
GT_MASK[1, 1] = 255
GT_MASK[4:6, 6:8] = 255
GT_MASK[8, 1:4] = 255
# Prediction: A' one pixel beside A (centroid 1 px away, box IoU 0), B exactly, a false pixel at (9, 10).
PRED_MASK = np.zeros((10, 12), bool)
PRED_MASK[1, 2] = True
PRED_MASK[4:6, 6:8] = True
PRED_MASK[9, 10] = True

# --- boxes: the best-F1 / AP fixture ----------------------------------------------------------
BOX_GT = np.array([[0, 0, 4, 4], [20, 20, 24, 24]])
BOX_PRED = np.array([[0, 0, 4, 4], [10, 10, 14, 14], [20, 20, 24, 24], [30, 30, 34, 34]])
BOX_SCORES = np.array([0.9, 0.8, 0.6, 0.3])  # hit, miss, hit, miss

# --- Fa by area value: the matched region and a false region both have 4 pixels --------------
FA_GT = np.zeros((16, 16), np.uint8)
FA_GT[2:4, 2:4] = 255
FA_PRED = np.zeros((16, 16), np.uint8)
FA_PRED[2:4, 2:4] = 255  # matched, area 4
FA_PRED[10:12, 10:12] = 255  # false alarm, area 4 too
FA_PRED[14, 0:3] = 255  # false alarm, area 3

# --- a score map: blob P (score up to 0.9) on the target, blob Q (0.4) elsewhere ---------------
SM_GT = np.zeros((12, 12), np.uint8)
SM_GT[2:4, 2:4] = 255
SCORE_MAP = np.zeros((12, 12), np.float32)
SCORE_MAP[2:4, 2:4] = [[0.9, 0.6], [0.6, 0.3]]
SCORE_MAP[8:10, 8:11] = 0.4


def _gt(mask, stem="a"):
    return (stem, mask_to_targets(mask))


def test_mask_prediction_hand_fixture_iou_matcher():
    r = evaluate([_gt(GT_MASK)], [Prediction.from_score_map("a", PRED_MASK)], matcher="iou:0.5")
    m = r.metrics
    assert (m["tp"], m["fp"], m["fn"]) == (1, 2, 2)
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(1 / 3)
    # Pixel metrics: intersection 4 (B), union 8 + 6 - 4 = 10.
    assert m["iou"] == pytest.approx(0.4) and m["niou"] == pytest.approx(0.4)
    # Pd/Fa always use the legacy 3 px rule: A and B detected, the (9, 10) pixel is a false alarm.
    assert m["pd"] == pytest.approx(2 / 3)
    assert m["fa_e6"] == pytest.approx(1e6 * 1 / 120)
    assert r.kind == "masks" and r.curves["pd_fa"] is None


def test_mask_prediction_hand_fixture_centroid_matcher_and_empty_image():
    gts = [_gt(GT_MASK), _gt(np.zeros((10, 12), np.uint8), "b")]
    preds = [Prediction.from_score_map("a", PRED_MASK), Prediction.from_score_map("b", np.zeros((10, 12)))]
    m = evaluate(gts, preds, matcher="centroid:3").metrics
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 1)
    # The empty image has no union: left out of nIoU, but its pixels count for Fa.
    assert m["niou"] == pytest.approx(0.4) and m["iou"] == pytest.approx(0.4)
    assert m["fa_e6"] == pytest.approx(1e6 * 1 / 240)


def test_perfect_and_empty_predictions():
    gts = [_gt(GT_MASK)]
    perfect = evaluate(gts, [Prediction.from_score_map("a", GT_MASK > 0)], matcher="iou:0.5").metrics
    assert perfect["precision"] == perfect["recall"] == perfect["f1"] == 1.0
    assert perfect["pd"] == 1.0 and perfect["fa_e6"] == 0.0 and perfect["iou"] == 1.0 and perfect["ap50"] == 1.0
    empty = evaluate(gts, [Prediction.from_score_map("a", np.zeros((10, 12)))], matcher="iou:0.5").metrics
    assert empty["recall"] == 0.0 and empty["tp"] == 0 and empty["fn"] == 3
    assert empty["precision"] is None  # no predictions: undefined, not 0 or 1
    assert empty["pd"] == 0.0 and empty["fa_e6"] == 0.0 and empty["ap50"] == 0.0
    no_pred = evaluate(gts, [], kind="masks")
    assert no_pred.metrics["recall"] == 0.0 and no_pred.counts["images_without_prediction"] == 1


def test_boxes_precision_recall_best_f1_and_ap_hand_computed():
    gt = [("a", boxes_to_targets(BOX_GT, (40, 40)))]
    pred = [Prediction.from_boxes("a", BOX_PRED, BOX_SCORES, (40, 40))]
    r = evaluate(gt, pred, matcher="iou:0.5", conf=0.5)
    m = r.metrics
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 0)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0 and m["f1"] == pytest.approx(0.8)
    # F1 per threshold: 0.9 -> 2/3, 0.8 -> 1/2, 0.6 -> 4/5, 0.3 -> 2/3.
    assert m["best_f1"] == pytest.approx(0.8) and m["best_f1_threshold"] == 0.6
    assert r.curves["pr"]["thresholds"] == [0.3, 0.6, 0.8, 0.9]
    assert r.curves["pr"]["precision"] == pytest.approx([0.5, 2 / 3, 0.5, 1.0])
    assert r.curves["pr"]["recall"] == pytest.approx([1.0, 1.0, 0.5, 0.5])
    # AP: hits at ranks 1 and 3; envelope 1 up to recall 0.5 (51 points), 2/3 above (50 points).
    assert m["ap50"] == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101, abs=1e-9)
    assert m["iou"] is None and m["pd"] is None
    assert r.curves["pd_fa"] is None


def test_size_bins_hand_fixture():
    # GT areas: 4 (<=9), 16 (10-36), 49 (37-81), 100 (>81); predictions hit the first two only,
    # plus a false 3x3 box (area 9, bin <=9).
    gt_boxes = np.array([[0, 0, 2, 2], [10, 0, 14, 4], [20, 0, 27, 7], [40, 0, 50, 10]])
    pred_boxes = np.array([[0, 0, 2, 2], [10, 0, 14, 4], [60, 60, 63, 63]])
    r = evaluate(
        [("a", boxes_to_targets(gt_boxes, (80, 80)))],
        [Prediction.from_boxes("a", pred_boxes, [0.9, 0.9, 0.9], (80, 80))],
        matcher="iou:0.5",
    )
    bins = {b["name"]: b for b in r.size_bins}
    assert [b["name"] for b in r.size_bins] == ["<=9", "10-36", "37-81", ">81"]
    assert (bins["<=9"]["gt"], bins["<=9"]["tp"], bins["<=9"]["pred"], bins["<=9"]["pred_tp"]) == (1, 1, 2, 1)
    assert bins["<=9"]["precision"] == 0.5 and bins["10-36"]["recall"] == 1.0
    assert bins["37-81"]["recall"] == 0.0 and bins[">81"]["recall"] == 0.0
    assert bins[">81"]["precision"] is None


def basicirstd_area_value_fa(pred_mask, gt_mask) -> int:
    """BasicIRSTD's false-alarm pixel count: drop every region whose *area value* equals a
    matched region's area, then add up the remaining areas."""
    pred_regions = list(measure.regionprops(measure.label(pred_mask > 0, connectivity=2)))
    all_areas = [r.area for r in pred_regions]
    matched_areas = []
    for g in measure.regionprops(measure.label(gt_mask > 0, connectivity=2)):
        for k in range(len(pred_regions)):
            if np.linalg.norm(np.subtract(pred_regions[k].centroid, g.centroid)) < 3:
                matched_areas.append(pred_regions[k].area)
                del pred_regions[k]
                break
    return int(sum(a for a in all_areas if a not in matched_areas))


def test_false_alarm_pixels_by_label_not_by_area_value():
    gt, pred = mask_to_targets(FA_GT), mask_to_targets(FA_PRED)
    pd_matched, fa_px, matched = legacy_pd_fa(gt, pred)
    assert pd_matched == 1 and matched.tolist() == [True, False, False]
    # Our count: both false regions, 4 + 3 pixels, the same as a pixel mask of unmatched labels.
    unmatched_mask = np.isin(pred.label_image, np.flatnonzero(~matched) + 1)
    assert fa_px == 7 == int(unmatched_mask.sum())
    # BasicIRSTD's area-value rule misses the false region whose area equals the matched one's.
    assert basicirstd_area_value_fa(FA_PRED, FA_GT) == 3
    m = evaluate([_gt(FA_GT)], [Prediction.from_score_map("a", FA_PRED > 0)]).metrics
    assert m["fa_e6"] == pytest.approx(1e6 * 7 / 256)


def test_pixel_stats_doc_case():
    s = pixel_stats(mask_to_targets(GT_MASK), mask_to_targets(PRED_MASK))
    assert (s.intersection, s.union, s.gt_px, s.pred_px, s.total_px) == (4, 10, 8, 6, 120)


def test_score_map_components_scores_and_curves():
    r = evaluate(
        [_gt(SM_GT)],
        [Prediction.from_score_map("a", SCORE_MAP)],
        matcher="centroid:3",
        conf=0.5,
        levels=[0.25, 0.5, 0.75],
    )
    assert r.kind == "scoremaps"
    # At conf 0.5 only the three pixels of P scoring >= 0.5 form a target; its score is its max, 0.9.
    rec = r.records[0]
    assert rec.pred_scores.tolist() == pytest.approx([0.9]) and rec.pred_area.tolist() == [3]
    m = r.metrics
    assert (m["tp"], m["fp"], m["fn"]) == (1, 0, 0)
    assert m["iou"] == pytest.approx(3 / 4)
    pr = r.curves["pr"]
    assert pr["thresholds"] == [0.25, 0.5, 0.75]
    # 0.25: P (4 px) and Q -> precision 1/2; 0.5: P (3 px); 0.75: the 0.9 pixel.
    assert pr["precision"] == [0.5, 1.0, 1.0] and pr["recall"] == [1.0, 1.0, 1.0]
    pdfa = r.curves["pd_fa"]
    assert pdfa["pd"] == [1.0, 1.0, 1.0]
    assert pdfa["fa_e6"] == pytest.approx([1e6 * 6 / 144, 0.0, 0.0])
    assert m["best_f1"] == 1.0 and m["best_f1_threshold"] == 0.5


def test_level_components_equal_mask_to_targets_at_every_level():
    rng = np.random.default_rng(3)
    levels = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    for connectivity in (4, 8):
        for _ in range(10):
            score_map = (rng.random((30, 26)) ** 3).astype(np.float32)
            comps = level_components(score_map, levels, connectivity)
            for k, level in enumerate(levels):
                ref = mask_to_targets(score_map >= np.float32(level), connectivity=connectivity)
                sel = comps.level == k
                assert comps.boxes[sel].tolist() == ref.boxes.tolist()
                assert comps.area_px[sel].tolist() == ref.area_px.tolist()
                np.testing.assert_array_equal(comps.centroids[sel], ref.centroids)  # one centroid formula


def test_score_map_curve_at_conf_agrees_with_operating_point():
    rng = np.random.default_rng(11)
    gts, preds = [], []
    for i in range(6):
        gt = np.zeros((32, 32), np.uint8)
        gt[rng.integers(2, 28), rng.integers(2, 28)] = 255
        gts.append(_gt(gt, f"s{i}"))
        preds.append(Prediction.from_score_map(f"s{i}", (rng.random((32, 32)) ** 6).astype(np.float32)))
    r = evaluate(gts, preds, matcher="centroid:3", conf=0.5)
    pr = r.curves["pr"]
    k = pr["thresholds"].index(0.5)
    m = r.metrics
    assert pr["recall"][k] == pytest.approx(m["recall"])
    assert pr["precision"][k] == pytest.approx(m["precision"])
    j = r.curves["pd_fa"]["thresholds"].index(0.5)
    assert r.curves["pd_fa"]["pd"][j] == pytest.approx(m["pd"])
    assert r.curves["pd_fa"]["fa_e6"][j] == pytest.approx(m["fa_e6"])


def _pycocotools_ap(gt_per_image, dets, iou_threshold):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns = [], []
    for image_id, boxes in enumerate(gt_per_image, start=1):
        images.append({"id": image_id, "width": 200, "height": 200, "file_name": f"{image_id}.png"})
        for b in boxes:
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [b[0], b[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "target"}]}
        coco.createIndex()
        results = coco.loadRes(
            [
                {"image_id": i, "category_id": 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s}
                for i, b, s in dets
            ]
        )
        e = COCOeval(coco, results, "bbox")
        e.params.iouThrs = np.array([iou_threshold])
        e.params.maxDets = [10000]
        e.params.areaRng = [[0, 1e10]]
        e.params.areaRngLbl = ["all"]
        e.evaluate()
        e.accumulate()
    precision = e.eval["precision"][0, :, 0, 0, 0]
    return float(precision[precision > -1].mean())


@pytest.mark.parametrize("seed", range(8))
def test_ap_equals_pycocotools_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    gt_per_image, dets, gts, preds = [], [], [], []
    for image_id in range(1, 13):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 180, (n, 2))
        wh = rng.uniform(2, 15, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        gt_per_image.append(boxes)
        jitter = boxes + rng.normal(0, 1.5, boxes.shape)
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 0.5)
        extra_xy = rng.uniform(0, 180, (int(rng.integers(0, 4)), 2))
        extra = np.concatenate([extra_xy, extra_xy + rng.uniform(2, 15, extra_xy.shape)], axis=1)
        pboxes = np.clip(np.concatenate([jitter, extra]), 0, 200)
        scores = rng.random(len(pboxes))
        dets += [(image_id, b.tolist(), float(s)) for b, s in zip(pboxes, scores, strict=True)]
        gts.append((f"{image_id}", boxes_to_targets(boxes, (200, 200))))
        preds.append(Prediction.from_boxes(f"{image_id}", pboxes, scores, (200, 200)))
    for threshold in (0.5, 0.7):
        expected = _pycocotools_ap(gt_per_image, dets, threshold)
        r = evaluate(gts, preds, matcher=f"iou:{threshold}", conf=0.5)
        assert r.metrics["ap"] == pytest.approx(expected, abs=1e-6)
        if threshold == 0.5:
            assert r.metrics["ap50"] == pytest.approx(expected, abs=1e-6)


def test_coco_average_precision_edge_cases():
    assert coco_average_precision(np.zeros(0), np.zeros(0, bool), 0) is None
    assert coco_average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    assert coco_average_precision(np.array([0.5]), np.array([True]), 1) == pytest.approx(1.0)


def test_evaluate_input_errors():
    gt = [_gt(GT_MASK)]
    with pytest.raises(InputError, match="conf"):
        evaluate(gt, [], conf=0.0)
    with pytest.raises(InputError, match="two predictions"):
        evaluate(gt, [Prediction.from_score_map("a", PRED_MASK)] * 2)
    with pytest.raises(InputError, match="12x10"):
        evaluate(gt, [Prediction.from_score_map("a", np.zeros((5, 5)))])
    with pytest.raises(InputError, match="has no prediction"):
        evaluate(gt, [], strict=True)
    with pytest.raises(InputError, match="mix"):
        evaluate(gt, [Prediction.from_score_map("a", PRED_MASK), Prediction.from_boxes("b", [[0, 0, 1, 1]], [1])])
    with pytest.raises(InputError, match="outside"):
        evaluate(gt, [Prediction.from_boxes("a", [[0, 0, 20, 5]], [0.5])])
    with pytest.raises(InputError, match="NaN"):
        Prediction.from_score_map("a", np.full((3, 3), np.nan))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        Prediction.from_score_map("a", np.full((3, 3), 2.0))
    with pytest.raises(InputError, match="x1 < x0"):
        Prediction.from_boxes("a", [[5, 0, 1, 1]], [0.5])
    resized = evaluate(gt, [Prediction.from_score_map("a", np.zeros((5, 6)))], resize=True)
    assert resized.counts["predictions_resized"] == 1


def test_boxes_slightly_outside_are_clipped_and_counted():
    gt = [("a", boxes_to_targets(np.array([[8, 8, 12, 10]]), (10, 12)))]
    r = evaluate(gt, [Prediction.from_boxes("a", [[8, 8, 12.6, 10.4]], [0.9])], matcher="iou:0.5")
    assert r.counts["boxes_clipped"] == 1
    assert r.metrics["tp"] == 1 and r.records[0].pred_boxes.tolist() == [[8, 8, 12, 10]]


def test_prediction_for_unknown_image_is_counted():
    r = evaluate([_gt(GT_MASK)], [Prediction.from_score_map("a", PRED_MASK), Prediction.from_score_map("z", PRED_MASK)])
    assert r.counts["predictions_not_in_split"] == 1 and r.counts["images"] == 1


def test_image_records_survive_pickling_exactly():
    """Records travel from worker processes packed as bytes; every field must come back equal."""
    import dataclasses
    import pickle

    r = evaluate([_gt(GT_MASK)], [Prediction.from_score_map("a", PRED_MASK)])
    record = r.records[0]
    back = pickle.loads(pickle.dumps(record))
    for f in dataclasses.fields(record):
        ours, theirs = getattr(back, f.name), getattr(record, f.name)
        if isinstance(theirs, np.ndarray):
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            np.testing.assert_array_equal(ours, theirs)
        else:
            assert ours == theirs, f.name


def test_ap50_of_a_score_map_is_undefined_under_a_non_iou_matcher():
    """What AP50 0.000 next to a good F1 came from, and the rule that replaces it.

    A score map's AP candidates are its components at ``conf``. At the high threshold a
    centroid matcher picks, each component is the target's peak pixel: its centroid is the
    target's (a hit at ``centroid:3``), its 1 x 1 box has IoU 1/25 with the 5 x 5 target, so
    box AP50 would be 0 by construction. Under a non-IoU matcher the evaluator writes ``null``
    and the reason; under ``iou:T``, and for masks and boxes, AP50 stays a number.
    """
    from irstd_bench.evaluate import ap50_undefined

    gt_mask = np.zeros((20, 20), np.uint8)
    gt_mask[5:10, 5:10] = 255
    score_map = np.zeros((20, 20), np.float32)
    score_map[5:10, 5:10] = 0.6
    score_map[7, 7] = 0.95  # the peak, at the target's centroid
    gt = [_gt(gt_mask)]
    peak = evaluate(gt, [Prediction.from_score_map("a", score_map)], matcher="centroid:3", conf=0.9)
    assert (peak.metrics["tp"], peak.metrics["fp"]) == (1, 0) and peak.records[0].pred_area.tolist() == [1]
    assert peak.metrics["ap"] == pytest.approx(1.0) and peak.records[0].ap50_hits.tolist() == [False]  # what gave 0.000
    assert peak.metrics["ap50"] is None
    assert peak.settings["ap"]["ap50_undefined"] == ap50_undefined("scoremaps", "centroid:3")
    assert "centroid:3" in peak.settings["ap"]["ap50_undefined"]
    for matcher in ("legacy-pd", "nwd:0.5"):
        assert evaluate(gt, [Prediction.from_score_map("a", score_map)], matcher=matcher, conf=0.9).metrics[
            "ap50"
        ] is None
    # Under IoU the threshold is chosen for extents: AP50 is a number (here the whole 5 x 5 blob at 0.5).
    blob = evaluate(gt, [Prediction.from_score_map("a", score_map)], matcher="iou:0.5", conf=0.5)
    assert blob.metrics["ap50"] == pytest.approx(1.0) and blob.settings["ap"]["ap50_undefined"] is None
    # Masks and boxes have their extents whatever conf is: a number under any matcher.
    mask = evaluate(gt, [Prediction.from_score_map("a", score_map >= 0.9)], matcher="centroid:3")
    assert mask.kind == "masks" and mask.metrics["ap50"] == 0.0
    boxes = evaluate(
        gt, [Prediction.from_boxes("a", [[5, 5, 10, 10]], [0.9], (20, 20))], matcher="centroid:3", conf=0.5
    )
    assert boxes.metrics["ap50"] == pytest.approx(1.0)
    assert [ap50_undefined(k, "centroid:3") is None for k in ("boxes", "masks", "scoremaps")] == [True, True, False]
    assert ap50_undefined("scoremaps", "iou:0.3") is None


def test_a_score_map_component_scores_the_maximum_of_its_own_pixels_when_components_share_rows():
    """Two components side by side on the same rows: raster order interleaves their pixels, and
    each must still score the maximum of its own pixels (left 0.9 on its second row, right 0.7)."""
    from irstd_bench.targets import component_max

    gt_mask = np.zeros((8, 12), np.uint8)
    gt_mask[2:4, 2:4] = 255
    gt_mask[2:4, 7:9] = 255
    score_map = np.zeros((8, 12), np.float32)
    score_map[2:4, 2:4] = [[0.55, 0.55], [0.9, 0.55]]  # left: its maximum on the second row
    score_map[2:4, 7:9] = [[0.7, 0.6], [0.6, 0.6]]  # right: its maximum on the first row
    targets = mask_to_targets(score_map >= 0.5)
    assert len(targets) == 2 and targets.boxes[:, 0].tolist() == [2, 7]
    assert component_max(targets, score_map).tolist() == pytest.approx([0.9, 0.7])
    r = evaluate([_gt(gt_mask)], [Prediction.from_score_map("a", score_map)], matcher="centroid:3", conf=0.5)
    assert r.records[0].pred_scores.tolist() == pytest.approx([0.9, 0.7])
    # The scores rank the AP candidates: at a threshold between 0.7 and 0.9 only the left one is kept.
    assert r.records[0].ap_scores.tolist() == pytest.approx([0.9, 0.7])


def test_size_bin_precision_counts_each_prediction_in_the_bin_of_its_own_area():
    """A 4 x 4 prediction (area 16, bin 10-36) hits a 2 x 2 target (area 4, bin <=9) by centroid;
    a false 2 x 2 prediction lies elsewhere. Precision per bin follows the predictions' areas."""
    gt_boxes = np.array([[10, 10, 12, 12], [40, 40, 47, 47]])  # areas 4 (<=9) and 49 (37-81)
    pred_boxes = np.array([[9, 9, 13, 13], [60, 0, 62, 2]])  # areas 16 (10-36, the hit) and 4 (<=9, false)
    r = evaluate(
        [("a", boxes_to_targets(gt_boxes, (80, 80)))],
        [Prediction.from_boxes("a", pred_boxes, [0.9, 0.8], (80, 80))],
        matcher="centroid:3",
    )
    assert (r.metrics["tp"], r.metrics["fp"]) == (1, 1)
    bins = {b["name"]: b for b in r.size_bins}
    assert (bins["<=9"]["gt"], bins["<=9"]["tp"], bins["<=9"]["recall"]) == (1, 1, 1.0)
    assert (bins["<=9"]["pred"], bins["<=9"]["pred_tp"], bins["<=9"]["precision"]) == (1, 0, 0.0)
    assert (bins["10-36"]["gt"], bins["10-36"]["pred"], bins["10-36"]["pred_tp"]) == (0, 1, 1)
    assert bins["10-36"]["precision"] == 1.0 and bins["10-36"]["recall"] is None
    assert (bins["37-81"]["gt"], bins["37-81"]["tp"], bins["37-81"]["pred"]) == (1, 0, 0)


@pytest.mark.parametrize("conf", [0.3, 0.5, 0.7])
def test_score_map_pixels_at_exactly_half_are_foreground_whatever_the_threshold(conf):
    """The pixel metrics take a score map's pixels ``>= 0.5``: a target whose pixels score exactly
    0.5 (its centre 0.9) is all foreground at every ``conf``, and so is a component at conf 0.5."""
    gt_mask = np.zeros((12, 12), np.uint8)
    gt_mask[4:7, 4:7] = 255
    score_map = np.zeros((12, 12), np.float32)
    score_map[4:7, 4:7] = 0.5
    score_map[5, 5] = 0.9
    m = evaluate([_gt(gt_mask)], [Prediction.from_score_map("a", score_map)], matcher="centroid:3", conf=conf).metrics
    assert m["iou"] == 1.0 and m["niou"] == 1.0 and m["pd"] == 1.0 and m["fa_e6"] == 0.0
    assert m["tp"] == 1
    if conf <= 0.5:  # the kept component is the whole 3 x 3 target, its 0.5 pixels included
        iou_run = evaluate([_gt(gt_mask)], [Prediction.from_score_map("a", score_map)], matcher="iou:1", conf=conf)
        assert iou_run.metrics["tp"] == 1 and iou_run.records[0].pred_area.tolist() == [9]


def test_ap50_under_a_centroid_matcher_pairs_boxes_at_iou_half_only():
    """Boxes under centroid:3: the first prediction is a centroid hit with IoU 0.36, the second a
    centroid miss (exactly 3 px) with IoU 0.74. ``ap`` follows the matcher, ``ap50`` box IoU alone."""
    gt_boxes = np.array([[5, 5, 10, 10], [20, 20, 40, 40]])
    pred_boxes = np.array([[5, 5, 8, 8], [20, 17, 40, 37]])
    r = evaluate(
        [("a", boxes_to_targets(gt_boxes, (64, 64)))],
        [Prediction.from_boxes("a", pred_boxes, [0.9, 0.8], (64, 64))],
        matcher="centroid:3",
    )
    assert r.records[0].ap_hits.tolist() == [True, False] and r.records[0].ap50_hits.tolist() == [False, True]
    assert r.metrics["ap"] == pytest.approx(51 / 101)  # precision 1 up to recall 0.5
    assert r.metrics["ap50"] == pytest.approx(51 * 0.5 / 101)  # the hit comes second: precision 0.5
