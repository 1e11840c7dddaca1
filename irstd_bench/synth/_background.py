"""Cluttered infrared backgrounds: fractal clouds, horizon bands, distractors and sensor noise.

Every function draws from the :class:`numpy.random.Generator` it is given and from nothing
else, so a background is a pure function of that generator's state. Intensities are in
8-bit gray levels (float64, not yet clipped or rounded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Scene kinds and how often each is drawn.
SCENES = ("sky", "sea", "ground")
SCENE_PROBABILITIES = (0.4, 0.3, 0.3)

#: Distractor kinds: bright extended structures that are not targets.
DISTRACTOR_KINDS = ("blob", "edge", "block")

#: Smallest minor-axis sigma of a blob distractor, in pixels. At 25 % of its peak a blob then
#: covers more than 170 px, well above the largest target (80 px by default).
MIN_BLOB_SIGMA_PX = 4.5

#: A distractor's extent (its ``box``) is where it adds more than this fraction of its peak.
DISTRACTOR_EXTENT_FRACTION = 0.25


@dataclass(frozen=True)
class Distractor:
    """A bright non-target structure added to a background.

    Attributes
    ----------
    kind : {"blob", "edge", "block"}
    box : tuple of int
        ``(x0, y0, x1, y1)`` in pixels (pixel-edge convention) of the pixels where it adds more
        than :data:`DISTRACTOR_EXTENT_FRACTION` of its amplitude.
    amplitude : float
        Peak added intensity, gray levels.
    """

    kind: str
    box: tuple[int, int, int, int]
    amplitude: float


@dataclass(frozen=True)
class Background:
    """A rendered background.

    Attributes
    ----------
    image : ndarray (H, W), float64
        Gray levels, neither rounded nor clipped.
    scene : str
        One of :data:`SCENES`.
    distractors : tuple of Distractor
    noise_sigma : float
        Standard deviation of the temporal (white Gaussian) sensor noise, gray levels.
    """

    image: np.ndarray
    scene: str
    distractors: tuple[Distractor, ...]
    noise_sigma: float


def fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], beta: float, *, anisotropy: float = 1.0
) -> np.ndarray:
    """A Gaussian random field whose power spectrum falls as ``1 / f**beta``.

    White noise is filtered in the Fourier domain by ``f**(-beta / 2)``; ``beta`` near 2
    gives rough terrain-like texture, near 3 smooth cloud-like structure.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (H, W)
        Field size in pixels.
    beta : float
        Spectral exponent (> 0).
    anisotropy : float
        Values > 1 weigh horizontal frequencies more, which stretches structures along x
        (sea swell, strata).

    Returns
    -------
    field : ndarray (H, W), float64
        Zero mean, unit standard deviation (all zeros for a constant field).
    """
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freq = np.hypot(fx * anisotropy, fy)
    # The lowest representable frequency bounds the gain, so no single mode dominates.
    freq = np.maximum(freq, 1.0 / max(h, w))
    gain = freq ** (-beta / 2.0)
    gain[0, 0] = 0.0
    spectrum = np.fft.rfft2(rng.standard_normal((h, w))) * gain
    field = np.fft.irfft2(spectrum, s=(h, w))
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _extent_box(added: np.ndarray, amplitude: float) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((added > DISTRACTOR_EXTENT_FRACTION * amplitude).any(axis=1))
    cols = np.flatnonzero((added > DISTRACTOR_EXTENT_FRACTION * amplitude).any(axis=0))
    if rows.size == 0:
        return (0, 0, 0, 0)
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _distractor(
    rng: np.random.Generator, kind: str, yy: np.ndarray, xx: np.ndarray
) -> tuple[np.ndarray, float]:
    """One distractor's added intensity ``(H, W)`` and its amplitude (gray levels)."""
    h, w = yy.shape[0], xx.shape[1]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    angle = rng.uniform(0, np.pi)
    cos, sin = np.cos(angle), np.sin(angle)
    u = (xx - cx) * cos + (yy - cy) * sin  # along the structure
    v = -(xx - cx) * sin + (yy - cy) * cos  # across it
    if kind == "blob":
        amplitude = rng.uniform(20, 60)
        minor = rng.uniform(MIN_BLOB_SIGMA_PX, max(MIN_BLOB_SIGMA_PX, min(10.0, h / 8)))
        major = minor * rng.uniform(1.0, 3.0)
        return amplitude * np.exp(-0.5 * ((u / major) ** 2 + (v / minor) ** 2)), amplitude
    if kind == "edge":
        # A thin bright ridge (roof edge, power line, coast line): a blurred line segment.
        amplitude = rng.uniform(15, 50)
        half_length = 0.5 * rng.uniform(25, max(26.0, 0.6 * max(h, w)))
        width = rng.uniform(0.8, 2.0)
        along = np.clip(np.abs(u) - half_length, 0.0, None)
        return amplitude * np.exp(-0.5 * (along**2 + v**2) / width**2), amplitude
    # "block": a warm rectangle with soft edges (building, vehicle park, rock face).
    amplitude = rng.uniform(15, 45)
    half_u = 0.5 * rng.uniform(10, max(11.0, min(60.0, w / 3)))
    half_v = 0.5 * rng.uniform(8, max(9.0, min(40.0, h / 4)))
    softness = rng.uniform(0.7, 2.0)
    inside = _smoothstep((half_u - np.abs(u)) / softness + 0.5) * _smoothstep(
        (half_v - np.abs(v)) / softness + 0.5
    )
    return amplitude * inside, amplitude


def render_background(
    rng: np.random.Generator, size: int, column_pattern: np.ndarray, *, n_distractors: int | None = None
) -> Background:
    """Render one cluttered background.

    The scene is ``sky`` (clouds with a vertical gradient), ``sea`` (sky over a horizon and a
    horizontally stretched swell texture) or ``ground`` (sky over a ridge line and a rough,
    patchy terrain texture). Bright distractors (blobs, line edges, warm blocks; all larger
    than any target) are added, then fixed-pattern column noise and white Gaussian noise.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int
        Image side in pixels (square images).
    column_pattern : ndarray (size,)
        The sensor's fixed per-column offsets (unit standard deviation); the same for every
        image of a data set, scaled here by a per-image gain.
    n_distractors : int, optional
        Number of distractors; drawn from 0..3 when ``None``.

    Returns
    -------
    Background
    """
    h = w = size
    yy = np.arange(h, dtype=np.float64)[:, None]
    xx = np.arange(w, dtype=np.float64)[None, :]
    scene = str(rng.choice(SCENES, p=SCENE_PROBABILITIES))

    sky_level = rng.uniform(35, 100)
    sky = sky_level + rng.uniform(0, 35) * (yy / h)  # warmer toward the horizon
    cloud_field = fractal_noise(rng, (h, w), rng.uniform(2.4, 3.3))
    cover = rng.uniform(-0.3, 1.2)
    clouds = rng.uniform(15, 60) * np.clip((cloud_field - cover) / 1.5, 0.0, 1.0) ** 1.2
    sky = sky + clouds + rng.uniform(1.5, 5.0) * fractal_noise(rng, (h, w), rng.uniform(1.8, 2.4))

    if scene == "sky":
        image = np.broadcast_to(sky, (h, w)).copy()
    else:
        horizon = h * rng.uniform(0.3, 0.75) + rng.uniform(-0.08, 0.08) * (xx - w / 2)
        if scene == "ground":
            horizon = horizon + rng.uniform(2, 12) * fractal_noise(rng, (1, w), rng.uniform(1.8, 2.6))
            lower = sky_level + rng.uniform(-25, 40)
            texture = rng.uniform(8, 22) * fractal_noise(rng, (h, w), rng.uniform(1.6, 2.3))
            # Fields and patches: a smooth field cut into three levels gives sharp region edges.
            regions = np.digitize(fractal_noise(rng, (h, w), 3.0), (-0.5, 0.6))
            lower = lower + texture + rng.uniform(-18, 18, size=3)[regions]
        else:
            depth = np.clip((yy - horizon) / h, 0.0, 1.0)  # swell looks larger close to the camera
            swell = fractal_noise(rng, (h, w), rng.uniform(2.0, 2.8), anisotropy=rng.uniform(3, 8))
            lower = sky_level + rng.uniform(-30, 15) + rng.uniform(4, 14) * (0.4 + depth) * swell
        blend = 1.0 / (1.0 + np.exp(-(yy - horizon) / rng.uniform(0.6, 2.5)))
        image = sky * (1.0 - blend) + lower * blend
        # Warm horizon line: an extended bright edge along the whole width.
        image = image + rng.uniform(0, 25) * np.exp(-0.5 * ((yy - horizon) / rng.uniform(0.8, 2.0)) ** 2)

    if n_distractors is None:
        n_distractors = int(rng.integers(0, 4))
    distractors = []
    for _ in range(n_distractors):
        kind = str(rng.choice(DISTRACTOR_KINDS))
        added, amplitude = _distractor(rng, kind, yy, xx)
        image += added
        distractors.append(
            Distractor(kind=kind, box=_extent_box(added, amplitude), amplitude=float(amplitude))
        )

    image += rng.uniform(0.0, 2.0) * column_pattern[None, :w]
    noise_sigma = float(rng.uniform(1.5, 4.0))
    image += noise_sigma * rng.standard_normal((h, w))
    return Background(image=image, scene=scene, distractors=tuple(distractors), noise_sigma=noise_sigma)
