"""Segmentation baselines (torch): ACM, ALCNet, DNANet, AGPCNet, ISNet, MSHNet, MDvsFA (Models protocol).

>>> from reference_model.registry import build_model
>>> model = build_model("acm")                                  # doctest: +SKIP
>>> logits = model(images)        # (B, 3, H, W) in [0, 1] -> (B, 1, H, W)   # doctest: +SKIP
"""

from reference_model.segmentation._common import SegmentationModel, soft_iou_loss
from reference_model.segmentation.acm import ACM, build_acm
from reference_model.segmentation.agpcnet import AGPCNet, build_agpcnet
from reference_model.segmentation.alcnet import ALCNet, build_alcnet
from reference_model.segmentation.dnanet import DNANet, build_dnanet
from reference_model.segmentation.isnet import ISNet, build_isnet
from reference_model.segmentation.mdvsfa import MDvsFA, build_mdvsfa
from reference_model.segmentation.mshnet import MSHNet, build_mshnet

#: Parameter counts reported for the default configurations (see each module's docstring).
PUBLISHED_PARAMS = {
    "acm": 398_000,
    "alcnet": 427_000,
    "dnanet": 4_697_000,
    "mshnet": 4_070_000,
    "agpcnet": 12_360_000,
    "isnet": 966_000,
}

__all__ = [
    "ACM",
    "AGPCNet",
    "ALCNet",
    "DNANet",
    "ISNet",
    "MDvsFA",
    "MSHNet",
    "PUBLISHED_PARAMS",
    "SegmentationModel",
    "build_acm",
    "build_agpcnet",
    "build_alcnet",
    "build_dnanet",
    "build_isnet",
    "build_mdvsfa",
    "build_mshnet",
    "soft_iou_loss",
]
