"""Small targets: shapes, their exact masks, and placement at a chosen signal-to-clutter ratio.

Mask rule
---------
A target adds ``amplitude * profile`` to the background, where ``profile`` is its shape
sampled at pixel centres and scaled so that its largest pixel value is exactly 1 (that pixel
is the target's *peak*). Its mask is every pixel with ``profile >= MASK_FRACTION``, i.e.
where the target adds at least ``MASK_FRACTION`` (25 %) of its peak intensity. The mask
depends on the shape only, never on the background or the noise, and always contains the
peak pixel. Profile values below ``TAIL_CUTOFF`` are set to zero; the non-zero pixels are
the target's *support*, and its bounding box the ``support_box``.

Signal-to-clutter ratio
-----------------------
With the local background ``B`` = the pixels of the support box grown by ``SCR_MARGIN_PX``
on every side (clipped to the image), less the support box itself, and ``mu_B``, ``sigma_B``
their mean and standard deviation in the final 8-bit image::

    SCR = (I[peak] - mu_B) / sigma_B

Targets are placed so that their support boxes are at least ``SCR_MARGIN_PX`` apart, so no
target adds anything to another target's ``B`` and masks of different targets never touch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: A pixel is in a target's mask when the target adds at least this fraction of its peak.
MASK_FRACTION = 0.25
#: Profile values below this fraction of the peak are set to zero (the support's edge).
TAIL_CUTOFF = 0.01
#: Width in pixels of the local-background ring around a support box; also the smallest gap
#: between the support boxes of two targets.
SCR_MARGIN_PX = 8
#: Smallest peak added intensity, gray levels: a target is never fainter than this.
MIN_AMPLITUDE = 4.0
#: Largest allowed ``mu_B + SCR * sigma_B`` so the peak stays below 8-bit saturation.
MAX_PEAK_LEVEL = 250.0
#: Fewest local-background pixels a target's SCR may be measured on.
MIN_LOCAL_BACKGROUND_PX = 32
#: Random positions tried for each target.
CANDIDATES_PER_TARGET = 64

#: Shape kinds: isotropic Gaussian point-spread, elongated Gaussian, flat-topped ellipse.
SHAPE_KINDS = ("point", "ellipse", "flat")

_EIGHT = ndimage.generate_binary_structure(2, 2)


@dataclass(frozen=True)
class TargetShape:
    """Geometry of one target.

    ``profile(x, y) = exp(-0.5 * q**order)`` with ``q = (u / sigma_major)**2 + (v / sigma_minor)**2``
    in coordinates ``(u, v)`` rotated by ``angle`` (radians, from +x toward +y) about the
    centre. ``order`` 1 is a Gaussian point-spread function, 2 a flat-topped ellipse.
    ``offset`` ``(dy, dx)`` in [-0.5, 0.5) places the centre inside the central pixel, in px.
    """

    kind: str
    sigma_major: float
    sigma_minor: float
    angle: float
    order: int
    offset: tuple[float, float]


@dataclass(frozen=True)
class Profile:
    """A target's rendered profile, trimmed to its support.

    Attributes
    ----------
    values : ndarray (h, w), float64
        In [0, 1], largest value exactly 1, zero below :data:`TAIL_CUTOFF`.
    peak : (row, col)
        Index of the peak pixel in ``values``.
    mask : ndarray (h, w), bool
        ``values >= MASK_FRACTION``.
    """

    values: np.ndarray
    peak: tuple[int, int]
    mask: np.ndarray


@dataclass(frozen=True)
class PlacedTarget:
    """A target placed in an image.

    Attributes
    ----------
    shape : TargetShape
    profile : Profile
    origin : (row, col)
        Image position of ``profile.values[0, 0]``, px.
    amplitude : float
        Peak added intensity, gray levels.
    scr_design : float
        The SCR asked for; the realised one differs by at most ``0.5 / sigma_B`` (rounding).
    """

    shape: TargetShape
    profile: Profile
    origin: tuple[int, int]
    amplitude: float
    scr_design: float

    @property
    def support_box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the support, px."""
        h, w = self.profile.values.shape
        return (self.origin[1], self.origin[0], self.origin[1] + w, self.origin[0] + h)

    @property
    def peak_xy(self) -> tuple[int, int]:
        """``(column, row)`` of the peak pixel in the image."""
        return (self.origin[1] + self.profile.peak[1], self.origin[0] + self.profile.peak[0])


def _level(fraction: float, order: int) -> float:
    """Value of ``sqrt(q)`` where ``exp(-0.5 q**order) == fraction``."""
    return (2.0 * np.log(1.0 / fraction)) ** (1.0 / (2 * order))


def render_profile(shape: TargetShape) -> Profile:
    """Sample a shape at pixel centres; see the module docstring for the mask rule."""
    reach = _level(TAIL_CUTOFF, shape.order) * shape.sigma_major
    half = int(np.ceil(reach)) + 1
    d = np.arange(-half, half + 1, dtype=np.float64)
    dy = d[:, None] - shape.offset[0]
    dx = d[None, :] - shape.offset[1]
    cos, sin = np.cos(shape.angle), np.sin(shape.angle)
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    q = (u / shape.sigma_major) ** 2 + (v / shape.sigma_minor) ** 2
    values = np.exp(-0.5 * q**shape.order)
    values /= values.max()
    values[values < TAIL_CUTOFF] = 0.0
    rows = np.flatnonzero(values.any(axis=1))
    cols = np.flatnonzero(values.any(axis=0))
    values = values[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    peak = np.unravel_index(int(np.argmax(values)), values.shape)
    return Profile(values=values, peak=(int(peak[0]), int(peak[1])), mask=values >= MASK_FRACTION)


def sample_shape(rng: np.random.Generator, max_area_px: int) -> TargetShape:
    """Draw a shape whose mask area is about log-uniform in ``[1, max_area_px]`` px."""
    area = float(np.exp(rng.uniform(0.0, np.log(max_area_px))))
    offset = (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5)))
    angle = float(rng.uniform(0.0, np.pi))
    kind = "point" if area < 10 else str(rng.choice(SHAPE_KINDS, p=(0.4, 0.35, 0.25)))
    order = 2 if kind == "flat" else 1
    aspect = (
        1.0
        if kind == "point"
        else float(rng.uniform(1.3, 3.0) if kind == "ellipse" else rng.uniform(1.0, 2.5))
    )
    # Mask semi-axes are sigma * level, so its area is about pi * sigma_major * sigma_minor * level**2.
    level = _level(MASK_FRACTION, order)
    minor = max(np.sqrt(area / (np.pi * level**2 * aspect)), 0.35 if kind == "point" else 0.6)
    return TargetShape(
        kind=kind,
        sigma_major=float(minor * aspect),
        sigma_minor=float(minor),
        angle=angle,
        order=order,
        offset=offset,
    )


def draw_target(
    rng: np.random.Generator, max_area_px: int, max_side: int, attempts: int = 20
) -> tuple[TargetShape, Profile] | None:
    """Draw shapes until one has a single 8-connected mask of 1..max_area_px px that fits.

    Returns ``(shape, profile)`` or ``None`` when no attempt fits in ``max_side`` pixels.
    """
    for _ in range(attempts):
        shape = sample_shape(rng, max_area_px)
        profile = render_profile(shape)
        if max(profile.values.shape) > max_side:
            continue
        area = int(profile.mask.sum())
        if not 1 <= area <= max_area_px:
            continue
        if ndimage.label(profile.mask, structure=_EIGHT)[1] != 1:
            continue
        return shape, profile
    return None


def _box_sums(table: np.ndarray, y0, x0, y1, x1) -> np.ndarray:
    """Sums over ``[y0, y1) x [x0, x1)`` from a summed-area table padded with a zero row/column."""
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]


def local_background_box(
    support_box: tuple[int, int, int, int], image_size: tuple[int, int]
) -> tuple[int, ...]:
    """The support box grown by :data:`SCR_MARGIN_PX`, clipped to the image: ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = support_box
    h, w = image_size
    m = SCR_MARGIN_PX
    return (max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, w), min(y1 + m, h))


def place_targets(
    rng: np.random.Generator,
    background: np.ndarray,
    n_targets: int,
    scr_range: tuple[float, float],
    max_area_px: int,
) -> list[PlacedTarget]:
    """Choose shapes, positions and amplitudes for up to ``n_targets`` targets.

    For each target ``CANDIDATES_PER_TARGET`` random positions are scored at once with
    summed-area tables of the background; the first that keeps clear of earlier targets,
    stays below saturation and needs at least :data:`MIN_AMPLITUDE` is taken. A target with
    no such position is left out, so fewer than ``n_targets`` may come back.

    Parameters
    ----------
    rng : numpy.random.Generator
    background : ndarray (H, W), float64
        The background before rounding (gray levels).
    n_targets : int
    scr_range : (low, high)
        Each target's SCR is drawn uniformly from this range.
    max_area_px : int

    Returns
    -------
    list of PlacedTarget
    """
    h, w = background.shape
    quantized = np.clip(np.rint(background), 0, 255)
    table = np.zeros((h + 1, w + 1))
    table[1:, 1:] = quantized.cumsum(0).cumsum(1)
    table_sq = np.zeros((h + 1, w + 1))
    table_sq[1:, 1:] = (quantized**2).cumsum(0).cumsum(1)

    placed: list[PlacedTarget] = []
    for _ in range(n_targets):
        drawn = draw_target(rng, max_area_px, min(h, w))
        scr = float(rng.uniform(*scr_range))
        if drawn is None:
            continue
        shape, profile = drawn
        ph, pw = profile.values.shape
        y0 = rng.integers(0, h - ph + 1, size=CANDIDATES_PER_TARGET)
        x0 = rng.integers(0, w - pw + 1, size=CANDIDATES_PER_TARGET)
        y1, x1 = y0 + ph, x0 + pw
        m = SCR_MARGIN_PX
        oy0, ox0 = np.maximum(y0 - m, 0), np.maximum(x0 - m, 0)
        oy1, ox1 = np.minimum(y1 + m, h), np.minimum(x1 + m, w)
        count = (oy1 - oy0) * (ox1 - ox0) - ph * pw
        total = _box_sums(table, oy0, ox0, oy1, ox1) - _box_sums(table, y0, x0, y1, x1)
        total_sq = _box_sums(table_sq, oy0, ox0, oy1, ox1) - _box_sums(table_sq, y0, x0, y1, x1)
        count = np.maximum(count, 1)
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        peak_level = mean + scr * std
        amplitude = peak_level - background[y0 + profile.peak[0], x0 + profile.peak[1]]
        ok = (
            (count >= MIN_LOCAL_BACKGROUND_PX)
            & (std > 0)
            & (peak_level <= MAX_PEAK_LEVEL)
            & (amplitude >= np.maximum(MIN_AMPLITUDE, 0.5 * scr * std))
        )
        for other in placed:
            bx0, by0, bx1, by1 = other.support_box
            # Clear when the gap between the two support boxes is at least the margin on one axis.
            ok &= (x1 + m <= bx0) | (bx1 + m <= x0) | (y1 + m <= by0) | (by1 + m <= y0)
        hits = np.flatnonzero(ok)
        if hits.size == 0:
            continue
        i = int(hits[0])
        placed.append(
            PlacedTarget(
                shape=shape,
                profile=profile,
                origin=(int(y0[i]), int(x0[i])),
                amplitude=float(amplitude[i]),
                scr_design=scr,
            )
        )
    return placed
