"""Learning-rate schedule (linear warm-up, then cosine, polynomial or linear decay) and gradient accumulation.

Two ways to decay (``schedule_step``):

- ``iteration`` (the engine's default): the decay starts when the warm-up ends and advances every
  iteration, from 1 to ``final_factor`` at the last iteration;
- ``epoch`` (YOLOv5/v7's ``LambdaLR`` stepped once per epoch): the factor of epoch ``e`` is the
  decay at ``e / epochs``, from epoch 0, constant within the epoch; the warm-up rises to the
  current epoch's factor.

During warm-up (``warmup_steps`` iterations, step ``k``) each parameter group's rate is the
straight line from its start to its target, ``start + (target - start) k / warmup_steps``: the
start is ``start_factor x`` its base rate, or ``bias_start_lr`` for the group named ``bias``
(YOLOv7's ``warmup_bias_lr``: biases start high and fall); SGD momentum rises the same way from
``start_momentum`` to each group's own momentum (YOLOv7's ``warmup_momentum``).

:class:`Accumulation` says how many batches each optimizer step sums: a fixed number, or a
number that rises from 1 to the nominal one over the warm-up (YOLOv7:
``max(1, round(interp(k, [0, warmup], [1, nominal_batch / batch])))``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: Learning rate at the start of warm-up, as a fraction of the base rate (default of ``warmup_start_ratio``).
WARMUP_START_FACTOR = 0.01
#: Default learning rate at the end of training, as a fraction of the base rate.
FINAL_LR_FACTOR = 0.01
#: Decay shapes after warm-up.
SCHEDULES = ("cosine", "poly", "linear")
#: When the decay advances: every iteration after warm-up, or once per epoch from epoch 0.
SCHEDULE_STEPS = ("iteration", "epoch")
#: Name of the parameter group of biases (``param_groups`` makes it when ``warmup_bias_lr`` is set).
BIAS_GROUP = "bias"


def decay_factor(kind: str, progress: float, final_factor: float, poly_power: float) -> float:
    """Multiplier of the base rate at ``progress`` in [0, 1] of the decay (1 at 0, ``final_factor`` at 1).

    - ``cosine``: ``f + (1 - f) (1 + cos(pi p)) / 2``;
    - ``poly``:   ``f + (1 - f) (1 - p) ** poly_power``;
    - ``linear``: ``f + (1 - f) (1 - p)``.
    """
    p = min(1.0, max(0.0, progress))
    if kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * p))
    elif kind == "poly":
        shape = (1.0 - p) ** poly_power
    elif kind == "linear":
        shape = 1.0 - p
    else:
        raise ValueError(f"unknown schedule {kind!r} (known: {', '.join(SCHEDULES)})")
    return final_factor + (1.0 - final_factor) * shape


class WarmupSchedule:
    """Sets each parameter group's ``lr`` (and, with ``start_momentum``, SGD ``momentum``) from the
    global iteration ``step`` (see the module docstring).

    The state is the step count alone, so a resumed run continues the curve exactly.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its groups' ``initial_lr`` (and ``initial_momentum``; set on the first call) are the
        targets; a group whose ``name`` is :data:`BIAS_GROUP` starts at ``bias_start_lr``.
    total_steps : int
        Iterations of the whole run (epochs x iterations per epoch).
    warmup_steps : int
        Iterations of warm-up (``max(warmup_epochs x iterations per epoch, warmup_iters)``); may be 0.
    kind : {"cosine", "poly", "linear"}
    final_factor : float
        Final rate over base rate (``lr_final_ratio``).
    poly_power : float
        Exponent of ``poly``.
    start_factor : float
        Rate at the start of warm-up over the base rate (``warmup_start_ratio``).
    bias_start_lr : float or None
        Rate of the bias group at the start of warm-up (``warmup_bias_lr``; ``None``: as the others).
    start_momentum : float or None
        SGD momentum at the start of warm-up (``warmup_momentum``; ``None``: constant).
    steps_per_epoch : int or None
        Given: the decay advances per epoch from epoch 0 (``schedule_step="epoch"``); ``None``: per
        iteration after warm-up.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int,
        kind: str = "cosine",
        final_factor: float = FINAL_LR_FACTOR,
        poly_power: float = 0.9,
        *,
        start_factor: float = WARMUP_START_FACTOR,
        bias_start_lr: float | None = None,
        start_momentum: float | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r} (known: {', '.join(SCHEDULES)})")
        self.optimizer = optimizer
        self.kind = kind
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps))
        self.final_factor = float(final_factor)
        self.poly_power = float(poly_power)
        self.start_factor = float(start_factor)
        self.bias_start_lr = None if bias_start_lr is None else float(bias_start_lr)
        self.start_momentum = None if start_momentum is None else float(start_momentum)
        self.steps_per_epoch = None if steps_per_epoch is None else max(1, int(steps_per_epoch))
        self.step_count = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
            if "momentum" in group:
                group.setdefault("initial_momentum", group["momentum"])
        self._apply()

    def decay(self, step: int) -> float:
        """The decay's multiplier of the base rate at iteration ``step`` (the warm-up's target)."""
        if self.steps_per_epoch is not None:
            epochs = max(1, round(self.total_steps / self.steps_per_epoch))
            return decay_factor(self.kind, (step // self.steps_per_epoch) / epochs, self.final_factor, self.poly_power)
        if step < self.warmup_steps:
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        return decay_factor(self.kind, (step - self.warmup_steps) / span, self.final_factor, self.poly_power)

    def factor(self, step: int, start: float | None = None) -> float:
        """Multiplier of the base rate at iteration ``step``; ``start``: the warm-up's first one
        (default ``start_factor``)."""
        target = self.decay(step)
        if step >= self.warmup_steps:
            return target
        first = self.start_factor if start is None else start
        return first + (target - first) * step / self.warmup_steps

    def momentum(self, step: int, final: float) -> float:
        """SGD momentum at iteration ``step`` of a group whose momentum is ``final``."""
        if self.start_momentum is None or step >= self.warmup_steps:
            return final
        return self.start_momentum + (final - self.start_momentum) * step / self.warmup_steps

    def _apply(self) -> None:
        step = self.step_count
        for group in self.optimizer.param_groups:
            base = group["initial_lr"]
            start = None
            if self.bias_start_lr is not None and group.get("name") == BIAS_GROUP and base > 0:
                start = self.bias_start_lr / base
            group["lr"] = base * self.factor(step, start)
            if "initial_momentum" in group:
                group["momentum"] = self.momentum(step, group["initial_momentum"])

    def step(self) -> None:
        """Advance one iteration."""
        self.step_count += 1
        self._apply()

    def set_total_steps(self, total_steps: int) -> None:
        """Change the run length (a resumed run given more epochs); the curve is recomputed from here."""
        self.total_steps = max(1, int(total_steps))
        self._apply()

    def last_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {
            "step_count": self.step_count,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self.total_steps = int(state["total_steps"])
        self.warmup_steps = int(state["warmup_steps"])
        self._apply()


@dataclass(frozen=True)
class Accumulation:
    """How many batches each optimizer step sums.

    Attributes
    ----------
    ratio : float
        Nominal batch over images per batch (``nominal_batch / (batch x processes)``; 1 without
        ``nominal_batch``); the nominal count is ``max(1, round(ratio))``.
    warmup_steps : int
        Iterations of the learning-rate warm-up.
    ramp : bool
        ``accumulate_ramp``: the count rises from 1 to the nominal one over the warm-up, as
        YOLOv7's ``max(1, round(interp(step, [0, warmup], [1, ratio])))``.
    """

    ratio: float = 1.0
    warmup_steps: int = 0
    ramp: bool = False

    @property
    def nominal(self) -> int:
        return max(1, round(self.ratio))

    def at(self, step: int) -> int:
        """Batches per optimizer step at global iteration ``step``."""
        if not self.ramp or step >= self.warmup_steps:
            return self.nominal
        return max(1, int(np.round(np.interp(step, [0, self.warmup_steps], [1.0, self.ratio]))))

    def steps_now(self, pending: int, step: int, last_of_epoch: bool) -> bool:
        """Whether the optimizer steps after iteration ``step``, ``pending`` batches summed since the
        last step (this one included): when they reach :meth:`at`, and at an epoch's last batch
        (no gradient crosses a checkpoint)."""
        return pending >= self.at(step) or last_of_epoch
