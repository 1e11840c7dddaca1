"""Model registry: name -> builder, imported lazily.

Every model built here follows the protocol in ``docs/CONTRACTS.md``: ``task`` is
``"detect"`` or ``"segment"``; ``config`` rebuilds it; ``forward(images)`` takes
``(B, 3, H, W)`` float in [0, 1]; ``compute_loss(outputs, targets)`` returns a dict of named
loss terms whose sum is the training loss; ``postprocess(outputs, ...)`` returns per-image
predictions in input pixels.
"""

from __future__ import annotations

import importlib

import torch.nn as nn

from irstd_bench.errors import InputError

#: model name -> ("module", "builder function", keyword arguments)
MODELS: dict[str, tuple[str, str, dict]] = {
    "eflnet-n": ("reference_model.eflnet.model", "build_eflnet", {"scale": "n"}),
    "eflnet-s": ("reference_model.eflnet.model", "build_eflnet", {"scale": "s"}),
    "eflnet-m": ("reference_model.eflnet.model", "build_eflnet", {"scale": "m"}),
    "eflnet-l": ("reference_model.eflnet.model", "build_eflnet", {"scale": "l"}),
    "eflnet-yolov7": ("reference_model.eflnet.yolov7", "build_eflnet_yolov7", {}),
    "acm": ("reference_model.segmentation.acm", "build_acm", {}),
    "alcnet": ("reference_model.segmentation.alcnet", "build_alcnet", {}),
    "dnanet": ("reference_model.segmentation.dnanet", "build_dnanet", {}),
    "mshnet": ("reference_model.segmentation.mshnet", "build_mshnet", {}),
    "agpcnet": ("reference_model.segmentation.agpcnet", "build_agpcnet", {}),
    "isnet": ("reference_model.segmentation.isnet", "build_isnet", {}),
    "mdvsfa": ("reference_model.segmentation.mdvsfa", "build_mdvsfa", {}),
}


def build_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; ``overrides`` are passed to its builder (e.g. ``dyhead_blocks=0``)."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r} (known: {', '.join(MODELS)})")
    module_name, builder, kwargs = MODELS[name]
    module = importlib.import_module(module_name)
    model = getattr(module, builder)(**{**kwargs, **overrides})
    model.model_name = name
    return model
