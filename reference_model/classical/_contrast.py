"""Local-contrast detectors of the HVS family: ILCM, RLCM, TLLCM and WSLCM.

Every function takes a grayscale image ``(H, W)`` and returns a finite float32 score map of the
same size (higher = more target-like). The methods whose paper constants are in 8-bit grey levels
(WSLCM's ``xi = 5``) scale the image to [0, 255] first (:data:`GREY_LEVELS`), as the authors' MATLAB
code works on ``double(uint8 image)``; the runner hands images in [0, 1].

Cells are ``c x c`` windows; the "surrounding cells" of a pixel are the 8 cells of a 3x3 grid of
cells centred on it (offsets ``(dy * c, dx * c)``), computed densely for every pixel with array
shifts (:data:`NEIGHBOUR_DIRECTIONS`). Borders are reflected, where MATLAB's ``ordfilt2`` pads
with zeros: only the outer ``1.5 c`` pixels can differ.

Deviations from the papers and the public MATLAB code are listed in each docstring and in
``docs/models/classical.md``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from irstd_bench.errors import InputError
from reference_model.classical._local import (
    EPS,
    NEIGHBOUR_DIRECTIONS,
    _positive_float,
    _positive_int,
    _scales,
    _shifted,
    as_image,
)

#: Grey-level range of the 8-bit images the papers' constants refer to.
GREY_LEVELS = 255.0
#: Normalised 3x3 Gaussian ([1 2 1; 2 4 2; 1 2 1] / 16) of TLLCM's core layer and WSLCM.
GAUSS_3X3 = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0
#: Rows of the image processed at once by :func:`top_k_mean` (bounds memory to ~rows x W x c^2).
_TOPK_ROW_CHUNK = 64


def top_k_mean(img: np.ndarray, size: int, k: int) -> np.ndarray:
    """Mean of the ``k`` largest values in the ``size x size`` window centred on each pixel.

    Parameters
    ----------
    img : ndarray (H, W) float64
    size : int
        Odd window side in pixels.
    k : int
        ``1 <= k <= size**2``.

    Returns
    -------
    ndarray (H, W) float64
    """
    n = size * size
    if not 1 <= k <= n:
        raise InputError(f"k must be in [1, {n}] for a {size}x{size} cell, got {k}")
    r = size // 2
    padded = np.pad(img, r, mode="reflect" if min(img.shape) > r else "symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))  # (H, W, c, c)
    out = np.empty(img.shape)
    for start in range(0, img.shape[0], _TOPK_ROW_CHUNK):
        block = windows[start : start + _TOPK_ROW_CHUNK].reshape(-1, img.shape[1], n)
        top = np.partition(block, n - k, axis=-1)[..., n - k :]
        out[start : start + _TOPK_ROW_CHUNK] = top.mean(axis=-1)
    return out


def _surrounding(values: np.ndarray, cell: int) -> np.ndarray:
    """The 8 surrounding-cell values of every pixel, ``(8, H, W)``: ``values`` read at ``(dy c, dx c)``."""
    padded = np.pad(values, cell + cell // 2, mode="reflect" if min(values.shape) > 2 * cell else "symmetric")
    pad = cell + cell // 2
    return np.stack([_shifted(padded, pad, dy * cell, dx * cell, values.shape) for dy, dx in NEIGHBOUR_DIRECTIONS])


def _odd_scales(name: str, values) -> tuple[int, ...]:
    scales = _scales(name, values)
    bad = [s for s in scales if s % 2 == 0]
    if bad:
        raise InputError(f"{name} must be odd cell sizes, got {bad[0]}")
    return scales


def ilcm(image: np.ndarray, *, block: int = 8) -> np.ndarray:
    """Improved local contrast measure (ILCM).

    Han, J., Ma, Y., Zhou, B., Fan, F., Liang, K., Fang, Y. "A robust infrared small target
    detection algorithm based on human visual system", IEEE GRSL 11(12), 2014.

    Sub-blocks of ``block x block`` pixels at a step of ``block / 2``; each has its mean ``m`` and
    maximum ``L``. With ``m_i`` the means of the 8 neighbouring sub-blocks (offsets of one step),
    ``ILCM = min_i L * m / m_i = L * m / max_i m_i``.

    Deviation: the paper evaluates this on the grid of sub-blocks (one value per step x step
    square); here it is computed densely, one sub-block centred on every pixel (as our LCM),
    so the map has pixel resolution and the image's size.

    Parameters
    ----------
    image : ndarray (H, W)
        Non-negative intensities; negative values are clipped.
    block : int
        Even sub-block side in pixels (paper: 8), step ``block / 2``.

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = np.maximum(as_image(image), 0.0)
    block = _positive_int("block", block)
    if block < 2 or block % 2:
        raise InputError(f"block must be an even integer >= 2, got {block}")
    step = block // 2
    mean = ndimage.uniform_filter(img, size=block, mode="reflect")
    peak = ndimage.maximum_filter(img, size=block, mode="reflect")
    padded = np.pad(mean, step, mode="reflect" if min(img.shape) > step else "symmetric")
    neighbour_max = np.max(
        [_shifted(padded, step, dy * step, dx * step, img.shape) for dy, dx in NEIGHBOUR_DIRECTIONS], axis=0
    )
    return (peak * mean / (neighbour_max + EPS)).astype(np.float32)


def rlcm(image: np.ndarray, *, scales=(3, 5, 7), k1=(2, 5, 9), k2=(4, 9, 16)) -> np.ndarray:
    """Multiscale relative local contrast measure (RLCM).

    Han, J., Liang, K., Zhou, B., Zhu, X., Zhao, J., Zhao, L. "Infrared small target detection
    utilizing the multiscale relative local contrast measure", IEEE GRSL 15(4), 2018.

    For cell size ``c`` (with its ``K1``, ``K2``): ``I_T`` is the mean of the ``K1`` largest pixels
    of the central cell, ``I_i`` the mean of the ``K2`` largest of surrounding cell ``i``;
    ``RLCM_c = min_i (I_T / I_i) * (I_T - I_i)``, reached at the largest ``I_i``; the multiscale
    RLCM is ``max_c RLCM_c``, negative values set to 0.

    Parameters
    ----------
    image : ndarray (H, W)
    scales, k1, k2 : sequences of int, one entry per scale
        Cell sides in pixels and the numbers of largest pixels averaged in the central and the
        surrounding cells (3/5/7 with K1 = 2/5/9 and K2 = 4/9/16, our reading of the paper; the
        public MATLAB variant uses 9x9 cells with the same K pairs).

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = np.maximum(as_image(image), 0.0)
    scales = _odd_scales("scales", scales)
    k1, k2 = _scales("k1", k1), _scales("k2", k2)
    if not len(scales) == len(k1) == len(k2):
        raise InputError(f"scales, k1 and k2 need one entry per scale, got {len(scales)}, {len(k1)}, {len(k2)}")
    out = np.zeros(img.shape)
    for cell, a, b in zip(scales, k1, k2, strict=True):
        centre = top_k_mean(img, cell, a)
        background = _surrounding(top_k_mean(img, cell, b), cell).max(axis=0)
        np.maximum(out, centre / (background + EPS) * (centre - background), out=out)
    return out.astype(np.float32)


def tllcm(image: np.ndarray, *, scales=(9,), k: int = 9) -> np.ndarray:
    """Tri-layer local contrast measure (TLLCM).

    Han, J., Moradi, S., Faramarzi, I., Liu, C., Zhang, H., Zhao, Q. "A local contrast method for
    infrared small-target detection utilizing a tri-layer window", IEEE GRSL 17(10), 2020.

    Core layer: the image smoothed by the 3x3 Gaussian :data:`GAUSS_3X3`, ``C_T``. The rest of the
    central ``c x c`` cell is the reserve layer (ignored, so a target up to ``c`` wide does not
    leak into the background). Surrounding layer: the 8 cells around it, each summarised by the
    mean of its ``k`` largest pixels; ``I_B`` is their maximum.
    ``TLLCM = C_T**2 / I_B - C_T = C_T (C_T - I_B) / I_B``, negative values set to 0; with
    several cell sizes, the maximum over them.

    Parameters
    ----------
    image : ndarray (H, W)
    scales : sequence of odd int
        Cell sides ``c`` in pixels (the public MATLAB code by the paper's co-author: one cell size, 9).
    k : int
        Largest pixels averaged per surrounding cell (code: 9).

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = np.maximum(as_image(image), 0.0)
    scales = _odd_scales("scales", scales)
    k = _positive_int("k", k)
    core = ndimage.correlate(img, GAUSS_3X3, mode="nearest")
    out = np.zeros(img.shape)
    for cell in scales:
        background = _surrounding(top_k_mean(img, cell, k), cell).max(axis=0)
        np.maximum(out, core * (core - background) / (background + EPS), out=out)
    return out.astype(np.float32)


def wslcm(image: np.ndarray, *, scales=(5, 7, 9, 11), k: int = 9, xi: float = 5.0) -> np.ndarray:
    """Weighted strengthened local contrast measure (WSLCM).

    Han, J., Moradi, S., Faramarzi, I., Zhang, H., Zhao, Q., Zhang, X., Li, N. "Infrared small
    target detection based on the weighted strengthened local contrast measure", IEEE GRSL 18(9),
    2021.

    On the 3x3-median-filtered image (8-bit grey scale), for each cell size ``c``:

    - ``M_i``: mean of the ``k`` largest pixels of cell ``i`` (0 = central, 1..8 = surrounding),
      ``m_i``: the cell's mean, ``IRIL_i = M_i - m_i`` (improved regional intensity level);
    - strengthened contrast ``SLCM = max(G**2 / max_i M_i - G, 0)`` with ``G`` the 3x3 Gaussian of
      the image;
    - weight ``W = IRIL_0 * max(IRIL_0 - max_i IRIL_i, 0) / W_B`` with ``W_B`` the standard
      deviation (``n - 1``) of ``IRIL_1..8``, raised to ``xi`` where it is below ``xi``;
    - ``WSLCM_c = W * SLCM``; the result is ``max_c WSLCM_c``.

    Parameters
    ----------
    image : ndarray (H, W)
    scales : sequence of odd int
        Cell sides in pixels (paper/code: 5, 7, 9, 11).
    k : int
        Largest pixels averaged per cell (code: 9); must not exceed the smallest cell's area.
    xi : float
        Floor of ``W_B`` in 8-bit grey levels (code: 5).

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = np.maximum(as_image(image), 0.0)
    scales = _odd_scales("scales", scales)
    k = _positive_int("k", k)
    xi = _positive_float("xi", xi)
    top = img.max()
    img = img * (GREY_LEVELS / top) if top > 0 else img
    img = ndimage.median_filter(img, size=3, mode="reflect")
    gauss = ndimage.correlate(img, GAUSS_3X3, mode="nearest")
    out = np.zeros(img.shape)
    for cell in scales:
        peak = top_k_mean(img, cell, k)
        iril = peak - ndimage.uniform_filter(img, size=cell, mode="reflect")
        peak_around = _surrounding(peak, cell).max(axis=0)
        iril_around = _surrounding(iril, cell)  # (8, H, W)
        slcm = np.maximum(gauss * gauss / (peak_around + EPS) - gauss, 0.0)
        difference = np.maximum(iril - iril_around.max(axis=0), 0.0)
        spread = np.maximum(iril_around.std(axis=0, ddof=1), xi)
        np.maximum(out, iril * difference / spread * slcm, out=out)
    return np.maximum(out, 0.0).astype(np.float32)
