"""FPN + PAN neck: a top-down pass that brings semantics to fine levels, then a bottom-up pass.

For output strides ``(4, 8, 16)`` (the default; tiny targets need the stride-4 map) the top-down
path starts at the backbone's stride-32 map and goes down to stride 4; the bottom-up path then
climbs from stride 4 back to stride 16. For ``(8, 16, 32)`` this is the usual YOLO neck.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbone import BACKBONE_STRIDES, C2f, ConvBNAct


class FPNPAN(nn.Module):
    """Top-down (FPN) then bottom-up (PAN) fusion with C2f blocks.

    Parameters
    ----------
    in_channels : dict stride -> channels
        Backbone feature channels for strides 4, 8, 16, 32.
    strides : sequence of int
        Output strides, consecutive powers of two from ``BACKBONE_STRIDES`` (e.g. ``(4, 8, 16)``).
    depth : int
        Bottlenecks in every C2f of the neck.

    Forward: dict ``{stride: (B, C_s, H / s, W / s)}`` -> list, finest first, of
    ``(B, out_channels[i], H / strides[i], W / strides[i])``. Output channels equal the backbone's
    channels at the same stride.
    """

    def __init__(self, in_channels: dict[int, int], strides: tuple[int, ...], depth: int) -> None:
        super().__init__()
        self.strides = tuple(strides)
        top = BACKBONE_STRIDES[-1]
        # top-down nodes at every backbone stride below the top, down to the finest output.
        self.td_strides = [s for s in reversed(BACKBONE_STRIDES[:-1]) if s >= min(strides)]
        self.td_blocks = nn.ModuleDict()
        channels_above = in_channels[top]
        for s in self.td_strides:
            self.td_blocks[str(s)] = C2f(
                channels_above + in_channels[s], in_channels[s], depth, shortcut=False
            )
            channels_above = in_channels[s]
        # bottom-up nodes at every output stride above the finest one.
        self.bu_strides = [s for s in strides[1:]]
        self.bu_down = nn.ModuleDict()
        self.bu_blocks = nn.ModuleDict()
        channels_below = in_channels[strides[0]]
        for s in self.bu_strides:
            self.bu_down[str(s)] = ConvBNAct(channels_below, channels_below, 3, 2)
            self.bu_blocks[str(s)] = C2f(
                channels_below + in_channels[s], in_channels[s], depth, shortcut=False
            )
            channels_below = in_channels[s]
        self.out_channels = [in_channels[s] for s in strides]

    def forward(self, features: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        top = BACKBONE_STRIDES[-1]
        td = {top: features[top]}
        x = features[top]
        for s in self.td_strides:
            up = F.interpolate(x, size=features[s].shape[-2:], mode="nearest")  # (B, C_above, H/s, W/s)
            x = self.td_blocks[str(s)](torch.cat([up, features[s]], dim=1))
            td[s] = x
        x = td[self.strides[0]]
        outputs = [x]
        for s in self.bu_strides:
            x = self.bu_blocks[str(s)](torch.cat([self.bu_down[str(s)](x), td[s]], dim=1))
            outputs.append(x)
        return outputs
