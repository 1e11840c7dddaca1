"""Augmentation settings (:class:`AugmentConfig`) and the random numbers one batch draws (:func:`draw`).

What each setting does to the pixels is :mod:`.augment`'s; this module holds the settings, their
checks, and the draws: every random number of a batch comes from one ``numpy`` generator seeded by
``(seed, epoch, iteration, rank)`` (:func:`batch_generator`) and children spawned off its seed, on
the CPU, so the augmentation is a function of those numbers alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from .crop import WINDOW_STYLES
from .mosaic import MOSAIC_STYLES
from .transforms import PAD_VALUE

#: Default Beta distribution parameter of the mixup ratio (``r ~ Beta(a, a)``; YOLOv5's 32).
MIXUP_BETA = 32.0
#: Where a mixup partner comes from: another image of the batch, or a fresh training sample.
MIXUP_PARTNERS = ("batch", "fresh")
#: ``window_style="yolov7"`` draws the pixel scale from ``[1 - scale, 1 + scale + this]``
#: (YOLOv7's ``random_perspective``: ``random.uniform(1 - scale, 1.1 + scale)``).
YOLOV7_SCALE_EXTRA = 0.1
#: Other training images of a 4- and a 9-image mosaic.
MOSAIC_OTHERS = {4: 3, 9: 8}


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings (probabilities and gains; ``TrainConfig`` fields of the same name).

    Attributes
    ----------
    fliplr, flipud : float
        Probability of a left-right / up-down flip.
    scale : float
        Pixel-scale jitter: ``a`` drawn from ``[1 - scale, 1 + scale]`` (in [0, 1)); with
        ``window_style="yolov7"`` from ``[1 - scale, 1.1 + scale]``.
    translate : float
        Window-centre jitter as a fraction of the input side.
    mosaic, mixup : float
        Probability of a mosaic / of blending with a partner.
    mosaic9 : float
        Probability that a mosaic is a 9-image one (else 4 images).
    mosaic_style : {"grid", "yolov7"}
        Mosaic layout (:mod:`.mosaic`).
    window_style : {"canvas", "yolov7"}
        Scale range and reach of the window centre (:mod:`.crop`, :func:`.crop.jitter_windows`).
    min_box_side : float
        A box whose width or height in the input is not above this (px) is dropped (0: only empty boxes).
    mixup_beta : float
        ``a`` of the mixup ratio ``r ~ Beta(a, a)``.
    mixup_partner : {"batch", "fresh"}
        The image blended in (module docstring).
    pad_value : float
        Value of image pixels no image covers (mosaic gaps, outside the canvas), in [0, 1].
    hsv_h, hsv_s, hsv_v : float
        HSV gains (``hsv_h``/``hsv_s`` have no effect on gray IR frames, see the module docstring).
    brightness : float
        Additive offset drawn from ``[-brightness, brightness]``.
    contrast : float
        Contrast factor drawn from ``[1 - contrast, 1 + contrast]``, about each image's mean.
    noise : float
        Largest standard deviation of added Gaussian noise; drawn from ``[0, noise]``.
    crop : float
        Probability of a target-keeping crop window instead of the scale/translate jitter.
    crop_min_side : float
        Smallest crop side as a fraction of the input side (in (0, 1]): a crop zooms in by up to
        ``1 / crop_min_side``.
    """

    fliplr: float = 0.5
    flipud: float = 0.5
    scale: float = 0.3
    translate: float = 0.1
    mosaic: float = 0.0
    mixup: float = 0.0
    hsv_h: float = 0.0
    hsv_s: float = 0.0
    hsv_v: float = 0.0
    brightness: float = 0.1
    contrast: float = 0.2
    noise: float = 0.02
    crop: float = 0.5
    crop_min_side: float = 0.6
    mosaic9: float = 0.0
    mosaic_style: str = "grid"
    window_style: str = "canvas"
    min_box_side: float = 0.0
    mixup_beta: float = MIXUP_BETA
    mixup_partner: str = "batch"
    pad_value: float = PAD_VALUE

    @classmethod
    def off(cls, pad_value: float = PAD_VALUE) -> AugmentConfig:
        """No augmentation: the letterboxed image as it is."""
        zero = ("fliplr", "flipud", "scale", "translate", "mosaic", "mixup", "hsv_h", "hsv_s", "hsv_v",
                "brightness", "contrast", "noise", "crop")
        return cls(**dict.fromkeys(zero, 0.0), crop_min_side=1.0, pad_value=pad_value)

    @property
    def scale_extra(self) -> float:
        """How far the largest pixel scale lies above ``1 + scale`` (:data:`YOLOV7_SCALE_EXTRA` or 0)."""
        return YOLOV7_SCALE_EXTRA if self.window_style == "yolov7" else 0.0

    @property
    def scale_range(self) -> tuple[float, float]:
        """Smallest and largest pixel scale ``a`` of the scale/translate jitter."""
        return 1.0 - self.scale, 1.0 + self.scale + self.scale_extra


@dataclass(frozen=True)
class BatchDraws:
    """The random numbers of one batch (``B`` images), drawn on the CPU.

    Attributes
    ----------
    mosaic : ndarray (B,) bool; ``mosaic9``: ndarray (B,) bool (a 9-image mosaic)
    mosaic_others : ndarray (B, 8) int
        Indices into the training set of the other tiles (a 4-image mosaic uses the first 3).
    mosaic_centre : ndarray (B, 2) in [0, 1)
        Draws of a ``yolov7`` mosaic's centre (4 images) or kept window (9 images), :mod:`.mosaic`.
    scale : ndarray (B,) float, pixel scale ``a``; ``centre``: ndarray (B, 2) in ``[-1, 1]``
    fliplr, flipud : ndarray (B,) bool
    mixup : ndarray (B,) bool; ``mixup_partner``: ndarray (B,) int (index in the batch); ``mixup_ratio``: (B,)
    partner_index : ndarray (B,) int
        Training-set index of a fresh mixup partner.
    partner : BatchDraws or None
        The fresh partners' own draws (``mixup_partner="fresh"``; their flips are the images' own).
    value_gain, contrast, brightness, noise_sigma : ndarray (B,) float
    noise_seed : int (seed of the noise tensor's torch generator)
    crop : ndarray (B,) bool; ``crop_side``: ndarray (B,) float, crop side over the input side
        (the crop's position is ``(centre + 1) / 2``: a crop image has no jitter centre)
    """

    mosaic: np.ndarray
    mosaic_others: np.ndarray
    scale: np.ndarray
    centre: np.ndarray
    fliplr: np.ndarray
    flipud: np.ndarray
    mixup: np.ndarray
    mixup_partner: np.ndarray
    mixup_ratio: np.ndarray
    value_gain: np.ndarray
    contrast: np.ndarray
    brightness: np.ndarray
    noise_sigma: np.ndarray
    noise_seed: int
    crop: np.ndarray
    crop_side: np.ndarray
    mosaic9: np.ndarray | None = None
    mosaic_centre: np.ndarray | None = None
    partner_index: np.ndarray | None = None
    partner: BatchDraws | None = None

    def rows(self, rows: np.ndarray) -> BatchDraws:
        """The draws of images ``rows`` only (without partners: what one image's geometry needs)."""
        picked = {
            f.name: getattr(self, f.name)[rows]
            for f in fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }
        return replace(self, **picked, partner=None)


def batch_generator(seed: int, epoch: int, iteration: int, rank: int = 0) -> np.random.Generator:
    """The generator of one batch's draws, a function of its four numbers alone."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, iteration, rank])))


def draw(rng: np.random.Generator, batch: int, dataset_size: int, config: AugmentConfig) -> BatchDraws:
    """Draw every random number the augmentation of a batch of ``batch`` images needs.

    The draws of the engine's first settings come from ``rng`` in a fixed order; those of later
    settings (9-image mosaics, mosaic centres, fresh mixup partners) from children spawned off
    ``rng``'s seed, so that adding them changed no earlier draw. (``mixup_beta`` changes the mixup
    ratios, which numpy draws by rejection, and with them the noise seed drawn next.)
    """
    b, n = int(batch), max(int(dataset_size), 1)
    uniform = rng.random((13, b))  # one fixed block of draws: a setting never shifts another's stream
    mosaic = (uniform[0] < config.mosaic) & (dataset_size > 1)
    others = rng.integers(0, n, size=(b, 3))
    offsets = rng.integers(1, max(b, 2), size=b)
    ratio = rng.beta(config.mixup_beta, config.mixup_beta, size=b)
    noise_seed = int(rng.integers(0, 2**62))
    extra_rng, partner_rng = rng.spawn(2)
    extra = extra_rng.random((3, b))
    more_others = extra_rng.integers(0, n, size=(b, MOSAIC_OTHERS[9] - MOSAIC_OTHERS[4]))
    partner_index = extra_rng.integers(0, n, size=b)
    fliplr, flipud = uniform[4] < config.fliplr, uniform[5] < config.flipud
    partner = None
    if config.mixup_partner == "fresh":
        alone = replace(config, mixup=0.0, mixup_partner="batch")  # a partner has no partner
        partner = replace(draw(partner_rng, b, dataset_size, alone), fliplr=fliplr, flipud=flipud)
    return BatchDraws(
        mosaic=mosaic,
        mosaic_others=np.concatenate([others, more_others], axis=1),
        scale=1.0 + config.scale * (2.0 * uniform[1] - 1.0) + config.scale_extra * uniform[1],
        centre=np.stack([2.0 * uniform[2] - 1.0, 2.0 * uniform[3] - 1.0], axis=1),
        fliplr=fliplr,
        flipud=flipud,
        mixup=(uniform[6] < config.mixup) & (b > 1 or config.mixup_partner == "fresh"),
        mixup_partner=(np.arange(b) + offsets) % max(b, 1),
        mixup_ratio=ratio,
        value_gain=1.0 + config.hsv_v * (2.0 * uniform[7] - 1.0),
        contrast=1.0 + config.contrast * (2.0 * uniform[8] - 1.0),
        brightness=config.brightness * (2.0 * uniform[9] - 1.0),
        noise_sigma=config.noise * uniform[10],
        noise_seed=noise_seed,
        crop=uniform[11] < config.crop,
        crop_side=config.crop_min_side + (1.0 - config.crop_min_side) * uniform[12],
        mosaic9=mosaic & (extra[0] < config.mosaic9),
        mosaic_centre=extra[1:3].T.copy(),
        partner_index=partner_index,
        partner=partner,
    )


def pixel_scale_bounds(config: AugmentConfig) -> tuple[float, float]:
    """Smallest and largest pixel scale ``a`` the settings can draw."""
    return config.scale_range


def check_augment(config: AugmentConfig) -> None:
    """Raise ``ValueError`` for a setting out of range (probabilities in [0, 1], scale in [0, 1))."""
    if not 0.0 < config.crop_min_side <= 1.0:
        raise ValueError(f"crop_min_side {config.crop_min_side}: must be in (0, 1]")
    for name in ("fliplr", "flipud", "mosaic", "mixup", "crop", "mosaic9", "pad_value"):
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} {value}: must be in [0, 1]")
    if not 0.0 <= config.scale < 1.0:
        raise ValueError(f"scale {config.scale}: must be in [0, 1)")
    for name in ("translate", "hsv_h", "hsv_s", "hsv_v", "brightness", "contrast", "noise", "min_box_side"):
        value = getattr(config, name)
        if not (value >= 0.0 and math.isfinite(value)):
            raise ValueError(f"{name} {value}: must be >= 0")
    if not (config.mixup_beta > 0.0 and math.isfinite(config.mixup_beta)):
        raise ValueError(f"mixup_beta {config.mixup_beta}: must be a finite number > 0")
    for name, allowed in (("mosaic_style", MOSAIC_STYLES), ("window_style", WINDOW_STYLES),
                          ("mixup_partner", MIXUP_PARTNERS)):  # fmt: skip
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} {getattr(config, name)!r}: expected {', '.join(allowed)}")
