"""Geometry and augmentation of IR images and their masks, safe for 1-pixel targets.

Everything here works on ``numpy`` arrays in one frame at a time (training augmentation is
batched on tensors, in :mod:`.augment`):

- ``image``: ``(H, W)`` float32 in ``[0, 1]`` (one channel; the loader replicates it to 3);
- ``mask``: ``(H, W)`` bool, foreground pixels of the targets.

Letterbox
---------
An image of native size ``(H, W)`` is scaled by ``r = S / max(H, W)`` to ``(h, w) =
(round(H r), round(W r))`` (aspect kept) and placed centred on an ``S x S`` canvas (padding
value ``fill``: :data:`PAD_VALUE`, or a run's ``pad_value``, recorded in its checkpoint).
:class:`Letterbox` records the exact per-axis scale ``w / W``, ``h / H`` and the padding, so a
box maps to the input frame and back without loss::

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
#: Largest square input side, px: 8x the side of the largest IRSTD images (IRSTD-1k, 512 px), far
#: past what the networks are trained at (256 to 640), yet a size whose tensors fit in memory.
MAX_INPUT_SIZE = 4096


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

    @property
    def content(self) -> tuple[int, int, int, int]:
        """Where the image lies on the input, ``(x0, y0, x1, y1)`` px (the rest is padding)."""
        x, y = self.pad
        h, w = self.resized
        return x, y, x + w, y + h

    def image_to_input(self, image: np.ndarray, fill: float = PAD_VALUE) -> np.ndarray:
        """Native image ``(H, W)`` float32 -> input ``(S, S)`` float32 (bilinear, padded with ``fill``)."""
        canvas = np.full((self.input_size, self.input_size), fill, np.float32)
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
    """Return ``size`` if it is a multiple of :data:`SIZE_DIVISOR` in ``[SIZE_DIVISOR, MAX_INPUT_SIZE]``,
    else raise ``ValueError``."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise ValueError(f"input size {size!r} must be an integer")
    if size < SIZE_DIVISOR or size % SIZE_DIVISOR:
        raise ValueError(f"input size {size} must be a positive multiple of {SIZE_DIVISOR}")
    if size > MAX_INPUT_SIZE:
        raise ValueError(f"input size {size} exceeds {MAX_INPUT_SIZE} px (one {size}x{size} float image alone "
                         f"is {size * size * 4 / 1e9:.1f} GB)")
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
