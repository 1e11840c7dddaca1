"""Box formats and box similarity, shared by ``convert``, ``eval``, ``predict`` and EFLNet.

Every box in irstd-bench is ``[x0, y0, x1, y1]`` in pixels with the pixel-edge convention of
:mod:`irstd_bench.targets` (a one-pixel target at column ``c`` spans ``x0 = c`` to ``x1 = c + 1``).
Files use other formats; the conversions live here, in the spirit of torchvision's
:func:`~torchvision.ops.box_convert`, and nowhere else:

=========  ======================================  ==================================
format     values                                  used by
=========  ======================================  ==================================
``xyxy``   ``[x0, y0, x1, y1]`` px                 everything in memory, CSV files
``xywh``   ``[x0, y0, w, h]`` px                   COCO ``bbox``
``cxcywh`` ``[cx, cy, w, h]`` px                   YOLO, before normalisation
=========  ======================================  ==================================

YOLO files hold ``cxcywh`` divided by the image width and height (:func:`to_yolo`,
:func:`from_yolo`). The conversions are numpy (no torch import: ``convert`` and ``eval`` stay
light); the similarity measures (:func:`nwd`, :func:`iou`) take torch tensors and import torch
when first called.

Examples
--------
>>> box_convert(np.array([[4, 2, 5, 3]]), "xyxy", "xywh").tolist()
[[4, 2, 1, 1]]
>>> to_yolo(np.array([[0.0, 0.0, 8.0, 4.0]]), (8, 16)).tolist()
[[0.25, 0.25, 0.5, 0.5]]
>>> from_yolo(np.array([[0.25, 0.25, 0.5, 0.5]]), (8, 16)).tolist()
[[0.0, 0.0, 8.0, 4.0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: NWD normalising constant in pixels; the EFLNet paper's sweep found 11 best on its data.
DEFAULT_NWD_CONSTANT = 11.0

#: How far (px) a box read from a YOLO or VOC label file may pass its image's edge: one pixel,
#: another edge convention (SIRST v2's official VOC boxes end one pixel past ``x1``), which
#: ``audit`` reports as an edge mismatch. Farther, it is no box of that image (:func:`boxes_outside`).
LABEL_EDGE_SLACK_PX = 1.0

#: Box formats known to :func:`box_convert`.
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def box_convert(boxes, in_fmt: str, out_fmt: str) -> np.ndarray:
    """Convert boxes ``(N, 4)`` between ``xyxy``, ``xywh`` and ``cxcywh`` (pixels).

    Integer input stays integer where the conversion is exact (``xyxy`` <-> ``xywh``); a
    conversion through centres gives float64.

    Parameters
    ----------
    boxes : array-like (N, 4)
    in_fmt, out_fmt : {"xyxy", "xywh", "cxcywh"}

    Returns
    -------
    ndarray (N, 4)
    """
    for fmt in (in_fmt, out_fmt):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"unknown box format {fmt!r} (known: {', '.join(BOX_FORMATS)})")
    b = np.asarray(boxes)
    b = b.reshape(-1, 4) if b.size else np.zeros((0, 4), b.dtype if b.dtype != object else np.float64)
    if in_fmt == out_fmt:
        return b.copy()
    if in_fmt == "xywh":
        b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
    elif in_fmt == "cxcywh":
        b = b.astype(np.float64)
        b = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    if out_fmt == "xywh":
        return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    if out_fmt == "cxcywh":
        return np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)
    return b


def box_centres(boxes) -> np.ndarray:
    """``(N, 2)`` float64 centres ``(x, y)`` of ``xyxy`` boxes, in pixels."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (b[:, :2] + b[:, 2:]) / 2


def box_areas(boxes) -> np.ndarray:
    """``(N,)`` areas ``w * h`` of ``xyxy`` boxes, in square pixels (dtype of the input)."""
    b = np.asarray(boxes).reshape(-1, 4)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def boxes_outside(boxes, image_size: tuple[int, int], slack_px: float = 0.0) -> np.ndarray:
    """Which ``xyxy`` boxes are no boxes of an image of ``image_size = (H, W)``.

    A box is refused by every label reader (COCO, YOLO, VOC) when a coordinate is not finite,
    when it is inverted (``x1 < x0`` or ``y1 < y0``), or when an edge lies more than ``slack_px``
    outside ``[0, W] x [0, H]``. Checked before any conversion to whole pixels, so that a
    coordinate of 1e300 is named instead of overflowing.

    Returns
    -------
    ndarray (N,) bool

    Examples
    --------
    >>> boxes_outside(np.array([[0, 0, 4, 4], [30, 1, 33, 2], [2, 2, 1, 3]]), (32, 32), 1.0).tolist()
    [False, False, True]
    >>> boxes_outside(np.array([[0, 0, 4, 4], [30, 1, 33, 2]]), (32, 32)).tolist()
    [False, True]
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    h, w = image_size
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(b).all(axis=1) | (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
        bad |= (b[:, 0] < -slack_px) | (b[:, 1] < -slack_px) | (b[:, 2] > w + slack_px) | (b[:, 3] > h + slack_px)
    return bad


def _scale(image_size: tuple[int, int]) -> np.ndarray:
    h, w = image_size
    return np.array([w, h, w, h], np.float64)


def to_yolo(boxes, image_size: tuple[int, int]) -> np.ndarray:
    """``xyxy`` pixel boxes ``(N, 4)`` -> YOLO ``[cx, cy, w, h]`` divided by the width/height.

    ``image_size`` is ``(H, W)`` of the native image.
    """
    return box_convert(np.asarray(boxes, np.float64), "xyxy", "cxcywh") / _scale(image_size)


def from_yolo(values, image_size: tuple[int, int]) -> np.ndarray:
    """YOLO ``[cx, cy, w, h]`` normalised by ``image_size = (H, W)`` -> ``xyxy`` pixel boxes (float64)."""
    return box_convert(np.asarray(values, np.float64).reshape(-1, 4) * _scale(image_size), "cxcywh", "xyxy")


def as_tensor(boxes) -> torch.Tensor:
    """``(N, 4)`` float64 tensor from an array-like of boxes."""
    import torch

    if isinstance(boxes, torch.Tensor):
        return boxes.reshape(-1, 4)
    return torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))


def _gaussian_params(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` -> ``(cx, cy, w / 2, h / 2)``: mean and std-axes of the box's Gaussian."""
    import torch

    cx = (boxes[..., 0] + boxes[..., 2]) / 2
    cy = (boxes[..., 1] + boxes[..., 3]) / 2
    half_w = (boxes[..., 2] - boxes[..., 0]) / 2
    half_h = (boxes[..., 3] - boxes[..., 1]) / 2
    return torch.stack([cx, cy, half_w, half_h], dim=-1)


def wasserstein_distance(boxes1: torch.Tensor, boxes2: torch.Tensor, *, pairwise: bool = True) -> torch.Tensor:
    """Second-order Wasserstein distance between boxes modelled as 2-D Gaussians (pixels).

    A box becomes ``N(mu, Sigma)`` with ``mu = (cx, cy)`` and ``Sigma = diag(w^2 / 4, h^2 / 4)``;
    for such Gaussians ``W2^2 = ||(cx1, cy1, w1/2, h1/2) - (cx2, cy2, w2/2, h2/2)||^2``
    (Wang et al. 2021, Eq. 12-15 of the EFLNet paper).

    Returns ``(N, M)`` distances when ``pairwise`` else ``(N,)`` for aligned pairs.
    """
    import torch

    g1, g2 = _gaussian_params(boxes1), _gaussian_params(boxes2)
    if pairwise:
        diff = g1[:, None, :] - g2[None, :, :]  # (N, M, 4)
    else:
        diff = g1 - g2  # (N, 4)
    return torch.sqrt((diff * diff).sum(-1).clamp_min(0))


def nwd(
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    constant: float = DEFAULT_NWD_CONSTANT,
    *,
    pairwise: bool = True,
) -> torch.Tensor:
    """Normalized Gaussian Wasserstein distance, ``exp(-W2 / C)`` in ``(0, 1]`` (Eq. 16).

    Identical boxes give 1; it is symmetric and, unlike IoU, stays informative for boxes
    that do not overlap, which is what matters for targets of a few pixels.

    Parameters
    ----------
    boxes1 : Tensor (N, 4), boxes2 : Tensor (M, 4)
        ``[x0, y0, x1, y1]`` in pixels.
    constant : float
        ``C`` in pixels.
    pairwise : bool
        ``(N, M)`` matrix if True, else ``(N,)`` for aligned pairs (``N == M``).
    """
    import torch

    return torch.exp(-wasserstein_distance(boxes1, boxes2, pairwise=pairwise) / constant)


def iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise box IoU ``(N, M)`` (torchvision's :func:`~torchvision.ops.box_iou`)."""
    from torchvision.ops import box_iou

    return box_iou(boxes1, boxes2)
