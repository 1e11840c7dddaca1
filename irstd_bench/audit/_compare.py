"""One image: the boxes of a published box version against the targets of the mask.

The pairing rule
----------------
Let ``T`` be the mask's targets (boxes ``[x0, y0, x1, y1]``, pixel-edge convention, from
:func:`irstd_bench.targets.mask_to_targets`) and ``B`` the published boxes of the image, in the
same convention. The *edge distance* of a box and a target is the largest of the four
differences ``|b.x0 - t.x0|``, ``|b.y0 - t.y0|``, ``|b.x1 - t.x1|``, ``|b.y1 - t.y1|`` in pixels.
Boxes and targets are paired one to one in three rounds; each round pairs only what earlier
rounds left, by the evaluator's optimal assignment (:meth:`irstd_bench.evaluate.Matcher.assign`:
the most pairs, then the largest total IoU) among the pairs it allows:

1. **equal**: edge distance 0 (within :data:`EDGE_TOLERANCE_PX`);
2. **edge mismatch**: edge distance at most 1 px (some edge off by one pixel: another edge
   convention, such as ``x1 = last column`` instead of ``last column + 1``);
3. **other**: the box and the target's box overlap (IoU > 0) but some edge is more than 1 px off.

Then what is left is classified:

- a box left over that lies inside the box of a target and is smaller than it is **nested**
  (what contour tools that also list inner contours write for a target with a hole: a
  second box around the hole; the record says whether the target has one);
- any other box left over is an **extra box** (a box without a target, a duplicate included);
- a target left over is a **missing target** (a target without a box).

An image is *equal* when every box is paired in round 1 and nothing is left over.

>>> t = np.array([[2, 2, 5, 5], [10, 10, 11, 11]]); b = np.array([[2, 2, 5, 5], [10, 10, 12, 12], [3, 3, 4, 4]])
>>> res = compare_boxes(t, b)
>>> [p.kind for p in res.pairs], res.nested, res.extra, res.missing
(['equal', 'edge'], [(2, 0)], [], [])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from irstd_bench.evaluate import UNMATCHED, Matcher
from irstd_bench.evaluate._matching import box_iou_matrix

#: Two coordinates closer than this are the same edge (boxes of float files, in pixels).
EDGE_TOLERANCE_PX = 1e-6
#: Largest edge distance of an edge mismatch, in pixels.
EDGE_MISMATCH_PX = 1.0
#: Kinds of pair, in the order the rounds make them.
PAIR_KINDS = ("equal", "edge", "other")
#: Edge names of a box, in ``[x0, y0, x1, y1]`` order.
EDGES = ("x0", "y0", "x1", "y1")

#: The evaluator's IoU matcher: only its assignment is used (each round passes its own pairs).
_ASSIGNMENT = Matcher("iou", 1.0)


@dataclass(frozen=True)
class Pair:
    """A box paired with a target.

    Attributes
    ----------
    box, target : int
        Index of the box (in the published boxes) and of the target (in the mask's targets).
    kind : {"equal", "edge", "other"}
    iou : float
    deltas : tuple of float
        ``box - target`` for ``x0, y0, x1, y1``, in pixels.
    """

    box: int
    target: int
    kind: str
    iou: float
    deltas: tuple[float, float, float, float]


@dataclass
class BoxComparison:
    """How one image's published boxes differ from its targets.

    Attributes
    ----------
    target_boxes : ndarray (T, 4)
    label_boxes : ndarray (B, 4)
    pairs : list of Pair
        In the order of the rounds (equal, then edge, then other), by box index within one.
    nested : list of (box, target)
        Boxes inside a target's box, with the smallest such target.
    extra : list of int
        Boxes without a target.
    missing : list of int
        Targets without a box.
    """

    target_boxes: np.ndarray
    label_boxes: np.ndarray
    pairs: list[Pair] = field(default_factory=list)
    nested: list[tuple[int, int]] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)

    def count(self, kind: str) -> int:
        """Number of pairs of ``kind`` (``equal``, ``edge``, ``other``)."""
        return sum(p.kind == kind for p in self.pairs)

    @property
    def equal(self) -> bool:
        return not (self.nested or self.extra or self.missing) and all(p.kind == "equal" for p in self.pairs)


def edge_distance(label_boxes: np.ndarray, target_boxes: np.ndarray) -> np.ndarray:
    """``(B, T)``: the largest edge difference of each box and target, in pixels."""
    a = np.asarray(label_boxes, np.float64).reshape(-1, 4)
    b = np.asarray(target_boxes, np.float64).reshape(-1, 4)
    return np.abs(a[:, None, :] - b[None, :, :]).max(-1)


def _inside(label_boxes: np.ndarray, target_boxes: np.ndarray) -> np.ndarray:
    """``(B, T)``: box within the target's box (edges within tolerance) and of smaller area."""
    a = np.asarray(label_boxes, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(target_boxes, np.float64).reshape(-1, 4)[None, :, :]
    tol = EDGE_TOLERANCE_PX
    within = (a[..., 0] >= b[..., 0] - tol) & (a[..., 1] >= b[..., 1] - tol)
    within &= (a[..., 2] <= b[..., 2] + tol) & (a[..., 3] <= b[..., 3] + tol)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return within & (area_a < area_b - tol)


def compare_boxes(target_boxes, label_boxes) -> BoxComparison:
    """Pair published boxes ``(B, 4)`` with target boxes ``(T, 4)`` and classify the rest.

    Both in ``[x0, y0, x1, y1]`` pixels, pixel-edge convention. The rule is the module's
    docstring's.
    """
    targets = np.asarray(target_boxes, np.float64).reshape(-1, 4)
    labels = np.asarray(label_boxes, np.float64).reshape(-1, 4)
    result = BoxComparison(
        target_boxes=np.asarray(target_boxes).reshape(-1, 4), label_boxes=np.asarray(label_boxes).reshape(-1, 4)
    )
    iou = box_iou_matrix(labels, targets)  # (B, T)
    distance = edge_distance(labels, targets)
    free_box = np.ones(len(labels), bool)
    free_target = np.ones(len(targets), bool)
    rounds = (
        ("equal", distance <= EDGE_TOLERANCE_PX),
        ("edge", distance <= EDGE_MISMATCH_PX + EDGE_TOLERANCE_PX),
        ("other", iou > 0),
    )
    for kind, allowed in rounds:
        allowed = allowed & free_box[:, None] & free_target[None, :]
        match = _ASSIGNMENT.assign(iou, allowed)
        for b in np.flatnonzero(match.pred_to_gt != UNMATCHED):
            t = int(match.pred_to_gt[b])
            deltas = tuple(float(v) for v in labels[b] - targets[t])
            result.pairs.append(Pair(int(b), t, kind, float(iou[b, t]), deltas))
            free_box[b] = free_target[t] = False
    inside = _inside(labels, targets)
    areas = (targets[:, 2] - targets[:, 0]) * (targets[:, 3] - targets[:, 1])
    for b in np.flatnonzero(free_box):
        hosts = np.flatnonzero(inside[b])
        if hosts.size:
            result.nested.append((int(b), int(hosts[np.argmin(areas[hosts])])))
        else:
            result.extra.append(int(b))
    result.missing = [int(t) for t in np.flatnonzero(free_target)]
    return result
