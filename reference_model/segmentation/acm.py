"""ACM: asymmetric contextual modulation, U-Net variant (ACM-U-Net) with ResNet blocks.

Dai, Y., Wu, Y., Zhou, F., Barnard, K. "Asymmetric Contextual Modulation for Infrared Small
Target Detection", WACV 2021.

Encoder: a stem (three 3x3 convs, first strided, then 3x3 max-pool: /4) and three residual
stages (/4, /8, /16). Decoder: two transposed-conv up-steps; at each, the deep feature ``X``
and the skip feature ``Y`` are fused by asymmetric bi-directional modulation

    Z = 2 * Y * G(X) + 2 * X * L(Y)

with ``G`` a top-down *global* channel attention (global average pool + point-wise MLP) and
``L`` a bottom-up *local* point-wise channel attention (per-pixel MLP), then a 3x3 conv. An
FCN head predicts at /4 and the logits are bilinearly upsampled to the input size.

Default (``blocks=(3, 3, 3)``, ``channels=(8, 16, 32, 64)``, ``r=4``): ResNet-20-depth
ACM-U-Net, 0.40 M parameters, as the 0.398 M reported for ACM in the DNANet / BasicIRSTD
comparison tables.
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
from reference_model.segmentation._recipes import AUTHORS, acm_recipes

#: Training recipes (``--recipe NAME``), from the authors' released code; see ``_recipes.py``.
RECIPES = acm_recipes()
#: The recipe a run of this model should use when none is asked for.
DEFAULT_RECIPE = AUTHORS


class AsymmetricBiFusion(nn.Module):
    """ACM fusion of a deep feature ``x_high`` and a skip feature ``x_low``, both ``(B, C, H, W)``.

    The global branch has no batch norm on its ``1x1`` map (BN over a 1x1 map fails for batch
    size 1 in training); the bias of its convolutions stands in for it.
    """

    def __init__(self, channels: int, r: int = 4):
        super().__init__()
        mid = max(channels // r, 1)
        self.top_down = nn.Sequential(  # global context of the deep feature -> (B, C, 1, 1)
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, mid, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, channels, 1),
            nn.Sigmoid(),
        )
        self.bottom_up = nn.Sequential(  # point-wise detail of the skip feature -> (B, C, H, W)
            nn.Conv2d(channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.Sigmoid(),
        )
        self.post = conv_bn_relu(channels, channels)

    def forward(self, x_high: torch.Tensor, x_low: torch.Tensor) -> torch.Tensor:
        return self.post(2 * x_low * self.top_down(x_high) + 2 * x_high * self.bottom_up(x_low))


class ACM(SegmentationModel):
    """ACM-U-Net. ``forward(images (B, 3, H, W) in [0, 1]) -> logits (B, 1, H, W)``; H, W multiples of 16."""

    size_divisor = 16

    def __init__(
        self,
        *,
        blocks=(3, 3, 3),
        channels=(8, 16, 32, 64),
        r: int = 4,
        input_norm: str = "none",
        prior_prob: float | None = DEFAULT_PRIOR_PROB,
        loss: str = "soft_iou_image",
    ):
        super().__init__(
            {"blocks": list(blocks), "channels": list(channels), "r": r},
            input_norm=input_norm,
            prior_prob=prior_prob,
            loss=loss,
        )
        c0, c1, c2, c3 = channels
        self.stem = nn.Sequential(
            nn.BatchNorm2d(3),
            conv_bn_relu(3, c0, stride=2),
            conv_bn_relu(c0, c0),
            conv_bn_relu(c0, 2 * c0),
            nn.MaxPool2d(3, 2, 1),
        )
        self.stage1 = residual_stage(2 * c0, c1, blocks[0])  # /4
        self.stage2 = residual_stage(c1, c2, blocks[1], stride=2)  # /8
        self.stage3 = residual_stage(c2, c3, blocks[2], stride=2)  # /16
        self.up2 = nn.ConvTranspose2d(c3, c2, 4, 2, 1)
        self.fuse2 = AsymmetricBiFusion(c2, r)
        self.dec2 = residual_stage(c2, c2, blocks[1])
        self.up1 = nn.ConvTranspose2d(c2, c1, 4, 2, 1)
        self.fuse1 = AsymmetricBiFusion(c1, r)
        self.dec1 = residual_stage(c1, c1, blocks[0])
        self.head = FCNHead(c1, 1)
        self.init_output_bias()

    def output_convs(self) -> list[nn.Conv2d]:
        return [self.head.block[-1]]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.prepare(images))
        f1 = self.stage1(x)  # (B, c1, H/4, W/4)
        f2 = self.stage2(f1)  # (B, c2, H/8, W/8)
        f3 = self.stage3(f2)  # (B, c3, H/16, W/16)
        d2 = self.dec2(self.fuse2(self.up2(f3), f2))
        d1 = self.dec1(self.fuse1(self.up1(d2), f1))
        return F.interpolate(self.head(d1), size=images.shape[-2:], mode="bilinear", align_corners=False)


def build_acm(
    *,
    blocks=(3, 3, 3),
    channels=(8, 16, 32, 64),
    r: int = 4,
    input_norm: str = "none",
    prior_prob: float | None = DEFAULT_PRIOR_PROB,
    loss: str = "soft_iou_image",
) -> ACM:
    """ACM-U-Net; ``blocks`` residual blocks per stage, ``channels`` = (stem, stage1..3), ``r`` reduction.

    ``input_norm``, ``prior_prob``, ``loss``: see :mod:`reference_model.segmentation._common`.
    """
    return ACM(
        blocks=tuple(blocks), channels=tuple(channels), r=r, input_norm=input_norm, prior_prob=prior_prob, loss=loss
    )
