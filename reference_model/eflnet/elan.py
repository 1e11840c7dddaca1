"""Building blocks of the YOLOv7 network behind the authors' EFLNet (Wang et al., CVPR 2023).

All convolutions are :class:`~.backbone.ConvBNAct` (``Conv2d -> BatchNorm2d -> SiLU``, YOLOv7's
``Conv``). The blocks, in the words of the YOLOv7 paper:

- :class:`ELAN` (extended efficient layer aggregation): two 1x1 branches from the input, a chain
  of ``depth`` 3x3 convolutions on the second, and a 1x1 fusion of the concatenated outputs. The
  backbone variant concatenates every second chain output, the head variant ("ELAN-H") every one.
- :class:`MPDown` (the "MP" transition): a 2x2 max-pool + 1x1 branch and a 1x1 + stride-2 3x3
  branch, concatenated: halves the resolution and keeps ``2 * c`` channels.
- :class:`SPPCSPC`: spatial pyramid pooling (5/9/13 max-pools) inside a cross-stage partial block.
- :class:`RepConv`: 3x3 + 1x1 (+ identity BatchNorm when shapes allow) branches summed, then SiLU
  (RepVGG); each branch is ``Conv2d + BatchNorm2d`` in an ``nn.Sequential`` so
  :func:`reference_model.engine.fuse.fuse_batchnorm` folds it for inference.

Every block documents ``(B, c_in, H, W) -> (B, c_out, H', W')``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .backbone import ConvBNAct

#: kernels of SPPCSPC's parallel max-pools (stride 1, "same" padding).
SPP_KERNELS = (5, 9, 13)
#: 3x3 convolutions in the chain of every ELAN block of YOLOv7 (the "-6" of its yaml).
ELAN_DEPTH = 4


class ELAN(nn.Module):
    """Extended efficient layer aggregation: ``(B, c_in, H, W) -> (B, c_out, H, W)``.

    Parameters
    ----------
    c_in, c_out : int
    c_branch : int
        Channels of the two 1x1 input branches.
    c_mid : int
        Channels of the 3x3 chain.
    head : bool
        ``False``: backbone ELAN, concatenates ``[chain[3], chain[1], branch2, branch1]``;
        ``True``: ELAN-H, concatenates ``[chain[3], chain[2], chain[1], chain[0], branch2, branch1]``
        (the authors' yaml order, so their weights map one to one).
    """

    def __init__(self, c_in: int, c_branch: int, c_mid: int, c_out: int, *, head: bool) -> None:
        super().__init__()
        self.branch1 = ConvBNAct(c_in, c_branch, 1)
        self.branch2 = ConvBNAct(c_in, c_branch, 1)
        chain = [ConvBNAct(c_branch, c_mid, 3)] + [ConvBNAct(c_mid, c_mid, 3) for _ in range(ELAN_DEPTH - 1)]
        self.chain = nn.ModuleList(chain)
        self.head = head
        concatenated = 2 * c_branch + (ELAN_DEPTH if head else ELAN_DEPTH // 2) * c_mid
        self.aggregate = ConvBNAct(concatenated, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = self.branch1(x), self.branch2(x)
        y, outputs = second, []
        for conv in self.chain:
            y = conv(y)
            outputs.append(y)
        kept = outputs[::-1] if self.head else outputs[::-2]  # newest first
        return self.aggregate(torch.cat([*kept, second, first], dim=1))


class MPDown(nn.Module):
    """YOLOv7's "MP" transition: ``(B, c_in, H, W) -> (B, 2 c, H / 2, W / 2)``.

    Concatenates ``[conv3x3_s2(conv1x1(x)), conv1x1(maxpool2(x))]`` (the yaml's ``[-1, -3]``).
    """

    def __init__(self, c_in: int, c: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool_conv = ConvBNAct(c_in, c, 1)
        self.reduce = ConvBNAct(c_in, c, 1)
        self.down = ConvBNAct(c, c, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.down(self.reduce(x)), self.pool_conv(self.pool(x))], dim=1)


class SPPCSPC(nn.Module):
    """SPP inside a CSP block: ``(B, c_in, H, W) -> (B, c_out, H, W)`` (hidden width ``c_out``)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        c = c_out
        self.cv1 = ConvBNAct(c_in, c, 1)
        self.cv2 = ConvBNAct(c_in, c, 1)
        self.cv3 = ConvBNAct(c, c, 3)
        self.cv4 = ConvBNAct(c, c, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in SPP_KERNELS)
        self.cv5 = ConvBNAct((1 + len(SPP_KERNELS)) * c, c, 1)
        self.cv6 = ConvBNAct(c, c, 3)
        self.cv7 = ConvBNAct(2 * c, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.cv6(self.cv5(torch.cat([x1] + [pool(x1) for pool in self.pools], dim=1)))
        return self.cv7(torch.cat([y1, self.cv2(x)], dim=1))


class RepConv(nn.Module):
    """RepVGG block, training form: ``SiLU(BN(conv3x3 x) + BN(conv1x1 x) [+ BN(x)])``.

    ``(B, c_in, H, W) -> (B, c_out, H, W)``; the identity branch exists only when ``c_in == c_out``.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.dense = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.pointwise = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.identity = nn.BatchNorm2d(c_in) if c_in == c_out else None
        self.act = nn.SiLU()  # not in place: see ConvBNAct

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dense(x) + self.pointwise(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)
