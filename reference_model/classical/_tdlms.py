"""Two-dimensional least mean square (TDLMS) adaptive background prediction.

Hadhoud, M. M., Thomas, D. W. "The two-dimensional adaptive LMS (TDLMS) algorithm", IEEE Trans.
Circuits Syst. 35(5), 1988; applied to infrared small targets by Cao, Y., Liu, R., Yang, J.
"Small target detection using two-dimensional least mean square (TDLMS) filter based on
neighborhood analysis", Int. J. Infrared Millim. Waves 29, 2008.

An adaptive FIR filter ``w`` (``support x support`` taps) predicts each pixel from its
neighbourhood, scanning the image in raster order and updating the taps after every pixel:

    y(n) = w . x(n),   e(n) = d(n) - y(n),   w <- w + 2 mu e(n) x(n) / (||x(n)||^2 + EPS)

with ``d(n)`` the pixel and ``x(n)`` its ``support x support`` neighbourhood with the centre
tap removed (a filter that sees the pixel itself learns the identity and predicts the target
too; Cao et al. exclude the centre region for the same reason). The background follows the
prediction; the positive prediction error is the target score.

Deviations: the step is normalised by the window energy (normalised LMS), so that one default
works for any intensity scale, where the papers use a fixed ``mu`` tuned for 8-bit images; the
taps start as a uniform average (``1 / (support**2 - 1)``), and two passes are run (the second
starts from the taps the first ended with), so that the top-left corner is not scored by a
filter that has not adapted yet.

The recursion is inherently sequential (each pixel uses the taps the previous one left); it runs
as a Python loop over pixels on precomputed neighbourhood vectors, about 2-4 us per pixel.
"""

from __future__ import annotations

import numpy as np

from irstd_bench.errors import InputError
from reference_model.classical._local import _positive_int, as_image

#: Added to the window energy in the normalised step.
ENERGY_EPS = 1e-6


def tdlms(image: np.ndarray, *, support: int = 5, mu: float = 0.05, passes: int = 2) -> np.ndarray:
    """TDLMS score map: positive part of the adaptive prediction error.

    Parameters
    ----------
    image : ndarray (H, W)
    support : int
        Odd side of the filter support in pixels (>= 3).
    mu : float
        Normalised step size, ``0 < mu < 1``.
    passes : int
        Raster scans over the image; the error of the last one is returned.

    Returns
    -------
    score_map : ndarray (H, W) float32, >= 0
    """
    img = as_image(image)
    support = _positive_int("support", support)
    passes = _positive_int("passes", passes)
    if support < 3 or support % 2 == 0:
        raise InputError(f"support must be an odd integer >= 3, got {support}")
    if not 0 < mu < 1:
        raise InputError(f"mu must be in (0, 1), got {mu!r}")
    h, w = img.shape
    lo, hi = img.min(), img.max()
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    r = support // 2
    padded = np.pad(img, r, mode="reflect" if min(h, w) > r else "symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (support, support)).reshape(h * w, -1)
    centre = support * support // 2
    x = np.ascontiguousarray(np.delete(windows, centre, axis=1))  # (H*W, support^2 - 1)
    gain = 2.0 * mu / ((x * x).sum(axis=1) + ENERGY_EPS)  # per-pixel normalised step
    d = img.ravel()
    taps = np.full(x.shape[1], 1.0 / x.shape[1])
    error = np.zeros(h * w)
    for _ in range(passes):
        for n in range(h * w):
            xn = x[n]
            e = d[n] - taps @ xn
            error[n] = e
            taps += (gain[n] * e) * xn
    return np.maximum(error, 0.0).reshape(h, w).astype(np.float32)
