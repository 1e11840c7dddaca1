"""ALCNet: attentional local contrast network.

Dai, Y., Wu, Y., Zhou, F., Barnard, K. "Attentional Local Contrast Networks for Infrared Small
Target Detection", IEEE TGRS 59(11), 2021.

A CIFAR-style ResNet backbone at full resolution (stem 3x3 conv, stages at /1, /2, /4). Each
stage's feature map goes through the parameter-free *local contrast* layer built by
feature-map cyclic shifts (the MPCM of Wei et al. 2016 applied depth-wise to features): for a
shift ``s`` and the 8 directions ``i``, ``d_i = X - roll(X, s * dir_i)`` and
``LC_s = min_{i=1..4} d_i * d_{i+4}``; several shifts are combined by their maximum. The
contrast maps of the two shallow stages are widened to the deepest stage's width by 1x1 convs
(the "increase" pyramid of the authors' code) and fused from deep to shallow by
*bottom-up local attentional modulation* (BLAM): the upsampled deep map is reweighted by a
point-wise channel attention computed from the shallow map, ``Z = X_deep * L(X_shallow) +
X_shallow``. An FCN head gives full-resolution logits.

Default (``blocks=(4, 4, 4)``, ``channels=(8, 16, 32, 64)``, shifts 13 and 17 px): 0.399 M
parameters; comparison tables of later work (BasicIRSTD, DNANet) list ALCNet at 0.427 M.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_model.segmentation._common import (
    DEFAULT_PRIOR_PROB,
    FCNHead,
    SegmentationModel,
    conv_bn_relu,
    residual_stage,
)
from reference_model.segmentation._recipes import AUTHORS, alcnet_recipes

#: Training recipes (``--recipe NAME``), from the authors' released code; see ``_recipes.py``.
RECIPES = alcnet_recipes()
#: The recipe a run of this model should use when none is asked for.
DEFAULT_RECIPE = AUTHORS

#: The 8 shift directions (dy, dx); ``i`` and ``i + 4`` are opposite.
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def cyclic_local_contrast(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Local contrast of every channel of ``x (B, C, H, W)`` against cyclically shifted copies.

    ``min_{i=1..4} (x - x_i) * (x - x_{i+4})`` with ``x_i`` the map rolled by ``shift`` pixels
    in direction ``i`` (wrapping around the borders). Same shape as ``x``; no parameters.
    """
    diffs = [x - torch.roll(x, shifts=(dy * shift, dx * shift), dims=(2, 3)) for dy, dx in DIRECTIONS]
    products = torch.stack([diffs[i] * diffs[i + 4] for i in range(4)])  # (4, B, C, H, W)
    return products.amin(dim=0)


class LocalContrast(nn.Module):
    """Multi-shift local contrast: the maximum over ``shifts`` of :func:`cyclic_local_contrast`."""

    def __init__(self, shifts=(13, 17)):
        super().__init__()
        self.shifts = tuple(int(s) for s in shifts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = cyclic_local_contrast(x, self.shifts[0])
        for s in self.shifts[1:]:
            out = torch.maximum(out, cyclic_local_contrast(x, s))
        return out


class BottomUpLocalModulation(nn.Module):
    """BLAM: ``Z = BN(X_deep) * sigmoid(MLP(BN(X_shallow))) + BN(X_shallow)``; all ``(B, C, H, W)``.

    The MLP is point-wise (two 1x1 convs with BN), so the attention keeps per-pixel detail of
    the shallow map (small targets) instead of pooling it away.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm_deep = nn.BatchNorm2d(channels)
        self.norm_shallow = nn.BatchNorm2d(channels)
        self.attention = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.Sigmoid(),
        )

    def forward(self, x_deep: torch.Tensor, x_shallow: torch.Tensor) -> torch.Tensor:
        x_deep, x_shallow = self.norm_deep(x_deep), self.norm_shallow(x_shallow)
        return x_deep * self.attention(x_shallow) + x_shallow


class ALCNet(SegmentationModel):
    """ALCNet. ``forward(images (B, 3, H, W) in [0, 1]) -> logits (B, 1, H, W)``; H, W multiples of 4."""

    size_divisor = 4

    def __init__(
        self,
        *,
        blocks=(4, 4, 4),
        channels=(8, 16, 32, 64),
        shifts=(13, 17),
        input_norm: str = "none",
        prior_prob: float | None = DEFAULT_PRIOR_PROB,
        loss: str = "soft_iou_image",
    ):
        super().__init__(
            {"blocks": list(blocks), "channels": list(channels), "shifts": list(shifts)},
            input_norm=input_norm,
            prior_prob=prior_prob,
            loss=loss,
        )
        c0, c1, c2, c3 = channels
        self.stem = nn.Sequential(nn.BatchNorm2d(3), conv_bn_relu(3, 2 * c0))
        self.stage1 = residual_stage(2 * c0, c1, blocks[0])  # /1
        self.stage2 = residual_stage(c1, c2, blocks[1], stride=2)  # /2
        self.stage3 = residual_stage(c2, c3, blocks[2], stride=2)  # /4
        self.contrast = LocalContrast(shifts)
        self.widen2 = conv_bn_relu(c2, c3, kernel=1)
        self.widen1 = conv_bn_relu(c1, c3, kernel=1)
        self.fuse2 = BottomUpLocalModulation(c3)
        self.fuse1 = BottomUpLocalModulation(c3)
        self.head = FCNHead(c3, 1)
        self.init_output_bias()

    def output_convs(self) -> list[nn.Conv2d]:
        return [self.head.block[-1]]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f1 = self.stage1(self.stem(self.prepare(images)))  # (B, c1, H, W)
        f2 = self.stage2(f1)  # (B, c2, H/2, W/2)
        f3 = self.stage3(f2)  # (B, c3, H/4, W/4)
        p3 = F.interpolate(self.contrast(f3), size=f2.shape[-2:], mode="bilinear", align_corners=False)
        p23 = self.fuse2(p3, self.contrast(self.widen2(f2)))  # (B, c3, H/2, W/2)
        p23 = F.interpolate(p23, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.fuse1(p23, self.contrast(self.widen1(f1))))  # (B, 1, H, W)


def build_alcnet(
    *,
    blocks=(4, 4, 4),
    channels=(8, 16, 32, 64),
    shifts=(13, 17),
    input_norm: str = "none",
    prior_prob: float | None = DEFAULT_PRIOR_PROB,
    loss: str = "soft_iou_image",
) -> ALCNet:
    """ALCNet; ``blocks`` per stage, ``channels`` = (stem/2, stage1..3), local-contrast ``shifts`` in px.

    ``input_norm``, ``prior_prob``, ``loss``: see :mod:`reference_model.segmentation._common`.
    """
    return ALCNet(
        blocks=tuple(blocks),
        channels=tuple(channels),
        shifts=tuple(shifts),
        input_norm=input_norm,
        prior_prob=prior_prob,
        loss=loss,
    )
