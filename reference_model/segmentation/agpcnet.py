"""AGPCNet: attention-guided pyramid context network.

Zhang, T., Li, L., Cao, S., Pu, T., Peng, Z. "Attention-Guided Pyramid Context Networks for
Detecting Infrared Small Target Under Complex Background", IEEE TAES 59(4), 2023 (official
code: ``Tianfang-Zhang/AGPCNet``, configuration ``agpcnet_1``).

Backbone: ResNet-18 with a stride-1 7x7 stem and no max-pool, so ``layer2..4`` give ``c1`` (/2,
128 ch), ``c2`` (/4, 256 ch), ``c3`` (/8, 512 ch). Context pyramid module (CPM) on ``c3``: a 1x1
reduction to ``512 / 16 = 32`` channels, then one attention-guided context block (AGCB) per
scale ``s`` in (10, 6, 5, 3): the map is cut into ``s x s`` patches, a non-local block runs inside
each patch, and each patch's output is weighted per channel by a *global context attention*
(GCA): the map max-pooled to ``s x s``, a non-local block over those ``s^2`` cells, a point-wise
MLP and a sigmoid, giving one channel weight vector per patch. The re-assembled map goes
through a 3x3 conv + BN, is added to the input with a learnt scale ``gamma`` (0 at start) and a
ReLU. The reduced map and the four AGCB outputs are concatenated and projected back to 512
channels. Decoder: two asymmetric fusion modules (AFM) bring the context to /4 with ``c2`` and
to /2 with ``c1`` (``end_conv(x_low + proj(x_high)) * channel_att(proj(x_high)) *
pixel_att(x_low)``); an FCN head (dropout 0.1) predicts at /2 and the logits are bilinearly
up-sampled to the input size.

Default: 12,360,461 parameters (the 12.36 M listed for AGPCNet in the BasicIRSTD / DNANet
comparison tables). The authors start from ImageNet ResNet-18 weights; here the backbone starts
from random weights (see ``docs/models/agpcnet.md``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from irstd_bench.errors import InputError
from reference_model.recipe import Recipe, recipes_table
from reference_model.segmentation._common import DEFAULT_PRIOR_PROB, SegmentationModel, residual_stage

#: ``agpcnet_1`` of the official code: AGCB patch grids and (CPM reduction, non-local reduction).
SCALES = (10, 6, 5, 3)
REDUCE_RATIOS = (16, 4)
#: ResNet-18 widths and blocks (stem, layer1..4).
RESNET18_WIDTHS = (64, 64, 128, 256, 512)
RESNET18_BLOCKS = (2, 2, 2, 2)

#: Training recipes (``--recipe NAME``).
RECIPES = recipes_table(
    Recipe(
        name="authors",
        description="AGPCNet train.py / README (agpcnet_1): SGD 0.05, momentum 0.9, wd 1e-4, poly 0.9, "
        "batch 8, 256 px, per-image soft-IoU",
        model_options={"input_norm": "imagenet", "prior_prob": DEFAULT_PRIOR_PROB, "loss": "soft_iou_image"},
        train={
            "epochs": 160,
            "imgsz": 256,
            "base_size": None,
            "batch": 8,
            "optimizer": "sgd",
            "lr": 0.05,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "schedule": "poly",
            "poly_power": 0.9,
            "warmup_epochs": 0.0,
            "warmup_iters": 0,
            "fliplr": 0.0,
            "flipud": 0.0,
            "scale": 0.0,
            "translate": 0.0,
            "mosaic": 0.0,
            "mixup": 0.0,
            "hsv_h": 0.0,
            "hsv_s": 0.0,
            "hsv_v": 0.0,
            "fitness": "iou",
        },
        notes=(
            "The README commands keep --epochs at 5 on SIRST-Aug (8,525 images, ~5,300 iterations at batch "
            "8); 160 epochs of NUAA-SIRST's 256 training images give about the same number of iterations.",
            "The authors' data code resizes every image to 256 x 256 with no augmentation; the engine "
            "letterboxes to 256 instead of stretching.",
            "The authors start from ImageNet ResNet-18 weights; irstd-bench trains from random weights.",
            "SGD momentum 0.9 without Nesterov in the authors' code; the engine's SGD is Nesterov.",
            "prior_prob 0.01 (output bias -4.6) is ours (issue 13).",
        ),
    )
)
DEFAULT_RECIPE = "authors"


def _conv_bn(c_in: int, c_out: int, kernel: int = 1, act: bool = True, sigmoid: bool = False) -> list[nn.Module]:
    layers = [nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2), nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    if sigmoid:
        layers.append(nn.Sigmoid())
    return layers


class NonLocal(nn.Module):
    """Self-attention over all positions of ``x (B, C, H, W)``: ``x + gamma * V softmax(Q^T K)``; same shape."""

    def __init__(self, channels: int, reduce_ratio: int):
        super().__init__()
        inter = channels // reduce_ratio
        self.query = nn.Conv2d(channels, inter, 1)
        self.key = nn.Conv2d(channels, inter, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        k = self.key(x).flatten(2)  # (B, C', HW)
        attention = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, HW, HW)
        out = torch.bmm(self.value(x).flatten(2), attention.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x


class GlobalContextAttention(nn.Module):
    """GCA (``post`` mode): ``x (B, C, H, W)`` -> channel weights ``(B, C, s, s)`` in (0, 1), one per patch."""

    def __init__(self, channels: int, scale: int):
        super().__init__()
        self.pool = nn.AdaptiveMaxPool2d(scale)
        self.non_local = NonLocal(channels, reduce_ratio=1)
        self.mlp = nn.Sequential(
            *_conv_bn(channels, channels // 4), *_conv_bn(channels // 4, channels, act=False, sigmoid=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.non_local(self.pool(x)))


def patch_bounds(size: int, scale: int) -> list[tuple[int, int]]:
    """``scale`` consecutive ``(start, end)`` ranges covering ``size``; the last takes the remainder."""
    step = size // scale
    return [(i * step, size if i == scale - 1 else (i + 1) * step) for i in range(scale)]


class AttentionGuidedContextBlock(nn.Module):
    """AGCB (patch mode): non-local attention inside each of ``s x s`` patches, weighted by GCA.

    ``(B, C, H, W) -> (B, C, H, W)``; needs ``H, W >= s``.
    """

    def __init__(self, channels: int, scale: int, reduce_ratio: int):
        super().__init__()
        self.scale = scale
        self.non_local = NonLocal(channels, reduce_ratio)
        self.conv = nn.Sequential(*_conv_bn(channels, channels, 3, act=False))
        self.attention = GlobalContextAttention(channels, scale)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gca = self.attention(x)  # (B, C, s, s)
        rows = []
        for i, (y0, y1) in enumerate(patch_bounds(x.shape[2], self.scale)):
            row = [
                self.non_local(x[:, :, y0:y1, x0:x1]) * gca[:, :, i : i + 1, j : j + 1]
                for j, (x0, x1) in enumerate(patch_bounds(x.shape[3], self.scale))
            ]
            rows.append(torch.cat(row, dim=3))
        context = self.conv(torch.cat(rows, dim=2))
        return F.relu(self.gamma * context + x)


class ContextPyramid(nn.Module):
    """CPM: reduce ``C -> C / r0``, one AGCB per scale, concatenate with the reduced map, project back to C."""

    def __init__(self, channels: int, scales=SCALES, reduce_ratios=REDUCE_RATIOS):
        super().__init__()
        inter = channels // reduce_ratios[0]
        self.reduce = nn.Sequential(*_conv_bn(channels, inter))
        self.blocks = nn.ModuleList(AttentionGuidedContextBlock(inter, s, reduce_ratios[1]) for s in scales)
        self.project = nn.Sequential(*_conv_bn(inter * (len(scales) + 1), channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        return self.project(torch.cat([reduced, *(block(reduced) for block in self.blocks)], dim=1))


class AsymmetricFusion(nn.Module):
    """AFM: ``end_conv(x_low + P(x_high)) * CA(P(x_high)) * PA(x_low)``; ``P`` a 1x1 projection to the low width."""

    def __init__(self, c_high: int, c_low: int, c_out: int):
        super().__init__()
        self.pixel_attention = nn.Sequential(
            *_conv_bn(c_low, c_low // 4), *_conv_bn(c_low // 4, c_low, act=False, sigmoid=True)
        )
        self.project = nn.Sequential(*_conv_bn(c_high, c_low))
        self.channel_attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), *_conv_bn(c_low, c_low // 4), *_conv_bn(c_low // 4, c_low, act=False, sigmoid=True)
        )
        self.end_conv = nn.Sequential(*_conv_bn(c_low, c_out, 3))

    def forward(self, x_high: torch.Tensor, x_low: torch.Tensor) -> torch.Tensor:
        x_high = self.project(x_high)
        return self.end_conv(x_low + x_high) * self.channel_attention(x_high) * self.pixel_attention(x_low)


class AGPCNet(SegmentationModel):
    """AGPCNet. ``forward(images (B, 3, H, W) in [0, 1]) -> logits (B, 1, H, W)``.

    H, W must be multiples of 8 with ``H / 8, W / 8 >= max(scales)`` (80 px for the default).
    """

    size_divisor = 8

    def __init__(
        self,
        *,
        channels=RESNET18_WIDTHS,
        scales=SCALES,
        reduce_ratios=REDUCE_RATIOS,
        dropout: float = 0.1,
        input_norm: str = "none",
        prior_prob: float | None = DEFAULT_PRIOR_PROB,
        loss: str = "soft_iou_image",
    ):
        super().__init__(
            {
                "channels": list(channels),
                "scales": list(scales),
                "reduce_ratios": list(reduce_ratios),
                "dropout": dropout,
            },
            input_norm=input_norm,
            prior_prob=prior_prob,
            loss=loss,
        )
        w = tuple(channels)
        self.scales = tuple(int(s) for s in scales)
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 7, 1, 3, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        self.layer1 = residual_stage(w[0], w[1], RESNET18_BLOCKS[0])  # /1
        self.layer2 = residual_stage(w[1], w[2], RESNET18_BLOCKS[1], stride=2)  # /2
        self.layer3 = residual_stage(w[2], w[3], RESNET18_BLOCKS[2], stride=2)  # /4
        self.layer4 = residual_stage(w[3], w[4], RESNET18_BLOCKS[3], stride=2)  # /8
        self.context = ContextPyramid(w[4], self.scales, reduce_ratios)
        self.fuse23 = AsymmetricFusion(w[4], w[3], w[3])
        self.fuse12 = AsymmetricFusion(w[3], w[2], w[2])
        self.head = nn.Sequential(*_conv_bn(w[2], w[2] // 4, 3), nn.Dropout(dropout), nn.Conv2d(w[2] // 4, 1, 1))
        for m in self.modules():  # the authors' initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.init_output_bias()

    def output_convs(self) -> list[nn.Conv2d]:
        return [self.head[-1]]

    def check_images(self, images: torch.Tensor) -> None:
        super().check_images(images)
        h, w = images.shape[-2:]
        if min(h, w) // 8 < max(self.scales):
            raise InputError(f"image size {h}x{w} (HxW): AGPCNet needs H/8 and W/8 >= {max(self.scales)}")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        x = self.layer1(self.stem(self.prepare(images)))
        c1 = self.layer2(x)  # (B, 128, H/2, W/2)
        c2 = self.layer3(c1)  # (B, 256, H/4, W/4)
        c3 = self.layer4(c2)  # (B, 512, H/8, W/8)
        out = F.interpolate(self.context(c3), size=c2.shape[-2:], mode="bilinear", align_corners=True)
        out = F.interpolate(self.fuse23(out, c2), size=c1.shape[-2:], mode="bilinear", align_corners=True)
        out = self.head(self.fuse12(out, c1))
        return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True)


def build_agpcnet(
    *,
    channels=RESNET18_WIDTHS,
    scales=SCALES,
    reduce_ratios=REDUCE_RATIOS,
    dropout: float = 0.1,
    input_norm: str = "none",
    prior_prob: float | None = DEFAULT_PRIOR_PROB,
    loss: str = "soft_iou_image",
) -> AGPCNet:
    """AGPCNet (``agpcnet_1``): AGCB patch ``scales``, ``reduce_ratios`` = (CPM, non-local), head ``dropout``.

    ``channels``: backbone widths (stem, layer1..4), ResNet-18's by default (narrower for tests).

    ``input_norm``, ``prior_prob``, ``loss``: see :mod:`reference_model.segmentation._common`.
    """
    return AGPCNet(
        channels=tuple(channels),
        scales=tuple(scales),
        reduce_ratios=tuple(reduce_ratios),
        dropout=dropout,
        input_norm=input_norm,
        prior_prob=prior_prob,
        loss=loss,
    )
