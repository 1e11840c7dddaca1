"""EFLNet detector (Yang et al., IEEE TGRS 2024) and its builder.

Pipeline: :class:`~.backbone.CSPBackbone` -> :class:`~.neck.FPNPAN` (output strides 4/8/16 by
default) -> 1x1 projections to ``head_channels`` -> :class:`~.dyhead.DyHead` (``dyhead_blocks``,
0-6) -> :class:`~.head.DecoupledHead`. Training uses the task-aligned assigner with NWD quality,
ATFL on soft (quality) targets and an NWD/CIoU box loss; every switch of the paper's ablations is
a field of :class:`EFLNetConfig` (the builder's keywords; ``model.config`` is its ``asdict``).

Interface (``docs/CONTRACTS.md``, section Models): ``task``, ``config``, ``forward``,
``compute_loss``, ``postprocess``, ``on_epoch_end``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import nms

from irstd_bench.boxes import DEFAULT_NWD_CONSTANT

from ..recipe import Recipe, recipes_table
from .assigner import TaskAlignedAssigner
from .backbone import BACKBONE_STRIDES, ConvBNAct, CSPBackbone, scaled_channels, scaled_depths
from .dyhead import DyHead
from .head import BOX_SLICE, LOGIT_INDEX, DecoupledHead, anchor_points, decode_boxes, flatten_levels
from .losses import AdaptiveThresholdFocalLoss, box_regression_loss
from .neck import FPNPAN
from .yolov7 import COMMON_NOTES
from .yolov7 import RECIPES as yolov7_recipes

#: width/depth multipliers, channel cap and head width per scale. ``l`` has 38.9 M parameters with
#: the default strides (4, 8, 16) and 4 DyHead blocks (paper: 38.5 M).
SCALES: dict[str, dict] = {
    "n": {"depth_multiple": 0.33, "width_multiple": 0.25, "max_channels": 1024, "head_channels": 32},
    "s": {"depth_multiple": 0.33, "width_multiple": 0.50, "max_channels": 1024, "head_channels": 128},
    "m": {"depth_multiple": 0.67, "width_multiple": 0.75, "max_channels": 768, "head_channels": 160},
    "l": {"depth_multiple": 1.00, "width_multiple": 1.00, "max_channels": 512, "head_channels": 192},
}
#: most DyHead blocks accepted (the DyHead paper's sweep stops at 6).
MAX_DYHEAD_BLOCKS = 6
#: highest-scoring anchors per image kept for NMS.
MAX_CANDIDATES_BEFORE_NMS = 3000
#: :func:`first_kept_by_nms` starts with this many candidates per detection kept (and multiplies by it).
NMS_FIRST_CANDIDATES_PER_DETECTION = 4


class EFLNet(nn.Module):
    """EFLNet: YOLO-style anchor-free detector with DyHead, ATFL and NWD, for one target class.

    ``forward(images (B, 3, H, W) float in [0, 1])`` (``H, W`` multiples of 32) returns the raw
    per-level maps, a list (finest level first) of ``(B, 5, H / s, W / s)``: channel 0 the target
    logit, channels 1-4 ``(dx, dy, rw, rh)`` (decoding in :mod:`.head`). ``compute_loss`` and
    ``postprocess`` take that list. Build it with :func:`build_eflnet`.
    """

    task = "detect"

    def __init__(self, config: EFLNetConfig) -> None:
        super().__init__()
        self.settings = config
        self.config = asdict(config)
        self.strides = tuple(config.strides)
        self.use_nwd = config.use_nwd
        self.use_atfl = config.use_atfl
        self.nwd_constant = config.nwd_constant
        self.nwd_ratio = config.nwd_ratio
        self.cls_gain = config.cls_gain
        self.box_gain = config.box_gain
        #: Read by the engine: a loss that is a sum over images is summed over accumulated batches.
        self.loss_sums_over_images = config.loss_sums_over_images
        depths = scaled_depths(config.depth_multiple)
        self.backbone = CSPBackbone(scaled_channels(config.width_multiple, config.max_channels), depths)
        self.neck = FPNPAN(self.backbone.out_channels, self.strides, depth=depths[-1])
        self.projections = nn.ModuleList(ConvBNAct(c, config.head_channels, 1) for c in self.neck.out_channels)
        self.dyhead = DyHead(config.head_channels, config.dyhead_blocks)
        self.head = DecoupledHead(config.head_channels, len(self.strides))
        self.atfl = AdaptiveThresholdFocalLoss(config.atfl_lambda, config.atfl_mode)
        self.assigner = TaskAlignedAssigner(
            topk=config.assigner_topk,
            alpha=config.assigner_alpha,
            beta=config.assigner_beta,
            center_radius=config.center_radius,
            use_nwd=config.use_nwd,
            nwd_constant=config.nwd_constant,
        )

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        h, w = images.shape[-2:]
        if h % BACKBONE_STRIDES[-1] or w % BACKBONE_STRIDES[-1]:
            raise ValueError(f"image size {h}x{w} is not a multiple of {BACKBONE_STRIDES[-1]}")
        features = self.neck(self.backbone(images))
        features = [proj(f) for proj, f in zip(self.projections, features, strict=True)]  # (B, C_head, ., .)
        return self.head(self.dyhead(features))

    def _decode(
        self, outputs: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw maps -> logits ``(B, A)``, boxes ``(B, A, 4)`` px, points ``(A, 2)``, strides ``(A,)``.

        All float32, whatever the dtype of ``outputs`` (autocast).
        """
        flat = flatten_levels([o.float() for o in outputs])  # (B, A, 5)
        points, point_strides = anchor_points(outputs, self.strides)
        boxes = decode_boxes(flat[..., BOX_SLICE], points, point_strides)
        return flat[..., LOGIT_INDEX], boxes, points, point_strides

    def compute_loss(self, outputs: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        """Training loss as named terms ``{"cls": ..., "box": ...}`` (float32 scalars; sum = loss).

        ``targets``: one dict per image with ``"boxes"`` ``(N, 4)`` ``[x0, y0, x1, y1]`` input pixels
        (``N`` may be 0; other keys are ignored). Classification: ATFL (or BCE when ``use_atfl`` is
        off) over all anchors with soft targets = quality at positives, summed and divided by the
        number of positives (at least 1). Box: NWD/CIoU loss averaged over positives. With
        ``loss_sums_over_images`` both terms are multiplied by the batch size ``B`` (the YOLO code
        bases' ``loss * bs``; the engine then sums, not averages, over accumulated batches).
        """
        device_type = outputs[0].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            logits, boxes, points, point_strides = self._decode(outputs)
            scores = logits.detach().sigmoid()
            positives, cls_targets, target_boxes = [], [], []
            for b, target in enumerate(targets):
                gt = torch.as_tensor(target["boxes"], device=logits.device).float().reshape(-1, 4)
                assignment = self.assigner(scores[b], boxes[b].detach(), points, point_strides, gt)
                positives.append(assignment.positive)
                cls_targets.append(assignment.quality)
                target_boxes.append(assignment.target_boxes)
            positive = torch.stack(positives)  # (B, A)
            cls_target = torch.stack(cls_targets)  # (B, A)
            num_positive = positive.sum().clamp_min(1).float()
            if self.use_atfl:
                cls_elements = self.atfl(logits, cls_target, positive)
            else:
                cls_elements = F.binary_cross_entropy_with_logits(logits, cls_target, reduction="none")
            cls_loss = cls_elements.sum() / num_positive
            if bool(positive.any()):
                box_elements = box_regression_loss(
                    boxes[positive],
                    torch.stack(target_boxes)[positive],
                    use_nwd=self.use_nwd,
                    nwd_constant=self.nwd_constant,
                    nwd_ratio=self.nwd_ratio,
                )
                box_loss = box_elements.sum() / num_positive
            else:
                box_loss = boxes.sum() * 0.0  # keeps the graph connected for empty batches
        images = float(len(targets)) if self.loss_sums_over_images else 1.0
        return {"cls": self.cls_gain * images * cls_loss, "box": self.box_gain * images * box_loss}

    @torch.no_grad()
    def postprocess(
        self,
        outputs: list[torch.Tensor],
        *,
        conf_threshold: float = 0.001,
        iou_threshold: float = 0.5,
        max_det: int = 100,
    ) -> list[dict[str, torch.Tensor]]:
        """Raw maps -> per image ``{"boxes": (N, 4) [x0, y0, x1, y1] input px, "scores": (N,)}``.

        Scores are sigmoid probabilities; boxes are clipped to the image, kept where
        ``score >= conf_threshold`` (the evaluator's rule), reduced by NMS at ``iou_threshold``
        and capped at ``max_det`` (highest scores first).
        """
        logits, boxes, _, _ = self._decode(outputs)
        height = outputs[0].shape[-2] * self.strides[0]
        width = outputs[0].shape[-1] * self.strides[0]
        limits = boxes.new_tensor([width, height, width, height])
        boxes = torch.minimum(boxes.clamp_min(0), limits)
        scores = logits.sigmoid()
        results = []
        for image_scores, image_boxes in zip(scores, boxes, strict=True):
            keep = image_scores >= conf_threshold  # the evaluator's rule: a score equal to conf is kept
            image_scores, image_boxes = image_scores[keep], image_boxes[keep]
            if image_scores.numel() > MAX_CANDIDATES_BEFORE_NMS:
                top = image_scores.topk(MAX_CANDIDATES_BEFORE_NMS).indices
                image_scores, image_boxes = image_scores[top], image_boxes[top]
            kept = first_kept_by_nms(image_boxes, image_scores, iou_threshold, max_det)
            results.append({"boxes": image_boxes[kept], "scores": image_scores[kept]})
        return results

    def on_epoch_end(self) -> None:
        """Update ATFL's ``p_hat_c`` from this epoch's statistics (Eq. 6)."""
        self.atfl.end_epoch()


def first_kept_by_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_det: int) -> torch.Tensor:
    """``nms(boxes, scores, iou_threshold)[:max_det]``, running NMS on the best-scored boxes first.

    Greedy NMS visits boxes by decreasing score (ties in input order) and keeps a box when it
    overlaps no kept box by more than ``iou_threshold``, so whether a box is kept depends only on
    the boxes before it: NMS over the ``k`` best boxes keeps exactly the boxes the full NMS keeps
    among them, in the same order. ``k`` starts at ``4 max_det`` and grows (x4) until ``max_det``
    are kept or every box is in; at conf 0.001 an image has thousands of candidates, most of them
    isolated tiny boxes, and the full NMS (quadratic) cost 30x more
    (``tests/test_eflnet.py::test_first_kept_by_nms_equals_full_nms``).

    ``boxes (N, 4)``, ``scores (N,)`` -> indices into them ``(<= max_det,)``, by decreasing score.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    k = min(len(order), NMS_FIRST_CANDIDATES_PER_DETECTION * max_det)
    while True:
        best = order[:k]
        kept = nms(boxes[best], scores[best], iou_threshold)
        if len(kept) >= max_det or k == len(order):
            return best[kept[:max_det]]
        k = min(len(order), NMS_FIRST_CANDIDATES_PER_DETECTION * k)


def _validate_strides(strides: tuple[int, ...]) -> None:
    if not strides or any(s not in BACKBONE_STRIDES for s in strides) or len(set(strides)) != len(strides):
        raise ValueError(f"strides must be distinct values from {BACKBONE_STRIDES}, got {strides}")
    if any(b != 2 * a for a, b in zip(strides, strides[1:], strict=False)):
        raise ValueError(f"strides must be consecutive doublings, finest first, got {strides}")


#: the :data:`SCALES` entries a config may override (``None`` in a config: the scale's value).
SCALE_FIELDS = ("depth_multiple", "width_multiple", "max_channels", "head_channels")


@dataclass
class EFLNetConfig:
    """Every setting of EFLNet n/s/m/l, written once (builder keywords; ``model.config`` is ``asdict``).

    Attributes
    ----------
    scale : str
        Key of :data:`SCALES`; ``depth_multiple``, ``width_multiple``, ``max_channels`` and
        ``head_channels`` override its entries (``None``: the scale's value, filled in).
    strides : list of int
        Output strides, consecutive doublings from (4, 8, 16, 32); ``[4, 8, 16]`` or ``[8, 16, 32]``.
    dyhead_blocks : int
        Dynamic head blocks, 0 to :data:`MAX_DYHEAD_BLOCKS` (0 drops the DyHead, Table ablations).
    use_nwd : bool
        NWD as assigner quality, soft target and box loss; False -> IoU / CIoU everywhere.
    use_atfl : bool
        ATFL for classification; False -> plain BCE with the same soft targets.
    atfl_lambda : float
        ``lambda`` of ATFL's hard-sample weight (paper's best 3.5).
    atfl_mode : str
        ``"epoch"`` (Eq. 6 across epochs, needs ``on_epoch_end``) or ``"batch"`` (authors' code).
    nwd_constant : float
        NWD's ``C`` in pixels (:data:`irstd_bench.boxes.DEFAULT_NWD_CONSTANT`, the paper's 11).
    nwd_ratio : float
        Weight of ``1 - NWD`` in the box loss, the rest is CIoU loss (only with ``use_nwd``).
    assigner_topk, assigner_alpha, assigner_beta, center_radius
        Task-aligned assigner settings (see :mod:`.assigner`).
    cls_gain, box_gain : float
        Weights of the two loss terms.
    loss_sums_over_images : bool
        Multiply the loss by the batch size (YOLOv5/7/8's ``loss * bs``, with which their learning
        rate and nominal batch were tuned): the engine then sums the gradient over the batches of an
        accumulation instead of averaging, so one optimizer step is ``nominal_batch`` times the
        mean loss's gradient. False: the loss is a mean over the images (engine's default training).
    """

    scale: str = "n"
    strides: list = field(default_factory=lambda: [4, 8, 16])
    dyhead_blocks: int = 4
    use_nwd: bool = True
    use_atfl: bool = True
    atfl_lambda: float = 3.5
    atfl_mode: str = "epoch"
    nwd_constant: float = DEFAULT_NWD_CONSTANT
    nwd_ratio: float = 0.5
    assigner_topk: int = 10
    assigner_alpha: float = 0.5
    assigner_beta: float = 6.0
    center_radius: float = 1.0
    cls_gain: float = 1.0
    box_gain: float = 5.0
    loss_sums_over_images: bool = False
    depth_multiple: float | None = None
    width_multiple: float | None = None
    max_channels: int | None = None
    head_channels: int | None = None

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"unknown EFLNet scale {self.scale!r} (known: {', '.join(SCALES)})")
        self.strides = [int(s) for s in self.strides]
        _validate_strides(tuple(self.strides))
        if not 0 <= self.dyhead_blocks <= MAX_DYHEAD_BLOCKS:
            raise ValueError(f"dyhead_blocks must be in [0, {MAX_DYHEAD_BLOCKS}], got {self.dyhead_blocks}")
        if not 0.0 <= self.nwd_ratio <= 1.0:
            raise ValueError(f"nwd_ratio must be in [0, 1], got {self.nwd_ratio}")
        if self.nwd_constant <= 0:
            raise ValueError(f"nwd_constant must be positive, got {self.nwd_constant}")
        for name in SCALE_FIELDS:
            if getattr(self, name) is None:
                setattr(self, name, SCALES[self.scale][name])


def build_eflnet(scale: str = "n", **options) -> EFLNet:
    """Build EFLNet at a scale (``"n" | "s" | "m" | "l"``) with optional overrides.

    ``options`` are :class:`EFLNetConfig` fields (an unknown keyword raises ``TypeError``, a bad
    value ``ValueError``, before anything is built). The model's ``config`` holds every field
    (rebuild with ``build_eflnet(**config)``).
    """
    known = {f.name for f in fields(EFLNetConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown EFLNet option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return EFLNet(EFLNetConfig(scale=scale, **options))


#: What carries over to the n/s/m/l family from the authors' code and paper, and what does not.
_FAMILY_NOTES = (
    "The n/s/m/l network is this toolkit's anchor-free design (strides 4/8/16, task-aligned assigner, "
    "decoupled head), not the authors' YOLOv7 network (eflnet-yolov7): what the recipe takes from the "
    "authors is their training (optimizer, schedule, warm-up, accumulation, augmentation, padding, "
    "max_det) and the options this network has (output strides 8/16/32 as the authors' P3-P5 heads, "
    "dynamic-head blocks, ATFL lambda and mode, NWD).",
    "NWD's C stays 11 px: this network has no grid units (the authors' C is 12 cells of each level).",
    "The loss is a mean over the batch's images, averaged over the accumulated batches: at batch 8 "
    "and nominal batch 64 a step is 1/64 of YOLOv7's loss x bs summed over 8 batches. YOLOv7's "
    "objectness is a mean over every cell, this loss a sum over anchors divided by the positives, "
    "so no one factor makes the two steps equal; the YOLO scale (model option "
    "loss_sums_over_images) diverged under this recipe (cls loss 40 -> 1e8 at epoch 22, 1e11 by "
    "27, during warm-up, no clipping: reports/nuaa-sirst/RUNS.md) and is not set.",
    "No DEFAULT_RECIPE: without --recipe these scales train with the engine's defaults.",
)
RECIPES = recipes_table(
    Recipe(
        name="authors",
        description="the training of the authors' released code (YOLOv7 train.py, hyp.scratch.p5.yaml) with "
        "their ATFL (lambda 1.5, per batch) and 3 dynamic-head blocks, on this network",
        model_options={"strides": [8, 16, 32], "dyhead_blocks": 3, "atfl_lambda": 1.5, "atfl_mode": "batch",
                       "use_atfl": True, "use_nwd": True},
        train=yolov7_recipes["authors"].train,
        notes=(*_FAMILY_NOTES, *COMMON_NOTES),
    ),
    Recipe(
        name="paper",
        description="the paper's text (Yang et al., TGRS 2024, Sec. IV: lambda 3.5, Eq. 6, C = 11 px, 4 blocks, "
        "400 epochs), else the authors' training, on this network",
        model_options={"strides": [8, 16, 32], "dyhead_blocks": 4, "atfl_lambda": 3.5, "atfl_mode": "epoch",
                       "nwd_constant": DEFAULT_NWD_CONSTANT, "use_atfl": True, "use_nwd": True},
        train=yolov7_recipes["paper"].train,
        notes=(*_FAMILY_NOTES, *yolov7_recipes["paper"].notes),
    ),
)
