"""DNANet: dense nested attention network.

Li, B., Xiao, C., Wang, L., Wang, Y., Lin, Z., Li, M., An, W., Guo, Y. "Dense Nested Attention
Network for Infrared Small Target Detection", IEEE TIP 32, 2023 (arXiv 2106.00487).

A UNet++-style grid of nodes ``X(i, j)`` (depth ``i`` = 0..L, ``L`` down-samplings; column
``j``). Every node is a stack of residual blocks with a channel-and-spatial attention module
(CBAM-like "CSAM"). Dense nested interactive module (DNIM): node ``X(i, j)`` (``j > 0``) takes
all earlier nodes of its row, the up-sampled ``X(i+1, j-1)`` and the down-sampled
``X(i-1, j)``. Feature pyramid fusion: the last node of every depth is reduced to ``c0``
channels, up-sampled to full resolution, concatenated and fused by one more block. Deep
supervision: a 1x1 classifier on ``X(0, 1..L-1)`` and on the fused map.

Default (``blocks=(2, 2, 2, 2)``, ``channels=(16, 32, 64, 128, 256)``): 4.70 M parameters
(paper: 4.70 M / 4.697 M in BasicIRSTD's table).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_model.segmentation._common import DEFAULT_PRIOR_PROB, SegmentationModel
from reference_model.segmentation._recipes import AUTHORS, dnanet_recipes

#: Training recipes (``--recipe NAME``), from the authors' released code; see ``_recipes.py``.
RECIPES = dnanet_recipes()
#: The recipe a run of this model should use when none is asked for.
DEFAULT_RECIPE = AUTHORS

#: Reduction ratio of the channel attention MLP and kernel of the spatial attention.
CHANNEL_REDUCTION = 16
SPATIAL_KERNEL = 7


class ChannelAttention(nn.Module):
    """``sigmoid(MLP(avgpool x) + MLP(maxpool x))`` -> ``(B, C, 1, 1)`` weights."""

    def __init__(self, channels: int, reduction: int = CHANNEL_REDUCTION):
        super().__init__()
        mid = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(x.mean(dim=(2, 3), keepdim=True)) + self.mlp(x.amax(dim=(2, 3), keepdim=True)))


class SpatialAttention(nn.Module):
    """``sigmoid(conv7x7([mean_c x, max_c x]))`` -> ``(B, 1, H, W)`` weights."""

    def __init__(self, kernel: int = SPATIAL_KERNEL):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.conv(pooled))


class AttentionResidualBlock(nn.Module):
    """Residual block with channel then spatial attention on the residual branch (``Res_CBAM``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, 1, 1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1),
            nn.BatchNorm2d(c_out),
        )
        self.channel_attention = ChannelAttention(c_out)
        self.spatial_attention = SpatialAttention()
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out)) if c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        out = out * self.channel_attention(out)
        out = out * self.spatial_attention(out)
        return F.relu(out + self.shortcut(x))


def _node(c_in: int, c_out: int, blocks: int = 1) -> nn.Sequential:
    return nn.Sequential(
        AttentionResidualBlock(c_in, c_out),
        *(AttentionResidualBlock(c_out, c_out) for _ in range(blocks - 1)),
    )


def _resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=True)


class DNANet(SegmentationModel):
    """DNANet. ``forward(images (B, 3, H, W) in [0, 1])``; H, W multiples of ``2 ** depth``.

    Returns logits ``(B, 1, H, W)``; in training with ``deep_supervision`` a list of ``depth``
    logits maps (``X(0, 1)``, ..., ``X(0, depth-1)`` heads, then the fused head, the final one).
    """

    def __init__(
        self,
        *,
        blocks=(2, 2, 2, 2),
        channels=(16, 32, 64, 128, 256),
        deep_supervision: bool = True,
        input_norm: str = "none",
        prior_prob: float | None = DEFAULT_PRIOR_PROB,
        loss: str = "soft_iou_image",
    ):
        super().__init__(
            {"blocks": list(blocks), "channels": list(channels), "deep_supervision": deep_supervision},
            input_norm=input_norm,
            prior_prob=prior_prob,
            loss=loss,
        )
        depth = len(blocks)
        if len(channels) != depth + 1:
            raise ValueError(f"DNANet needs len(channels) == len(blocks) + 1, got {channels} and {blocks}")
        self.depth = depth
        self.size_divisor = 2**depth
        self.deep_supervision = deep_supervision
        c = list(channels)
        nodes = {}
        for i in range(depth + 1):  # column 0: the encoder
            nodes[f"{i}_0"] = _node(3 if i == 0 else c[i - 1], c[i], 1 if i == 0 else blocks[i - 1])
        for j in range(1, depth + 1):
            for i in range(depth + 1 - j):
                c_in = j * c[i] + c[i + 1] + (c[i - 1] if i > 0 else 0)
                nodes[f"{i}_{j}"] = _node(c_in, c[i], 1 if i == 0 else blocks[i - 1])
        self.nodes = nn.ModuleDict(nodes)
        # Feature pyramid fusion: last node of each depth i >= 1 -> c0 channels at full resolution.
        self.pyramid = nn.ModuleList(nn.Conv2d(c[i], c[0], 1) for i in range(1, depth + 1))
        self.fuse = _node((depth + 1) * c[0], c[0])
        n_heads = depth if deep_supervision else 1
        self.heads = nn.ModuleList(nn.Conv2d(c[0], 1, 1) for _ in range(n_heads))
        self.init_output_bias()

    def output_convs(self) -> list[nn.Conv2d]:
        return list(self.heads)

    def forward(self, images: torch.Tensor):
        depth = self.depth
        x: dict[tuple[int, int], torch.Tensor] = {}
        x[0, 0] = self.nodes["0_0"](self.prepare(images))
        # Visit the grid by anti-diagonals: node (i, j) needs (i+1, j-1), (i-1, j) and (i, <j).
        for k in range(1, depth + 1):
            x[k, 0] = self.nodes[f"{k}_0"](F.max_pool2d(x[k - 1, 0], 2))
            for j in range(1, k + 1):
                i = k - j
                parts = [x[i, jj] for jj in range(j)] + [_resize(x[i + 1, j - 1], 2.0)]
                if i > 0:
                    parts.append(_resize(x[i - 1, j], 0.5))
                x[i, j] = self.nodes[f"{i}_{j}"](torch.cat(parts, dim=1))
        pyramid = [
            _resize(conv(x[i, depth - i]), 2.0**i) for i, conv in zip(range(1, depth + 1), self.pyramid, strict=True)
        ]
        fused = self.fuse(torch.cat([*pyramid[::-1], x[0, depth]], dim=1))  # (B, c0, H, W)
        if self.deep_supervision and self.training:
            return [head(x[0, j]) for head, j in zip(self.heads[:-1], range(1, depth), strict=True)] + [
                self.heads[-1](fused)
            ]
        return self.heads[-1](fused)


def build_dnanet(
    *,
    blocks=(2, 2, 2, 2),
    channels=(16, 32, 64, 128, 256),
    deep_supervision: bool = True,
    input_norm: str = "none",
    prior_prob: float | None = DEFAULT_PRIOR_PROB,
    loss: str = "soft_iou_image",
) -> DNANet:
    """DNANet; ``blocks`` residual-attention blocks per depth 1..L, ``channels`` per depth 0..L.

    ``input_norm``, ``prior_prob``, ``loss``, ``deep_supervision``: see
    :mod:`reference_model.segmentation._common`.
    """
    return DNANet(
        blocks=tuple(blocks),
        channels=tuple(channels),
        deep_supervision=deep_supervision,
        input_norm=input_norm,
        prior_prob=prior_prob,
        loss=loss,
    )
