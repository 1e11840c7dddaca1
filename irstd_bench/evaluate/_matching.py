"""Matching predicted targets to ground-truth targets, one to one.

A *matcher* decides which (prediction, ground truth) pairs may be matched and how good each
pair is (:meth:`Matcher.pair_matrix`); an *assignment* then picks the pairs
(:meth:`Matcher.assign`, or :meth:`Matcher.count` when only their number is needed). Every
caller -- :func:`match_targets`, the evaluator's per-image scoring and the curves -- goes
through these two methods. Three assignments are used:

- ``optimal`` (:func:`match_targets` for ``iou``, ``nwd`` and ``centroid``): the largest possible
  number of matches among the allowed pairs, and among those the largest total similarity
  (Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`).
- ``legacy`` (``legacy-pd``, and always for Pd/Fa): BasicIRSTD's greedy rule. Ground-truth
  targets are taken in label order; each takes the first still-unmatched predicted component,
  in label order, whose centroid is closer than 3 px.
- ``score-ordered greedy`` (:func:`greedy_by_score`, for AP only): COCO's rule. Predictions in
  decreasing score take the allowed, still-unmatched ground truth of highest similarity.

Matrices are ``(P, G)``: one row per prediction, one column per ground-truth target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from irstd_bench.boxes import DEFAULT_NWD_CONSTANT
from irstd_bench.errors import InputError

#: Marker in ``pred_to_gt`` / ``gt_to_pred`` for a target without a partner.
UNMATCHED = -1

#: The field's Pd rule: a prediction detects a target when their centroids are closer than this.
LEGACY_PD_DISTANCE_PX = 3.0

#: Defaults when a matcher spec gives no threshold (``iou``, ``nwd``, ``centroid``).
DEFAULT_THRESHOLDS = {"iou": 0.5, "nwd": 0.5, "centroid": LEGACY_PD_DISTANCE_PX}

MATCHER_KINDS = ("iou", "nwd", "centroid", "legacy-pd")


@dataclass(frozen=True)
class Matcher:
    """Which pairs of targets may be matched, and how good a pair is.

    Attributes
    ----------
    kind : {"iou", "nwd", "centroid", "legacy-pd"}
    threshold : float
        ``iou``/``nwd``: a pair is allowed when the similarity is ``>= threshold``.
        ``centroid``/``legacy-pd``: allowed when the centroid distance is ``< threshold`` px.
    constant : float
        NWD constant ``C`` in pixels (``nwd`` only).
    """

    kind: str
    threshold: float
    constant: float = DEFAULT_NWD_CONSTANT

    @property
    def spec(self) -> str:
        """Canonical text form, e.g. ``iou:0.5``, ``nwd:0.6:11``, ``centroid:3``, ``legacy-pd``."""
        if self.kind == "legacy-pd":
            return "legacy-pd"
        if self.kind == "nwd":
            return f"nwd:{self.threshold:g}:{self.constant:g}"
        return f"{self.kind}:{self.threshold:g}"

    @property
    def description(self) -> str:
        """The pairing rule in words, e.g. ``centroid distance < 3 px``, ``box IoU >= 0.5``."""
        if self.kind == "legacy-pd":
            return f"BasicIRSTD's greedy rule, centroid distance < {self.threshold:g} px"
        if self.kind == "centroid":
            return f"centroid distance < {self.threshold:g} px"
        if self.kind == "nwd":
            return f"box NWD >= {self.threshold:g} (C = {self.constant:g} px)"
        return f"box IoU >= {self.threshold:g}"

    @property
    def uses_distance(self) -> bool:
        return self.kind in ("centroid", "legacy-pd")

    def pair_matrix(
        self,
        pred_boxes: np.ndarray,
        pred_centroids: np.ndarray,
        gt_boxes: np.ndarray,
        gt_centroids: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Similarity ``(P, G)`` in ``[0, 1]`` and the allowed-pair mask ``(P, G)``.

        For the distance matchers the similarity is ``1 - distance / threshold``, so a larger
        value is a closer pair and every allowed pair has a positive similarity.
        """
        n_pred, n_gt = len(pred_boxes), len(gt_boxes)
        if n_pred == 0 or n_gt == 0:
            empty = np.zeros((n_pred, n_gt))
            return empty, empty.astype(bool)
        if self.uses_distance:
            diff = np.asarray(pred_centroids, np.float64)[:, None, :] - np.asarray(gt_centroids, np.float64)[None]
            distance = np.sqrt((diff * diff).sum(-1))
            return 1.0 - distance / self.threshold, distance < self.threshold
        if self.kind == "iou":
            sim = box_iou_matrix(pred_boxes, gt_boxes)
        else:
            from irstd_bench.boxes import as_tensor, nwd  # torch only when NWD is asked for

            sim = nwd(as_tensor(pred_boxes), as_tensor(gt_boxes), self.constant).numpy()
        return sim, sim >= self.threshold

    def assign(self, sim: np.ndarray, valid: np.ndarray) -> TargetMatch:
        """The one-to-one pairs this matcher's assignment makes among the allowed ones.

        Parameters
        ----------
        sim, valid : ndarray (P, G)
            From :meth:`pair_matrix` (any rows of it: the kept predictions).

        Returns
        -------
        TargetMatch
            ``legacy-pd``: BasicIRSTD's greedy label-order rule (:func:`legacy_pairs`); every
            other kind: the optimal assignment (:func:`optimal_pairs`).
        """
        rows, cols = legacy_pairs(valid) if self.kind == "legacy-pd" else optimal_pairs(sim, valid)
        return TargetMatch.from_pairs(rows, cols, sim)

    def count(self, valid: np.ndarray) -> int:
        """Number of pairs :meth:`assign` makes among the allowed pairs ``(P, G)``.

        Only the allowed pairs decide the count (the optimal assignment maximises it first),
        so no similarity is needed.
        """
        if self.kind == "legacy-pd":
            return int(legacy_pairs(valid)[0].size)
        return int(optimal_pairs(np.zeros(valid.shape), valid)[0].size)


def box_iou_matrix(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(N, M)`` of ``[x0, y0, x1, y1]`` boxes in pixels (areas ``w * h``, no +1).

    The same formula as :func:`irstd_bench.boxes.iou`, in numpy: the evaluator calls it for
    every image with a handful of boxes, where a torch call would cost more than the maths.
    A pair with zero union has IoU 0.

    Examples
    --------
    >>> box_iou_matrix(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6]])).round(4).tolist()
    [[0.3333, 0.0]]
    """
    a = np.asarray(boxes1, np.float64).reshape(-1, 4)
    b = np.asarray(boxes2, np.float64).reshape(-1, 4)
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def parse_matcher(spec: str | Matcher) -> Matcher:
    """Parse a matcher spec.

    Parameters
    ----------
    spec : str
        ``iou:T`` (box IoU ``>= T``, default 0.5), ``nwd:T[:C]`` (NWD ``>= T``, default 0.5,
        constant ``C`` px, default 11), ``centroid:D`` (centroid distance ``< D`` px, default 3)
        or ``legacy-pd`` (BasicIRSTD's greedy 3 px rule).

    Examples
    --------
    >>> parse_matcher("nwd:0.6").spec
    'nwd:0.6:11'
    >>> parse_matcher("centroid").threshold
    3.0
    """
    if isinstance(spec, Matcher):
        return spec
    text = str(spec).strip().lower()
    parts = text.split(":")
    kind = parts[0]
    if kind not in MATCHER_KINDS:
        raise InputError(f"unknown matcher {spec!r} (use iou:T, nwd:T[:C], centroid:D or legacy-pd)")
    if kind == "legacy-pd":
        if len(parts) > 1:
            raise InputError(f"matcher {spec!r}: legacy-pd takes no parameters (its distance is 3 px)")
        return Matcher("legacy-pd", LEGACY_PD_DISTANCE_PX)
    max_parts = 3 if kind == "nwd" else 2
    if len(parts) > max_parts:
        raise InputError(f"matcher {spec!r}: too many ':' parameters")
    try:
        values = [float(p) for p in parts[1:]]
    except ValueError:
        raise InputError(f"matcher {spec!r}: parameters must be numbers") from None
    threshold = values[0] if values else DEFAULT_THRESHOLDS[kind]
    constant = values[1] if len(values) > 1 else DEFAULT_NWD_CONSTANT
    if not np.isfinite(threshold) or not np.isfinite(constant):
        raise InputError(f"matcher {spec!r}: parameters must be finite")
    if kind in ("iou", "nwd") and not 0.0 < threshold <= 1.0:
        raise InputError(f"matcher {spec!r}: {kind} threshold must be in (0, 1]")
    if kind == "centroid" and threshold <= 0:
        raise InputError(f"matcher {spec!r}: centroid distance must be > 0 px")
    if constant <= 0:
        raise InputError(f"matcher {spec!r}: NWD constant must be > 0 px")
    return Matcher(kind, threshold, constant)


@dataclass
class TargetMatch:
    """The result of matching ``P`` predictions to ``G`` ground-truth targets.

    Attributes
    ----------
    pred_to_gt : ndarray (P,), int64
        Index of the matched ground-truth target, or :data:`UNMATCHED`.
    gt_to_pred : ndarray (G,), int64
        Index of the matched prediction, or :data:`UNMATCHED`.
    similarity : ndarray (P,), float64
        Similarity of each matched pair (NaN where unmatched).
    """

    pred_to_gt: np.ndarray
    gt_to_pred: np.ndarray
    similarity: np.ndarray

    @property
    def tp(self) -> int:
        """Number of matched pairs."""
        return int(np.count_nonzero(self.pred_to_gt != UNMATCHED))

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, sim: np.ndarray) -> TargetMatch:
        n_pred, n_gt = sim.shape
        pred_to_gt = np.full(n_pred, UNMATCHED, np.int64)
        gt_to_pred = np.full(n_gt, UNMATCHED, np.int64)
        pred_to_gt[rows] = cols
        gt_to_pred[cols] = rows
        similarity = np.full(n_pred, np.nan)
        similarity[rows] = sim[rows, cols]
        return cls(pred_to_gt, gt_to_pred, similarity)


def _one_to_one_pairs(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The pairs when every prediction and every target has at most one allowed partner."""
    if (valid.sum(1) <= 1).all() and (valid.sum(0) <= 1).all():
        return np.nonzero(valid)
    return None


def optimal_pairs(sim: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count-maximal, then similarity-maximal one-to-one pairs among the allowed ones.

    Every allowed pair weighs ``bonus + similarity`` with ``bonus = min(P, G) + 1`` and a
    forbidden pair 0; since the similarities of ``k`` pairs add up to at most ``k < bonus``, a
    maximum-weight assignment has first the most matches and then the largest similarity.
    Returns ``(pred_indices, gt_indices)``.
    """
    if not valid.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    simple = _one_to_one_pairs(valid)
    if simple is not None:
        return simple
    rows = np.flatnonzero(valid.any(1))
    cols = np.flatnonzero(valid.any(0))
    sub_valid = valid[np.ix_(rows, cols)]
    bonus = min(sub_valid.shape) + 1.0
    weight = np.where(sub_valid, bonus + np.clip(sim[np.ix_(rows, cols)], 0.0, 1.0), 0.0)
    r, c = linear_sum_assignment(weight, maximize=True)
    keep = sub_valid[r, c]
    return rows[r[keep]], cols[c[keep]]


def legacy_pairs(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BasicIRSTD's greedy label-order rule on the allowed pairs ``(P, G)``.

    For each ground-truth target in order, the first remaining prediction (in order) with an
    allowed pair is matched and removed from the remaining ones.
    """
    n_pred, n_gt = valid.shape
    taken = np.zeros(n_pred, bool)
    rows: list[int] = []
    cols: list[int] = []
    if n_pred == 0 or not valid.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    simple = _one_to_one_pairs(valid)  # no two candidates compete: every allowed pair is taken
    if simple is not None:
        order = np.argsort(simple[1], kind="stable")
        return simple[0][order], simple[1][order]
    for g in range(n_gt):
        candidates = np.flatnonzero(valid[:, g] & ~taken)
        if candidates.size:
            p = int(candidates[0])
            taken[p] = True
            rows.append(p)
            cols.append(g)
    return np.asarray(rows, np.int64), np.asarray(cols, np.int64)


def greedy_by_score(sim: np.ndarray, valid: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """COCO's assignment for AP: predictions by decreasing score take their best free target.

    Parameters
    ----------
    sim, valid : ndarray (P, G)
    scores : ndarray (P,)

    Returns
    -------
    ndarray (P,), bool
        Whether each prediction (in the input order) is a true positive. Ties in score keep
        the input order (stable sort); among free targets of equal similarity the last one is
        taken, as ``pycocotools`` does.
    """
    n_pred, n_gt = valid.shape
    hit = np.zeros(n_pred, bool)
    if n_pred == 0 or n_gt == 0 or not valid.any():
        return hit
    if _one_to_one_pairs(valid) is not None:  # no two candidates compete
        return valid.any(1)
    free = np.ones(n_gt, bool)
    for p in np.argsort(-np.asarray(scores), kind="mergesort"):
        candidates = valid[p] & free
        if not candidates.any():
            continue
        masked = np.where(candidates, sim[p], -np.inf)
        g = n_gt - 1 - int(np.argmax(masked[::-1]))
        free[g] = False
        hit[p] = True
    return hit


def match_targets(gt, pred, matcher: str | Matcher = "iou:0.5") -> TargetMatch:
    """Match predicted targets to ground-truth targets one to one.

    Parameters
    ----------
    gt, pred : Targets
        Anything with ``boxes (N, 4)`` ``[x0, y0, x1, y1]`` px and ``centroids (N, 2)`` ``(x, y)``
        px (see :mod:`irstd_bench.targets`). Box predictions use the box centre as centroid.
    matcher : str or Matcher
        ``iou:T`` / ``nwd:T[:C]`` / ``centroid:D``: a prediction is a hit when it is paired with a
        target by the optimal assignment (most matches, then most similarity) among pairs with
        IoU ``>= T``, NWD ``>= T`` or centroid distance ``< D`` px. ``legacy-pd``: BasicIRSTD's
        greedy label-order rule with distance ``< 3`` px.

    Returns
    -------
    TargetMatch

    Examples
    --------
    >>> from irstd_bench.targets import boxes_to_targets
    >>> gt = boxes_to_targets(np.array([[0, 0, 4, 4], [10, 10, 12, 12]]), (32, 32))
    >>> pred = boxes_to_targets(np.array([[10, 10, 12, 13], [0, 0, 4, 3]]), (32, 32))
    >>> match_targets(gt, pred, "iou:0.5").pred_to_gt.tolist()
    [1, 0]
    """
    m = parse_matcher(matcher)
    return m.assign(*m.pair_matrix(pred.boxes, pred.centroids, gt.boxes, gt.centroids))
