"""Training loss of ``eflnet-yolov7``: the authors' ``ComputeLossOTA`` with ATFL and NWD.

After SimOTA (:mod:`.simota`) gives each positive prediction its target, per level ``l``:

- **box**: ``mean over the level's positives of 1 - NWD(pred, target)`` with NWD's constant ``C``
  in grid units of the level (``nwd_units="grid"``: ``C`` px ``= C * stride``; the authors' code
  measures both boxes in cells) or in pixels (``"px"``, the paper's ``C = 11``). ``use_nwd=False``
  gives YOLOv7's ``1 - CIoU`` instead.
- **obj**: ATFL (or BCE, ``use_atfl=False``) over every prediction of the level, mean; the target
  is the positive's ``NWD`` (``CIoU`` clamped at 0 without NWD), detached, 0 elsewhere. Levels are
  weighted by :data:`LEVEL_BALANCE`.
- **cls** (only with several classes): ATFL/BCE at the positives against one-hot targets, mean.

Gains as in the authors' ``train.py`` + ``hyp.scratch.p5.yaml``: box 0.05, obj 0.7 times
``(input area / 640^2)``, cls 0.3 times ``K / 80``, each times ``3 / L``. As there, the returned
terms are multiplied by the batch size (``loss * bs``), so a step's gradient is the *sum* over
its images, which the SGD learning rate 0.01 of the recipe assumes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import box_convert, complete_box_iou_loss

from irstd_bench.boxes import nwd

from .anchor_head import OBJ_INDEX, REFERENCE_SIZE, decode_xywh
from .losses import AdaptiveThresholdFocalLoss
from .simota import Positives, PredictionGrid, simota_assign

#: objectness weight of the P3, P4, P5 levels (YOLOv5/v7 ``balance`` for three levels).
LEVEL_BALANCE = (4.0, 1.0, 0.4)
#: loss gains of ``hyp.scratch.p5.yaml`` before the per-level and size scaling.
BOX_GAIN, OBJ_GAIN, CLS_GAIN = 0.05, 0.7, 0.3
#: class count and number of levels the gains are tuned for (and the image side, REFERENCE_SIZE).
REFERENCE_CLASSES, REFERENCE_LEVELS = 80, 3
NWD_UNITS = ("grid", "px")
#: ATFL ``p_t`` rule of the authors' code (see :mod:`.losses`).
AUTHORS_P_T_RULE = "linear"


class YOLOv7Loss(nn.Module):
    """Loss of :class:`~.yolov7.EFLNetYOLOv7` (see the module docstring); holds ATFL's state.

    Parameters
    ----------
    num_classes : int
    use_atfl, use_nwd : bool
    atfl_lambda : float; atfl_mode : ``"batch" | "epoch"``
    nwd_constant : float; nwd_units : ``"grid" | "px"``
    """

    def __init__(
        self,
        *,
        num_classes: int,
        use_atfl: bool,
        use_nwd: bool,
        atfl_lambda: float,
        atfl_mode: str,
        nwd_constant: float,
        nwd_units: str,
    ) -> None:
        super().__init__()
        if nwd_units not in NWD_UNITS:
            raise ValueError(f"nwd_units must be one of {NWD_UNITS}, got {nwd_units!r}")
        self.num_classes = num_classes
        self.use_atfl, self.use_nwd = use_atfl, use_nwd
        self.nwd_constant, self.nwd_units = nwd_constant, nwd_units
        self.obj_atfl = AdaptiveThresholdFocalLoss(atfl_lambda, atfl_mode, AUTHORS_P_T_RULE)
        self.cls_atfl = AdaptiveThresholdFocalLoss(atfl_lambda, atfl_mode, AUTHORS_P_T_RULE)

    def _elementwise(self, atfl: AdaptiveThresholdFocalLoss, logits, targets, positive) -> torch.Tensor:
        if self.use_atfl:
            return atfl(logits, targets, positive)
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")

    def end_epoch(self) -> None:
        self.obj_atfl.end_epoch()
        self.cls_atfl.end_epoch()

    def forward(
        self,
        outputs: list[torch.Tensor],
        targets: list[dict],
        anchors: torch.Tensor,
        strides: tuple[int, ...],
    ) -> dict[str, torch.Tensor]:
        """``outputs``: per level ``(B, A, H, W, N)``; ``targets``: one dict per image with
        ``"boxes" (G, 4)`` ``[x0, y0, x1, y1]`` input px and optional ``"labels" (G,)``.
        Returns float32 ``{"box", "obj"[, "cls"]}``."""
        device = outputs[0].device
        with torch.autocast(device_type=device.type, enabled=False):
            outputs = [o.float() for o in outputs]
            batch, num_levels = outputs[0].shape[0], len(outputs)
            grid = PredictionGrid.build(outputs, anchors, strides)
            flat = torch.cat([o.reshape(batch, -1, o.shape[-1]) for o in outputs], dim=1)  # (B, T, N)

            def decode(raw: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:  # -> (M, 4) cxcywh px
                return decode_xywh(raw[:, :4], grid.cells[rows], grid.anchors[rows], grid.strides[rows, None])

            gts = []
            for target in targets:
                boxes = torch.as_tensor(target["boxes"], device=device).float().reshape(-1, 4)
                labels = target.get("labels")
                labels = torch.zeros(len(boxes), dtype=torch.long, device=device) if labels is None else labels
                gts.append((boxes, torch.as_tensor(labels, device=device).long().reshape(-1)))
            positives = simota_assign(
                flat.detach(),
                lambda raw, rows: box_convert(decode(raw, rows), "cxcywh", "xyxy"),
                grid,
                anchors,
                strides,
                gts,
                self.num_classes,
            )
            terms = self._terms(flat, grid, positives, decode, num_levels)
            height = outputs[0].shape[2] * strides[0]
            width = outputs[0].shape[3] * strides[0]
        level_scale = REFERENCE_LEVELS / num_levels
        gains = {
            "box": BOX_GAIN * level_scale,
            "obj": OBJ_GAIN * level_scale * height * width / REFERENCE_SIZE**2,
            "cls": CLS_GAIN * level_scale * self.num_classes / REFERENCE_CLASSES,
        }
        return {name: gains[name] * value * batch for name, value in terms.items()}

    def _terms(
        self, flat: torch.Tensor, grid: PredictionGrid, positives: Positives, decode, num_levels: int
    ) -> dict[str, torch.Tensor]:
        """Un-weighted per-term sums over levels (box and cls means per level, balanced obj)."""
        pred = decode(flat[positives.image, positives.index], positives.index)  # (P, 4) cxcywh px
        pred_xyxy = box_convert(pred, "cxcywh", "xyxy")
        stride = grid.strides[positives.index]  # (P,)
        if self.use_nwd:
            constant = self.nwd_constant * stride if self.nwd_units == "grid" else self.nwd_constant
            quality = nwd(pred_xyxy, positives.boxes, constant, pairwise=False)  # (P,)
            box_elements = 1 - quality
        else:
            box_elements = complete_box_iou_loss(pred_xyxy, positives.boxes, reduction="none")
            quality = 1 - box_elements
        obj_target = torch.zeros(flat.shape[:2], device=flat.device)  # (B, T)
        obj_target[positives.image, positives.index] = quality.detach().clamp(0, 1)
        positive_mask = torch.zeros_like(obj_target, dtype=torch.bool)
        positive_mask[positives.image, positives.index] = True
        level_of = grid.level[positives.index]
        box = flat.new_zeros(())
        obj = flat.new_zeros(())
        cls = flat.new_zeros(())
        for level in range(num_levels):
            start = grid.offsets[level]
            stop = start + grid.shapes[level][0] * grid.shapes[level][1] * grid.shapes[level][2]
            obj_elements = self._elementwise(
                self.obj_atfl,
                flat[:, start:stop, OBJ_INDEX],
                obj_target[:, start:stop],
                positive_mask[:, start:stop],
            )
            obj = obj + LEVEL_BALANCE[level] * obj_elements.mean()
            here = level_of == level
            if bool(here.any()):
                box = box + box_elements[here].mean()
                if self.num_classes > 1:
                    logits = flat[positives.image[here], positives.index[here], OBJ_INDEX + 1 :]  # (P_l, K)
                    one_hot = F.one_hot(positives.classes[here], self.num_classes).to(logits)
                    cls = cls + self._elementwise(self.cls_atfl, logits, one_hot, one_hot.bool()).mean()
        if not bool(positive_mask.any()):
            box = box + flat[..., :4].sum() * 0.0  # keeps the graph whole for batches without targets
        terms = {"box": box, "obj": obj}
        if self.num_classes > 1:
            terms["cls"] = cls
        return terms
