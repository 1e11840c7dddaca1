"""Anchor-free decoupled detection head, anchor points and box decoding.

Every level has its own classification branch (target logit) and box branch. The head predicts,
at every anchor point (the centre of a feature-map cell, ``((i + 0.5) s, (j + 0.5) s)`` in input
pixels for stride ``s``), one logit and four box numbers ``(dx, dy, rw, rh)`` decoded as::

    cx = ax + dx * s,    cy = ay + dy * s,    w = softplus(rw) * s,    h = softplus(rh) * s

Why centre offset + size and not FCOS-style distances ``(l, t, r, b) >= 0``: a 1-3 px target often
lies between anchor points even at stride 4, so its positive anchors (assigned within a radius of
its centre, see :mod:`.assigner`) sit outside the box and would need negative distances. The
centre/size form always gives a valid box and costs the same; no DFL (distribution focal loss).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbone import ConvBNAct

#: prior probability of a target at initialisation; sets the classification bias (RetinaNet).
PRIOR_PROBABILITY = 0.01
#: channels of one level's raw output: target logit, then ``(dx, dy, rw, rh)``.
OUTPUT_CHANNELS = 5
#: index of the logit and slice of the box numbers in the output channels.
LOGIT_INDEX = 0
BOX_SLICE = slice(1, 5)


class DetectionBranch(nn.Sequential):
    """Two 3x3 ``ConvBNAct`` and a 1x1 prediction conv: ``(B, C, H, W) -> (B, out, H, W)``."""

    def __init__(self, c_in: int, width: int, out: int) -> None:
        super().__init__(ConvBNAct(c_in, width, 3), ConvBNAct(width, width, 3), nn.Conv2d(width, out, 1))


class DecoupledHead(nn.Module):
    """Per-level classification and box branches.

    Forward: list of ``L`` maps ``(B, C, H_l, W_l)`` -> list of ``L`` raw maps
    ``(B, OUTPUT_CHANNELS, H_l, W_l)`` (channel 0: target logit; 1-4: ``dx, dy, rw, rh``).
    """

    def __init__(self, channels: int, num_levels: int) -> None:
        super().__init__()
        box_width = max(channels // 2, 16)
        self.cls_branches = nn.ModuleList(DetectionBranch(channels, channels, 1) for _ in range(num_levels))
        self.box_branches = nn.ModuleList(DetectionBranch(channels, box_width, 4) for _ in range(num_levels))
        for branch in self.cls_branches:
            nn.init.constant_(branch[-1].bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))
        for branch in self.box_branches:
            nn.init.zeros_(branch[-1].bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [
            torch.cat([cls(x), box(x)], dim=1)  # (B, 1 + 4, H_l, W_l)
            for x, cls, box in zip(features, self.cls_branches, self.box_branches, strict=True)
        ]


def flatten_levels(outputs: list[torch.Tensor]) -> torch.Tensor:
    """Raw per-level maps -> ``(B, A, OUTPUT_CHANNELS)``, ``A = sum_l H_l W_l`` (row-major, finest first)."""
    return torch.cat([o.flatten(2) for o in outputs], dim=2).transpose(1, 2)  # (B, 5, A) -> (B, A, 5)


def anchor_points(outputs: list[torch.Tensor], strides: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points ``(A, 2)`` as ``(x, y)`` input pixels and their strides ``(A,)``, float32.

    Points are ordered like :func:`flatten_levels`: level by level, row-major within a level.
    """
    points, point_strides = [], []
    device = outputs[0].device
    for o, s in zip(outputs, strides, strict=True):
        h, w = o.shape[-2:]
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2))  # (H_l W_l, 2)
        point_strides.append(torch.full((h * w,), float(s), device=device))
    return torch.cat(points), torch.cat(point_strides)


def decode_boxes(box_raw: torch.Tensor, points: torch.Tensor, point_strides: torch.Tensor) -> torch.Tensor:
    """Raw ``(..., A, 4)`` ``(dx, dy, rw, rh)`` -> boxes ``(..., A, 4)`` ``[x0, y0, x1, y1]`` in input px."""
    s = point_strides[:, None]  # (A, 1)
    centre = points + box_raw[..., :2] * s
    half_size = F.softplus(box_raw[..., 2:]) * s / 2
    return torch.cat([centre - half_size, centre + half_size], dim=-1)
