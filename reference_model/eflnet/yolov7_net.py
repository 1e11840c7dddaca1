"""YOLOv7 backbone and FPN/PAN neck of the authors' EFLNet (their ``cfg/EFL.yaml``, layers 0-104).

Channels are YOLOv7's at width 1 (the authors' yaml has ``width_multiple: 1.0``); the layer
numbers in comments are the yaml's, so the authors' state dict can be mapped module by module.

- :class:`YOLOv7Backbone`: stem (layers 0-3), then an ELAN at stride 4 and three
  ``MPDown -> ELAN`` stages. ``(B, 3, H, W) ->`` C3 ``(B, 512, H/8, W/8)``,
  C4 ``(B, 1024, H/16, W/16)``, C5 ``(B, 1024, H/32, W/32)``.
- :class:`YOLOv7Neck`: SPPCSPC on C5, top-down FPN with ELAN-H blocks, bottom-up PAN with
  ``MPDown`` transitions, then one :class:`~.elan.RepConv` per level to ``out_channels``
  (256). ``[C3, C4, C5] ->`` three maps ``(B, 256, H/s, W/s)`` for ``s = 8, 16, 32``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbone import ConvBNAct
from .elan import ELAN, SPPCSPC, MPDown, RepConv

#: output strides of the neck, finest first.
YOLOV7_STRIDES = (8, 16, 32)
#: channels of every neck output (the RepConv layers 102-104), which the dynamic head keeps.
NECK_CHANNELS = 256


class YOLOv7Backbone(nn.Module):
    """E-ELAN backbone (yaml layers 0-50): ``(B, 3, H, W) -> [C3, C4, C5]`` (see module docstring)."""

    out_channels = (512, 1024, 1024)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNAct(3, 32, 3),  # 0
            ConvBNAct(32, 64, 3, stride=2),  # 1, P1/2
            ConvBNAct(64, 64, 3),  # 2
            ConvBNAct(64, 128, 3, stride=2),  # 3, P2/4
        )
        self.stage2 = ELAN(128, 64, 64, 256, head=False)  # 4-11
        self.stage3 = nn.Sequential(MPDown(256, 128), ELAN(256, 128, 128, 512, head=False))  # 12-24, P3/8
        self.stage4 = nn.Sequential(MPDown(512, 256), ELAN(512, 256, 256, 1024, head=False))  # 25-37, P4/16
        self.stage5 = nn.Sequential(MPDown(1024, 512), ELAN(1024, 256, 256, 1024, head=False))  # 38-50, P5/32

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage3(self.stage2(self.stem(images)))
        c4 = self.stage4(c3)
        return [c3, c4, self.stage5(c4)]


class YOLOv7Neck(nn.Module):
    """SPPCSPC + FPN/PAN + RepConv (yaml layers 51-104): ``[C3, C4, C5] -> [P3, P4, P5]``."""

    def __init__(self, out_channels: int = NECK_CHANNELS) -> None:
        super().__init__()
        self.spp = SPPCSPC(1024, 512)  # 51
        # top-down
        self.reduce5 = ConvBNAct(512, 256, 1)  # 52
        self.lateral4 = ConvBNAct(1024, 256, 1)  # 54
        self.elan_td4 = ELAN(512, 256, 128, 256, head=True)  # 56-63
        self.reduce4 = ConvBNAct(256, 128, 1)  # 64
        self.lateral3 = ConvBNAct(512, 128, 1)  # 66
        self.elan_td3 = ELAN(256, 128, 64, 128, head=True)  # 68-75
        # bottom-up
        self.down3 = MPDown(128, 128)  # 76-79
        self.elan_bu4 = ELAN(512, 256, 128, 256, head=True)  # 81-88
        self.down4 = MPDown(256, 256)  # 89-92
        self.elan_bu5 = ELAN(1024, 512, 256, 512, head=True)  # 94-101
        self.outputs = nn.ModuleList(RepConv(c, out_channels) for c in (128, 256, 512))  # 102-104
        self.out_channels = (out_channels,) * 3

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = features
        p5 = self.spp(c5)  # (B, 512, H/32, W/32)
        t4 = self.elan_td4(torch.cat([self.lateral4(c4), self._up(self.reduce5(p5))], dim=1))  # (B, 256, H/16)
        t3 = self.elan_td3(torch.cat([self.lateral3(c3), self._up(self.reduce4(t4))], dim=1))  # (B, 128, H/8)
        b4 = self.elan_bu4(torch.cat([self.down3(t3), t4], dim=1))  # (B, 256, H/16)
        b5 = self.elan_bu5(torch.cat([self.down4(b4), p5], dim=1))  # (B, 512, H/32)
        return [conv(x) for conv, x in zip(self.outputs, (t3, b4, b5), strict=True)]
