"""Split-level metrics from counts: precision / recall / F1, COCO-style AP and size bins."""

from __future__ import annotations

import numpy as np

from irstd_bench.targets import SIZE_BINS, size_bin_index

#: COCO's recall points for interpolated AP: 0, 0.01, ..., 1.
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)



def ratio(numerator, denominator):
    """``numerator / denominator``, undefined where the denominator is 0: ``None`` for two
    numbers, NaN in arrays (the bootstrap's resamples, :mod:`irstd_bench.evaluate._bootstrap`).

    Examples
    --------
    >>> ratio(1, 4), ratio(1, 0)
    (0.25, None)
    >>> ratio(np.array([1, 1]), np.array([4, 0])).tolist()
    [0.25, nan]
    """
    if np.ndim(numerator) == 0 and np.ndim(denominator) == 0:
        return float(numerator) / float(denominator) if denominator else None
    num, den = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    return np.divide(num, den, out=out, where=den != 0)


def prf(tp: int, n_pred: int, n_gt: int) -> dict[str, float | None]:
    """Precision ``tp / n_pred``, recall ``tp / n_gt`` and F1 ``2 tp / (n_pred + n_gt)``.

    A ratio with a zero denominator is ``None`` (no predictions: precision undefined).

    Examples
    --------
    >>> prf(3, 4, 6)
    {'precision': 0.75, 'recall': 0.5, 'f1': 0.6}
    """
    return {"precision": ratio(tp, n_pred), "recall": ratio(tp, n_gt), "f1": f1_score(tp, n_pred, n_gt)}


def f1_score(tp, n_pred, n_gt):
    """F1 ``2 tp / (n_pred + n_gt)`` (the harmonic mean of precision and recall); ``None`` when
    there are neither predictions nor ground truth (NaN in arrays, :func:`ratio`). The one F1
    formula of the evaluator, for a split and for its bootstrap resamples alike."""
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
    return float(interpolated_precision(np.cumsum(hit), np.cumsum(~hit), n_gt)[0])


def interpolated_precision(tps: np.ndarray, fps: np.ndarray, n_gt) -> np.ndarray:
    """COCO's 101-point interpolated precision of ranked detections, row by row.

    The one AP formula of the evaluator: :func:`coco_average_precision` gives it one row, the
    bootstrap (:func:`irstd_bench.evaluate._bootstrap.resampled_ap`) one row per resample.

    Parameters
    ----------
    tps, fps : ndarray (K,) or (B, K)
        True and false positives among the detections ranked up to each of ``K`` points, in
        decreasing score (non-decreasing along the last axis); whole numbers.
    n_gt : int or ndarray (B,)
        Ground-truth targets of each row, ``> 0``.

    Returns
    -------
    ndarray (B,) float64
        Mean over recall points ``r in {0, 0.01, ..., 1}`` of the largest precision at a recall
        ``>= r`` (0 where that recall is never reached; all 0 when ``K`` is 0).
    """
    tps, fps = np.atleast_2d(tps), np.atleast_2d(fps)
    rows, k = tps.shape
    out = np.zeros(rows)
    if k == 0:
        return out
    n_gt = np.broadcast_to(np.asarray(n_gt), (rows,))
    recall = tps / n_gt[:, None]
    precision = tps / (tps + fps + np.spacing(1))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    for row in range(rows):
        at = np.searchsorted(recall[row], COCO_RECALL_POINTS, side="left")
        reached = at < k
        out[row] = np.where(reached, envelope[row, np.minimum(at, k - 1)], 0.0).mean()
    return out


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
