"""Exponential moving average (EMA) of model weights, used for validation and saved in checkpoints."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

#: EMA decay once warmed up, and the number of updates over which it ramps up from 0.
DEFAULT_DECAY = 0.9999
DEFAULT_TAU_UPDATES = 2000.0


class ModelEMA:
    """A frozen copy of a model whose floating-point parameters and buffers track the model.

    After update ``k`` the weights are ``ema = d_k * ema + (1 - d_k) * model`` with
    ``d_k = decay * (1 - exp(-k / tau))``: early updates follow the model closely, later ones
    average over about ``1 / (1 - decay)`` steps. Integer buffers (BatchNorm's counters) and
    non-float state are copied. Loss statistics a model keeps in buffers (EFLNet's ATFL
    ``p_hat``) are averaged like the rest; only the trained model's own copy drives the loss.
    """

    def __init__(self, model: nn.Module, decay: float = DEFAULT_DECAY, tau: float = DEFAULT_TAU_UPDATES):
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.tau = float(tau)
        self.updates = 0

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current weights."""
        self.updates += 1
        d = self.current_decay()
        source = unwrap(model).state_dict()
        floats, targets = [], []
        for name, value in self.module.state_dict().items():
            new = source[name].detach()
            if value.dtype.is_floating_point:
                floats.append(value)
                targets.append(new.to(value.dtype))
            else:
                value.copy_(new)
        if floats:  # one fused kernel per operation instead of two per tensor
            torch._foreach_mul_(floats, d)
            torch._foreach_add_(floats, targets, alpha=1.0 - d)

    def state_dict(self) -> dict:
        return {
            "module": self.module.state_dict(),
            "updates": self.updates,
            "decay": self.decay,
            "tau": self.tau,
        }

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
        self.decay = float(state["decay"])
        self.tau = float(state["tau"])


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
