"""Counts over confidence thresholds: precision-recall and Pd-Fa curves.

Boxes: every distinct score is a threshold (a box is kept when its score is ``>=`` the
threshold); per image the number of matches of the kept prefix is recomputed only when a kept
box has an allowed partner, and the images' step functions are merged exactly.

Score maps: a fixed list of levels. A pixel is foreground at level ``t`` when its score is
``>= t``; the components of all levels are labelled in one call on a stack of the level masks
(a 3-D structuring element that joins pixels within a level only), cropped to the pixels above
the lowest level, so the cost follows the foreground, not the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from irstd_bench.evaluate._matching import Matcher
from irstd_bench.evaluate._pixel_metrics import LEGACY_PD, legacy_counts
from irstd_bench.targets import CONNECTIVITY_STRUCTURES, Targets, pixel_centroids

#: Default score-map levels of the curves: 0.04, 0.08, ..., 0.96 (the run's ``conf`` is added).
CURVE_LEVEL_COUNT = 25
DEFAULT_CURVE_LEVELS = tuple(round(i / CURVE_LEVEL_COUNT, 4) for i in range(1, CURVE_LEVEL_COUNT))

#: Curves saved in the results JSON are thinned to at most this many points.
MAX_CURVE_POINTS = 256


@dataclass
class CurveCounts:
    """Counts of one image (or of a split) at a list of confidence thresholds.

    The one curve type of every prediction kind: boxes have their distinct scores as
    thresholds (decreasing), score maps the run's levels (increasing), masks the run's
    ``conf`` alone. A prediction is kept at threshold ``t`` when its score is ``>= t``; between
    two thresholds the counts are those of the next larger one (a step function).

    Attributes
    ----------
    thresholds : ndarray (K,) float64
    tp, kept : ndarray (K,) int64
        Matches of the run's matcher and kept predictions.
    pd_matched, fa_px : ndarray (K,) int64 or None
        Legacy Pd matches and false-alarm pixels (score maps only).
    """

    thresholds: np.ndarray
    tp: np.ndarray
    kept: np.ndarray
    pd_matched: np.ndarray | None = None
    fa_px: np.ndarray | None = None

    @classmethod
    def empty(cls) -> CurveCounts:
        return cls(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))


def box_threshold_counts(scores: np.ndarray, valid: np.ndarray, matcher: Matcher) -> CurveCounts:
    """Matches and kept boxes of one image at each of its distinct scores.

    Parameters
    ----------
    scores : ndarray (P,)
    valid : ndarray (P, G) bool
        Allowed pairs of every box (kept or not) with the ground truth.

    Returns
    -------
    CurveCounts
        ``thresholds``: the distinct scores, decreasing; ``tp``, ``kept``: matches and kept
        boxes when boxes with score ``>= thresholds[k]`` are kept.
    """
    if len(scores) == 0:
        return CurveCounts.empty()
    order = np.argsort(-scores, kind="mergesort")
    s, v = scores[order], valid[order]
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    has_partner = v.any(1) if v.shape[1] else np.zeros(len(s), bool)
    tp = np.zeros(len(ends), np.int64)
    current, start = 0, 0
    for k, end in enumerate(ends):
        if has_partner[start : end + 1].any():
            current = matcher.count(v[: end + 1])
        tp[k] = current
        start = end + 1
    return CurveCounts(s[ends].astype(np.float64), tp, (ends + 1).astype(np.int64))


def merge_counts(per_image: list[CurveCounts]) -> CurveCounts:
    """Add up the images' step functions at every threshold any image has.

    Exact for boxes (each image's counts at a threshold are those of its next larger own
    threshold) and for maps (every image has every level). Returns thresholds decreasing.
    """
    parts = [_decreasing(p) for p in per_image if len(p.thresholds)]
    if not parts:
        return CurveCounts.empty()
    thr = np.concatenate([p.thresholds for p in parts])
    d_tp = np.concatenate([np.diff(p.tp, prepend=0) for p in parts])  # steps as the threshold falls
    d_kept = np.concatenate([np.diff(p.kept, prepend=0) for p in parts])
    order = np.argsort(-thr, kind="mergesort")
    thr, d_tp, d_kept = thr[order], d_tp[order], d_kept[order]
    ends = np.flatnonzero(np.append(thr[1:] != thr[:-1], True))
    return CurveCounts(thr[ends], np.cumsum(d_tp)[ends], np.cumsum(d_kept)[ends])


def _decreasing(curve: CurveCounts) -> CurveCounts:
    if len(curve.thresholds) < 2 or curve.thresholds[0] > curve.thresholds[-1]:
        return curve
    return CurveCounts(curve.thresholds[::-1], curve.tp[::-1], curve.kept[::-1])


@dataclass
class LevelComponents:
    """Connected components of a score map at several levels (all levels together).

    ``level`` gives the level index of each component; within a level components keep
    scipy's labelling order (raster order of their first pixel), as :func:`mask_to_targets`.
    """

    level: np.ndarray
    boxes: np.ndarray
    centroids: np.ndarray
    area_px: np.ndarray


def level_components(score_map: np.ndarray, levels: np.ndarray, connectivity: int) -> LevelComponents:
    """Components of ``score_map >= level`` for each of ``levels`` (increasing).

    Examples
    --------
    >>> m = np.array([[0.9, 0.3, 0.0, 0.6]])
    >>> c = level_components(m, np.array([0.2, 0.5]), 8)
    >>> c.level.tolist(), c.area_px.tolist()
    ([0, 0, 1, 1], [2, 1, 1, 1])
    """
    empty = LevelComponents(
        np.zeros(0, np.int64), np.zeros((0, 4), np.int64), np.zeros((0, 2)), np.zeros(0, np.int64)
    )
    levels = np.asarray(levels, np.float64)
    low = score_map >= levels[0]
    if not low.any():
        return empty
    r = np.flatnonzero(low.any(1))
    c = np.flatnonzero(low.any(0))
    r0, c0 = int(r[0]), int(c[0])
    crop = score_map[r0 : r[-1] + 1, c0 : c[-1] + 1]
    active = levels[levels <= float(crop.max())]
    stack = crop[None, :, :] >= active[:, None, None].astype(crop.dtype)  # (L, h, w)
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = CONNECTIVITY_STRUCTURES[connectivity]
    labels, count = ndimage.label(stack, structure=structure)
    if count == 0:
        return empty
    slices = ndimage.find_objects(labels)
    level = np.array([s[0].start for s in slices], np.int64)
    boxes = np.array(
        [[s[2].start + c0, s[1].start + r0, s[2].stop + c0, s[1].stop + r0] for s in slices], np.int64
    )
    flat = labels.ravel()
    idx = np.flatnonzero(flat)  # level by level, each level in raster order
    lab = flat[idx]
    h, w = crop.shape
    area = np.bincount(lab, minlength=count + 1)[1:]
    # Absolute rows and columns: the same sums, hence the same centroids, as mask_to_targets.
    centroids = pixel_centroids(lab, (idx // w) % h + r0, idx % w + c0, count)
    return LevelComponents(level, boxes, centroids, area.astype(np.int64))


def score_map_level_counts(
    score_map: np.ndarray,
    gt: Targets,
    levels: np.ndarray,
    matcher: Matcher,
    connectivity: int,
) -> CurveCounts:
    """Per level (increasing): matches by ``matcher``, kept components, legacy Pd matches and
    Fa pixels (:func:`~irstd_bench.evaluate._pixel_metrics.legacy_counts`)."""
    n_levels = len(levels)
    out = {k: np.zeros(n_levels, np.int64) for k in ("tp", "kept", "pd_matched", "fa_px")}
    comps = level_components(score_map.astype(np.float32, copy=False), levels, connectivity)
    bounds = np.searchsorted(comps.level, np.arange(n_levels + 1))
    if comps.level.size:
        _, valid = matcher.pair_matrix(comps.boxes, comps.centroids, gt.boxes, gt.centroids)
        _, near = LEGACY_PD.pair_matrix(comps.boxes, comps.centroids, gt.boxes, gt.centroids)
    for k in range(n_levels if comps.level.size else 0):
        a, b = bounds[k], bounds[k + 1]
        if a == b:
            continue
        out["kept"][k] = b - a
        out["tp"][k] = matcher.count(valid[a:b])
        out["pd_matched"][k], out["fa_px"][k], _ = legacy_counts(near[a:b], comps.area_px[a:b])
    return CurveCounts(np.asarray(levels, np.float64), **out)


def thin_indices(n: int, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    """At most ``limit`` evenly spread indices of ``range(n)``, first and last included."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(np.int64))
