"""Infrared patch-image (IPI) model: low-rank background + sparse target by RPCA.

Gao, C., Meng, D., Yang, Y., Wang, Y., Zhou, X., Hauptmann, A. G. "Infrared patch-image model
for small target detection in a single image", IEEE TIP 22(12), 2013.

The image is cut into overlapping ``patch x patch`` windows (stride ``stride``); each window,
vectorised, is one column of the patch image ``D`` (``patch**2 x n``). ``D = B + T`` is split
into a low-rank background ``B`` and a sparse target part ``T`` by robust PCA,

    min ||B||_* + lam * ||T||_1   s.t.  D = B + T,      lam = lambda_scale / sqrt(max(m, n)),

solved with the inexact augmented Lagrange multiplier method (Lin, Chen, Ma 2010) instead of
the paper's accelerated proximal gradient (same objective; it converges in tens of SVDs). The
target image is rebuilt by averaging each pixel's values over the patches that contain it
(the paper takes a median), and its positive part is the score map.
"""

from __future__ import annotations

import numpy as np

from irstd_bench.errors import InputError
from reference_model.classical._local import _positive_float, _positive_int, as_image


def _pad_to_grid(img: np.ndarray, patch: int, stride: int) -> np.ndarray:
    """Reflect-pad bottom/right so that windows at ``stride`` steps cover every pixel."""
    pads = []
    for n in img.shape:
        size = max(n, patch)
        extra = (-(size - patch)) % stride
        pads.append((0, size - n + extra))
    return np.pad(img, pads, mode="symmetric")


def patch_image(img: np.ndarray, patch: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Build the patch image from windows at every ``stride`` pixels (the padded image fits them).

    Returns
    -------
    D : ndarray (patch*patch, n)
        One vectorised window per column.
    index : ndarray (patch*patch, n) int64
        Flat index (into ``img``) of every entry of ``D``, for :func:`average_patches`.
    """
    rows = np.arange(0, img.shape[0] - patch + 1, stride)
    cols = np.arange(0, img.shape[1] - patch + 1, stride)
    return patch_image_at(img, patch, rows, cols)


def patch_image_at(
    img: np.ndarray, patch: int, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Patch image of the windows whose top-left corners are ``rows x cols`` (row-major order).

    Returns ``D (patch*patch, n)`` and ``index (patch*patch, n)`` as :func:`patch_image`, with
    ``n = len(rows) * len(cols)``; column ``k`` is window ``(rows[k // len(cols)], cols[k % len(cols)])``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    r = rows[:, None, None, None] + np.arange(patch)[None, None, :, None]
    c = cols[None, :, None, None] + np.arange(patch)[None, None, None, :]
    index = (r * img.shape[1] + c).reshape(len(rows) * len(cols), patch * patch).T
    return np.ascontiguousarray(img.ravel()[index]), index


def average_patches(values: np.ndarray, index: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Image ``shape`` whose pixels average the entries of ``values`` that ``index`` maps onto them.

    ``values`` and ``index`` have the same shape (e.g. ``(patch*patch, n)``); pixels no window
    covers are 0.
    """
    size = shape[0] * shape[1]
    flat = index.ravel()
    total = np.bincount(flat, weights=np.asarray(values, dtype=np.float64).ravel(), minlength=size)
    count = np.bincount(flat, minlength=size)
    return (total / np.maximum(count, 1)).reshape(shape)


def rpca_inexact_alm(
    d: np.ndarray, lam: float, *, tol: float = 1e-5, max_iter: int = 100, rho: float = 1.5
) -> tuple[np.ndarray, np.ndarray, int]:
    """Robust PCA ``D = B + T`` by the inexact ALM method.

    Parameters
    ----------
    d : ndarray (m, n) float
    lam : float
        Weight of the l1 term.
    tol : float
        Stop when ``||D - B - T||_F / ||D||_F < tol``.
    max_iter : int
    rho : float
        Growth factor of the penalty ``mu`` per iteration.

    Returns
    -------
    B, T : ndarray (m, n)
    iterations : int
    """
    norm_fro = float(np.linalg.norm(d))
    if norm_fro == 0.0:
        return np.zeros_like(d), np.zeros_like(d), 0
    norm_two = float(np.linalg.norm(d, 2))
    y = d / max(norm_two, float(np.abs(d).max()) / lam)
    mu, mu_max = 1.25 / norm_two, 1.25e7 / norm_two
    t = np.zeros_like(d)
    b = np.zeros_like(d)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - ``it`` is returned
        u, s, vt = np.linalg.svd(d - t + y / mu, full_matrices=False)
        keep = s > 1.0 / mu
        b = (u[:, keep] * (s[keep] - 1.0 / mu)) @ vt[keep]
        r = d - b + y / mu
        t = np.sign(r) * np.maximum(np.abs(r) - lam / mu, 0.0)
        z = d - b - t
        y = y + mu * z
        mu = min(mu * rho, mu_max)
        if np.linalg.norm(z) / norm_fro < tol:
            break
    return b, t, it


def ipi(
    image: np.ndarray,
    *,
    patch: int = 30,
    stride: int = 14,
    lambda_scale: float = 1.0,
    tol: float = 1e-5,
    max_iter: int = 100,
) -> np.ndarray:
    """IPI score map (positive part of the sparse target image).

    Parameters
    ----------
    image : ndarray (H, W)
        Intensities; scaled internally to [0, 1] by the image's own range.
    patch : int
        Window side in pixels (paper: 50; 30 keeps NUAA-SIRST-sized images at ~1 s on one core).
    stride : int
        Window step in pixels (paper: 10).
    lambda_scale : float
        ``L`` in ``lam = L / sqrt(max(m, n))``; larger keeps fewer target pixels.
    tol, max_iter : RPCA stopping rule, see :func:`rpca_inexact_alm`.

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = as_image(image)
    patch = _positive_int("patch", patch)
    stride = _positive_int("stride", stride)
    if patch < 2:
        raise InputError(f"patch must be >= 2, got {patch}")
    if stride > patch:
        raise InputError(f"stride ({stride}) must not exceed patch ({patch}): windows would skip pixels")
    lambda_scale = _positive_float("lambda_scale", lambda_scale)
    h, w = img.shape
    lo, hi = img.min(), img.max()
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    padded = _pad_to_grid(img, patch, stride)
    d, index = patch_image(padded, patch, stride)
    lam = lambda_scale / np.sqrt(max(d.shape))
    _, t, _ = rpca_inexact_alm(d.astype(np.float32), lam, tol=tol, max_iter=max_iter)
    # Average each pixel's target values over the windows covering it.
    target = average_patches(t, index, padded.shape)[:h, :w]
    return np.maximum(target, 0.0).astype(np.float32)
