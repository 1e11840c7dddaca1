"""Process-level pieces of a run: torch's global settings (restored afterwards), the AMP dtype, the
optimizer, the loss check."""

from __future__ import annotations

import contextlib
import os

import torch
import torch.nn as nn

from irstd_bench.errors import InputError

from .config import TrainConfig

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


def param_groups(model: nn.Module, weight_decay: float, skip: nn.Module | None = None) -> list[dict]:
    """Weight decay on weight matrices and kernels only, not on biases and norm scales.

    ``skip``: a submodule whose parameters are left out (an adversarial model's discriminator,
    which has its own optimizer).
    """
    skipped = {id(p) for p in skip.parameters()} if skip is not None else set()
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad and id(p) not in skipped:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    model: nn.Module, config: TrainConfig, weight_decay: float, skip: nn.Module | None = None
) -> torch.optim.Optimizer:
    """SGD (Nesterov), AdamW or Adagrad at ``config.base_lr``; decay on weights only (:func:`param_groups`)."""
    groups = param_groups(model, weight_decay, skip)
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
