"""Split-level metrics from counts: precision / recall / F1, COCO-style AP and size bins."""

from __future__ import annotations

import numpy as np

from irstd_bench.targets import SIZE_BINS, size_bin_index

#: COCO's recall points for interpolated AP: 0, 0.01, ..., 1.
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)



def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, ``None`` when the denominator is 0 (undefined)."""
    return float(numerator) / float(denominator) if denominator else None


def prf(tp: int, n_pred: int, n_gt: int) -> dict[str, float | None]:
    """Precision ``tp / n_pred``, recall ``tp / n_gt`` and F1 ``2 tp / (n_pred + n_gt)``.

    A ratio with a zero denominator is ``None`` (no predictions: precision undefined).

    Examples
    --------
    >>> prf(3, 4, 6)
    {'precision': 0.75, 'recall': 0.5, 'f1': 0.6}
    """
    return {"precision": ratio(tp, n_pred), "recall": ratio(tp, n_gt), "f1": f1_score(tp, n_pred, n_gt)}


def f1_score(tp: int, n_pred: int, n_gt: int) -> float | None:
    """F1 ``2 tp / (n_pred + n_gt)`` (the harmonic mean of precision and recall); ``None`` when
    there are neither predictions nor ground truth. The one F1 formula of the evaluator."""
    return ratio(2 * tp, n_pred + n_gt)


def coco_average_precision(scores: np.ndarray, hits: np.ndarray, n_gt: int) -> float | None:
    """COCO's 101-point interpolated average precision.

    Parameters
    ----------
    scores : ndarray (D,)
        Scores of all detections of the split, concatenated image by image, each image's
        detections in decreasing score (ties: the order of ``pycocotools``).
    hits : ndarray (D,) bool
        Whether each detection is a true positive (COCO's score-ordered greedy assignment).
    n_gt : int
        Ground-truth targets of the split.

    Returns
    -------
    float or None
        Mean over recall points ``r in {0, 0.01, ..., 1}`` of the largest precision at a recall
        ``>= r`` (0 where that recall is never reached); ``None`` without ground truth.
    """
    if n_gt == 0:
        return None
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    hit = np.asarray(hits, bool)[order]
    tps = np.cumsum(hit)
    fps = np.cumsum(~hit)
    recall = tps / n_gt
    precision = tps / (tps + fps + np.spacing(1))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
    reached = at < len(envelope)
    q = np.where(reached, envelope[np.minimum(at, len(envelope) - 1)], 0.0)
    return float(q.mean())


def size_bins(gt_area, gt_hit, pred_area, pred_hit) -> list[dict]:
    """Recall by ground-truth area and precision by predicted area, per :data:`SIZE_BINS`."""
    g = size_bin_index(gt_area)
    p = size_bin_index(pred_area)
    gt_hit, pred_hit = np.asarray(gt_hit, bool), np.asarray(pred_hit, bool)
    out = []
    for i, (name, low, high) in enumerate(SIZE_BINS):
        n_gt, tp = int(np.count_nonzero(g == i)), int(np.count_nonzero(gt_hit[g == i]))
        n_pred, pred_tp = int(np.count_nonzero(p == i)), int(np.count_nonzero(pred_hit[p == i]))
        out.append(
            {
                "name": name,
                "min_area_px": low,
                "max_area_px": high,
                "gt": n_gt,
                "tp": tp,
                "recall": ratio(tp, n_gt),
                "pred": n_pred,
                "pred_tp": pred_tp,
                "precision": ratio(pred_tp, n_pred),
            }
        )
    return out
