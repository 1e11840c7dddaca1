"""Box similarity measures shared by the evaluator's matchers and EFLNet's losses.

All boxes are ``[x0, y0, x1, y1]`` in pixels (pixel-edge convention, see
:mod:`irstd_bench.targets`). Functions take torch tensors; :func:`as_tensor` wraps numpy.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

#: NWD normalising constant in pixels; the EFLNet paper's sweep found 11 best on its data.
DEFAULT_NWD_CONSTANT = 11.0


def as_tensor(boxes: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` float64 tensor from an array-like of boxes."""
    if isinstance(boxes, torch.Tensor):
        return boxes.reshape(-1, 4)
    return torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))


def _gaussian_params(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` -> ``(cx, cy, w / 2, h / 2)``: mean and std-axes of the box's Gaussian."""
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
    return torch.exp(-wasserstein_distance(boxes1, boxes2, pairwise=pairwise) / constant)


def iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise box IoU ``(N, M)`` (torchvision's :func:`~torchvision.ops.box_iou`)."""
    return box_iou(boxes1, boxes2)
