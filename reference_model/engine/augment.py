"""Training augmentation as batched tensor operations (the one augmentation path, CPU and GPU).

The training set lives as tensors on the training device (:class:`~.data.LetterboxedTensors`):
every image letterboxed once onto a square *base canvas* of side ``Sb`` (``base_size``, else
the input side ``S``), its binary mask, and its target boxes. One batch is augmented at once:

1. **mosaic** (probability ``mosaic`` per image): four training images at full resolution on a
   ``2 Sb x 2 Sb`` canvas (the drawn image top-left, three random others);
2. **window** (every image): a square window of the canvas is resampled onto the ``S x S``
   input with pixel scale ``a`` (output px per canvas px), then flipped left-right / up-down with
   probabilities ``fliplr`` / ``flipud``. With probability ``crop`` the window is a
   **target-keeping crop** (side ``f S``, ``f`` in ``[crop_min_side, 1]``, grown to hold the union
   box of the image's targets and placed so that it holds it: every target stays whole, zoomed
   in by ``a = S / side``); otherwise it is the scale/translate jitter (``a`` drawn from
   ``[1 - scale, 1 + scale]``, centre moved by up to ``translate`` of the window; targets may
   leave it). :mod:`.crop` computes both;
3. **mixup** (probability ``mixup``): the image blended with another image of the batch with a
   ratio ``r ~ Beta(32, 32)`` (as the YOLO code bases draw it), the masks united and the boxes joined;
4. **photometric**: HSV value gain ``v`` from ``[1 - hsv_v, 1 + hsv_v]``; contrast, brightness and
   Gaussian noise; the result clipped to [0, 1]. IR frames are gray (three equal channels), so a
   hue or saturation change is the identity on them: ``hsv_h`` and ``hsv_s`` are accepted for
   recipes written for colour data and change nothing (exactly what an HSV jitter does to a
   gray image).

Geometry in continuous pixel-edge coordinates: a canvas edge coordinate ``x`` lands at
``u = a (x - c) + S / 2`` (flipped: ``S - u``). Boxes are mapped with that formula exactly and
clipped to the input; a box with less than :data:`MIN_VISIBLE_FRACTION` of its area left inside
is dropped. When shrinking (``a < 1``) images are area-averaged over each output pixel's
footprint (a separable box filter of width ``1 / a`` canvas px, fractional weights at its ends)
before bilinear sampling, so a one-pixel target keeps its energy without being blurred more
than the zoom-out itself does; an output mask pixel is foreground when its footprint holds a
foreground canvas pixel (the letterbox's rule: a target's pixels cannot vanish when its box
survives, and it grows by under one output pixel). A window at
``a = 1`` lies on whole canvas pixels: the identity window (no mosaic, scale 1, centred, no
flip) copies the pixels exactly, a translated one shifts them exactly.

All random draws of one batch come from one ``numpy`` generator seeded by
``(seed, epoch, iteration, rank)`` (:func:`batch_generator`): the augmentation is a function of
those numbers alone (the same draws on the CPU and the GPU), so a resumed run repeats it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .crop import crop_windows, jitter_windows
from .resample import area_prefilter, sample_mask

#: Beta distribution parameter of the mixup ratio (``r ~ Beta(MIXUP_BETA, MIXUP_BETA)``).
MIXUP_BETA = 32.0
#: A box cut by the input's border is kept when at least this fraction of its area is inside
#: (the YOLO code bases' rule; slivers of a target would otherwise become boxes without pixels).
MIN_VISIBLE_FRACTION = 0.1
#: Value of pixels outside the canvas (the images are in [0, 1]; 0 = no signal, never a target).
PAD_VALUE = 0.0


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings (probabilities and gains; ``TrainConfig`` fields of the same name).

    Attributes
    ----------
    fliplr, flipud : float
        Probability of a left-right / up-down flip.
    scale : float
        Pixel-scale jitter: ``a`` drawn from ``[1 - scale, 1 + scale]`` (in [0, 1)).
    translate : float
        Window-centre jitter as a fraction of the input side.
    mosaic, mixup : float
        Probability of a 4-image mosaic / of blending with another image of the batch.
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

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation: the letterboxed image as it is."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, crop=0.0, crop_min_side=1.0)


@dataclass(frozen=True)
class BatchDraws:
    """The random numbers of one batch (``B`` images), drawn on the CPU.

    Attributes
    ----------
    mosaic : ndarray (B,) bool; ``mosaic_others``: ndarray (B, 3) int (indices into the training set)
    scale : ndarray (B,) float, pixel scale ``a``; ``centre``: ndarray (B, 2) in ``[-1, 1]``
    fliplr, flipud : ndarray (B,) bool
    mixup : ndarray (B,) bool; ``mixup_partner``: ndarray (B,) int (index in the batch); ``mixup_ratio``: (B,)
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


def batch_generator(seed: int, epoch: int, iteration: int, rank: int = 0) -> np.random.Generator:
    """The generator of one batch's draws, a function of its four numbers alone."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, iteration, rank])))


def draw(rng: np.random.Generator, batch: int, dataset_size: int, config: AugmentConfig) -> BatchDraws:
    """Draw every random number the augmentation of a batch of ``batch`` images needs."""
    b = int(batch)
    uniform = rng.random((13, b))  # one fixed block of draws: a setting never shifts another's stream
    mosaic = (uniform[0] < config.mosaic) & (dataset_size > 1)
    others = rng.integers(0, max(dataset_size, 1), size=(b, 3))
    offsets = rng.integers(1, max(b, 2), size=b)
    ratio = rng.beta(MIXUP_BETA, MIXUP_BETA, size=b)
    return BatchDraws(
        mosaic=mosaic,
        mosaic_others=others,
        scale=1.0 + config.scale * (2.0 * uniform[1] - 1.0),
        centre=np.stack([2.0 * uniform[2] - 1.0, 2.0 * uniform[3] - 1.0], axis=1),
        fliplr=uniform[4] < config.fliplr,
        flipud=uniform[5] < config.flipud,
        mixup=(uniform[6] < config.mixup) & (b > 1),
        mixup_partner=(np.arange(b) + offsets) % max(b, 1),
        mixup_ratio=ratio,
        value_gain=1.0 + config.hsv_v * (2.0 * uniform[7] - 1.0),
        contrast=1.0 + config.contrast * (2.0 * uniform[8] - 1.0),
        brightness=config.brightness * (2.0 * uniform[9] - 1.0),
        noise_sigma=config.noise * uniform[10],
        noise_seed=int(rng.integers(0, 2**62)),
        crop=uniform[11] < config.crop,
        crop_side=config.crop_min_side + (1.0 - config.crop_min_side) * uniform[12],
    )


# --------------------------------------------------------------------------------------------
# Geometry


def mosaic_canvas(
    images: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four tiles per mosaic -> one ``2 Sb`` canvas.

    Parameters
    ----------
    images, masks : Tensor (M, 4, 1, Sb, Sb)
        Tiles in the order top-left, top-right, bottom-left, bottom-right.
    boxes : Tensor (M, 4, T, 4); valid : Tensor (M, 4, T) bool

    Returns
    -------
    images, masks : Tensor (M, 1, 2 Sb, 2 Sb); boxes : Tensor (M, 4 T, 4); valid : Tensor (M, 4 T)
    """
    m, _, c, side, _ = images.shape

    def tile(x: torch.Tensor) -> torch.Tensor:  # (M, 4, C, Sb, Sb) -> (M, C, 2Sb, 2Sb)
        x = x.reshape(m, 2, 2, c, side, side).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(m, c, 2 * side, 2 * side)

    shift = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=boxes.dtype, device=boxes.device) * side
    shifted = boxes + shift.repeat(1, 2)[None, :, None, :]
    t = boxes.shape[2]
    return tile(images), tile(masks), shifted.reshape(m, 4 * t, 4), valid.reshape(m, 4 * t)


def _affine_theta(scale, centre_px, canvas: int, out: int, fliplr, flipud) -> torch.Tensor:
    """``affine_grid`` matrices ``(B, 2, 3)`` (``align_corners=False``) of the window maps."""
    sx = out / (scale * canvas) * torch.where(fliplr, -1.0, 1.0)
    sy = out / (scale * canvas) * torch.where(flipud, -1.0, 1.0)
    zero = torch.zeros_like(sx)
    row_x = torch.stack([sx, zero, 2.0 * centre_px[:, 0] / canvas - 1.0], dim=1)
    row_y = torch.stack([zero, sy, 2.0 * centre_px[:, 1] / canvas - 1.0], dim=1)
    return torch.stack([row_x, row_y], dim=1)


def window_geometry(
    draws: BatchDraws, rows: np.ndarray, union: np.ndarray, canvas: int, out_size: int, translate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel scales ``(R,)`` and window centres ``(R, 2)`` canvas px of the images ``rows`` of a batch.

    Crop images (``draws.crop``) get :func:`.crop.crop_windows` around ``union`` (their targets'
    union boxes ``(R, 4)``, canvas px), the others :func:`.crop.jitter_windows`.
    """
    scale = np.asarray(draws.scale[rows], np.float64)
    centre_px = jitter_windows(scale, draws.centre[rows], canvas, out_size, translate)
    crop = np.asarray(draws.crop[rows], bool)
    if crop.any():
        crop_scale, crop_centre = crop_windows(
            union[crop], canvas, out_size, draws.crop_side[rows][crop], (draws.centre[rows][crop] + 1.0) / 2.0
        )
        scale, centre_px = scale.copy(), centre_px.copy()
        scale[crop], centre_px[crop] = crop_scale, crop_centre
    return scale, centre_px


def affine_window(
    images: torch.Tensor,
    masks: torch.Tensor,
    boxes: torch.Tensor,
    valid: torch.Tensor,
    *,
    scale: np.ndarray,
    centre_px: np.ndarray,
    fliplr: np.ndarray,
    flipud: np.ndarray,
    out_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Resample a window of each canvas onto the ``S x S`` input (see the module docstring).

    Parameters
    ----------
    images : Tensor (B, 1, W, W) float; masks : Tensor (B, 1, W, W) float in {0, 1}
    boxes : Tensor (B, T, 4) ``[x0, y0, x1, y1]`` canvas px; valid : Tensor (B, T) bool
    scale : ndarray (B,)
        Pixel scale ``a`` (output px per canvas px).
    centre_px : ndarray (B, 2)
        Window centres ``c``, canvas px (:func:`window_geometry`).
    fliplr, flipud : ndarray (B,) bool

    Returns
    -------
    images (B, 1, S, S), masks (B, 1, S, S) in {0, 1}, boxes (B, T, 4) input px, valid (B, T)
    """
    canvas = images.shape[-1]
    device, dtype = images.device, images.dtype
    a = np.asarray(scale, np.float64)
    centre_px = np.asarray(centre_px, np.float64)
    flips = np.any(np.asarray(fliplr, bool)) or np.any(np.asarray(flipud, bool))
    if canvas == out_size and np.all(a == 1.0) and np.all(centre_px == canvas / 2.0) and not flips:
        return images, masks, boxes, valid  # the identity window: exact, no resampling
    a_t = torch.as_tensor(a, dtype=torch.float64)
    c_t = torch.as_tensor(centre_px, dtype=torch.float64)
    lr_t, ud_t = torch.as_tensor(np.asarray(fliplr, bool)), torch.as_tensor(np.asarray(flipud, bool))
    theta = _affine_theta(a_t, c_t, canvas, out_size, lr_t, ud_t).to(device, dtype)
    grid = F.affine_grid(theta, [images.shape[0], 1, out_size, out_size], align_corners=False)
    image_out = F.grid_sample(
        area_prefilter(images, a), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    mask_out = sample_mask(masks, grid, a)
    # Boxes: u = a (x - c) + S / 2, flipped u -> S - u (and the edges swap).
    a_b = a_t.to(device, boxes.dtype)[:, None]
    cx, cy = c_t[:, 0].to(device, boxes.dtype)[:, None], c_t[:, 1].to(device, boxes.dtype)[:, None]
    half = out_size / 2.0
    x0, y0 = a_b * (boxes[..., 0] - cx) + half, a_b * (boxes[..., 1] - cy) + half
    x1, y1 = a_b * (boxes[..., 2] - cx) + half, a_b * (boxes[..., 3] - cy) + half
    lr_d, ud_d = lr_t.to(device)[:, None], ud_t.to(device)[:, None]
    x0, x1 = torch.where(lr_d, out_size - x1, x0), torch.where(lr_d, out_size - x0, x1)
    y0, y1 = torch.where(ud_d, out_size - y1, y0), torch.where(ud_d, out_size - y0, y1)
    unclipped = torch.stack([x0, y0, x1, y1], dim=-1)
    mapped = unclipped.clamp(0.0, float(out_size))
    area = (mapped[..., 2] - mapped[..., 0]).clamp_min(0) * (mapped[..., 3] - mapped[..., 1]).clamp_min(0)
    full = (unclipped[..., 2] - unclipped[..., 0]) * (unclipped[..., 3] - unclipped[..., 1])
    keep = valid & (area > 0) & (area >= MIN_VISIBLE_FRACTION * full)
    return image_out, mask_out, mapped, keep


# --------------------------------------------------------------------------------------------
# The whole batch


def _column(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``(B,)`` numbers -> ``(B, 1, 1, 1)`` tensor on ``like``'s device and dtype."""
    return torch.as_tensor(np.asarray(values, np.float64), dtype=like.dtype).to(like.device).view(-1, 1, 1, 1)


def augment_batch(
    data,
    indices: np.ndarray,
    draws: BatchDraws,
    config: AugmentConfig,
    out_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augmented training batch from the device-resident training set.

    Parameters
    ----------
    data : LetterboxedTensors
        ``images (N, 1, Sb, Sb)``, ``masks (N, 1, Sb, Sb)``, ``boxes (N, T, 4)``, ``valid (N, T)``;
        ``target_union(indices)``: union boxes ``(B, 4)`` of the images' targets (host ``numpy``).
    indices : ndarray (B,) int
        Training-set indices of the batch.
    draws : BatchDraws
        From :func:`draw` (``B`` images).
    out_size : int
        Input side ``S``.

    Returns
    -------
    images : Tensor (B, 1, S, S) float in [0, 1]
    masks : Tensor (B, 1, S, S) float in {0, 1}
    boxes : Tensor (B, T', 4) input px; valid : Tensor (B, T') bool (``T' = 4 T`` with mosaic,
        doubled again with mixup)
    """
    device = data.images.device
    idx = torch.as_tensor(np.asarray(indices, np.int64), device=device)
    images, masks = data.images.index_select(0, idx), data.masks.index_select(0, idx)
    boxes, valid = data.boxes.index_select(0, idx), data.valid.index_select(0, idx)
    t = boxes.shape[1]
    parts = []
    if draws.mosaic.any():
        rows = np.flatnonzero(draws.mosaic)
        tiles = np.concatenate([np.asarray(indices)[rows, None], draws.mosaic_others[rows]], axis=1)  # (M, 4)
        flat = torch.as_tensor(tiles.reshape(-1), device=device)
        m = len(rows)
        side = data.images.shape[-1]
        canvas = mosaic_canvas(
            data.images.index_select(0, flat).view(m, 4, 1, side, side),
            data.masks.index_select(0, flat).view(m, 4, 1, side, side),
            data.boxes.index_select(0, flat).view(m, 4, t, 4),
            data.valid.index_select(0, flat).view(m, 4, t),
        )
        parts.append((rows, canvas))
    plain = np.flatnonzero(~draws.mosaic)
    if plain.size:
        sel = torch.as_tensor(plain, device=device)
        parts.append(
            (plain, (images.index_select(0, sel), masks.index_select(0, sel), boxes.index_select(0, sel),
                     valid.index_select(0, sel)))
        )
    t_out = 4 * t if draws.mosaic.any() else t
    b = len(indices)
    out_images = images.new_zeros((b, 1, out_size, out_size))
    out_masks = masks.new_zeros((b, 1, out_size, out_size))
    out_boxes = boxes.new_zeros((b, t_out, 4))
    out_valid = torch.zeros((b, t_out), dtype=torch.bool, device=device)
    # The drawn image's targets (a mosaic's top-left tile: same canvas px) are what a crop keeps.
    union = data.target_union(indices) if draws.crop.any() else np.full((b, 4), np.nan)
    for rows, (im, mk, bx, vd) in parts:
        scale, centre_px = window_geometry(draws, rows, union[rows], im.shape[-1], out_size, config.translate)
        im, mk, bx, vd = affine_window(
            im,
            mk,
            bx,
            vd,
            scale=scale,
            centre_px=centre_px,
            fliplr=draws.fliplr[rows],
            flipud=draws.flipud[rows],
            out_size=out_size,
        )
        sel = torch.as_tensor(rows, device=device)
        out_images.index_copy_(0, sel, im)
        out_masks.index_copy_(0, sel, mk)
        out_boxes[sel, : bx.shape[1]] = bx
        out_valid[sel, : vd.shape[1]] = vd
    images, masks, boxes, valid = mixup(out_images, out_masks, out_boxes, out_valid, draws)
    return photometric(images, draws), masks, boxes, valid


def mixup(images, masks, boxes, valid, draws: BatchDraws):
    """Blend the drawn images with their batch partner: ``r x + (1 - r) x_partner``, masks united, boxes joined."""
    if not draws.mixup.any():
        return images, masks, boxes, valid
    device = images.device
    partner = torch.as_tensor(draws.mixup_partner, device=device)
    on = torch.as_tensor(draws.mixup, device=device)
    ratio = _column(np.where(draws.mixup, draws.mixup_ratio, 1.0), images)
    images = images * ratio + images.index_select(0, partner) * (1.0 - ratio)
    masks = torch.maximum(masks, masks.index_select(0, partner) * on.view(-1, 1, 1, 1).to(masks.dtype))
    boxes = torch.cat([boxes, boxes.index_select(0, partner)], dim=1)
    valid = torch.cat([valid, valid.index_select(0, partner) & on[:, None]], dim=1)
    return images, masks, boxes, valid


def photometric(images: torch.Tensor, draws: BatchDraws) -> torch.Tensor:
    """HSV value gain, contrast about each image's mean, brightness, Gaussian noise; clipped to [0, 1]."""
    out = images
    if np.any(draws.value_gain != 1.0):
        out = out * _column(draws.value_gain, images)
    if np.any(draws.contrast != 1.0):
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * _column(draws.contrast, images) + mean
    if np.any(draws.brightness != 0.0):
        out = out + _column(draws.brightness, images)
    if np.any(draws.noise_sigma > 0):
        generator = torch.Generator(device=images.device).manual_seed(draws.noise_seed)
        noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        out = out + noise * _column(draws.noise_sigma, images)
    return out.clamp(0.0, 1.0)


def split_targets(masks: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor) -> list[dict]:
    """Batch targets -> one ``{"boxes": (N_i, 4), "masks": (S, S)}`` per image (the model protocol).

    One device-to-host copy of the per-image counts, none per image.
    """
    order = torch.argsort((~valid).to(torch.int32), dim=1, stable=True)  # valid boxes first, in order
    packed = torch.gather(boxes, 1, order[..., None].expand(-1, -1, 4))
    counts = valid.sum(1).tolist()
    return [{"boxes": packed[i, :n], "masks": masks[i, 0]} for i, n in enumerate(counts)]


def pixel_scale_bounds(config: AugmentConfig) -> tuple[float, float]:
    """Smallest and largest pixel scale ``a`` the settings can draw."""
    return 1.0 - config.scale, 1.0 + config.scale


def check_augment(config: AugmentConfig) -> None:
    """Raise ``ValueError`` for a setting out of range (probabilities in [0, 1], scale in [0, 1))."""
    if not 0.0 < config.crop_min_side <= 1.0:
        raise ValueError(f"crop_min_side {config.crop_min_side}: must be in (0, 1]")
    for name in ("fliplr", "flipud", "mosaic", "mixup", "crop"):
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} {value}: must be in [0, 1]")
    if not 0.0 <= config.scale < 1.0:
        raise ValueError(f"scale {config.scale}: must be in [0, 1)")
    for name in ("translate", "hsv_h", "hsv_s", "hsv_v", "brightness", "contrast", "noise"):
        value = getattr(config, name)
        if not (value >= 0.0 and math.isfinite(value)):
            raise ValueError(f"{name} {value}: must be >= 0")
