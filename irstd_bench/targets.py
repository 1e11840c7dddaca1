"""Targets: connected components of a binary mask, with box, area and centroid.

This is the one place where pixels become targets. ``convert`` (ground truth boxes), the
evaluator (mask and score-map predictions) and training validation all call
:func:`mask_to_targets`.

Coordinate convention (pixel edges)
-----------------------------------
Pixel ``(row r, column c)`` covers ``[c, c + 1) x [r, r + 1)``. A box is
``[x0, y0, x1, y1]`` with ``x0 = min column``, ``x1 = max column + 1`` (likewise rows), so a
one-pixel target at column 4, row 2 has box ``[4, 2, 5, 3]``, width and height 1. A centroid
is ``(x, y)`` in the same frame: the mean pixel centre, ``mean(column) + 0.5``; a box's
centre ``((x0 + x1) / 2, (y0 + y1) / 2)`` is directly comparable with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from irstd_bench.errors import InputError

#: Structuring elements for :func:`scipy.ndimage.label`.
#:
#: 4-connectivity (edge neighbours)   8-connectivity (edge and corner neighbours)
#:     . x .                              x x x
#:     x o x                              x o x
#:     . x .                              x x x
CONNECTIVITY_STRUCTURES = {
    4: ndimage.generate_binary_structure(2, 1),
    8: ndimage.generate_binary_structure(2, 2),
}

#: Default binarisation: a mask pixel is foreground when its value is > 127.
DEFAULT_THRESHOLD = 127
DEFAULT_CONNECTIVITY = 8


@dataclass
class Targets:
    """The targets of one image.

    Attributes
    ----------
    boxes : ndarray (N, 4), int64
        ``[x0, y0, x1, y1]`` in pixels, pixel-edge convention (``x1`` exclusive).
    area_px : ndarray (N,), int64
        Number of foreground pixels of each target.
    centroids : ndarray (N, 2), float64
        ``(x, y)`` in pixels, mean pixel centre (pixel-edge frame).
    image_size : tuple (H, W)
        Size of the mask the targets come from, in pixels.
    label_image : ndarray (H, W), int32, optional
        ``0`` for background, ``i + 1`` for pixels of target ``i``. ``None`` for targets that
        come from boxes (detectors).
    """

    boxes: np.ndarray
    area_px: np.ndarray
    centroids: np.ndarray
    image_size: tuple[int, int]
    label_image: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def box_sizes(self) -> np.ndarray:
        """``(N, 2)`` box ``(width, height)`` in pixels."""
        return np.stack([self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1]], axis=1)

    @property
    def foreground(self) -> np.ndarray | None:
        """``(H, W)`` bool mask of all target pixels, or ``None`` for box targets."""
        return None if self.label_image is None else self.label_image > 0

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> Targets:
        """No targets in an image of ``image_size = (H, W)``."""
        h, w = image_size
        return cls(
            boxes=np.zeros((0, 4), np.int64),
            area_px=np.zeros(0, np.int64),
            centroids=np.zeros((0, 2), np.float64),
            image_size=(int(h), int(w)),
            label_image=np.zeros((h, w), np.int32),
        )


def binarize(mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Foreground where ``mask > threshold``; boolean masks pass through unchanged."""
    if mask.dtype == bool:
        return mask
    return mask > threshold


def mask_to_targets(
    mask: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    connectivity: int = DEFAULT_CONNECTIVITY,
) -> Targets:
    """Split a mask into targets by connected components.

    Parameters
    ----------
    mask : ndarray (H, W)
        Mask or label image; pixels with value ``> threshold`` are foreground (a ``bool``
        mask is used as it is). IRSTD-1k labels with value 64 are background at the default
        threshold 127.
    threshold : float
        Binarisation threshold, same units as ``mask``.
    connectivity : {4, 8}
        Pixels are connected through edges (4) or through edges and corners (8, the default,
        as the field's metric code uses)::

            mask        4-connectivity   8-connectivity
            1 0 0       1 0 0            1 0 0
            0 1 0       0 2 0            0 1 0
            0 0 0       0 0 0            0 0 0

    Returns
    -------
    Targets
        Ordered by scipy's labelling order (raster order of each component's first pixel).

    Examples
    --------
    >>> m = np.zeros((4, 6), np.uint8); m[1, 1] = 255; m[2:4, 3:6] = 255
    >>> t = mask_to_targets(m)
    >>> t.boxes.tolist(), t.area_px.tolist()
    ([[1, 1, 2, 2], [3, 2, 6, 4]], [1, 6])
    """
    if mask.ndim != 2:
        raise InputError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    if connectivity not in CONNECTIVITY_STRUCTURES:
        raise InputError(f"connectivity must be 4 or 8, got {connectivity}")
    foreground = binarize(mask, threshold)
    h, w = foreground.shape
    # Label only the bounding box of the foreground: masks of small targets are mostly empty.
    rows = np.flatnonzero(foreground.any(axis=1))
    if rows.size == 0:
        return Targets.empty((h, w))
    cols = np.flatnonzero(foreground.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop_labels, count = ndimage.label(foreground[r0:r1, c0:c1], structure=CONNECTIVITY_STRUCTURES[connectivity])
    labels = np.zeros((h, w), np.int32)
    labels[r0:r1, c0:c1] = crop_labels
    return _targets_from_labels(crop_labels, count, offset=(c0, r0), label_image=labels)


def targets_from_label_image(labels: np.ndarray, count: int | None = None) -> Targets:
    """Targets of a label image (``0`` background, ``1..N`` targets, each label present)."""
    if count is None:
        count = int(labels.max()) if labels.size else 0
    return _targets_from_labels(labels, count, offset=(0, 0), label_image=labels)


def _targets_from_labels(
    labels: np.ndarray, count: int, *, offset: tuple[int, int], label_image: np.ndarray
) -> Targets:
    """Targets of ``labels`` (a crop of ``label_image`` whose top-left pixel is at ``offset = (x, y)``)."""
    image_size = (int(label_image.shape[0]), int(label_image.shape[1]))
    if count == 0:
        empty = Targets.empty(image_size)
        empty.label_image = label_image
        return empty
    slices = ndimage.find_objects(labels, max_label=count)
    ox, oy = offset
    boxes = np.array(
        [[s[1].start + ox, s[0].start + oy, s[1].stop + ox, s[0].stop + oy] for s in slices], dtype=np.int64
    )
    # Sums over foreground pixels only.
    flat = labels.ravel()
    index = np.flatnonzero(flat)
    lab = flat[index]
    width = labels.shape[1]
    area = np.bincount(lab, minlength=count + 1)[1:].astype(np.int64)
    sum_x = np.bincount(lab, weights=index % width, minlength=count + 1)[1:]
    sum_y = np.bincount(lab, weights=index // width, minlength=count + 1)[1:]
    centroids = np.stack([sum_x / area + 0.5 + ox, sum_y / area + 0.5 + oy], axis=1)
    return Targets(boxes=boxes, area_px=area, centroids=centroids, image_size=image_size, label_image=label_image)


def boxes_to_targets(boxes: np.ndarray, image_size: tuple[int, int]) -> Targets:
    """Targets from boxes ``(N, 4)`` ``[x0, y0, x1, y1]`` in pixels (float allowed).

    The area is the box area and the centroid the box centre; there is no label image.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    return Targets(
        boxes=boxes,
        area_px=(wh[:, 0] * wh[:, 1]),
        centroids=(boxes[:, :2] + boxes[:, 2:]) / 2,
        image_size=(int(image_size[0]), int(image_size[1])),
        label_image=None,
    )
