"""Process-level pieces of a run: torch's global settings (restored afterwards), the AMP dtype, the
optimizer, the loss check."""

from __future__ import annotations

import contextlib
import os

import torch
import torch.nn as nn

from irstd_bench.errors import InputError

from .config import WEIGHT_DECAY_RULES, TrainConfig
from .schedule import BIAS_GROUP

#: cuBLAS workspace setting needed for deterministic GEMMs (set during a run, restored after).
CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def torch_settings(config: TrainConfig):
    """Process-wide torch settings of a run, restored on exit as they were found.

    Deterministic algorithms (``config.deterministic``), cuDNN ``deterministic=True`` and
    ``benchmark=False``, ``CUBLAS_WORKSPACE_CONFIG`` (needed by deterministic cuBLAS GEMMs; only
    effective when CUDA starts inside the run) and the thread count (``config.threads``).
    """
    saved_env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    saved_det = torch.are_deterministic_algorithms_enabled()
    saved_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    saved_cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    saved_threads = torch.get_num_threads()
    try:
        if saved_env is None:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
        torch.use_deterministic_algorithms(bool(config.deterministic), warn_only=True)
        torch.backends.cudnn.benchmark = not config.deterministic
        torch.backends.cudnn.deterministic = bool(config.deterministic)
        if config.threads is not None:
            torch.set_num_threads(int(config.threads))
        yield
    finally:
        if saved_env is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        torch.use_deterministic_algorithms(saved_det, warn_only=saved_warn)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved_cudnn
        torch.set_num_threads(saved_threads)


def amp_dtype_for(device: torch.device, amp: bool) -> torch.dtype | None:
    """Autocast dtype of a run: bfloat16 where the GPU has it, else float16; ``None`` off CUDA or without ``amp``."""
    if amp and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


#: Modules whose ``weight`` never decays under the ``yolov7`` rule.
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def param_groups(
    model: nn.Module,
    weight_decay: float,
    skip: nn.Module | None = None,
    *,
    rule: str = "ndim",
    split_biases: bool = False,
) -> list[dict]:
    """Parameter groups ``decay`` (at ``weight_decay``), ``no_decay`` and, with ``split_biases``, ``bias``.

    ``rule`` chooses what decays:

    - ``ndim``: every parameter of more than one dimension (kernels, weight matrices, and YOLO's
      implicit ``(1, C, 1, 1)`` offsets and scales; not biases nor norm scales);
    - ``yolov7``: every module's ``weight`` except BatchNorm's (so GroupNorm scales decay too),
      nothing else (biases, BatchNorm scales, implicit knowledge and any other parameter), as
      YOLOv7's ``train.py`` groups them.

    ``split_biases``: the modules' ``bias`` parameters form their own group (no decay) named
    :data:`~.schedule.BIAS_GROUP`, so that the warm-up can start them at ``warmup_bias_lr``.
    ``skip``: a submodule whose parameters are left out (an adversarial model's discriminator,
    which has its own optimizer).
    """
    if rule not in WEIGHT_DECAY_RULES:
        raise ValueError(f"weight decay rule {rule!r}: expected {', '.join(WEIGHT_DECAY_RULES)}")
    skipped = {id(p) for p in skip.parameters()} if skip is not None else set()
    decayed, biases = set(), set()
    for module in model.modules():
        bias, weight = getattr(module, "bias", None), getattr(module, "weight", None)
        if isinstance(bias, nn.Parameter):
            biases.add(id(bias))
        if rule == "yolov7" and isinstance(weight, nn.Parameter) and not isinstance(module, BATCH_NORMS):
            decayed.add(id(weight))
    groups: dict[str, list] = {"decay": [], "no_decay": [], BIAS_GROUP: []}
    for p in model.parameters():
        if not p.requires_grad or id(p) in skipped:
            continue
        if split_biases and id(p) in biases:
            groups[BIAS_GROUP].append(p)
        elif (id(p) in decayed) if rule == "yolov7" else p.ndim > 1:
            groups["decay"].append(p)
        else:
            groups["no_decay"].append(p)
    out = [{"params": groups["decay"], "weight_decay": weight_decay, "name": "decay"},
           {"params": groups["no_decay"], "weight_decay": 0.0, "name": "no_decay"}]
    if split_biases:
        out.append({"params": groups[BIAS_GROUP], "weight_decay": 0.0, "name": BIAS_GROUP})
    return out


def build_optimizer(
    model: nn.Module, config: TrainConfig, weight_decay: float, skip: nn.Module | None = None
) -> torch.optim.Optimizer:
    """SGD (Nesterov), AdamW or Adagrad at ``config.base_lr``; groups and decay by :func:`param_groups`
    (``weight_decay_rule``; biases apart when ``warmup_bias_lr`` is set)."""
    groups = param_groups(
        model, weight_decay, skip, rule=config.weight_decay_rule, split_biases=config.warmup_bias_lr is not None
    )
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.base_lr, momentum=config.momentum, nesterov=True)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(groups, lr=config.base_lr)
    return torch.optim.AdamW(groups, lr=config.base_lr, betas=(config.momentum, 0.999))


def finite_sum(terms: dict[str, torch.Tensor], where: str) -> torch.Tensor:
    """The sum of the loss terms; :class:`InputError` naming them (and ``where``) when it is not finite."""
    loss = sum(terms.values())
    if not torch.isfinite(loss):
        raise InputError(
            f"loss is not finite at {where} ({', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())}); "
            "try a lower --lr"
        )
    return loss
