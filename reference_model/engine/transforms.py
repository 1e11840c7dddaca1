"""Geometry and augmentation of IR images and their masks, safe for 1-pixel targets.

Everything here works on ``numpy`` arrays in one frame at a time:

- ``image``: ``(H, W)`` float32 in ``[0, 1]`` (one channel; the loader replicates it to 3);
- ``mask``: ``(H, W)`` bool, foreground pixels of the targets.

Letterbox
---------
An image of native size ``(H, W)`` is scaled by ``r = S / max(H, W)`` to ``(h, w) =
(round(H r), round(W r))`` (aspect kept) and placed centred on an ``S x S`` canvas (padding
value :data:`PAD_VALUE`). :class:`Letterbox` records the exact per-axis scale ``w / W``,
``h / H`` and the padding, so a box maps to the input frame and back without loss::

    x_input = x_native * (w / W) + pad_x          x_native = (x_input - pad_x) / (w / W)

Masks are resized so that no target can vanish: nearest neighbour when enlarging (every
native pixel covers at least one output pixel), and "any foreground pixel in the footprint"
(box filter, value > 0) when shrinking. Boxes used for training are always recomputed from the
transformed mask with :func:`irstd_bench.targets.mask_to_targets`, never transformed
arithmetically, so they are exact in the input frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: Value of the letterbox padding (the image is in [0, 1]); 0 = no signal, never a target.
PAD_VALUE = 0.0

#: Input sizes must be multiples of the coarsest stride of every model (32).
SIZE_DIVISOR = 32


@dataclass(frozen=True)
class Letterbox:
    """How a native image was placed on the square network input.

    Attributes
    ----------
    native_size : (H, W)
        Native image size, px.
    input_size : int
        Side ``S`` of the square input, px.
    resized : (h, w)
        Size of the scaled image inside the input, px.
    pad : (pad_x, pad_y)
        Left and top padding, px.
    """

    native_size: tuple[int, int]
    input_size: int
    resized: tuple[int, int]
    pad: tuple[int, int]

    @classmethod
    def fit(cls, native_size: tuple[int, int], input_size: int) -> Letterbox:
        """The letterbox of an image of ``native_size = (H, W)`` on an ``input_size`` square."""
        h, w = int(native_size[0]), int(native_size[1])
        if h < 1 or w < 1:
            raise ValueError(f"native size must be positive, got {native_size}")
        ratio = input_size / max(h, w)
        rh = min(input_size, max(1, round(h * ratio)))
        rw = min(input_size, max(1, round(w * ratio)))
        return cls((h, w), int(input_size), (rh, rw), ((input_size - rw) // 2, (input_size - rh) // 2))

    @property
    def scale_xy(self) -> tuple[float, float]:
        """``(w / W, h / H)``: input pixels per native pixel along x and y."""
        return self.resized[1] / self.native_size[1], self.resized[0] / self.native_size[0]

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes ``(N, 4)`` ``[x0, y0, x1, y1]`` native px -> input px (float64)."""
        sx, sy = self.scale_xy
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return boxes * [sx, sy, sx, sy] + [self.pad[0], self.pad[1], self.pad[0], self.pad[1]]

    def boxes_to_native(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """Boxes ``(N, 4)`` input px -> native px (float64), clipped to the image unless ``clip=False``."""
        sx, sy = self.scale_xy
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        out = (boxes - [self.pad[0], self.pad[1], self.pad[0], self.pad[1]]) / [sx, sy, sx, sy]
        if clip:
            h, w = self.native_size
            out = np.clip(out, 0.0, [w, h, w, h])
        return out

    def image_to_input(self, image: np.ndarray) -> np.ndarray:
        """Native image ``(H, W)`` float32 -> input ``(S, S)`` float32 (bilinear, padded)."""
        canvas = np.full((self.input_size, self.input_size), PAD_VALUE, np.float32)
        x, y = self.pad
        h, w = self.resized
        canvas[y : y + h, x : x + w] = resize_image(image, (h, w))
        return canvas

    def mask_to_input(self, mask: np.ndarray) -> np.ndarray:
        """Native mask ``(H, W)`` bool -> input ``(S, S)`` bool; no target is lost (see module doc)."""
        canvas = np.zeros((self.input_size, self.input_size), bool)
        x, y = self.pad
        h, w = self.resized
        canvas[y : y + h, x : x + w] = resize_mask(mask, (h, w))
        return canvas

    def score_map_to_native(self, score_map: np.ndarray) -> np.ndarray:
        """Input score map ``(S, S)`` in [0, 1] -> native ``(H, W)`` float32 in [0, 1] (bilinear)."""
        x, y = self.pad
        h, w = self.resized
        inner = np.asarray(score_map, np.float32)[y : y + h, x : x + w]
        return np.clip(resize_image(inner, self.native_size), 0.0, 1.0)


def check_input_size(size: int) -> int:
    """Return ``size`` if it is a positive multiple of :data:`SIZE_DIVISOR`, else raise ``ValueError``."""
    if size < SIZE_DIVISOR or size % SIZE_DIVISOR:
        raise ValueError(f"input size {size} must be a positive multiple of {SIZE_DIVISOR}")
    return int(size)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float image ``(H, W)`` to ``size = (h, w)`` with Pillow's (antialiased) bilinear filter."""
    image = np.asarray(image, np.float32)
    if image.shape == tuple(size):
        return image.copy()
    pil = Image.fromarray(np.ascontiguousarray(image))  # float32 -> Pillow mode "F"
    return np.asarray(pil.resize((size[1], size[0]), Image.Resampling.BILINEAR), np.float32)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask ``(H, W)`` to ``size = (h, w)`` keeping every target.

    Each axis is handled on its own: enlarging uses nearest neighbour, shrinking marks an
    output pixel as foreground when any native pixel of its footprint is (box filter > 0).
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    th, tw = int(size[0]), int(size[1])
    if (h, w) == (th, tw):
        return mask.copy()
    # Float images (Pillow mode "F"), so a box average of one pixel in many never rounds to 0;
    # axis by axis, so a shrink along one axis never mixes with nearest sampling along the other.
    filt_w = Image.Resampling.NEAREST if tw >= w else Image.Resampling.BOX
    filt_h = Image.Resampling.NEAREST if th >= h else Image.Resampling.BOX
    step = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((tw, h), filt_w)) > 0
    step = np.asarray(Image.fromarray(step.astype(np.float32)).resize((tw, th), filt_h)) > 0
    return step


# --------------------------------------------------------------------------------------------
# Augmentation


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings (probabilities in [0, 1]).

    Attributes
    ----------
    hflip, vflip : float
        Probability of a horizontal / vertical flip.
    crop : float
        Probability of a random crop of the native image that keeps every target.
    crop_min_side : float
        Smallest crop side as a fraction of the native side (the crop is then letterboxed, so
        a crop is also a zoom-in by up to ``1 / crop_min_side``).
    mosaic : float
        Probability of a 2 x 2 mosaic of four training images (each letterboxed to ``S / 2``).
    brightness : float
        Additive brightness offset drawn from ``[-brightness, brightness]`` (image in [0, 1]).
    contrast : float
        Contrast factor drawn from ``[1 - contrast, 1 + contrast]``, about the image mean.
    noise : float
        Largest standard deviation of added Gaussian noise; drawn from ``[0, noise]``.
    """

    hflip: float = 0.5
    vflip: float = 0.5
    crop: float = 0.5
    crop_min_side: float = 0.6
    mosaic: float = 0.0
    brightness: float = 0.1
    contrast: float = 0.2
    noise: float = 0.02

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all."""
        return cls(0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)


def random_crop_keeping_targets(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, min_side: float
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a window of random size (``min_side``..1 of each side, same aspect) holding every target.

    The window always contains the union box of the mask's foreground; where that union is
    larger than the drawn window, the window grows to it (and may be the whole image).
    """
    h, w = mask.shape
    frac = rng.uniform(min_side, 1.0)
    ch, cw = max(1, round(h * frac)), max(1, round(w * frac))
    rows, cols = np.nonzero(mask)
    if rows.size:
        uy0, uy1, ux0, ux1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        ch, cw = max(ch, uy1 - uy0), max(cw, ux1 - ux0)
        y_lo, y_hi = max(0, uy1 - ch), min(uy0, h - ch)
        x_lo, x_hi = max(0, ux1 - cw), min(ux0, w - cw)
    else:
        y_lo, y_hi, x_lo, x_hi = 0, h - ch, 0, w - cw
    y0 = int(rng.integers(y_lo, y_hi + 1))
    x0 = int(rng.integers(x_lo, x_hi + 1))
    return image[y0 : y0 + ch, x0 : x0 + cw], mask[y0 : y0 + ch, x0 : x0 + cw]


def random_flips(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, hflip: float, vflip: float
) -> tuple[np.ndarray, np.ndarray]:
    """Flip image and mask together (left-right with probability ``hflip``, up-down with ``vflip``)."""
    if rng.random() < hflip:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if rng.random() < vflip:
        image, mask = image[::-1], mask[::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def photometric_jitter(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Brightness, contrast and Gaussian noise on a ``[0, 1]`` image; the result is clipped to [0, 1]."""
    out = image.astype(np.float32, copy=True)
    if config.contrast > 0:
        factor = rng.uniform(1.0 - config.contrast, 1.0 + config.contrast)
        out = (out - out.mean()) * factor + out.mean()
    if config.brightness > 0:
        out = out + rng.uniform(-config.brightness, config.brightness)
    if config.noise > 0:
        sigma = rng.uniform(0.0, config.noise)
        out = out + rng.standard_normal(out.shape).astype(np.float32) * sigma
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def mosaic(tiles: list[tuple[np.ndarray, np.ndarray]], input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Four ``(image, mask)`` pairs -> one ``(S, S)`` image and mask, each tile letterboxed to ``S / 2``."""
    if len(tiles) != 4:
        raise ValueError(f"mosaic needs 4 tiles, got {len(tiles)}")
    half = input_size // 2
    image = np.full((input_size, input_size), PAD_VALUE, np.float32)
    mask = np.zeros((input_size, input_size), bool)
    for k, (tile_image, tile_mask) in enumerate(tiles):
        box = Letterbox.fit(tile_mask.shape, half)
        y, x = (k // 2) * half, (k % 2) * half
        image[y : y + half, x : x + half] = box.image_to_input(tile_image)
        mask[y : y + half, x : x + half] = box.mask_to_input(tile_mask)
    return image, mask
