"""Filter-based detectors: white top-hat, max-median, LCM and MPCM.

Every function takes a grayscale image ``(H, W)`` (any real dtype; converted to float64) and
returns a score map ``(H, W)`` float32, finite, where a higher value means "more like a small
bright target". Borders are handled by reflection, so the maps have the input's size. All of
them are vectorised with :mod:`scipy.ndimage` filters and array shifts (no per-pixel loops).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from irstd_bench.errors import InputError

#: Added to denominators (images are scaled to [0, 1] by the runner, so this is tiny).
EPS = 1e-6

#: The 8 neighbour directions (dy, dx) of a 3x3 cell grid, ordered so that direction ``i`` and
#: ``i + 4`` are opposite (MPCM multiplies opposite pairs).
NEIGHBOUR_DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def as_image(image: np.ndarray) -> np.ndarray:
    """Check a 2-D real image and return it as finite float64 ``(H, W)``."""
    array = np.asarray(image)
    if array.ndim != 2:
        raise InputError(f"image must be 2-D (H, W), got shape {array.shape}")
    if array.size == 0:
        raise InputError(f"image is empty (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise InputError(f"image must be real-valued, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InputError("image contains NaN or infinite values")
    return array


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(name: str, value) -> float:
    """``value`` when it is a number above 0 (NaN is not), else a one-line :class:`InputError`."""
    if not value > 0:
        raise InputError(f"{name} must be > 0, got {value!r}")
    return value


def _scales(name: str, values) -> tuple[int, ...]:
    values = (values,) if np.isscalar(values) else tuple(values)
    if not values:
        raise InputError(f"{name} must name at least one scale")
    return tuple(_positive_int(name, v) for v in values)


def _shifted(padded: np.ndarray, pad: int, dy: int, dx: int, shape: tuple[int, int]) -> np.ndarray:
    """``out[r, c] = image[r + dy, c + dx]`` read from a copy of the image padded by ``pad``."""
    h, w = shape
    return padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def disk_footprint(radius: int) -> np.ndarray:
    """Boolean disk of the given radius in pixels, shape ``(2r+1, 2r+1)``."""
    r = _positive_int("radius", radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= r * r


def white_tophat(image: np.ndarray, *, radius: int = 4) -> np.ndarray:
    """White top-hat: the image minus its grey-level opening by a disk.

    Rivest, J.-F., Fortin, R. "Detection of dim targets in digital infrared imagery by
    morphological image processing", Optical Engineering 35(7), 1996.

    Parameters
    ----------
    image : ndarray (H, W)
    radius : int
        Radius in pixels of the flat disk structuring element. Bright structures narrower than
        the disk (``2 * radius + 1`` px) survive; wider clutter is removed.

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = as_image(image)
    opened = ndimage.grey_opening(img, footprint=disk_footprint(radius), mode="reflect")
    return np.maximum(img - opened, 0.0).astype(np.float32)


def _line_footprints(length: int) -> list[np.ndarray]:
    """Horizontal, vertical and the two diagonal lines of ``length`` pixels (odd)."""
    eye = np.eye(length, dtype=bool)
    horizontal = np.zeros((length, length), dtype=bool)
    horizontal[length // 2] = True
    return [horizontal, horizontal.T, eye, eye[::-1]]


def max_median(image: np.ndarray, *, size: int = 11) -> np.ndarray:
    """Max-median filter residual: image minus the largest of 4 directional medians.

    Deshpande, S. D., Er, M. H., Venkateswarlu, R., Chan, P. "Max-mean and max-median filters
    for detection of small targets", Proc. SPIE 3809, 1999.

    The medians are taken along the horizontal, vertical and both diagonal lines of ``size``
    pixels through each pixel; their maximum estimates the background (it preserves edges of
    any of the 4 orientations), and the positive residual is the score.

    Parameters
    ----------
    image : ndarray (H, W)
    size : int
        Odd line length in pixels (>= 3); should exceed twice the largest target width.

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = as_image(image)
    size = _positive_int("size", size)
    if size < 3 or size % 2 == 0:
        raise InputError(f"size must be an odd integer >= 3, got {size}")
    background = np.full(img.shape, -np.inf)
    for footprint in _line_footprints(size):
        np.maximum(
            background, ndimage.median_filter(img, footprint=footprint, mode="reflect"), out=background
        )
    return np.maximum(img - background, 0.0).astype(np.float32)


def lcm(image: np.ndarray, *, scales=(3, 5, 7, 9)) -> np.ndarray:
    """Multiscale local contrast measure (LCM).

    Chen, C. L. P., Li, H., Wei, Y., Xia, T., Tang, Y. Y. "A local contrast method for small
    infrared target detection", IEEE TGRS 52(1), 2014.

    For a cell size ``l`` the window around a pixel is a 3x3 grid of ``l x l`` cells. With
    ``L`` the maximum of the central cell and ``m_i`` the means of the 8 surrounding cells,
    ``C_l = min_i L**2 / m_i``; the multiscale LCM is ``max_l C_l``. Computed for every pixel
    (dense sliding window) rather than on the paper's cell grid.

    Parameters
    ----------
    image : ndarray (H, W)
        Non-negative intensities (the runner scales to [0, 1]); negative values are clipped.
    scales : sequence of int
        Cell sizes ``l`` in pixels.

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = np.maximum(as_image(image), 0.0)
    out = np.zeros(img.shape)
    for size in _scales("scales", scales):
        centre_max = ndimage.maximum_filter(img, size=size, mode="reflect")
        cell_mean = ndimage.uniform_filter(img, size=size, mode="reflect")
        padded = np.pad(cell_mean, size, mode="reflect")
        surround_max = np.zeros(img.shape)
        for dy, dx in NEIGHBOUR_DIRECTIONS:
            np.maximum(
                surround_max, _shifted(padded, size, dy * size, dx * size, img.shape), out=surround_max
            )
        # min_i L^2 / m_i is reached at the brightest surrounding cell.
        np.maximum(out, centre_max**2 / (surround_max + EPS), out=out)
    return out.astype(np.float32)


def mpcm(image: np.ndarray, *, scales=(3, 5, 7, 9), smooth: int = 3) -> np.ndarray:
    """Multiscale patch-based contrast measure (MPCM), bright-target version.

    Wei, Y., You, X., Li, H. "Multiscale patch-based contrast measure for small infrared target
    detection", Pattern Recognition 58, 2016.

    After a ``smooth x smooth`` mean filter, for cell size ``l``: ``d_i = m_T - m_i`` with
    ``m_T`` the mean of the central ``l x l`` cell and ``m_i`` of the surrounding cell in
    direction ``i``. Opposite directions are multiplied, ``D_i = d_i * d_{i+4}`` (``i = 1..4``),
    kept only when both differences are positive (bright target), and
    ``PCM_l = min_i D_i``; the MPCM is ``max_l PCM_l``.

    Parameters
    ----------
    image : ndarray (H, W)
    scales : sequence of int
        Cell sizes ``l`` in pixels.
    smooth : int
        Size of the pre-smoothing mean filter in pixels (1 disables it).

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = as_image(image)
    smooth = _positive_int("smooth", smooth)
    if smooth > 1:
        img = ndimage.uniform_filter(img, size=smooth, mode="reflect")
    out = np.zeros(img.shape)
    for size in _scales("scales", scales):
        cell_mean = ndimage.uniform_filter(img, size=size, mode="reflect")
        padded = np.pad(cell_mean, size, mode="reflect")
        diffs = [
            cell_mean - _shifted(padded, size, dy * size, dx * size, img.shape)
            for dy, dx in NEIGHBOUR_DIRECTIONS
        ]
        pcm = np.full(img.shape, np.inf)
        for i in range(4):
            both_brighter = (diffs[i] > 0) & (diffs[i + 4] > 0)
            np.minimum(pcm, np.where(both_brighter, diffs[i] * diffs[i + 4], 0.0), out=pcm)
        np.maximum(out, pcm, out=out)
    return out.astype(np.float32)
