"""Adversarial training: a model's discriminator with its own optimizer, schedule and step.

A model asks for it by defining ``adversary`` (the discriminator, a submodule),
``adversary_loss(outputs, targets) -> dict`` of named scalar terms, ``adversary_lr_ratio`` (its
learning rate over the run's) and ``adversary_momentum`` (SGD momentum / Adam beta1). MDvsFA
is the one such model. Each iteration the trainer runs the model forward once, calls
:meth:`Adversary.step` (a discriminator step on the model's outputs), then backpropagates
``compute_loss`` (which sees the updated discriminator) and steps the rest of the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn

from irstd_bench.errors import InputError

from .config import TrainConfig
from .predict import autocast_context
from .runtime import build_optimizer, finite_sum
from .schedule import WarmupSchedule


def adversary_of(model: nn.Module) -> nn.Module | None:
    """The model's discriminator (``model.adversary``), ``None`` for an ordinary model."""
    return getattr(model, "adversary", None)


class Adversary:
    """The discriminator of an adversarial ``model``, its optimizer and its learning-rate schedule.

    Built by :meth:`build`: an optimizer of the run's kind over the discriminator's parameters at
    ``config.base_lr x model.adversary_lr_ratio`` with ``model.adversary_momentum``, the run's
    weight decay, and the run's schedule (``make_schedule``).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: WarmupSchedule):
        self.model = model
        self.module = adversary_of(model)
        self.optimizer = optimizer
        self.scheduler = scheduler

    @classmethod
    def build(
        cls,
        model: nn.Module,
        config: TrainConfig,
        weight_decay: float,
        make_schedule: Callable[[torch.optim.Optimizer], WarmupSchedule],
    ) -> Adversary | None:
        """The adversary of ``model``, or ``None`` when it has none."""
        module = adversary_of(model)
        if module is None:
            return None
        settings = replace(
            config, lr=config.base_lr * float(model.adversary_lr_ratio), momentum=float(model.adversary_momentum)
        )
        optimizer = build_optimizer(module, settings, weight_decay)
        return cls(model, optimizer, make_schedule(optimizer))

    def step(
        self,
        outputs,
        targets: list[dict],
        *,
        scaler: torch.amp.GradScaler,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        max_grad_norm: float | None,
        where: str,
    ) -> dict[str, torch.Tensor]:
        """One discriminator step on ``model.adversary_loss(outputs, targets)``; its terms, detached.

        The gradient is clipped to ``max_grad_norm`` (the run's ``grad_clip``; ``None``: not
        clipped); the scaler's ``update()`` is left to the
        generators' step of the same iteration (one update per iteration).
        """
        self.optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, amp_dtype):
            terms = self.model.adversary_loss(outputs, targets)
        loss = finite_sum(terms, where)
        scaler.scale(loss).backward()
        if max_grad_norm is not None:
            scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), max_grad_norm)
        scaler.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        return {k: v.detach() for k, v in terms.items()}

    def drop_gradients(self) -> None:
        """Forget the gradient the generators' loss left on the discriminator (it is not used)."""
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        """``{"optimizer", "scheduler"}``: what a checkpoint keeps under ``"adversary"``."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state, source: Path, total_steps: int) -> None:
        """Restore :meth:`state_dict` from checkpoint ``source``; ``total_steps`` may extend the run."""
        if not isinstance(state, dict) or not state.get("optimizer"):
            raise InputError(f"{source}: checkpoint has no discriminator optimizer state to resume")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scheduler.set_total_steps(total_steps)
