"""ISNet: shape matters for infrared small target detection (edge branch and edge loss).

Zhang, M., Zhang, R., Yang, Y., Bai, H., Zhang, J., Guo, J. "ISNet: Shape Matters for Infrared
Small Target Detection", CVPR 2022. The authors' repository (``RuiZhang97/ISNet``) holds only
the IRSTD-1k data; the released network and loss are those of BasicIRSTD
(``XinyiYing/BasicIRSTD``: ``model/ISNet/model_ISNet.py``, ``loss.py`` ``ISNetLoss``), which
this module follows.

Image branch: an ACM-style U-Net on one channel. Stem (BN, three 3x3 convs, the first strided,
max-pool: /4), three stages of 4 residual blocks (/4, /8, /16; 16, 32, 64 channels), two
transposed-conv up-steps; at each, the up-sampled deep map and the skip map are fused by the
*two-orientation attention aggregation* (TOAA): a shared 1x1 bottleneck ``P`` on both inputs,
then ``(P(low) + sigmoid(D_kx1(P(low))) * P(high)) + (P(low) + sigmoid(D_1xk(P(low))) * P(high))``
with ``D`` deformable column / row convolutions (offsets start at zero).

Edge branch (Taylor finite difference, TFD): the image gradient magnitude (central differences)
is lifted to 64 channels and refined by three TFD blocks, each gated by a side output (1x1
conv) of the /16 encoder map, the /8 decoder map and the /4 decoder map; a 1x1 conv gives the
edge logits ``e``. The decoder's /4 map up-sampled to full size is modulated
``f * sigmoid(e) + f`` and an FCN head predicts the mask logits.

Loss (BasicIRSTD ``ISNetLoss``), ``g`` the gradient magnitude of the mask:

    soft_iou (batch, of sigmoid(mask logits))
    + 10 * BCE(sigmoid(e), g) + soft_iou (batch, of sigmoid(sigmoid(e)) against g)

Default: 985,810 parameters. BasicIRSTD's table lists 0.966 M: its ``thop`` count sees only
standard layers that run in the forward pass, so it misses the weights the deformable convolutions
(7,776) and gated convolutions (12,288) hold themselves: 985,810 - 20,064 = 965,746. The released
class also builds layers its forward pass never uses; they are left out here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from reference_model.recipe import Recipe, recipes_table
from reference_model.segmentation._common import (
    DEFAULT_PRIOR_PROB,
    FCNHead,
    SegmentationModel,
    conv_bn_relu,
    residual_stage,
    soft_iou_loss,
)

#: The model's own loss (``loss="isnet"``): batch soft-IoU on the mask plus the edge loss.
ISNET_LOSS = "isnet"
#: Weight of the edge BCE term in ``ISNetLoss``.
EDGE_BCE_WEIGHT = 10.0
#: Added under the square root of the gradient magnitude (as in the code).
GRADIENT_EPS = 1e-6
#: Width of the edge branch and number of TFD blocks.
EDGE_WIDTH = 64

#: Training recipes (``--recipe NAME``).
RECIPES = recipes_table(
    Recipe(
        name="authors",
        description="BasicIRSTD train.py defaults for ISNet: Adam 5e-4, 400 epochs, batch 16, 256-px patches",
        model_options={"input_norm": "none", "prior_prob": DEFAULT_PRIOR_PROB, "loss": ISNET_LOSS},
        train={
            "epochs": 400,
            "imgsz": 256,
            "base_size": None,
            "batch": 16,
            "optimizer": "adamw",
            "lr": 5e-4,
            "weight_decay": 0.0,
            "momentum": 0.9,
            "schedule": "cosine",
            "lr_final_ratio": 0.01,
            "warmup_epochs": 0.0,
            "warmup_iters": 0,
            "fliplr": 0.5,
            "flipud": 0.5,
            "mosaic": 0.0,
            "mixup": 0.0,
            "fitness": "iou",
        },
        notes=(
            "BasicIRSTD steps the lr by 0.1 at epochs 200 and 300 (MultiStepLR); the engine has no step "
            "schedule, the recipe decays by cosine to the same final lr (0.01 x).",
            "Adam (betas 0.9, 0.999, no weight decay) is the engine's AdamW with weight decay 0.",
            "BasicIRSTD trains on random 256-px patches (a target inside with p 0.5) with flips and "
            "transposition; the engine letterboxes whole images to 256 and flips them (no transposition).",
            "BasicIRSTD normalises by per-dataset grey-level mean and std; the network's first layer is a "
            "BatchNorm of the input, so the recipe leaves input_norm 'none'.",
            "The deformable convolutions' offset branch has lr multiplier 0.1 in DCNv2; here it trains at the base lr.",
            "prior_prob 0.01 (output bias -4.6) is ours (issue 13).",
        ),
    )
)
DEFAULT_RECIPE = "authors"


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(dy^2 + dx^2 + eps)`` by central differences (zero padding); ``(B, 1, H, W)`` -> same."""
    kernels = x.new_zeros(2, 1, 3, 3)
    kernels[0, 0, 0, 1], kernels[0, 0, 2, 1] = -1.0, 1.0  # vertical
    kernels[1, 0, 1, 0], kernels[1, 0, 1, 2] = -1.0, 1.0  # horizontal
    d = F.conv2d(x, kernels, padding=1)
    return torch.sqrt((d * d).sum(dim=1, keepdim=True) + GRADIENT_EPS)


class DeformConv(nn.Module):
    """Deformable convolution (DCN v1) with its own offset-predicting convolution (zero at start).

    ``(B, C_in, H, W) -> (B, C_out, H, W)`` for the ``same`` padding it is built with.
    """

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int]):
        super().__init__()
        self.padding = (kernel[0] // 2, kernel[1] // 2)
        self.weight = nn.Parameter(torch.empty(c_out, c_in, *kernel))
        self.bias = nn.Parameter(torch.empty(c_out))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(c_in * kernel[0] * kernel[1])
        nn.init.uniform_(self.bias, -bound, bound)
        self.offset = nn.Conv2d(c_in, 2 * kernel[0] * kernel[1], kernel, 1, self.padding)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return deform_conv2d(x, self.offset(x), self.weight, self.bias, padding=self.padding)


class TwoOrientationAttention(nn.Module):
    """TOAA fusion of ``low`` (up-sampled deep map) and ``high`` (skip map), both ``(B, C, H, W)``."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.bottleneck = nn.Sequential(nn.Conv2d(channels, channels // 2, 1), nn.Conv2d(channels // 2, channels, 1))
        self.column = DeformConv(channels, channels, (kernel, 1))
        self.row = DeformConv(channels, channels, (1, kernel))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        low, high = self.bottleneck(low), self.bottleneck(high)
        column = low + torch.sigmoid(self.column(low)) * high
        row = low + torch.sigmoid(self.row(low)) * high
        return row + column


class GatedConv(nn.Module):
    """Gated spatial conv: ``W * (x (1 + a))``, ``a = sigmoid(BN(MLP([BN-normalised x, gate])))`` (B, 1, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.BatchNorm2d(channels + 1),
            nn.Conv2d(channels + 1, channels + 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels + 1, 1, 1),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )
        self.weight = nn.Parameter(torch.empty(channels, channels, 1, 1))
        nn.init.xavier_normal_(self.weight)

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        alpha = self.gate(torch.cat([x, gate], dim=1))
        return F.conv2d(x * (alpha + 1), self.weight)


class TaylorBlock(nn.Module):
    """TFD block: ``3 * r_1 + u_2 + G(r_2, gate)`` with ``u_1 = relu(x + r_1)``, ``r_i`` residual branches."""

    def __init__(self, channels: int):
        super().__init__()
        self.branch1 = nn.Sequential(
            conv_bn_relu(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.branch2 = nn.Sequential(
            conv_bn_relu(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.gated = GatedConv(channels)

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        r1 = self.branch1(x)
        u1 = F.relu(x + r1)
        r2 = F.relu(self.branch2(u1))  # the code uses the ReLU'd residual branch as u_2
        return 3 * F.relu(r1) + r2 + self.gated(r2, gate)


class ISNet(SegmentationModel):
    """ISNet. ``forward(images (B, 3, H, W) in [0, 1])``; H, W multiples of 16; uses the channel mean.

    Returns mask logits ``(B, 1, H, W)``; in training ``[edge_logits, mask_logits]`` (both
    ``(B, 1, H, W)``; the final prediction last).
    """

    size_divisor = 16

    def __init__(
        self,
        *,
        blocks=(4, 4, 4),
        channels=(8, 16, 32, 64),
        edge_width: int = EDGE_WIDTH,
        input_norm: str = "none",
        prior_prob: float | None = DEFAULT_PRIOR_PROB,
        loss: str = ISNET_LOSS,
    ):
        super().__init__(
            {"blocks": list(blocks), "channels": list(channels), "edge_width": edge_width},
            input_norm=input_norm,
            prior_prob=prior_prob,
            loss=loss,
        )
        c0, c1, c2, c3 = channels
        self.stem = nn.Sequential(
            nn.BatchNorm2d(1),
            conv_bn_relu(1, c0, stride=2),
            conv_bn_relu(c0, c0),
            conv_bn_relu(c0, 2 * c0),
            nn.MaxPool2d(3, 2, 1),
        )
        self.layer1 = residual_stage(2 * c0, c1, blocks[0])  # /4
        self.layer2 = residual_stage(c1, c2, blocks[1], stride=2)  # /8
        self.layer3 = residual_stage(c2, c3, blocks[2], stride=2)  # /16
        self.up2 = nn.ConvTranspose2d(c3, c2, 4, 2, 1)
        self.fuse2 = TwoOrientationAttention(c2)
        self.dec2 = residual_stage(c2, c2, blocks[1])
        self.up1 = nn.ConvTranspose2d(c2, c1, 4, 2, 1)
        self.fuse1 = TwoOrientationAttention(c1)
        self.dec1 = residual_stage(c1, c1, blocks[0])
        self.side = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in (c3, c2, c1))
        self.lift = nn.Conv2d(1, edge_width, 1)
        self.taylor = nn.ModuleList(TaylorBlock(edge_width) for _ in range(3))
        self.edge = nn.Conv2d(edge_width, 1, 1, bias=False)
        self.head = FCNHead(c1, 1)
        self.init_output_bias()

    @classmethod
    def loss_names(cls) -> tuple[str, ...]:
        return (ISNET_LOSS, "soft_iou_batch", "soft_iou_image")

    def output_convs(self) -> list[nn.Conv2d]:
        return [self.head.block[-1]]

    def forward(self, images: torch.Tensor):
        x = self.prepare(images).mean(dim=1, keepdim=True)  # (B, 1, H, W): the network is single-channel
        size = x.shape[-2:]
        c1 = self.layer1(self.stem(x))  # (B, c1, H/4, W/4)
        c2 = self.layer2(c1)  # (B, c2, H/8, W/8)
        c3 = self.layer3(c2)  # (B, c3, H/16, W/16)
        d2 = self.dec2(self.fuse2(self.up2(c3), c2))
        d1 = self.dec1(self.fuse1(self.up1(d2), c1))
        e = self.lift(gradient_magnitude(x))  # (B, 64, H, W)
        for block, side, feature in zip(self.taylor, self.side, (c3, d2, d1), strict=True):
            gate = F.interpolate(side(feature), size=size, mode="bilinear", align_corners=True)
            e = block(e, gate)
        edge_logits = self.edge(e)  # (B, 1, H, W)
        f = F.interpolate(d1, size=size, mode="bilinear", align_corners=False)
        logits = self.head(f * torch.sigmoid(edge_logits) + f)
        return [edge_logits, logits] if self.training else logits

    def compute_loss(self, outputs, targets: Sequence[dict]) -> dict[str, torch.Tensor]:
        """``{"soft_iou", "edge_bce", "edge_soft_iou"}`` (``loss="isnet"``), see the module docstring.

        With a soft-IoU ``loss`` only the mask logits are used (the edge branch is then untrained).
        """
        if isinstance(outputs, (list, tuple)):
            edge_logits, logits = outputs
        else:
            edge_logits, logits = None, outputs
        if self.loss_name != ISNET_LOSS or edge_logits is None:
            return super().compute_loss(logits, targets)
        masks = self.masks_like(logits, targets)
        edges = gradient_magnitude(masks)
        return {
            "soft_iou": soft_iou_loss(logits, masks, reduction="batch"),
            "edge_bce": EDGE_BCE_WEIGHT * F.binary_cross_entropy_with_logits(edge_logits, edges),
            # the code applies the soft IoU (which takes a sigmoid) to the edge probabilities
            "edge_soft_iou": soft_iou_loss(torch.sigmoid(edge_logits), edges, reduction="batch"),
        }


def build_isnet(
    *,
    blocks=(4, 4, 4),
    channels=(8, 16, 32, 64),
    edge_width: int = EDGE_WIDTH,
    input_norm: str = "none",
    prior_prob: float | None = DEFAULT_PRIOR_PROB,
    loss: str = ISNET_LOSS,
) -> ISNet:
    """ISNet; ``blocks`` residual blocks per stage, ``channels`` = (stem, stage1..3), ``edge_width`` (64).

    ``input_norm``, ``prior_prob``, ``loss`` (``"isnet"`` or a soft-IoU): see
    :mod:`reference_model.segmentation._common`.
    """
    return ISNet(
        blocks=tuple(blocks),
        channels=tuple(channels),
        edge_width=edge_width,
        input_norm=input_norm,
        prior_prob=prior_prob,
        loss=loss,
    )
