"""Training augmentation as batched tensor operations (the one augmentation path, CPU and GPU).

The training set lives as tensors on the training device (:class:`~.data.LetterboxedTensors`):
every image letterboxed once onto a square *base canvas* of side ``Sb`` (``base_size``, else
the input side ``S``), its binary mask, and its target boxes. One batch is augmented at once:

1. **mosaic** (probability ``mosaic`` per image; a 9-image mosaic with probability ``mosaic9``
   among mosaics, else 4 images): training images on a ``2 Sb x 2 Sb`` canvas, the drawn image
   first (:mod:`.mosaic`: ``mosaic_style`` ``grid``, a fixed grid of the letterboxed squares, or
   ``yolov7``, the images' contents around a random centre, the rest filled with ``pad_value``);
2. **window** (every image): a square window of the canvas is resampled onto the ``S x S``
   input with pixel scale ``a`` (output px per canvas px), then flipped left-right / up-down with
   probabilities ``fliplr`` / ``flipud``. With probability ``crop`` the window is a
   **target-keeping crop** (side ``f S``, ``f`` in ``[crop_min_side, 1]``, grown to hold the union
   box of the image's targets and placed so that it holds it: every target stays whole, zoomed
   in by ``a = S / side``); otherwise it is the scale/translate jitter: ``a`` drawn from
   ``[1 - scale, 1 + scale]`` (``window_style="yolov7"``: ``[1 - scale, 1.1 + scale]``, YOLOv7's
   ``random_perspective``), the centre moved by up to ``translate`` of the window (``canvas``: and
   over the whole canvas where the window is smaller; ``yolov7``: around the canvas centre only);
   targets may leave it. :mod:`.crop` computes both. Pixels outside the canvas read ``pad_value``;
   a box narrower or lower than ``min_box_side`` input px is dropped (YOLOv7: 2 px);
3. **mixup** (probability ``mixup``): the image blended with a partner with a ratio
   ``r ~ Beta(mixup_beta, mixup_beta)`` (YOLOv5: 32, YOLOv7: 8), the masks united and the boxes
   joined. The partner (``mixup_partner``) is another image of the batch (``batch``) or a fresh
   training sample (``fresh``: a random image through its own mosaic and window, flipped as the
   image it joins, as YOLOv7 blends two mosaics and then flips the blend);
4. **photometric**: HSV value gain ``v`` from ``[1 - hsv_v, 1 + hsv_v]``; contrast, brightness and
   Gaussian noise; the result clipped to [0, 1]. The images are one channel (the luminance of
   the file, :mod:`.data`), replicated to three: a hue or saturation change is the identity on
   a gray image, so ``hsv_h`` and ``hsv_s`` are accepted for recipes written for colour data and
   change nothing (exactly what an HSV jitter does to a gray image; IR frames stored with a
   colour tint lose it when read, see ``docs/models/eflnet-yolov7.md``).

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

The settings (:class:`~.draws.AugmentConfig`) and every random draw of one batch are :mod:`.draws`'s:
one ``numpy`` generator seeded by ``(seed, epoch, iteration, rank)`` and its spawned children, so the
augmentation is a function of those numbers alone (the same draws on the CPU and the GPU) and a
resumed run repeats it exactly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .crop import crop_windows, jitter_windows
from .draws import (
    MIXUP_BETA,
    MIXUP_PARTNERS,
    MOSAIC_OTHERS,
    YOLOV7_SCALE_EXTRA,
    AugmentConfig,
    BatchDraws,
    batch_generator,
    check_augment,
    draw,
    pixel_scale_bounds,
)
from .mosaic import four_tile_origins, mosaic_canvas, mosaic_centre, nine_offset, nine_tile_origins
from .resample import area_prefilter, sample_mask
from .transforms import PAD_VALUE

#: A box cut by the input's border is kept when at least this fraction of its area is inside
#: (the YOLO code bases' rule; slivers of a target would otherwise become boxes without pixels).
MIN_VISIBLE_FRACTION = 0.1


# --------------------------------------------------------------------------------------------
# Geometry


def _affine_theta(scale, centre_px, canvas: int, out: int, fliplr, flipud) -> torch.Tensor:
    """``affine_grid`` matrices ``(B, 2, 3)`` (``align_corners=False``) of the window maps."""
    sx = out / (scale * canvas) * torch.where(fliplr, -1.0, 1.0)
    sy = out / (scale * canvas) * torch.where(flipud, -1.0, 1.0)
    zero = torch.zeros_like(sx)
    row_x = torch.stack([sx, zero, 2.0 * centre_px[:, 0] / canvas - 1.0], dim=1)
    row_y = torch.stack([zero, sy, 2.0 * centre_px[:, 1] / canvas - 1.0], dim=1)
    return torch.stack([row_x, row_y], dim=1)


def window_geometry(
    draws: BatchDraws,
    rows: np.ndarray,
    union: np.ndarray,
    canvas: int,
    out_size: int,
    translate: float,
    window_style: str = "canvas",
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel scales ``(R,)`` and window centres ``(R, 2)`` canvas px of the images ``rows`` of a batch.

    Crop images (``draws.crop``) get :func:`.crop.crop_windows` around ``union`` (their targets'
    union boxes ``(R, 4)``, canvas px), the others :func:`.crop.jitter_windows` (``window_style``).
    """
    scale = np.asarray(draws.scale[rows], np.float64)
    centre_px = jitter_windows(scale, draws.centre[rows], canvas, out_size, translate, style=window_style)
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
    fill: float = PAD_VALUE,
    min_box_side: float = 0.0,
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
    fill : float
        Image value outside the canvas (masks: 0).
    min_box_side : float
        Boxes not wider and higher than this (input px) are dropped.

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
        # the identity window: pixels and boxes exact, no resampling
        return images, masks, *_kept_boxes(boxes, valid, out_size, min_box_side)
    a_t = torch.as_tensor(a, dtype=torch.float64)
    c_t = torch.as_tensor(centre_px, dtype=torch.float64)
    lr_t, ud_t = torch.as_tensor(np.asarray(fliplr, bool)), torch.as_tensor(np.asarray(flipud, bool))
    theta = _affine_theta(a_t, c_t, canvas, out_size, lr_t, ud_t).to(device, dtype)
    grid = F.affine_grid(theta, [images.shape[0], 1, out_size, out_size], align_corners=False)
    # grid_sample reads 0 outside the canvas: sampling (image - fill) and adding fill back reads fill there.
    shifted = images if fill == 0.0 else images - fill
    image_out = F.grid_sample(area_prefilter(shifted, a), grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False)
    if fill != 0.0:
        image_out = image_out + fill
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
    return image_out, mask_out, *_kept_boxes(torch.stack([x0, y0, x1, y1], dim=-1), valid, out_size, min_box_side)


def _kept_boxes(
    unclipped: torch.Tensor, valid: torch.Tensor, out_size: int, min_box_side: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes ``(B, T, 4)`` in input px clipped to the input, and which are kept: some area left,
    at least :data:`MIN_VISIBLE_FRACTION` of it, wider and higher than ``min_box_side``."""
    mapped = unclipped.clamp(0.0, float(out_size))
    width, height = mapped[..., 2] - mapped[..., 0], mapped[..., 3] - mapped[..., 1]
    area = width.clamp_min(0) * height.clamp_min(0)
    full = (unclipped[..., 2] - unclipped[..., 0]) * (unclipped[..., 3] - unclipped[..., 1])
    keep = valid & (width > min_box_side) & (height > min_box_side) & (area >= MIN_VISIBLE_FRACTION * full)
    return mapped, keep


# --------------------------------------------------------------------------------------------
# The whole batch


def _column(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``(B,)`` numbers -> ``(B, 1, 1, 1)`` tensor on ``like``'s device and dtype."""
    return torch.as_tensor(np.asarray(values, np.float64), dtype=like.dtype).to(like.device).view(-1, 1, 1, 1)


def _mosaics(data, indices: np.ndarray, draws: BatchDraws, config: AugmentConfig, rows: np.ndarray, tiles: int):
    """The ``tiles``-image mosaic canvases of the images ``rows``: ``(images, masks, boxes, valid)``
    and the canvas position ``(R, 2)`` of each drawn image's square."""
    device = data.images.device
    side, t, m = data.images.shape[-1], data.boxes.shape[1], len(rows)
    members = np.concatenate(
        [np.asarray(indices)[rows, None], draws.mosaic_others[rows, : MOSAIC_OTHERS[tiles]]], axis=1
    )  # (R, tiles)
    if config.mosaic_style == "grid":  # whole squares, letterbox padding included
        content = np.tile(np.array([0, 0, side, side], np.int64), (m, tiles, 1))
    else:
        content = data.tile_content(members.reshape(-1)).reshape(m, tiles, 4)
    if tiles == 4:
        origins = four_tile_origins(content, mosaic_centre(draws.mosaic_centre[rows], side, config.mosaic_style))
    else:
        offset = nine_offset(draws.mosaic_centre[rows], side, config.mosaic_style)
        origins = nine_tile_origins(content, offset, side)
    flat = torch.as_tensor(members.reshape(-1), device=device)
    canvas = mosaic_canvas(
        data.images.index_select(0, flat).view(m, tiles, 1, side, side),
        data.masks.index_select(0, flat).view(m, tiles, 1, side, side),
        data.boxes.index_select(0, flat).view(m, tiles, t, 4),
        data.valid.index_select(0, flat).view(m, tiles, t),
        origins=origins,
        content=content,
        fill=config.pad_value,
    )
    return canvas, origins[:, 0]


def geometry(
    data, indices: np.ndarray, draws: BatchDraws, config: AugmentConfig, out_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mosaic and window of every image (steps 1 and 2 of the module docstring).

    Returns ``images (B, 1, S, S)``, ``masks (B, 1, S, S)``, ``boxes (B, T', 4)`` input px and
    ``valid (B, T')`` (``T' = 9 T`` with a 9-image mosaic in the batch, ``4 T`` with a 4-image one).
    """
    device = data.images.device
    b = len(indices)
    mosaic9 = draws.mosaic9 if draws.mosaic9 is not None else np.zeros(b, bool)
    parts = []  # (rows, (images, masks, boxes, valid), canvas position of the drawn image's square)
    for tiles, chosen in ((4, draws.mosaic & ~mosaic9), (9, draws.mosaic & mosaic9)):
        if chosen.any():
            rows = np.flatnonzero(chosen)
            parts.append((rows, *_mosaics(data, indices, draws, config, rows, tiles)))
    plain = np.flatnonzero(~draws.mosaic)
    if plain.size:
        sel = torch.as_tensor(np.asarray(indices)[plain], device=device)
        tensors = (data.images.index_select(0, sel), data.masks.index_select(0, sel),
                   data.boxes.index_select(0, sel), data.valid.index_select(0, sel))
        parts.append((plain, tensors, np.zeros((plain.size, 2), np.int64)))
    t_out = max(part[1][2].shape[1] for part in parts)
    out_images = data.images.new_zeros((b, 1, out_size, out_size))
    out_masks = data.masks.new_zeros((b, 1, out_size, out_size))
    out_boxes = data.boxes.new_zeros((b, t_out, 4))
    out_valid = torch.zeros((b, t_out), dtype=torch.bool, device=device)
    # The drawn image's targets (moved with its square onto a mosaic's canvas) are what a crop keeps.
    union = data.target_union(indices) if draws.crop.any() else np.full((b, 4), np.nan)
    for rows, (im, mk, bx, vd), position in parts:
        canvas = im.shape[-1]
        kept = np.clip(union[rows] + np.tile(position, 2), 0.0, canvas)
        scale, centre_px = window_geometry(
            draws, rows, kept, canvas, out_size, config.translate, config.window_style
        )
        im, mk, bx, vd = affine_window(
            im, mk, bx, vd, scale=scale, centre_px=centre_px, fliplr=draws.fliplr[rows],
            flipud=draws.flipud[rows], out_size=out_size, fill=config.pad_value, min_box_side=config.min_box_side,
        )  # fmt: skip
        sel = torch.as_tensor(rows, device=device)
        out_images.index_copy_(0, sel, im)
        out_masks.index_copy_(0, sel, mk)
        out_boxes[sel, : bx.shape[1]] = bx
        out_valid[sel, : vd.shape[1]] = vd
    return out_images, out_masks, out_boxes, out_valid


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
        ``target_union(indices)``: union boxes ``(B, 4)`` of the images' targets (host ``numpy``);
        ``tile_content(indices)``: each image's content rectangle in its square ``(B, 4)``.
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
    boxes : Tensor (B, T', 4) input px; valid : Tensor (B, T') bool (``T' = 4 T`` with a 4-image
        mosaic, ``9 T`` with a 9-image one, plus the partners' with mixup)
    """
    images, masks, boxes, valid = geometry(data, indices, draws, config, out_size)
    partner = None
    if draws.mixup.any() and draws.partner is not None:
        partner = fresh_partners(data, draws, config, out_size, images.shape[0])
    elif draws.mixup.any():
        partner = batch_partners(images, masks, boxes, valid, draws)
    images, masks, boxes, valid = mixup(images, masks, boxes, valid, partner, draws)
    return photometric(images, draws), masks, boxes, valid


def batch_partners(images, masks, boxes, valid, draws: BatchDraws) -> tuple:
    """Each image's batch neighbour ``draws.mixup_partner`` (``mixup_partner="batch"``)."""
    partner = torch.as_tensor(draws.mixup_partner, device=images.device)
    return tuple(x.index_select(0, partner) for x in (images, masks, boxes, valid))


def fresh_partners(data, draws: BatchDraws, config: AugmentConfig, out_size: int, batch: int) -> tuple:
    """Fresh training samples for the mixup images (``mixup_partner="fresh"``), batch-aligned.

    Only the rows that mix are built (:func:`geometry` with the partners' own draws); the other
    rows are empty and unused.
    """
    rows = np.flatnonzero(draws.mixup)
    images, masks, boxes, valid = geometry(data, draws.partner_index[rows], draws.partner.rows(rows), config, out_size)
    sel = torch.as_tensor(rows, device=images.device)
    full = []
    for x in (images, masks, boxes, valid):
        out = x.new_zeros((batch, *x.shape[1:]))
        full.append(out.index_copy(0, sel, x))
    return tuple(full)


def mixup(images, masks, boxes, valid, partner, draws: BatchDraws):
    """Blend the drawn images with their partner: ``r x + (1 - r) x_partner``, masks united, boxes joined.

    ``partner``: batch-aligned ``(images, masks, boxes, valid)`` of the partners
    (:func:`batch_partners`, :func:`fresh_partners`); ``None`` when no image mixes.
    """
    if partner is None or not draws.mixup.any():
        return images, masks, boxes, valid
    p_images, p_masks, p_boxes, p_valid = partner
    on = torch.as_tensor(draws.mixup, device=images.device)
    ratio = _column(np.where(draws.mixup, draws.mixup_ratio, 1.0), images)
    images = images * ratio + p_images * (1.0 - ratio)
    masks = torch.maximum(masks, p_masks * on.view(-1, 1, 1, 1).to(masks.dtype))
    boxes = torch.cat([boxes, p_boxes], dim=1)
    valid = torch.cat([valid, p_valid & on[:, None]], dim=1)
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


__all__ = [
    "MIN_VISIBLE_FRACTION",
    "MIXUP_BETA",
    "MIXUP_PARTNERS",
    "MOSAIC_OTHERS",
    "YOLOV7_SCALE_EXTRA",
    "AugmentConfig",
    "BatchDraws",
    "affine_window",
    "augment_batch",
    "batch_generator",
    "check_augment",
    "draw",
    "geometry",
    "mixup",
    "mosaic_canvas",
    "photometric",
    "pixel_scale_bounds",
    "split_targets",
    "window_geometry",
]
