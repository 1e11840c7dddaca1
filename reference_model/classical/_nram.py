"""NRAM: non-convex rank approximation minimisation joint l2,1 norm.

Zhang, L., Peng, L., Zhang, T., Cao, S., Peng, Z. "Infrared small target detection via
non-convex rank approximation minimization joint l2,1 norm", Remote Sensing 10(11), 1821, 2018.

The patch image ``D`` (``patch x patch`` windows every ``step`` pixels, min-max scaled to [0, 1])
is split as ``D = B + T + E``: background ``B`` (low rank, with the non-convex gamma-norm
``sum_i (1 + gamma) s_i / (gamma + s_i)`` of its singular values), target ``T`` (reweighted l1)
and strong edges ``E`` (l2,1: sparse columns, counted as background),

    min ||B||_gamma + lam ||W . T||_1 + beta ||E||_{2,1}   s.t.  D = B + T + E,

solved by ADMM. Each iteration: ``B`` by difference-of-convex programming on the singular values
of ``D - T - E - Y/mu`` (reweighted singular value thresholding, one SVD, inner loop on the
values only); ``T`` by weighted soft thresholding with weights ``C / (|R| + 0.04)``,
``C = sqrt(min(m, n)) / 2.5``, of ``R = D - B - E - Y/mu``; ``E`` by column-wise shrinkage;
``Y += mu (B + T + E - D)``, ``mu *= 1.1``. Defaults are those of the authors' code (Demo_NRAM,
nram.m): patch 50, step 10, ``lam = 1 / sqrt(min(m, n))``, ``beta = 3 / sqrt(min(m, n))``,
``mu0 = 3 sqrt(max(m, n))``, ``gamma = 0.002``, tolerance 1e-7, at most 1000 iterations.

Deviations: the target update is the symmetric weighted soft threshold of the paper (the
authors' ``prox_weighted_l1.m`` omits ``1/mu`` on its negative branch; only the positive part is
scored either way); the target image averages overlapping windows (the authors' ``reconstruct.m``
keeps the last window written); ``max_iter`` defaults to 300 (the ADMM with ``mu`` growing by 1.1
reaches the 1e-7 tolerance well before on NUAA-SIRST-sized images); SVDs through the Gram
matrix (:func:`reference_model.classical._patches.thin_svd`, ~4x faster, same values above the
thresholds).
"""

from __future__ import annotations

import numpy as np

from reference_model.classical._local import _positive_float, _positive_int, as_image
from reference_model.classical._patches import check_patch, min_max, patches, rebuild, thin_svd

#: Constants of the authors' code.
MU_GROWTH = 1.1
WEIGHT_EPS = 0.04
WEIGHT_C_DIVISOR = 2.5
DC_MAX_ITER = 100
DC_TOL = 1e-6


def _gamma_svt(x: np.ndarray, mu: float, previous: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Difference-of-convex step for the gamma-norm: reweighted singular value thresholding.

    Returns the low-rank estimate ``(m, n)`` and its singular values (for the next call's start).
    """
    u, s, vt = thin_svd(x)
    sigma = previous[: s.size] if previous.size >= s.size else np.zeros_like(s)
    for _ in range(DC_MAX_ITER):
        grad = (1.0 + gamma) * gamma / (gamma + sigma) ** 2
        new = np.maximum(s - grad / mu, 0.0)
        done = float(np.sum((new - sigma) ** 2)) < DC_TOL
        sigma = new
        if done:
            break
    keep = sigma > 0
    return (u[:, keep] * sigma[keep]) @ vt[keep], sigma


def _l21_shrink(x: np.ndarray, tau: float) -> np.ndarray:
    """Column-wise shrinkage: each column scaled by ``max(1 - tau / ||col||, 0)``."""
    norms = np.linalg.norm(x, axis=0)
    scale = np.where(norms > tau, 1.0 - tau / np.maximum(norms, 1e-300), 0.0)
    return x * scale


def nram_decompose(
    d: np.ndarray, *, gamma: float = 2e-3, tol: float = 1e-7, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Split a patch image ``d (m, n)`` into background, target and edges; also the iteration count."""
    m, n = d.shape
    lam = 1.0 / np.sqrt(min(m, n))
    beta = 3.0 / np.sqrt(min(m, n))
    weight_c = np.sqrt(min(m, n)) / WEIGHT_C_DIVISOR
    mu = 3.0 * np.sqrt(max(m, n))
    norm = float(np.linalg.norm(d))
    b = np.zeros_like(d)
    t = np.zeros_like(d)
    e = np.zeros_like(d)
    y = np.zeros_like(d)
    sigma = np.zeros(min(m, n))
    it = 0
    if norm == 0.0:
        return b, t, e, it
    for it in range(1, max_iter + 1):  # noqa: B007 - ``it`` is returned
        b, sigma = _gamma_svt(d - t - e - y / mu, mu, sigma, gamma)
        r = d - b - e - y / mu
        t = np.sign(r) * np.maximum(np.abs(r) - lam * weight_c / (np.abs(r) + WEIGHT_EPS) / mu, 0.0)
        e = _l21_shrink(d - t - b - y / mu, beta / mu)
        residual = b + t + e - d
        y += mu * residual
        mu *= MU_GROWTH
        if np.linalg.norm(residual) / norm < tol:
            break
    return b, t, e, it


def nram(
    image: np.ndarray,
    *,
    patch: int = 50,
    step: int = 10,
    gamma: float = 2e-3,
    tol: float = 1e-7,
    max_iter: int = 300,
) -> np.ndarray:
    """NRAM score map (positive part of the reconstructed target image).

    Parameters
    ----------
    image : ndarray (H, W)
    patch, step : int
        Window side and step in pixels (paper: 50 and 10).
    gamma : float
        Parameter of the gamma-norm rank surrogate (paper: 0.002).
    tol, max_iter : stopping rule on ``||D - B - T - E||_F / ||D||_F``.

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = as_image(image)
    patch, step = check_patch(patch, step)
    max_iter = _positive_int("max_iter", max_iter)
    gamma = _positive_float("gamma", gamma)
    d, index, shape = patches(img, patch, step)
    _, t, _, _ = nram_decompose(min_max(d), gamma=gamma, tol=tol, max_iter=max_iter)
    return np.maximum(rebuild(t, index, shape, img.shape), 0.0).astype(np.float32)
