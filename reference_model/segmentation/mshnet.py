"""MSHNet: multi-scale head U-Net with the scale and location sensitive (SLS) loss.

Liu, Q., Liu, R., Zheng, B., Wang, H., Fu, Y. "Infrared Small Target Detection with Scale and
Location Sensitivity", CVPR 2024 (official code: ``Lliu666/MSHNet``).

A plain U-Net whose every node is a stack of residual blocks with channel and spatial attention
(the ``Res_CBAM`` block DNANet uses): a 1x1 stem to ``c0``, encoder stages at /1, /2, /4, /8
(max-pool down), a middle stage at /16, decoder stages that concatenate the skip feature with
the 2x bilinear up-sampled deeper feature. The *multi-scale head* puts a 1x1 classifier on each
of the four decoder outputs (/1, /2, /4, /8), up-samples the coarse ones to full resolution and
fuses the four maps by one 3x3 conv into the final prediction.

Training follows the authors' code: for the first ``warm_epochs + 1`` epochs only the /1 head is
used and the loss is a per-image soft IoU (smooth 0); afterwards every head is trained with the
SLS loss against the mask max-pooled to its scale, and the fused map is the prediction. The model
counts finished epochs in a buffer (``on_epoch_end``), so a checkpoint knows which head to use.

SLS loss per image (Eqs. 5-9 of the paper, as the code computes them), with ``P = sum p``,
``T = sum y``, ``IoU = sum(p y) / (P + T - sum(p y))``:

    scale:    w = (min(P, T) + v) / (max(P, T) + v),   v = ((P - T) / 2) ** 2
    location: L = 1 - min(d_p, d_t) / max(d_p, d_t) + (4 / pi^2) (atan(my_p / mx_p) - atan(my_t / mx_t))^2
    loss = 1 - mean_i (w_i IoU_i) + mean_i L_i

where ``(mx, my)`` are the means over the image of ``x / W * map`` and ``y / H * map`` (first
moments, as the code computes them) and ``d = sqrt(mx^2 + my^2)``. The loss of a batch is the
mean over the heads and the fused output.

Default (``channels=(16, 32, 64, 128, 256)``, ``blocks=(2, 2, 2, 2)``): 4,065,513 parameters,
as the official model (4.07 M in the paper's Table 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_model.recipe import Recipe, recipes_table
from reference_model.segmentation._common import (
    DEFAULT_PRIOR_PROB,
    SOFT_IOU_LOSSES,
    SegmentationModel,
    soft_iou_loss,
)
from reference_model.segmentation.dnanet import AttentionResidualBlock

#: The model's own loss (``loss="sls"``), besides the shared soft-IoU losses.
SLS_LOSS = "sls"
#: Epochs of the authors' warm-up (``--warm-epoch 5``): the SLS terms and the multi-scale head
#: start when the finished-epoch count exceeds it.
WARM_EPOCHS = 5
#: Added to the denominator of the location term's ratios and arctangents (as in the code).
LOCATION_EPS = 1e-8

#: Training recipes (``--recipe NAME``).
RECIPES = recipes_table(
    Recipe(
        name="authors",
        description="MSHNet main.py / README: Adagrad 0.05, batch 4, 400 epochs, base/crop 256, SLS loss, "
        "5 warm-up epochs",
        model_options={"input_norm": "imagenet", "prior_prob": DEFAULT_PRIOR_PROB, "loss": SLS_LOSS},
        train={
            "epochs": 400,
            "imgsz": 256,
            "base_size": 256,
            "batch": 4,
            "optimizer": "adagrad",
            "lr": 0.05,
            "weight_decay": 0.0,
            "schedule": "cosine",
            "lr_final_ratio": 1.0,
            "warmup_epochs": 0.0,
            "warmup_iters": 0,
            "fliplr": 0.5,
            "flipud": 0.0,
            "scale": 0.5,
            "mosaic": 0.0,
            "mixup": 0.0,
            "fitness": "iou",
        },
        notes=(
            "The authors' code keeps lr 0.05 constant (no scheduler): cosine with lr_final_ratio 1.",
            "prior_prob 0.01 (output bias -4.6) is ours (issue 13); the code keeps PyTorch's default bias.",
            "scale 0.5 is the engine's scale jitter; the code draws the long side in [0.5, 2] x base_size; "
            "its Gaussian blur (p 0.5) is not applied.",
        ),
    )
)
DEFAULT_RECIPE = "authors"


def _stage(c_in: int, c_out: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(
        AttentionResidualBlock(c_in, c_out), *(AttentionResidualBlock(c_out, c_out) for _ in range(blocks - 1))
    )


def location_loss(prob: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Location term ``mean_i L_i`` of the SLS loss; ``prob``, ``masks`` ``(B, 1, H, W)`` -> ``()``."""
    h, w = prob.shape[-2:]
    xs = (torch.arange(w, device=prob.device, dtype=prob.dtype) / w).view(1, 1, 1, w)
    ys = (torch.arange(h, device=prob.device, dtype=prob.dtype) / h).view(1, 1, h, 1)

    def moments(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (xs * m).mean(dim=(1, 2, 3)), (ys * m).mean(dim=(1, 2, 3))

    px, py = moments(prob)
    tx, ty = moments(masks)
    angle = (4 / math.pi**2) * (torch.atan(py / (px + LOCATION_EPS)) - torch.atan(ty / (tx + LOCATION_EPS))) ** 2
    d_p = torch.sqrt(px * px + py * py + LOCATION_EPS)
    d_t = torch.sqrt(tx * tx + ty * ty + LOCATION_EPS)
    length = torch.minimum(d_p, d_t) / (torch.maximum(d_p, d_t) + LOCATION_EPS)
    return (1 - length + angle).mean()


def sls_loss(logits: torch.Tensor, masks: torch.Tensor, *, warm: bool) -> torch.Tensor:
    """SLS loss of ``logits`` against ``masks``, both ``(B, 1, H, W)``; warm-up: per-image soft IoU (smooth 0)."""
    if warm:
        return soft_iou_loss(logits, masks, smooth=0.0)
    prob = torch.sigmoid(logits)
    masks = masks.to(prob.dtype)
    inter = (prob * masks).sum(dim=(1, 2, 3))
    p_sum, t_sum = prob.sum(dim=(1, 2, 3)), masks.sum(dim=(1, 2, 3))
    iou = inter / (p_sum + t_sum - inter)
    spread = ((p_sum - t_sum) / 2) ** 2
    weight = (torch.minimum(p_sum, t_sum) + spread) / (torch.maximum(p_sum, t_sum) + spread)
    return 1 - (weight * iou).mean() + location_loss(prob, masks)


class MSHNet(SegmentationModel):
    """MSHNet. ``forward(images (B, 3, H, W) in [0, 1])``; H, W multiples of 16.

    Returns logits ``(B, 1, H, W)``; in training after the warm-up, a list of the four head
    outputs (``(B, 1, H / 2**k, W / 2**k)``, k = 0..3) followed by the fused logits.
    """

    size_divisor = 16

    def __init__(
        self,
        *,
        channels=(16, 32, 64, 128, 256),
        blocks=(2, 2, 2, 2),
        warm_epochs: int = WARM_EPOCHS,
        input_norm: str = "none",
        prior_prob: float | None = DEFAULT_PRIOR_PROB,
        loss: str = SLS_LOSS,
    ):
        super().__init__(
            {"channels": list(channels), "blocks": list(blocks), "warm_epochs": warm_epochs},
            input_norm=input_norm,
            prior_prob=prior_prob,
            loss=loss,
        )
        c = list(channels)
        self.warm_epochs = int(warm_epochs)
        self.stem = nn.Conv2d(3, c[0], 1)
        self.encoders = nn.ModuleList([_stage(c[0], c[0], 1), *(_stage(c[i], c[i + 1], blocks[i]) for i in range(3))])
        self.middle = _stage(c[3], c[4], blocks[3])
        self.decoders = nn.ModuleList(
            [_stage(c[0] + c[1], c[0], 1), *(_stage(c[i + 1] + c[i + 2], c[i + 1], blocks[i]) for i in range(3))]
        )  # decoders[k] works at /2**k
        self.heads = nn.ModuleList(nn.Conv2d(c[k], 1, 1) for k in range(4))
        self.fuse = nn.Conv2d(4, 1, 3, 1, 1)
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self.init_output_bias()

    @classmethod
    def loss_names(cls) -> tuple[str, ...]:
        return (SLS_LOSS, *SOFT_IOU_LOSSES)

    def output_convs(self) -> list[nn.Conv2d]:
        return [*self.heads, self.fuse]

    @property
    def warming_up(self) -> bool:
        """True while the finished-epoch count is at most ``warm_epochs`` (single /1 head, plain IoU)."""
        return int(self.epochs_seen) <= self.warm_epochs

    def on_epoch_end(self) -> None:
        self.epochs_seen += 1

    def forward(self, images: torch.Tensor):
        x = self.stem(self.prepare(images))
        skips = []
        for k, encoder in enumerate(self.encoders):
            x = encoder(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = self.middle(F.max_pool2d(x, 2))
        decoded = [None] * 4
        for k in range(3, -1, -1):
            up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
            x = decoded[k] = self.decoders[k](torch.cat([skips[k], up], dim=1))
        if self.warming_up:
            return self.heads[0](decoded[0])
        maps = [head(d) for head, d in zip(self.heads, decoded, strict=True)]
        full = [maps[0]] + [
            F.interpolate(m, scale_factor=2.0**k, mode="bilinear", align_corners=True) for k, m in enumerate(maps) if k
        ]
        fused = self.fuse(torch.cat(full, dim=1))
        return [*maps, fused] if self.training else fused

    def compute_loss(self, outputs, targets: Sequence[dict]) -> dict[str, torch.Tensor]:
        """``{"sls": loss}`` (or ``{"soft_iou": ...}`` with a soft-IoU ``loss``), mean over the outputs.

        Each side output is compared with the mask max-pooled to its scale, as in the authors' code.
        """
        if self.loss_name != SLS_LOSS:
            return super().compute_loss(outputs, targets)
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        masks = self.masks_like(outs[-1], targets)
        warm = self.warming_up
        total = outs[-1].new_zeros(())
        for out in outs:
            scale = masks.shape[-1] // out.shape[-1]
            target = F.max_pool2d(masks, scale) if scale > 1 else masks
            total = total + sls_loss(out, target, warm=warm)
        return {"sls": total / len(outs)}


def build_mshnet(
    *,
    channels=(16, 32, 64, 128, 256),
    blocks=(2, 2, 2, 2),
    warm_epochs: int = WARM_EPOCHS,
    input_norm: str = "none",
    prior_prob: float | None = DEFAULT_PRIOR_PROB,
    loss: str = SLS_LOSS,
) -> MSHNet:
    """MSHNet; ``channels`` per depth 0..4, ``blocks`` per stage 1..4, ``warm_epochs`` of plain IoU first.

    ``input_norm``, ``prior_prob``, ``loss`` (``"sls"`` or a soft-IoU): see
    :mod:`reference_model.segmentation._common`.
    """
    return MSHNet(
        channels=tuple(channels),
        blocks=tuple(blocks),
        warm_epochs=warm_epochs,
        input_norm=input_norm,
        prior_prob=prior_prob,
        loss=loss,
    )
