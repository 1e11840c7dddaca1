"""CSP backbone of EFLNet: strided convolutions and C2f blocks, ending in SPPF.

The backbone follows the YOLO family layout: a stride-2 stem, then four stages that each halve
the resolution (stride-2 3x3 convolution) and refine with a C2f block (cross-stage partial block
with a chain of bottlenecks whose intermediate outputs are all concatenated). The last stage ends
in spatial pyramid pooling (SPPF). Feature maps are returned for strides 4, 8, 16 and 32.
"""

from __future__ import annotations

import torch
import torch.nn as nn

#: kernel of the max-pooling repeated three times in SPPF (equivalent to 5/9/13 pyramids).
SPPF_KERNEL = 5
#: backbone output strides, finest first.
BACKBONE_STRIDES = (4, 8, 16, 32)
#: base channels (at width multiplier 1) of the stem and the four stages.
BASE_CHANNELS = (64, 128, 256, 512, 1024)
#: base number of bottlenecks (at depth multiplier 1) in the C2f blocks of the four stages.
BASE_DEPTHS = (3, 6, 6, 3)


class ConvBNAct(nn.Sequential):
    """``Conv2d -> BatchNorm2d -> SiLU``; ``(B, c_in, H, W) -> (B, c_out, H / stride, W / stride)``.

    The SiLU is not in place: under autograd an in-place SiLU copies its input (its backward needs
    it), which cost more than a new output (same values).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size, stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.SiLU(),
        )


class Bottleneck(nn.Module):
    """Two 3x3 ``ConvBNAct`` with an optional identity shortcut; keeps ``(B, C, H, W)``."""

    def __init__(self, channels: int, shortcut: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels, 3)
        self.conv2 = ConvBNAct(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """Cross-stage partial block with ``n`` bottlenecks, all of whose outputs are concatenated.

    ``(B, c_in, H, W) -> (B, c_out, H, W)``. A 1x1 convolution makes ``2 * c`` channels
    (``c = c_out / 2``); the second half runs through the bottleneck chain; both halves and every
    bottleneck output (``(2 + n) * c`` channels) are fused by a final 1x1 convolution.
    """

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.reduce = ConvBNAct(c_in, 2 * self.hidden, 1)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(n))
        self.fuse = ConvBNAct((2 + n) * self.hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.reduce(x).split(self.hidden, dim=1))  # 2 x (B, c, H, W)
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.fuse(torch.cat(parts, dim=1))  # (B, (2 + n) c, H, W) -> (B, c_out, H, W)


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained max-pools concatenated; keeps ``H, W``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in // 2
        self.reduce = ConvBNAct(c_in, hidden, 1)
        self.pool = nn.MaxPool2d(SPPF_KERNEL, stride=1, padding=SPPF_KERNEL // 2)
        self.fuse = ConvBNAct(4 * hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.reduce(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.fuse(torch.cat(y, dim=1))  # (B, 4 hidden, H, W) -> (B, c_out, H, W)


def scaled_channels(width: float, max_channels: int) -> tuple[int, ...]:
    """Stem and stage channels for a width multiplier, capped and rounded to multiples of 8."""
    return tuple(max(8, int(round(min(c, max_channels) * width / 8)) * 8) for c in BASE_CHANNELS)


def scaled_depths(depth: float) -> tuple[int, ...]:
    """Bottlenecks per stage for a depth multiplier (at least one)."""
    return tuple(max(1, round(n * depth)) for n in BASE_DEPTHS)


class CSPBackbone(nn.Module):
    """YOLO-style CSP backbone.

    Parameters
    ----------
    channels : sequence of 5 ints
        Stem channels and output channels of the four stages (strides 4, 8, 16, 32).
    depths : sequence of 4 ints
        Bottlenecks in each stage's C2f block.

    Forward: images ``(B, 3, H, W)`` -> dict ``{stride: (B, channels[i + 1], H / stride, W / stride)}``
    for strides 4, 8, 16, 32 (H and W multiples of 32).
    """

    def __init__(self, channels: tuple[int, ...], depths: tuple[int, ...], in_channels: int = 3) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_channels, channels[0], 3, 2)  # stride 2
        stages = []
        for i, n in enumerate(depths):
            layers = [ConvBNAct(channels[i], channels[i + 1], 3, 2), C2f(channels[i + 1], channels[i + 1], n)]
            if i == len(depths) - 1:
                layers.append(SPPF(channels[i + 1], channels[i + 1]))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.out_channels = {s: c for s, c in zip(BACKBONE_STRIDES, channels[1:], strict=True)}

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.stem(images)
        features = {}
        for stride, stage in zip(BACKBONE_STRIDES, self.stages, strict=True):
            x = stage(x)
            features[stride] = x
        return features
