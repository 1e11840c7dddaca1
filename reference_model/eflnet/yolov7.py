"""``eflnet-yolov7``: the authors' EFLNet network (their ``cfg/EFL.yaml``) in plain torch.

Pipeline: :class:`~.yolov7_net.YOLOv7Backbone` (E-ELAN) -> :class:`~.yolov7_net.YOLOv7Neck`
(SPPCSPC, FPN/PAN, RepConv; strides 8/16/32, 256 channels) -> :class:`~.dyhead.DyHead`
(``dyhead_blocks``, 3 in the authors' code) -> :class:`~.anchor_head.AnchorHead` (YOLOv7's
implicit anchor-based head, 3 anchors per level). Training: SimOTA (:mod:`.simota`), ATFL on
objectness and NWD box loss (:mod:`.yolov7_loss`).

Parameters at 80 classes (the yaml's ``nc``): 32,769,434 without the dynamic head and 38,518,958
with 3 blocks (Table VII of the paper: 32.769 M / 38.519 M). With one class (no class logits,
see :func:`~.anchor_head.outputs_per_anchor`): 38,333,198 with 3 blocks, 32,583,674 without.

Interface (``docs/CONTRACTS.md``, Models): ``task``, ``config``, ``forward``, ``compute_loss``,
``postprocess``, ``on_epoch_end``. The settings are one :class:`YOLOv7Config`; ``config`` is its
``asdict`` and ``build_eflnet_yolov7(**config)`` rebuilds the model. ``RECIPES`` holds the
``authors`` and ``paper`` training recipes; ``docs/models/eflnet-yolov7.md`` lists every
difference from the authors' code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from types import MappingProxyType

import torch
import torch.nn as nn
from torchvision.ops import batched_nms

from irstd_bench.boxes import DEFAULT_NWD_CONSTANT

from ..recipe import Recipe, recipes_table
from .anchor_head import OBJ_INDEX, YOLOV7_ANCHORS, AnchorHead, decode_level
from .dyhead import DyHead
from .losses import ATFL_MODES, ATFL_THRESHOLD
from .yolov7_loss import NWD_UNITS, YOLOv7Loss
from .yolov7_net import NECK_CHANNELS, YOLOV7_STRIDES, YOLOv7Backbone, YOLOv7Neck

#: NWD constant of the authors' code, in grid units of each level (``wasserstein_loss(constant=12)``).
AUTHORS_NWD_CONSTANT = 12.0
#: most dynamic-head blocks accepted (the DyHead paper's sweep stops at 6).
MAX_DYHEAD_BLOCKS = 6
#: highest-scoring predictions per image kept for NMS.
MAX_CANDIDATES_BEFORE_NMS = 3000
#: BatchNorm settings YOLOv7 applies to every BatchNorm2d (``initialize_weights``).
BN_EPS, BN_MOMENTUM = 1e-3, 0.03


@dataclass(frozen=True)
class YOLOv7Config:
    """Every setting of ``eflnet-yolov7`` (builder keywords; ``asdict`` is ``model.config``).

    Attributes
    ----------
    num_classes : int
        Target classes (1 for IRSTD).
    dyhead_blocks : int
        Dynamic-head blocks, 0 to :data:`MAX_DYHEAD_BLOCKS` (authors 3, paper's best 4).
    atfl_lambda : float
        ATFL's ``lambda`` (authors 1.5, paper 3.5).
    atfl_mode : str
        ``"batch"`` (authors: ``p_hat`` = mean ``p_t`` of the call) or ``"epoch"`` (paper's Eq. 6).
    nwd_constant : float
        NWD's ``C`` (authors 12 grid units, paper 11 px).
    nwd_units : str
        ``"grid"`` (``C`` in cells of each level) or ``"px"``.
    use_atfl, use_nwd : bool
        ATFL (else BCE) on objectness and classes; NWD (else CIoU) box loss and objectness target.
    anchors : list
        Three levels of three ``[w, h]`` anchors in input px (the yaml's by default).
    """

    num_classes: int = 1
    dyhead_blocks: int = 3
    atfl_lambda: float = 1.5
    atfl_mode: str = "batch"
    nwd_constant: float = AUTHORS_NWD_CONSTANT
    nwd_units: str = "grid"
    use_atfl: bool = True
    use_nwd: bool = True
    anchors: tuple = YOLOV7_ANCHORS

    def __post_init__(self) -> None:
        anchors = [[[float(v) for v in pair] for pair in level] for level in self.anchors]
        object.__setattr__(self, "anchors", anchors)
        if int(self.num_classes) != self.num_classes or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {self.num_classes}")
        if not 0 <= self.dyhead_blocks <= MAX_DYHEAD_BLOCKS:
            raise ValueError(f"dyhead_blocks must be in [0, {MAX_DYHEAD_BLOCKS}], got {self.dyhead_blocks}")
        if self.atfl_lambda <= ATFL_THRESHOLD:
            raise ValueError(f"atfl_lambda must be > {ATFL_THRESHOLD}, got {self.atfl_lambda}")
        if self.atfl_mode not in ATFL_MODES:
            raise ValueError(f"atfl_mode must be one of {ATFL_MODES}, got {self.atfl_mode!r}")
        if not self.nwd_constant > 0:
            raise ValueError(f"nwd_constant must be positive, got {self.nwd_constant}")
        if self.nwd_units not in NWD_UNITS:
            raise ValueError(f"nwd_units must be one of {NWD_UNITS}, got {self.nwd_units!r}")
        if len(anchors) != len(YOLOV7_STRIDES) or any(len(level) == 0 for level in anchors):
            raise ValueError(f"anchors must give {len(YOLOV7_STRIDES)} levels of [w, h] pairs, got {self.anchors}")
        if len({len(level) for level in anchors}) != 1 or any(
            len(pair) != 2 or min(pair) <= 0 for level in anchors for pair in level
        ):
            raise ValueError(f"anchors must be positive [w, h] pairs, equally many per level, got {self.anchors}")


class EFLNetYOLOv7(nn.Module):
    """The authors' EFLNet (YOLOv7 + dynamic head + ATFL + NWD); build with :func:`build_eflnet_yolov7`.

    ``forward(images (B, 3, H, W) float in [0, 1])`` (``H, W`` multiples of 32) returns the raw
    per-level predictions, a list (strides 8, 16, 32) of ``(B, A, H / s, W / s, N)`` with
    ``N = 5`` (one class) or ``5 + num_classes`` (decoding in :mod:`.anchor_head`).
    """

    task = "detect"
    #: The loss is multiplied by the batch size (the authors' ``loss * bs``): the engine sums it over
    #: accumulated batches instead of averaging, so batch 8 accumulated to 64 steps like batch 64.
    loss_sums_over_images = True
    strides = YOLOV7_STRIDES

    def __init__(self, config: YOLOv7Config) -> None:
        super().__init__()
        self.settings = config
        self.config = asdict(config)
        self.backbone = YOLOv7Backbone()
        self.neck = YOLOv7Neck(NECK_CHANNELS)
        self.dyhead = DyHead(NECK_CHANNELS, config.dyhead_blocks)
        self.head = AnchorHead(self.neck.out_channels, self.strides, config.anchors, config.num_classes)
        self.criterion = YOLOv7Loss(
            num_classes=config.num_classes,
            use_atfl=config.use_atfl,
            use_nwd=config.use_nwd,
            atfl_lambda=config.atfl_lambda,
            atfl_mode=config.atfl_mode,
            nwd_constant=config.nwd_constant,
            nwd_units=config.nwd_units,
        )
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps, module.momentum = BN_EPS, BN_MOMENTUM

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        h, w = images.shape[-2:]
        if h % self.strides[-1] or w % self.strides[-1]:
            raise ValueError(f"image size {h}x{w} is not a multiple of {self.strides[-1]}")
        return self.head(self.dyhead(self.neck(self.backbone(images))))

    def compute_loss(self, outputs: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        """Named float32 terms ``{"box", "obj"[, "cls"]}`` (sum = loss); see :mod:`.yolov7_loss`.

        ``targets``: one dict per image with ``"boxes" (G, 4)`` ``[x0, y0, x1, y1]`` input px
        (``G`` may be 0) and, with several classes, ``"labels" (G,)``; other keys are ignored.
        """
        return self.criterion(outputs, targets, self.head.anchors, self.strides)

    @torch.no_grad()
    def postprocess(
        self,
        outputs: list[torch.Tensor],
        *,
        conf_threshold: float = 0.001,
        iou_threshold: float = 0.5,
        max_det: int = 100,
    ) -> list[dict[str, torch.Tensor]]:
        """Raw outputs -> per image ``{"boxes": (N, 4) [x0, y0, x1, y1] input px, "scores": (N,)}``
        (and ``"labels" (N,)`` with several classes).

        Scores: objectness, times the best class probability with several classes. Boxes are
        clipped to the image; predictions with ``score >= conf_threshold`` (the evaluator's rule)
        go through NMS at ``iou_threshold`` (per class) and the ``max_det`` best are kept, highest
        score first.
        """
        batch = outputs[0].shape[0]
        height, width = outputs[0].shape[2] * self.strides[0], outputs[0].shape[3] * self.strides[0]
        boxes, scores, labels = [], [], []
        for output, anchors, stride in zip(outputs, self.head.anchors, self.strides, strict=True):
            output = output.float()
            boxes.append(decode_level(output, anchors, stride).reshape(batch, -1, 4))
            objectness = output[..., OBJ_INDEX].sigmoid().reshape(batch, -1)
            if self.settings.num_classes > 1:
                class_probs = output[..., OBJ_INDEX + 1 :].sigmoid().reshape(batch, -1, self.settings.num_classes)
                best, label = class_probs.max(-1)
                objectness = objectness * best
            else:
                label = torch.zeros_like(objectness, dtype=torch.long)
            scores.append(objectness)
            labels.append(label)
        boxes, scores, labels = torch.cat(boxes, 1), torch.cat(scores, 1), torch.cat(labels, 1)
        limits = boxes.new_tensor([width, height, width, height])
        boxes = torch.minimum(boxes.clamp_min(0), limits)
        results = []
        for image_boxes, image_scores, image_labels in zip(boxes, scores, labels, strict=True):
            keep = image_scores >= conf_threshold
            image_boxes, image_scores, image_labels = image_boxes[keep], image_scores[keep], image_labels[keep]
            if image_scores.numel() > MAX_CANDIDATES_BEFORE_NMS:
                top = image_scores.topk(MAX_CANDIDATES_BEFORE_NMS).indices
                image_boxes, image_scores, image_labels = image_boxes[top], image_scores[top], image_labels[top]
            kept = batched_nms(image_boxes, image_scores, image_labels, iou_threshold)[:max_det]
            result = {"boxes": image_boxes[kept], "scores": image_scores[kept]}
            if self.settings.num_classes > 1:
                result["labels"] = image_labels[kept]
            results.append(result)
        return results

    def on_epoch_end(self) -> None:
        """Fold this epoch's ATFL statistics into ``p_hat`` (``atfl_mode="epoch"``; no-op otherwise)."""
        self.criterion.end_epoch()


def build_eflnet_yolov7(**options) -> EFLNetYOLOv7:
    """Build ``eflnet-yolov7``; ``options`` are :class:`YOLOv7Config` fields (unknown -> ``TypeError``).

    >>> model = build_eflnet_yolov7(dyhead_blocks=0)                  # doctest: +SKIP
    >>> build_eflnet_yolov7(**model.config).config == model.config   # doctest: +SKIP
    True
    """
    known = {f.name for f in fields(YOLOv7Config)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown eflnet-yolov7 option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return EFLNetYOLOv7(YOLOv7Config(**options))


#: YOLOv7's letterbox and mosaic fill, grey 114 of 255 (``utils/datasets.py``: ``letterbox``, ``load_mosaic``).
YOLOV7_PAD_VALUE = 114 / 255
#: The training settings of the authors' ``train.py`` defaults, ``data/hyp.scratch.p5.yaml`` and
#: ``utils/datasets.py`` (``docs/models/eflnet-yolov7.md`` gives the file and line of each).
AUTHORS_TRAIN = MappingProxyType(
    {
        "epochs": 300,
        "imgsz": 640,
        "batch": 8,
        "nominal_batch": 64,
        "accumulate_ramp": True,
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.937,
        "weight_decay": 5e-4,
        "weight_decay_rule": "yolov7",
        "schedule": "cosine",
        "schedule_step": "epoch",
        "lr_final_ratio": 0.1,
        "warmup_epochs": 3.0,
        "warmup_iters": 1000,
        "warmup_start_ratio": 0.0,
        "warmup_bias_lr": 0.1,
        "warmup_momentum": 0.8,
        "mosaic": 1.0,
        "mosaic9": 0.2,
        "mosaic_style": "yolov7",
        "mixup": 0.15,
        "mixup_beta": 8.0,
        "mixup_partner": "fresh",
        "scale": 0.9,
        "translate": 0.2,
        "window_style": "yolov7",
        "min_box_side": 2.0,
        "hsv_h": 0.015,
        "hsv_s": 0.7,
        "hsv_v": 0.4,
        "fliplr": 0.5,
        "flipud": 0.0,
        "pad_value": YOLOV7_PAD_VALUE,
        "base_size": None,
        "max_det": 300,
        "fitness": "ap",
    }
)
#: What the authors' code does that the recipes do not (the full list with files and lines is
#: ``docs/models/eflnet-yolov7.md``).
COMMON_NOTES = (
    "The authors' train.py also runs autoanchor (k-means anchors when fewer than 98% of targets fit "
    "the yaml anchors); here the anchors stay the yaml's unless given with the anchors option.",
    "paste_in 0.15 is not reproduced: it pastes segments, and box-labelled data have none, so it does "
    "nothing in the authors' runs either.",
    "Images are read as one channel (luminance) and replicated: the HSV hue and saturation jitter is the "
    "identity on them, while 159 of NUAA-SIRST's 427 files carry a faint colour tint the authors' 3-channel "
    "input keeps.",
    "No gradient clipping, as the authors' code (the engine's default clipping is off under a recipe).",
    "The last partial accumulation of an epoch is stepped at the epoch's end (the authors' accumulation "
    "carries over into the next epoch).",
)
RECIPES = recipes_table(
    Recipe(
        name="authors",
        description="the authors' released code: cfg/EFL.yaml, data/hyp.scratch.p5.yaml, train.py defaults",
        model_options={
            "dyhead_blocks": 3,
            "atfl_lambda": 1.5,
            "atfl_mode": "batch",
            "nwd_constant": AUTHORS_NWD_CONSTANT,
            "nwd_units": "grid",
            "use_atfl": True,
            "use_nwd": True,
        },
        train=AUTHORS_TRAIN,
        notes=COMMON_NOTES,
    ),
    Recipe(
        name="paper",
        description="the paper's text (Yang et al., TGRS 2024, Sec. IV): lambda 3.5, Eq. 6, C = 11 px, 4 blocks",
        model_options={
            "dyhead_blocks": 4,
            "atfl_lambda": 3.5,
            "atfl_mode": "epoch",
            "nwd_constant": DEFAULT_NWD_CONSTANT,
            "nwd_units": "px",
            "use_atfl": True,
            "use_nwd": True,
        },
        train={**AUTHORS_TRAIN, "epochs": 400},
        notes=(
            "Settings the paper does not state (optimizer, schedule, augmentation, batch) follow the "
            "authors' code.",
            *COMMON_NOTES,
        ),
    ),
)
