"""The split's metrics from per-image records, one small function per metric family.

:func:`summarise` calls, in turn, :func:`counting_metrics` (TP/FP/FN, precision, recall, F1 at
``conf``), :func:`best_f1` (over the PR curve), :func:`average_precisions` (``ap50`` and ``ap``),
:func:`pixel_metrics` (IoU, nIoU, Pd, Fa), :func:`curves`, :func:`size_bin_table` and
:func:`counts`; then the per-image data (:class:`PerImageData`) and, from it, the metrics'
bootstrap intervals (``metrics["ci95"]``, :func:`~irstd_bench.evaluate._bootstrap.bootstrap_intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from irstd_bench.evaluate._bootstrap import BootstrapSettings, bootstrap_intervals
from irstd_bench.evaluate._curves import CurveCounts, merge_counts, thin_indices
from irstd_bench.evaluate._matching import UNMATCHED, Matcher
from irstd_bench.evaluate._metrics import coco_average_precision, f1_score, prf, ratio, size_bins
from irstd_bench.evaluate._per_image import PerImageData
from irstd_bench.evaluate._records import ImageRecord, ap50_undefined

#: Fa is reported per million pixels (``fa_e6``).
PER_MILLION = 1e6


def counting_metrics(records: Sequence[ImageRecord]) -> dict:
    """``tp fp fn precision recall f1`` of the predictions kept at ``conf``."""
    n_gt = sum(len(r.gt_boxes) for r in records)
    n_pred = sum(len(r.pred_scores) for r in records)
    tp = sum(r.tp for r in records)
    return {"tp": tp, "fp": n_pred - tp, "fn": n_gt - tp, **prf(tp, n_pred, n_gt)}


def pr_counts(records: Sequence[ImageRecord], kind: str) -> CurveCounts:
    """The split's PR counts: the images' curves added up. Thresholds decrease for boxes and
    increase for maps (the order in which :func:`best_f1` breaks ties)."""
    merged = merge_counts([r.curve for r in records])
    if kind == "boxes":
        return merged
    return CurveCounts(merged.thresholds[::-1], merged.tp[::-1], merged.kept[::-1])


def best_f1(pr: CurveCounts, n_gt: int, f1_at_conf: float | None, conf: float) -> dict:
    """The largest F1 over the PR curve and its threshold.

    Ties go to the first threshold in ``pr`` order: the highest score for boxes, the lowest
    level for maps. Without ground truth and predictions: F1 at ``conf``.
    """
    f1_curve = np.array([f1_score(t, k, n_gt) or 0.0 for t, k in zip(pr.tp, pr.kept, strict=True)])
    if len(f1_curve) and (n_gt or pr.kept.any()):
        best = int(np.argmax(f1_curve))
        return {"best_f1": float(f1_curve[best]), "best_f1_threshold": float(pr.thresholds[best])}
    return {"best_f1": f1_at_conf, "best_f1_threshold": conf}


def average_precisions(
    records: Sequence[ImageRecord], n_gt: int, max_dets: int | None = None, *, with_ap50: bool = True
) -> dict:
    """``ap50`` (box IoU >= 0.5) and ``ap`` (the run's matcher), COCO 101-point.

    ``max_dets`` keeps each image's ``max_dets`` highest-scored candidates (ties: input order),
    as pycocotools' ``maxDets``; ``None`` keeps every candidate. ``with_ap50=False``: ``ap50`` is
    ``None`` (undefined for the run, :func:`~irstd_bench.evaluate._records.ap50_undefined`).
    """
    if not records:
        return {"ap50": None, "ap": None}
    cap = slice(None) if max_dets is None else slice(0, int(max_dets))
    scores = np.concatenate([r.ap_scores[cap] for r in records])
    ap50 = None
    if with_ap50:
        ap50 = coco_average_precision(scores, np.concatenate([r.ap50_hits[cap] for r in records]), n_gt)
    return {"ap50": ap50, "ap": coco_average_precision(scores, np.concatenate([r.ap_hits[cap] for r in records]), n_gt)}


def pixel_metrics(records: Sequence[ImageRecord], n_gt: int) -> dict:
    """``iou`` (split-summed), ``niou`` (mean of the per-image IoUs), ``pd`` and ``fa_e6``;
    ``None`` each unless every image has pixel statistics (maps against masks)."""
    if not records or any(r.pixels is None for r in records):
        return {"iou": None, "niou": None, "pd": None, "fa_e6": None}
    px = [r.pixels for r in records]
    per_image = [p.iou for p in px if p.iou is not None]
    total = sum(p.total_px for p in px)
    return {
        "iou": ratio(sum(p.intersection for p in px), sum(p.union for p in px)),
        "niou": float(np.mean(per_image)) if per_image else None,
        "pd": ratio(sum(p.pd_matched for p in px), n_gt),
        "fa_e6": PER_MILLION * sum(p.fa_px for p in px) / total if total else None,
    }


def _curve_values(values) -> list:
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


def curves(records: Sequence[ImageRecord], pr: CurveCounts, kind: str, levels: np.ndarray, n_gt: int) -> dict:
    """``pr`` (thresholds increasing, thinned) and, for score maps, ``pd_fa`` at every level."""
    order = np.argsort(pr.thresholds, kind="mergesort")
    keep = order[thin_indices(len(order))]
    tp, kept = pr.tp[keep], pr.kept[keep]
    out: dict = {
        "pr": {
            "thresholds": _curve_values(pr.thresholds[keep]),
            "precision": _curve_values([ratio(t, k) if k else math.nan for t, k in zip(tp, kept, strict=True)]),
            "recall": _curve_values([t / n_gt if n_gt else math.nan for t in tp]),
        },
        "pd_fa": None,
    }
    if kind == "scoremaps" and records and all(r.pixels is not None for r in records):
        pd_counts = np.sum([r.curve.pd_matched for r in records], axis=0)
        fa_counts = np.sum([r.curve.fa_px for r in records], axis=0)
        total = sum(r.pixels.total_px for r in records)
        out["pd_fa"] = {
            "thresholds": _curve_values(levels),
            "pd": _curve_values(pd_counts / n_gt if n_gt else np.full(len(levels), math.nan)),
            "fa_e6": _curve_values(PER_MILLION * fa_counts / total),
        }
    return out


def size_bin_table(records: Sequence[ImageRecord]) -> list[dict]:
    """Recall by ground-truth area and precision by predicted area (:func:`size_bins`)."""
    if not records:
        return size_bins(np.zeros(0), np.zeros(0, bool), np.zeros(0), np.zeros(0, bool))
    offsets = np.cumsum([0] + [len(r.gt_boxes) for r in records[:-1]])
    matched = np.concatenate([r.pred_to_gt + offset for r, offset in zip(records, offsets, strict=True)])
    pred_hit = np.concatenate([r.pred_to_gt != UNMATCHED for r in records])
    gt_area = np.concatenate([r.gt_area for r in records])
    gt_hit = np.zeros(len(gt_area), bool)
    gt_hit[matched[pred_hit]] = True
    return size_bins(gt_area, gt_hit, np.concatenate([r.pred_area for r in records]), pred_hit)


def counts(records: Sequence[ImageRecord], predictions_not_in_split: int) -> dict:
    """Images, targets and the warnings' counts."""
    return {
        "images": len(records),
        "gt_targets": int(sum(len(r.gt_boxes) for r in records)),
        "pred_targets": int(sum(len(r.pred_scores) for r in records)),
        "images_without_prediction": sum(not r.has_prediction for r in records),
        "predictions_not_in_split": int(predictions_not_in_split),
        "boxes_clipped": int(sum(r.boxes_clipped for r in records)),
        "predictions_resized": sum(r.prediction_resized for r in records),
        "gt_masks_resized": sum(r.gt_resized for r in records),
        "gt_masks_nonbinary": sum(r.gt_nonbinary for r in records),
    }


def summarise(
    records: Sequence[ImageRecord],
    *,
    conf: float,
    kind: str,
    levels: np.ndarray,
    matcher: Matcher,
    predictions_not_in_split: int = 0,
    max_dets: int | None = None,
    bootstrap: BootstrapSettings | None = None,
) -> dict:
    """Split metrics, counts, size bins, curves and the per-image data from per-image records
    (scored with ``matcher``); ``metrics["ci95"]`` when ``bootstrap`` has resamples."""
    n_gt = int(sum(len(r.gt_boxes) for r in records))
    metrics = counting_metrics(records)
    pr = pr_counts(records, kind)
    metrics.update(best_f1(pr, n_gt, metrics["f1"], conf))
    with_ap50 = ap50_undefined(kind, matcher) is None
    metrics.update(average_precisions(records, n_gt, max_dets, with_ap50=with_ap50))
    metrics.update(pixel_metrics(records, n_gt))
    per_image = PerImageData.from_records(records, max_dets, with_ap50=with_ap50)
    if bootstrap is not None and bootstrap.resamples:
        metrics["ci95"] = bootstrap_intervals(per_image, metrics, bootstrap)
    return {
        "metrics": metrics,
        "per_image": per_image,
        "counts": counts(records, predictions_not_in_split),
        "size_bins": size_bin_table(records),
        "curves": curves(records, pr, kind, levels, n_gt),
    }
