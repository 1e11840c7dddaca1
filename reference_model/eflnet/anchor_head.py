"""Anchor-based YOLOv7 detection head ("IDetect") and its box decoding.

Every level ``l`` (stride ``s``) has ``A = 3`` anchor boxes ``(w_a, h_a)`` in input pixels and
predicts, per cell ``(i, j)`` (column, row) and anchor, ``5 + K`` numbers
``(tx, ty, tw, th, t_obj, t_cls...)`` (``K = 0`` class logits for one class, ``K = num_classes``
otherwise), decoded as in YOLOv5/v7::

    cx = (2 sigmoid(tx) - 0.5 + i) s        w = (2 sigmoid(tw))^2 w_a
    cy = (2 sigmoid(ty) - 0.5 + j) s        h = (2 sigmoid(th))^2 h_a

so a centre may lie up to 1.5 cells from its cell and a size between 0 and 4 anchor sizes.
Objectness ``sigmoid(t_obj)`` is the score of a one-class model; with classes the score is
``objectness * sigmoid(t_cls)``.

The head is YOLOR's implicit variant used by YOLOv7: a learned per-channel offset
(``ImplicitAdd``) before the 1x1 prediction convolution and a learned per-channel scale
(``ImplicitMul``) after it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torchvision.ops import box_convert

#: the authors' yaml anchors ``(w, h)`` in input pixels, three per level (P3/8, P4/16, P5/32).
YOLOV7_ANCHORS = (
    ((12, 16), (19, 36), (40, 28)),
    ((36, 75), (76, 55), (72, 146)),
    ((142, 110), (192, 243), (459, 401)),
)
#: numbers per anchor before the class logits: ``tx, ty, tw, th, t_obj``.
BOX_OUTPUTS = 5
OBJ_INDEX = 4
#: objectness bias prior: this many objects per 640 x 640 image (YOLOv5/v7 bias init).
PRIOR_OBJECTS_PER_640 = 8
#: class bias prior ``log(0.6 / (K - 0.99))`` (YOLOv5/v7 bias init).
PRIOR_CLASS_NUMERATOR, PRIOR_CLASS_OFFSET = 0.6, 0.99
#: standard deviations of the implicit offset and scale initialisation (YOLOR).
IMPLICIT_STD = 0.02
#: image side (px) the YOLOv7 priors and loss gains are tuned for.
REFERENCE_SIZE = 640


class ImplicitAdd(nn.Module):
    """``x + a`` with a learned ``a (1, C, 1, 1)`` ~ N(0, 0.02)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.empty(1, channels, 1, 1).normal_(0.0, IMPLICIT_STD))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.implicit


class ImplicitMul(nn.Module):
    """``x * m`` with a learned ``m (1, C, 1, 1)`` ~ N(1, 0.02)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.empty(1, channels, 1, 1).normal_(1.0, IMPLICIT_STD))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.implicit


def outputs_per_anchor(num_classes: int) -> int:
    """``5`` for one class (objectness is the score), ``5 + num_classes`` otherwise."""
    return BOX_OUTPUTS + (num_classes if num_classes > 1 else 0)


class AnchorHead(nn.Module):
    """Per-level implicit 1x1 prediction: ``[(B, C, H_l, W_l)] -> [(B, A, H_l, W_l, N)]``.

    ``N = outputs_per_anchor(num_classes)``; the anchors (``(L, A, 2)`` px) are a buffer, saved
    with the model.
    """

    def __init__(
        self,
        channels: tuple[int, ...],
        strides: tuple[int, ...],
        anchors: tuple,
        num_classes: int,
    ) -> None:
        super().__init__()
        anchor_tensor = torch.tensor(anchors, dtype=torch.float32)  # (L, A, 2)
        if anchor_tensor.ndim != 3 or anchor_tensor.shape[0] != len(strides) or anchor_tensor.shape[2] != 2:
            raise ValueError(f"anchors must be {len(strides)} levels of (w, h) pairs, got {anchors}")
        self.register_buffer("anchors", anchor_tensor)
        self.strides = tuple(strides)
        self.num_anchors = anchor_tensor.shape[1]
        self.num_classes = num_classes
        self.outputs = outputs_per_anchor(num_classes)
        width = self.num_anchors * self.outputs
        self.implicit_add = nn.ModuleList(ImplicitAdd(c) for c in channels)
        self.predict = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.implicit_mul = nn.ModuleList(ImplicitMul(width) for _ in channels)
        self._init_biases()

    @torch.no_grad()
    def _init_biases(self) -> None:
        for conv, stride in zip(self.predict, self.strides, strict=True):
            bias = conv.bias.view(self.num_anchors, self.outputs)
            bias[:, OBJ_INDEX] += math.log(PRIOR_OBJECTS_PER_640 / (REFERENCE_SIZE / stride) ** 2)
            if self.num_classes > 1:
                bias[:, BOX_OUTPUTS:] += math.log(
                    PRIOR_CLASS_NUMERATOR / (self.num_classes - PRIOR_CLASS_OFFSET)
                )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for x, add, conv, mul in zip(features, self.implicit_add, self.predict, self.implicit_mul, strict=True):
            y = mul(conv(add(x)))  # (B, A N, H, W)
            b, _, h, w = y.shape
            outputs.append(y.view(b, self.num_anchors, self.outputs, h, w).permute(0, 1, 3, 4, 2))
        return outputs  # each (B, A, H, W, N)


def cell_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """``(H, W, 2)`` float32 ``(column, row)`` index of every cell."""
    rows = torch.arange(height, device=device, dtype=torch.float32)
    cols = torch.arange(width, device=device, dtype=torch.float32)
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def decode_xywh(raw: torch.Tensor, cells: torch.Tensor, anchors: torch.Tensor, stride: float) -> torch.Tensor:
    """Raw ``(..., 4)`` ``(tx, ty, tw, th)`` -> ``(..., 4)`` ``(cx, cy, w, h)`` in input px.

    ``cells (..., 2)`` are the ``(column, row)`` of each prediction and ``anchors (..., 2)`` its
    anchor ``(w, h)`` in px (both broadcast against ``raw``).
    """
    t = raw.sigmoid()
    centre = (2 * t[..., :2] - 0.5 + cells) * stride
    size = (2 * t[..., 2:4]) ** 2 * anchors
    return torch.cat([centre, size], dim=-1)


def decode_level(output: torch.Tensor, anchors: torch.Tensor, stride: float) -> torch.Tensor:
    """One level's raw ``(B, A, H, W, N)`` -> boxes ``(B, A, H, W, 4)`` ``[x0, y0, x1, y1]`` px."""
    cells = cell_grid(output.shape[2], output.shape[3], output.device)  # (H, W, 2)
    xywh = decode_xywh(output[..., :4].float(), cells, anchors.view(1, -1, 1, 1, 2), stride)
    return box_convert(xywh, "cxcywh", "xyxy")
