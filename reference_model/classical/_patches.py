"""Shared pieces of the low-rank methods (NRAM, RIPT, PSTNN): window placement, priors, shrinkage.

Window placement follows the authors' MATLAB (``construct.m`` / ``gen_patch_ten.m``): windows
start every ``step`` pixels and one more window is placed flush with the bottom/right border,
so every pixel is covered without padding. Images smaller than one window are padded
(symmetric) at the bottom/right first. The patch image and its reconstruction by averaging are
:func:`reference_model.classical._ipi.patch_image_at` and :func:`average_patches`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from irstd_bench.errors import InputError
from reference_model.classical._ipi import average_patches, patch_image_at
from reference_model.classical._local import _positive_int

#: Gaussian of the structure tensor's pre-smoothing and integration, as ``structure_tensor_lambda.m``
#: of PSTNN: 3x3 kernels of standard deviation 2 and 9 pixels (both close to a 3x3 box).
STRUCTURE_KERNEL = 3
STRUCTURE_SIGMA_SMOOTH = 2.0
STRUCTURE_SIGMA_INTEGRATE = 9.0


def window_starts(n: int, patch: int, step: int) -> np.ndarray:
    """Top-left coordinates of windows along an axis of ``n >= patch`` pixels (authors' placement)."""
    count = -(-(n - patch) // step) + 1  # ceil((n - patch) / step) + 1
    return np.unique(np.append(np.arange(count - 1) * step, n - patch))


def check_patch(patch, step) -> tuple[int, int]:
    """Validate window side and step (``2 <= patch``, ``1 <= step <= patch``)."""
    patch = _positive_int("patch", patch)
    step = _positive_int("step", step)
    if patch < 2:
        raise InputError(f"patch must be >= 2, got {patch}")
    if step > patch:
        raise InputError(f"step ({step}) must not exceed patch ({patch}): windows would skip pixels")
    return patch, step


def patches(img: np.ndarray, patch: int, step: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Patch image of ``img``: ``D (patch*patch, n)``, ``index`` and the (padded) image shape.

    Column ``k`` of ``D`` is window ``k`` in row-major order of the window grid, vectorised
    row-major, so ``D.reshape(patch, patch, n)`` is the patch tensor with frontal slices = windows.
    """
    h, w = img.shape
    if h < patch or w < patch:
        img = np.pad(img, ((0, max(patch - h, 0)), (0, max(patch - w, 0))), mode="symmetric")
    rows = window_starts(img.shape[0], patch, step)
    cols = window_starts(img.shape[1], patch, step)
    d, index = patch_image_at(img, patch, rows, cols)
    return d, index, img.shape


def rebuild(values: np.ndarray, index: np.ndarray, shape: tuple[int, int], out_shape) -> np.ndarray:
    """Average the patch entries back into an image and crop to ``out_shape``."""
    return average_patches(values, index, shape)[: out_shape[0], : out_shape[1]]


def _gauss(img: np.ndarray, sigma: float) -> np.ndarray:
    """Correlate with the normalised ``STRUCTURE_KERNEL``-square Gaussian (symmetric borders)."""
    r = STRUCTURE_KERNEL // 2
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma**2))
    kernel = np.outer(g, g)
    return ndimage.correlate(img, kernel / kernel.sum(), mode="reflect")


def structure_tensor_eigenvalues(
    img: np.ndarray,
    sigma_smooth: float = STRUCTURE_SIGMA_SMOOTH,
    sigma_integrate: float = STRUCTURE_SIGMA_INTEGRATE,
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``lambda1 >= lambda2`` of the structure tensor of ``img``, each ``(H, W)``.

    ``J = K_rho * (grad u grad u^T)`` with ``u`` the image smoothed by a Gaussian; gradients by
    central differences (one-sided at the border, like MATLAB's ``gradient``). Both Gaussians are
    ``STRUCTURE_KERNEL``-square with standard deviations ``sigma_smooth`` and ``sigma_integrate``
    in pixels (defaults: PSTNN's code; RIPT's code uses 1.2 and 2).
    """
    u = _gauss(img, sigma_smooth)
    gy, gx = np.gradient(u) if min(u.shape) > 1 else (np.zeros_like(u), np.zeros_like(u))
    j11 = _gauss(gx * gx, sigma_integrate)
    j12 = _gauss(gx * gy, sigma_integrate)
    j22 = _gauss(gy * gy, sigma_integrate)
    root = np.sqrt((j11 - j22) ** 2 + 4 * j12 * j12)
    return 0.5 * (j11 + j22 + root), 0.5 * (j11 + j22 - root)


def min_max(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the array's own range (MATLAB ``mat2gray``); constant -> zeros."""
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def soft_threshold(x: np.ndarray, tau) -> np.ndarray:
    """Entrywise ``sign(x) max(|x| - tau, 0)`` (``tau`` scalar or array, may be ``inf``)."""
    return np.sign(x) * np.maximum(np.abs(x) - tau, 0.0)


def thin_svd(m: np.ndarray, above: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``m = u diag(s) vt`` through the eigendecomposition of the smaller Gram matrix.

    For an ``(a, b)`` matrix with ``k = min(a, b)``: ``u (a, k)``, ``s (k,)`` descending, ``vt (k, b)``.
    About 4x faster than LAPACK's SVD for the tall patch images here; singular values below
    ~1e-8 x the largest lose accuracy (squared condition number), which only affects values that
    every shrinkage step of these methods sets to zero. With ``above`` (>= 0), only the ``r``
    singular values ``> above`` and their vectors are returned (the long-side vectors are only
    computed for them): ``u (a, r)``, ``s (r,)``, ``vt (r, b)``. The eigendecomposition itself is
    always complete: LAPACK's subset solver (``dsyevr``) was up to 3x slower than the full one
    (``dsyevd``) once more than a fifth of the values are kept.
    """
    wide = m.shape[0] < m.shape[1]
    a = m.T if wide else m  # tall (p, k)
    eigval, v = np.linalg.eigh(a.T @ a)
    order = np.argsort(eigval)[::-1]
    s = np.sqrt(np.maximum(eigval[order], 0.0))
    if above is not None:
        order, s = order[s > above], s[s > above]
    v = v[:, order]
    u = (a @ v) / np.where(s > 0, s, 1.0)
    return (v, s, u.T) if wide else (u, s, v.T)
