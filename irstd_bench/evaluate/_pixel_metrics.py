"""Pixel-level and Pd/Fa statistics of one image (mask and score-map predictions).

The field's segmentation metrics, per image; :mod:`irstd_bench.evaluate._evaluator` adds
them up over a split:

- IoU ("mIoU" in papers): intersection and union pixel counts summed over the split.
- nIoU: the mean over images of each image's IoU.
- Pd: ground-truth targets detected / all ground-truth targets, a target being detected when
  the legacy rule (:data:`LEGACY_PD`, :func:`legacy_counts`, centroid distance
  ``< 3`` px) pairs it with a predicted component -- whatever ``--match`` says.
- Fa: pixels of the predicted components the legacy rule left unmatched / all pixels.

The false-alarm pixels are those of the unmatched components themselves, selected by label:
BasicIRSTD instead drops every predicted region whose *area value* equals the area of a matched
region, so a false region that happens to have a matched region's size is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irstd_bench.evaluate._matching import LEGACY_PD_DISTANCE_PX, UNMATCHED, Matcher
from irstd_bench.targets import Targets

#: The matcher of Pd and Fa, whatever ``--match`` says.
LEGACY_PD = Matcher("legacy-pd", LEGACY_PD_DISTANCE_PX)


@dataclass
class PixelStats:
    """Pixel counts of one image at one confidence threshold.

    Attributes
    ----------
    intersection, union : int
        Pixels foreground in both / in either of ground truth and prediction.
    gt_px, pred_px, total_px : int
        Ground-truth foreground, predicted foreground and all pixels of the image.
    pd_matched : int
        Ground-truth targets detected by the legacy 3 px rule.
    fa_px : int
        Pixels of predicted components that rule left unmatched.
    """

    intersection: int
    union: int
    gt_px: int
    pred_px: int
    total_px: int
    pd_matched: int
    fa_px: int

    @property
    def iou(self) -> float | None:
        """This image's IoU, ``None`` when neither has foreground."""
        return self.intersection / self.union if self.union else None


def legacy_counts(near: np.ndarray, area_px: np.ndarray) -> tuple[int, int, np.ndarray]:
    """Pd matches and false-alarm pixels of predicted components, by the legacy rule.

    The one place where Pd and Fa are counted (per image here, per curve level in
    :mod:`irstd_bench.evaluate._curves`).

    Parameters
    ----------
    near : ndarray (P, G), bool
        Allowed pairs of :data:`LEGACY_PD` (centroid distance ``< 3`` px).
    area_px : ndarray (P,)
        Pixel count of each predicted component.

    Returns
    -------
    pd_matched : int
        Ground-truth targets the rule pairs with a component.
    fa_px : int
        Sum of the pixel counts of the unmatched components (each counted once, by its label,
        whatever its area).
    matched : ndarray (P,), bool
        Which predicted components were matched.
    """
    match = LEGACY_PD.assign(np.zeros(near.shape), near)
    matched = match.pred_to_gt != UNMATCHED
    fa_px = int(np.asarray(area_px)[~matched].sum()) if len(matched) else 0
    return match.tp, fa_px, matched


def legacy_pd_fa(gt: Targets, pred: Targets) -> tuple[int, int, np.ndarray]:
    """Pd matches, false-alarm pixels and matched components of ``pred`` against ``gt``
    (:func:`legacy_counts` of their centroids)."""
    _, near = LEGACY_PD.pair_matrix(pred.boxes, pred.centroids, gt.boxes, gt.centroids)
    return legacy_counts(near, pred.area_px)


def pixel_stats(gt: Targets, pred: Targets) -> PixelStats:
    """Pixel statistics of one image; both ``Targets`` must come from masks of one size.

    Examples
    --------
    >>> from irstd_bench.targets import mask_to_targets
    >>> g = np.zeros((4, 4), bool); g[1, 1] = True
    >>> p = np.zeros((4, 4), bool); p[1, 1:3] = True; p[3, 3] = True
    >>> s = pixel_stats(mask_to_targets(g), mask_to_targets(p))
    >>> (s.intersection, s.union, s.pd_matched, s.fa_px)
    (1, 3, 1, 1)
    """
    intersection = int(np.intersect1d(gt.pixels, pred.pixels, assume_unique=True).size)
    gt_px, pred_px = int(np.asarray(gt.area_px).sum()), int(np.asarray(pred.area_px).sum())
    pd_matched, fa_px, _ = legacy_pd_fa(gt, pred)
    return PixelStats(
        intersection=intersection,
        union=gt_px + pred_px - intersection,
        gt_px=gt_px,
        pred_px=pred_px,
        total_px=int(gt.image_size[0]) * int(gt.image_size[1]),
        pd_matched=pd_matched,
        fa_px=fa_px,
    )
