"""Pieces shared by the segmentation baselines: soft-IoU loss, conv blocks, the model protocol.

Every segmenter follows the Models protocol of ``docs/CONTRACTS.md``: ``task = "segment"``,
``config`` (builder kwargs), ``forward(images (B, 3, H, W) in [0, 1]) -> logits (B, 1, H, W)``,
``compute_loss(outputs, targets) -> {"soft_iou": scalar}`` and
``postprocess(outputs) -> [{"score_map": (H, W) in [0, 1]}]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from irstd_bench.errors import InputError

#: Added to numerator and denominator of the soft IoU (as in the ACM / DNANet training code).
SOFT_IOU_SMOOTH = 1.0


def soft_iou_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = SOFT_IOU_SMOOTH) -> torch.Tensor:
    """Soft-IoU loss ``1 - mean_i (|p_i * y_i| + s) / (|p_i| + |y_i| - |p_i * y_i| + s)``.

    Parameters
    ----------
    logits : Tensor (B, 1, H, W)
        Raw scores; ``p = sigmoid(logits)``.
    masks : Tensor (B, 1, H, W) or (B, H, W)
        Targets in {0, 1}.
    smooth : float
        Added to both terms (keeps empty-mask images finite).

    Returns
    -------
    loss : Tensor () in [0, 1]
    """
    if masks.dim() == 3:
        masks = masks.unsqueeze(1)
    if logits.shape != masks.shape:
        raise InputError(
            f"soft-IoU: logits {tuple(logits.shape)} and masks {tuple(masks.shape)} differ in shape"
        )
    prob = torch.sigmoid(logits)
    masks = masks.to(prob.dtype)
    inter = (prob * masks).sum(dim=(1, 2, 3))
    union = prob.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3)) - inter
    return 1.0 - ((inter + smooth) / (union + smooth)).mean()


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """``Conv(k, stride, same padding, no bias) -> BN -> ReLU``."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """ResNet basic block (two 3x3 convs); a 1x1 projection when stride or width change.

    ``(B, c_in, H, W) -> (B, c_out, H / stride, W / stride)``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def residual_stage(c_in: int, c_out: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """``blocks`` residual blocks; the first one changes width and stride."""
    return nn.Sequential(
        ResidualBlock(c_in, c_out, stride), *(ResidualBlock(c_out, c_out) for _ in range(blocks - 1))
    )


class FCNHead(nn.Module):
    """FCN segmentation head: ``3x3 conv (C -> C/4) -> BN -> ReLU -> dropout -> 1x1 conv -> 1``."""

    def __init__(self, c_in: int, c_out: int = 1, dropout: float = 0.1):
        super().__init__()
        inter = max(c_in // 4, 1)
        self.block = nn.Sequential(conv_bn_relu(c_in, inter), nn.Dropout(dropout), nn.Conv2d(inter, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def _final_logits(outputs) -> torch.Tensor:
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


class SegmentationModel(nn.Module):
    """Base of the segmenters: input checks, soft-IoU loss and sigmoid post-processing.

    Subclasses set ``size_divisor`` (H and W of the input must be multiples of it) and
    implement ``forward``; ``forward`` may return a list of logits (deep supervision), the last
    being the final prediction.
    """

    task = "segment"
    size_divisor = 32

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)

    def check_images(self, images: torch.Tensor) -> None:
        """Raise :class:`InputError` unless images are ``(B, 3, H, W)``, H, W multiples of size_divisor."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InputError(f"images must be a (B, 3, H, W) tensor, got {shape}")
        h, w = images.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise InputError(
                f"image size {h}x{w} (HxW) is not a multiple of {self.size_divisor} for {type(self).__name__}"
            )

    def compute_loss(self, outputs, targets: Sequence[dict]) -> dict[str, torch.Tensor]:
        """``{"soft_iou": loss}``; with a list of outputs (deep supervision) the mean over them.

        ``targets[i]["masks"]``: Tensor (H, W) in {0, 1}, the input size.
        """
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        if len(targets) != outs[0].shape[0]:
            raise InputError(f"{len(targets)} targets for a batch of {outs[0].shape[0]} images")
        masks = torch.stack([t["masks"].to(outs[0].device, outs[0].dtype) for t in targets]).unsqueeze(1)
        loss = sum(soft_iou_loss(o, masks) for o in outs) / len(outs)
        return {"soft_iou": loss}

    @torch.no_grad()
    def postprocess(
        self, outputs, *, conf_threshold: float = 0.001, iou_threshold: float = 0.5, max_det: int = 100
    ):
        """Per image ``{"score_map": Tensor (H, W) = sigmoid(final logits)}`` in [0, 1].

        The detection keyword arguments are accepted for the common protocol and ignored.
        """
        probs = torch.sigmoid(_final_logits(outputs).float())
        return [{"score_map": p[0]} for p in probs]
