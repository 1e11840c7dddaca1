"""Targets: connected components of a binary mask, with box, area and centroid.

This is the one place where pixels become targets. ``convert`` (ground truth boxes), the
evaluator (mask and score-map predictions) and training validation all call
:func:`mask_to_targets`; every centroid of a set of pixels (mask targets, score-map components at
each curve level, COCO segmentations read back, the synthetic sample's records) is
:func:`pixel_centroids`, so the same pixels give the same float64 centroid, bit for bit, by any route.

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

from irstd_bench.boxes import box_areas, box_centres
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
#: Masks hold integer values below this (8- or 16-bit); a binarisation threshold lies in
#: ``[0, MASK_VALUE_LIMIT)``: a negative one makes every pixel a target, a larger one none.
MASK_VALUE_LIMIT = 65535
DEFAULT_CONNECTIVITY = 8

#: Target size bins by pixel area ``(name, min_area_px, max_area_px)``; areas above 81 px go
#: to ``>81``. The one definition, used by ``convert``'s summary and the evaluator.
SIZE_BINS: tuple[tuple[str, int, int | None], ...] = (
    ("<=9", 0, 9),
    ("10-36", 10, 36),
    ("37-81", 37, 81),
    (">81", 82, None),
)


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
    pixels : ndarray (K,), int64, optional
        Flat index ``row * W + column`` of every target pixel, in raster order. ``None`` for
        targets that come from boxes (detectors).
    pixel_labels : ndarray (K,), int32, optional
        Target of each pixel of ``pixels``: ``i + 1`` for target ``i``.

    Targets of masks keep their pixels as these two short arrays rather than as an image:
    small targets cover a tiny part of the image, and everything the metrics need (areas,
    overlaps, per-target maxima) is computed from them. :attr:`label_image` and
    :attr:`foreground` build the images when asked.
    """

    boxes: np.ndarray
    area_px: np.ndarray
    centroids: np.ndarray
    image_size: tuple[int, int]
    pixels: np.ndarray | None = field(default=None, repr=False)
    pixel_labels: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def box_sizes(self) -> np.ndarray:
        """``(N, 2)`` box ``(width, height)`` in pixels."""
        return np.stack([self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1]], axis=1)

    @property
    def label_image(self) -> np.ndarray | None:
        """``(H, W)`` int32: ``0`` for background, ``i + 1`` for pixels of target ``i``; ``None`` for
        box targets."""
        if self.pixels is None:
            return None
        labels = np.zeros(self.image_size, np.int32)
        labels.ravel()[self.pixels] = self.pixel_labels
        return labels

    @property
    def foreground(self) -> np.ndarray | None:
        """``(H, W)`` bool mask of all target pixels, or ``None`` for box targets."""
        if self.pixels is None:
            return None
        mask = np.zeros(self.image_size, bool)
        mask.ravel()[self.pixels] = True
        return mask

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> Targets:
        """No targets in an image of ``image_size = (H, W)`` (a mask with no foreground)."""
        h, w = image_size
        return cls(
            boxes=np.zeros((0, 4), np.int64),
            area_px=np.zeros(0, np.int64),
            centroids=np.zeros((0, 2), np.float64),
            image_size=(int(h), int(w)),
            pixels=np.zeros(0, np.int64),
            pixel_labels=np.zeros(0, np.int32),
        )


def check_threshold(threshold: float, mask_dtype: np.dtype | None = None) -> float:
    """A mask binarisation threshold, checked: finite, in ``[0, MASK_VALUE_LIMIT)`` and, for an
    integer ``mask_dtype``, below its largest value (``--threshold 300`` on 8-bit masks would
    leave every target out without a word). Raises :class:`InputError` naming ``--threshold``.
    """
    value = float(threshold)
    if not np.isfinite(value) or not 0 <= value < MASK_VALUE_LIMIT:
        raise InputError(f"--threshold {threshold:g}: must be a finite number in [0, {MASK_VALUE_LIMIT})")
    if mask_dtype is not None and np.issubdtype(mask_dtype, np.integer) and value >= np.iinfo(mask_dtype).max:
        bits = np.iinfo(mask_dtype).bits
        raise InputError(
            f"--threshold {threshold:g}: no value of {bits}-bit masks exceeds it (foreground is value > threshold; "
            f"use [0, {np.iinfo(mask_dtype).max}))"
        )
    return value


def binarize(mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Foreground where ``mask > threshold`` (:func:`check_threshold`); boolean masks pass through unchanged."""
    if mask.dtype == bool:
        return mask
    return mask > check_threshold(threshold, mask.dtype)


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
    return targets_from_pixels(np.flatnonzero(foreground), foreground.shape, connectivity)


def _packed_lines(coords: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack the occupied lines (rows or columns) of an axis, keeping one empty line after each
    occupied run: pixels keep exactly their adjacency and their raster order.

    Returns the packed coordinate of each of ``coords`` and, for each packed line, its
    original index.
    """
    occupied = np.zeros(length + 1, bool)
    occupied[coords] = True
    kept = occupied.copy()
    kept[1:] |= occupied[:-1]  # the first empty line after an occupied one separates runs
    original = np.flatnonzero(kept)
    packed = np.cumsum(kept) - 1
    return packed[coords], original


def targets_from_pixels(
    pixels: np.ndarray, image_size: tuple[int, int], connectivity: int = DEFAULT_CONNECTIVITY
) -> Targets:
    """Targets of the foreground pixels ``pixels`` (flat indices ``row * W + column``, increasing).

    The components are labelled on the pixels' packed grid (occupied rows and columns, runs of
    empty ones shrunk to one): the cost follows the number of foreground pixels and rows, not
    the image area, and the labels are those of the full image (same components, same order).
    """
    h, w = int(image_size[0]), int(image_size[1])
    pixels = np.asarray(pixels, np.int64)
    if pixels.size == 0:
        return Targets.empty((h, w))
    rows, cols = np.divmod(pixels, w)
    packed_rows, row_of = _packed_lines(rows, h)
    packed_cols, col_of = _packed_lines(cols, w)
    grid = np.zeros((row_of.size, col_of.size), bool)
    grid[packed_rows, packed_cols] = True
    grid_labels, count = ndimage.label(grid, structure=CONNECTIVITY_STRUCTURES[connectivity])
    pixel_labels = grid_labels[packed_rows, packed_cols]
    spans = np.array(
        [(s[1].start, s[0].start, s[1].stop - 1, s[0].stop - 1) for s in ndimage.find_objects(grid_labels)],
        dtype=np.int64,
    )
    boxes = np.stack([col_of[spans[:, 0]], row_of[spans[:, 1]], col_of[spans[:, 2]] + 1, row_of[spans[:, 3]] + 1], 1)
    return _with_pixel_stats(boxes, pixels, pixel_labels, rows, cols, count, (h, w))


def pixel_centroids(pixel_labels: np.ndarray, rows: np.ndarray, cols: np.ndarray, count: int) -> np.ndarray:
    """Centroids ``(count, 2)`` float64 ``(x, y)`` px of labels ``1..count``: the mean pixel centre.

    ``x = sum(column) / area + 0.5`` and ``y = sum(row) / area + 0.5`` (pixel-edge frame) over the
    pixels of each label; NaN for a label without pixels. The one centroid formula of irstd-bench:
    the sums run in the order the pixels are given (raster order at every caller), so the same
    pixels give the same centroid to the last bit whichever route they come by (a mask, a score
    map's level stack, a COCO RLE).

    Parameters
    ----------
    pixel_labels : ndarray (K,) int
        Label ``1..count`` of each pixel (0: ignored).
    rows, cols : ndarray (K,) int
        Absolute row and column of each pixel, in pixels.
    count : int

    Examples
    --------
    >>> pixel_centroids(np.array([1, 1, 2]), np.array([0, 0, 3]), np.array([4, 5, 1]), 2).tolist()
    [[5.0, 0.5], [1.5, 3.5]]
    """
    area = np.bincount(pixel_labels, minlength=count + 1)[1:]
    sum_x = np.bincount(pixel_labels, weights=cols, minlength=count + 1)[1:]
    sum_y = np.bincount(pixel_labels, weights=rows, minlength=count + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([sum_x / area + 0.5, sum_y / area + 0.5], axis=1)


def _with_pixel_stats(boxes, pixels, pixel_labels, rows, cols, count, image_size) -> Targets:
    area = np.bincount(pixel_labels, minlength=count + 1)[1:].astype(np.int64)
    centroids = pixel_centroids(pixel_labels, rows, cols, count)
    return Targets(
        boxes=boxes.astype(np.int64),
        area_px=area,
        centroids=centroids,
        image_size=image_size,
        pixels=pixels,
        pixel_labels=pixel_labels.astype(np.int32, copy=False),
    )


def targets_from_label_image(labels: np.ndarray, count: int | None = None) -> Targets:
    """Targets of a label image (``0`` background, ``1..N`` targets, each label present)."""
    if count is None:
        count = int(labels.max()) if labels.size else 0
    h, w = labels.shape
    if count == 0:
        return Targets.empty((h, w))
    pixels = np.flatnonzero(labels)
    pixel_labels = labels.ravel()[pixels]
    rows, cols = np.divmod(pixels, w)
    slices = ndimage.find_objects(labels, max_label=count)
    boxes = np.array([[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in slices], dtype=np.int64)
    return _with_pixel_stats(boxes, pixels, pixel_labels, rows, cols, count, (h, w))


def component_max(targets: Targets, values: np.ndarray) -> np.ndarray:
    """``(N,)`` float64: the highest of ``values`` ``(H, W)`` over each target's pixels."""
    n = len(targets)
    if n == 0:
        return np.zeros(0)
    vals = values.ravel()[targets.pixels].astype(np.float64)
    order = np.argsort(targets.pixel_labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(targets.pixel_labels[order]) != 0])
    return np.maximum.reduceat(vals[order], starts)


def hole_areas(targets: Targets) -> np.ndarray:
    """``(N,)`` int64: pixels of the holes of each target (0 for a target without holes).

    A hole of a target is a background region its pixels enclose: a part of the complement of
    the target, 4-connected (the dual of the targets' 8-connectivity), that does not reach the
    border of the target's box grown by one pixel. Pixels of other targets inside it count as
    hole (only this target's pixels are foreground here). Contour tools that list inner
    contours (OpenCV's ``RETR_LIST``/``RETR_TREE``) report one extra contour per hole.

    Examples
    --------
    >>> m = np.zeros((5, 6), np.uint8); m[0:3, 0:3] = 255; m[1, 1] = 0; m[4, 5] = 255
    >>> hole_areas(mask_to_targets(m)).tolist()
    [1, 0]
    """
    n = len(targets)
    holes = np.zeros(n, np.int64)
    if n == 0 or targets.pixels is None:
        return holes
    h, w = targets.image_size
    rows, cols = np.divmod(targets.pixels, w)
    order = np.argsort(targets.pixel_labels, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(targets.pixel_labels, minlength=n + 1)[1:])]
    for i, (x0, y0, x1, y1) in enumerate(targets.boxes):
        if (x1 - x0) < 3 or (y1 - y0) < 3:
            continue  # a box under 3x3 pixels cannot enclose a pixel
        mine = order[starts[i] : starts[i + 1]]
        crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), bool)
        crop[rows[mine] - y0 + 1, cols[mine] - x0 + 1] = True
        holes[i] = int(np.count_nonzero(ndimage.binary_fill_holes(crop))) - mine.size
    return holes


def boxes_to_targets(boxes: np.ndarray, image_size: tuple[int, int]) -> Targets:
    """Targets from boxes ``(N, 4)`` ``[x0, y0, x1, y1]`` in pixels (float allowed).

    The area is the box area and the centroid the box centre; there is no label image.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return Targets(
        boxes=boxes,
        area_px=box_areas(boxes),
        centroids=box_centres(boxes),
        image_size=(int(image_size[0]), int(image_size[1])),
    )


def size_bin_index(area_px) -> np.ndarray:
    """Index into :data:`SIZE_BINS` of each area (px; box areas may be fractional, and an area
    between two bins, such as 9.5, goes to the larger one).

    Examples
    --------
    >>> size_bin_index([1, 9, 9.5, 36, 81, 82]).tolist()
    [0, 0, 1, 1, 2, 3]
    """
    edges = np.array([high for _, _, high in SIZE_BINS if high is not None], np.float64)
    return np.searchsorted(edges, np.asarray(area_px, np.float64), side="left")
