"""Learning-rate schedule: linear warm-up, then cosine, polynomial or linear decay, per iteration."""

from __future__ import annotations

import math

import torch

#: Learning rate at the start of warm-up, as a fraction of the base rate.
WARMUP_START_FACTOR = 0.01
#: Default learning rate at the end of training, as a fraction of the base rate.
FINAL_LR_FACTOR = 0.01
#: Decay shapes after warm-up.
SCHEDULES = ("cosine", "poly", "linear")


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
    """Sets each parameter group's ``lr`` from the global iteration ``step``.

    ``lr(step) = base * f(step)`` with ``f`` rising linearly from :data:`WARMUP_START_FACTOR`
    to 1 over ``warmup_steps`` iterations, then :func:`decay_factor` of ``kind`` from 1 to
    ``final_factor`` at ``total_steps``. The state is the step count alone, so a resumed run
    continues the curve exactly.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its groups' ``initial_lr`` (set on the first call) is the base rate.
    total_steps : int
        Iterations of the whole run (epochs x iterations per epoch).
    warmup_steps : int
        Iterations of warm-up (``max(warmup_epochs x iterations per epoch, warmup_iters)``); may be 0.
    kind : {"cosine", "poly", "linear"}
    final_factor : float
        Final rate over base rate (``lr_final_ratio``).
    poly_power : float
        Exponent of ``poly``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int,
        kind: str = "cosine",
        final_factor: float = FINAL_LR_FACTOR,
        poly_power: float = 0.9,
    ) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r} (known: {', '.join(SCHEDULES)})")
        self.optimizer = optimizer
        self.kind = kind
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps))
        self.final_factor = float(final_factor)
        self.poly_power = float(poly_power)
        self.step_count = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self._apply()

    def factor(self, step: int) -> float:
        """Multiplier of the base rate at iteration ``step``."""
        if step < self.warmup_steps:
            return WARMUP_START_FACTOR + (1.0 - WARMUP_START_FACTOR) * step / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        return decay_factor(self.kind, (step - self.warmup_steps) / span, self.final_factor, self.poly_power)

    def _apply(self) -> None:
        f = self.factor(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f

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
