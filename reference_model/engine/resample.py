"""Resampling a canvas window onto the network input without losing small targets.

:func:`.augment.affine_window` samples images bilinearly and masks by nearest sampling on an
``affine_grid``; when the window shrinks the canvas (pixel scale ``a < 1``, output px per canvas
px) one output pixel covers ``1 / a`` canvas px, so:

- images are first area-averaged over that footprint (:func:`area_prefilter`: a separable box
  of width ``1 / a`` with fractional end weights, :func:`box_weights`), so a one-pixel target
  keeps its energy and is blurred no more than the zoom-out itself blurs it;
- a mask pixel is foreground when its footprint holds a foreground canvas pixel
  (:func:`sample_mask`), the letterbox's rule for shrinking masks.

Batched over images (grouped convolutions, a few ``grid_sample`` calls), on the batch's device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def sample_mask(masks: torch.Tensor, grid: torch.Tensor, scale: np.ndarray) -> torch.Tensor:
    """Masks ``(B, 1, W, W)`` at ``grid``: an output pixel is foreground when its footprint holds a foreground pixel.

    Where ``a >= 1`` the footprint is under one canvas pixel: nearest sampling. Where ``a < 1`` it
    is the square ``x +- w / 2`` (``w = 1 / a`` canvas px), overlapping at most ``ceil(w) + 1`` and
    at least ``ceil(w)`` pixels per axis: with a forward max filter of ``m = ceil((ceil(w) + 1) / 2)``
    pixels, the maximum over the overlapped pixels ``[lo, hi]`` is the maximum of the filter at
    ``lo`` and ``hi - m + 1`` (per axis; four nearest samples in 2-D). This is the letterbox's
    "any foreground pixel in the footprint" rule exactly: a target cannot vanish when its box
    survives, and it grows by under one output pixel.
    """
    out = F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    shrink = scale < 1.0
    if not shrink.any():
        return out
    width = 1.0 / np.maximum(scale, 1e-6)
    spans = np.where(shrink, (np.ceil(width - 1e-9).astype(int) + 2) // 2, 1)
    canvas = masks.shape[-1]
    for m in sorted(set(spans[shrink].tolist())):
        rows_np = np.flatnonzero(shrink & (spans == m))
        rows = torch.as_tensor(rows_np, device=masks.device)
        # zero border of m px, so that clamped indices read background; filtered[p] = max(mask[p : p + m])
        padded = F.pad(masks.index_select(0, rows), (m, 2 * m - 1, m, 2 * m - 1))
        filtered = F.max_pool2d(padded, m, stride=1)
        side = filtered.shape[-1]
        half = torch.as_tensor(width[rows_np] / 2.0, dtype=grid.dtype).to(grid.device).view(-1, 1, 1, 1)
        xy = (grid.index_select(0, rows) + 1.0) * (canvas / 2.0) + m  # footprint centres, padded canvas px
        lo = torch.floor(xy - half).clamp(0, side - 1)
        second = (torch.ceil(xy + half) - m).clamp(0, side - 1)  # hi - m + 1
        best = None
        for cx in (lo[..., 0], second[..., 0]):
            for cy in (lo[..., 1], second[..., 1]):
                at = (torch.stack([cx, cy], dim=-1) + 0.5) * (2.0 / side) - 1.0  # pixel centres
                sample = F.grid_sample(filtered, at, mode="nearest", padding_mode="zeros", align_corners=False)
                best = sample if best is None else torch.maximum(best, sample)
        out = out.index_copy(0, rows, best)
    return out


def box_weights(width: np.ndarray) -> np.ndarray:
    """1-D area weights ``(B, 2K + 1)`` of a centred box of ``width`` px (``(B,)``, >= 1) on the pixel grid.

    Tap ``k`` (offset ``k - K`` px) weighs the overlap of ``[k - K - 1/2, k - K + 1/2]`` with
    ``[-width / 2, width / 2]``, over ``width``: the weights sum to 1, width 1 is the identity.
    """
    width = np.maximum(np.asarray(width, np.float64), 1.0)
    k = int(np.ceil((width.max() - 1.0) / 2.0 - 1e-9))
    offsets = np.arange(-k, k + 1, dtype=np.float64)
    overlap = np.minimum(offsets + 0.5, width[:, None] / 2) - np.maximum(offsets - 0.5, -width[:, None] / 2)
    return np.clip(overlap, 0.0, None) / width[:, None]


def area_prefilter(x: torch.Tensor, scale: np.ndarray) -> torch.Tensor:
    """Images whose pixel scale ``a < 1`` averaged over a box of width ``1 / a`` (separable, one grouped conv)."""
    rows_np = np.flatnonzero(scale < 1.0)
    if rows_np.size == 0:
        return x
    rows = torch.as_tensor(rows_np, device=x.device)
    taps = torch.as_tensor(box_weights(1.0 / scale[rows_np]), dtype=x.dtype).to(x.device)  # (R, 2K+1)
    r, n = taps.shape
    part = x.index_select(0, rows).transpose(0, 1)  # (1, R, H, W): one group per image
    part = F.pad(part, (n // 2, n // 2, n // 2, n // 2), mode="replicate")
    part = F.conv2d(part, taps.view(r, 1, n, 1), groups=r)
    part = F.conv2d(part, taps.view(r, 1, 1, n), groups=r)
    return x.index_copy(0, rows, part.transpose(0, 1).contiguous())
