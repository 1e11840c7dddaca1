"""Where the training windows lie: scale/translate jitter, and the target-keeping random crop.

Both are computed for a whole batch at once with ``numpy`` (a few numbers per image, no
pixels) and handed to :func:`.augment.affine_window` as a pixel scale ``a`` (output px per
canvas px) and a window centre ``c`` (canvas px): the window is the canvas square of side
``S / a`` centred at ``c``, resampled onto the ``S x S`` input.

**Jitter** (:func:`jitter_windows`): ``c = canvas / 2 + u * span`` with ``u`` in ``[-1, 1]`` per
axis and ``span = max(0, (canvas - S / a) / 2) + translate * S / a`` (``style="canvas"``: a window
smaller than the canvas can reach all of it) or ``span = translate * S / a`` (``style="yolov7"``:
YOLOv7's ``random_perspective``, which shifts the scaled canvas centre by up to ``translate`` of the
output side); targets may leave the window.

**Target-keeping crop** (:func:`crop_windows`, the old per-sample crop as one batched op): a
square window of side ``s = max(f S, e)`` canvas px, ``f`` drawn in ``[crop_min_side, 1]`` and
``e`` the side of the union box of the image's targets (so the window can always hold them), is
placed at a drawn position among those that keep the union box inside the window (and the
window inside the canvas where it fits). The crop is then a zoom-in by ``a = S / s`` (up to
``1 / crop_min_side``); every target of the image stays whole in the input.

Window origins are snapped to whole canvas pixels where the bounds allow, so a window at
``a = 1`` copies pixels exactly (no half-pixel blur of one-pixel targets).
"""

from __future__ import annotations

import numpy as np
import torch

#: How far a jitter window may move (``window_style``): over the canvas, or around its centre (YOLOv7).
WINDOW_STYLES = ("canvas", "yolov7")


def target_union(boxes: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """Union box of each image's targets.

    Parameters
    ----------
    boxes : Tensor (N, T, 4) ``[x0, y0, x1, y1]`` px; valid : Tensor (N, T) bool

    Returns
    -------
    ndarray (N, 4) float64, ``[x0, y0, x1, y1]`` px; NaN rows for images without targets.
    """
    b = boxes.detach().to("cpu", torch.float64).numpy()
    v = valid.detach().cpu().numpy().astype(bool)
    if b.shape[1] == 0:
        return np.full((b.shape[0], 4), np.nan)
    lo = np.where(v[..., None], b[..., :2], np.inf).min(axis=1)
    hi = np.where(v[..., None], b[..., 2:], -np.inf).max(axis=1)
    union = np.concatenate([lo, hi], axis=1)
    union[~v.any(axis=1)] = np.nan
    return union


def _snap(origin: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``origin`` rounded to a whole pixel inside ``[lo, hi]`` where one exists, else unchanged."""
    first, last = np.ceil(lo - 1e-9), np.floor(hi + 1e-9)
    snapped = np.clip(np.round(origin), first, last)
    return np.where(first <= last, snapped, origin)


def jitter_windows(
    scale: np.ndarray, centre: np.ndarray, canvas: int, out_size: int, translate: float, style: str = "canvas"
) -> np.ndarray:
    """Window centres ``(B, 2)`` canvas px of the scale/translate jitter (module docstring).

    ``scale``: ``(B,)`` pixel scale ``a``; ``centre``: ``(B, 2)`` draws in ``[-1, 1]``; ``style``:
    one of :data:`WINDOW_STYLES`. Where ``a = 1`` the window origin is snapped to a whole pixel
    (the window stays inside the jitter range), so the pixels are copied, not interpolated.
    """
    if style not in WINDOW_STYLES:
        raise ValueError(f"window style {style!r}: expected {', '.join(WINDOW_STYLES)}")
    a = np.asarray(scale, np.float64)[:, None]
    half = out_size / (2.0 * a)  # half window side, canvas px
    reach = np.maximum(0.0, canvas / 2.0 - half) if style == "canvas" else 0.0
    span = reach + translate * 2.0 * half
    centre_px = canvas / 2.0 + np.asarray(centre, np.float64) * span
    origin = _snap(centre_px - half, canvas / 2.0 - span - half, canvas / 2.0 + span - half)
    return np.where(a == 1.0, origin + half, centre_px)


def crop_windows(
    union: np.ndarray, canvas: int, out_size: int, side_fraction: np.ndarray, position: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Target-keeping crops: pixel scales ``(B,)`` and window centres ``(B, 2)`` canvas px.

    Parameters
    ----------
    union : ndarray (B, 4)
        Union box of each image's targets, canvas px (NaN: no target, the window lies anywhere).
    canvas : int
        Canvas side ``W``, px; ``out_size`` the input side ``S``.
    side_fraction : ndarray (B,)
        ``f``: window side ``f S`` before it grows to hold the targets.
    position : ndarray (B, 2) in [0, 1]
        Where the window lies in its allowed range of origins (0: lowest, 1: highest), per axis.
    """
    union = np.asarray(union, np.float64)
    has = ~np.isnan(union).any(axis=1)
    u0 = np.where(has[:, None], union[:, :2], 0.0)  # (B, 2)
    u1 = np.where(has[:, None], union[:, 2:], 0.0)
    extent = np.where(has, (u1 - u0).max(axis=1), 0.0)
    side = np.ceil(np.maximum(np.asarray(side_fraction, np.float64) * out_size, extent) - 1e-9)
    side = np.maximum(side, 1.0)[:, None]  # (B, 1), whole pixels
    inside_lo, inside_hi = np.minimum(0.0, canvas - side), np.maximum(0.0, canvas - side)
    lo = np.where(has[:, None], np.maximum(inside_lo, u1 - side), inside_lo)
    hi = np.where(has[:, None], np.minimum(inside_hi, u0), inside_hi)
    origin = _snap(lo + np.asarray(position, np.float64) * (hi - lo), lo, hi)
    return out_size / side[:, 0], origin + side / 2.0
