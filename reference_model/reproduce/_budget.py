"""Time budget of ``irstd-bench reproduce``: phases, timing probes, and epochs per run.

Every training of the plan runs at the same time on one device. Before them, one short probe
per distinct model/recipe (all at once, as the trainings will be) measures the seconds an epoch
takes under load and the start-up cost of a run. :func:`allocate` then gives each run as many
epochs of its recipe's schedule as fit in the training window, assuming the time of an epoch
grows in proportion to the number of runs sharing the device (``N / K`` for ``N`` runs after a
probe of ``K``; conservative when small models do not fill the device), and drops the
lowest-priority runs while any run would get fewer than the minimum.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from irstd_bench.errors import InputError

from ._plan import RunUnit

#: Share of the training window that planned epochs may fill (the rest absorbs estimate errors).
WINDOW_SAFETY = 0.9
#: Share of the device memory the planned runs may use together (from the probe's peak).
MEMORY_SAFETY = 0.9


@dataclass(frozen=True)
class PhaseBudget:
    """Seconds the phases after training are given, and the plan's limits.

    Attributes
    ----------
    probe_s : float
        Limit of the timing probe (all probes at once).
    probe_epochs : int
        Epochs of each probe; the last one's ``time_s`` is the measured epoch time.
    predict_s, score_s, report_s : float
        Reserved for predicting val and test, scoring, and report + RUNS.md + packing.
    margin_s : float
        Kept free at the end.
    min_epochs : int
        A run that would get fewer epochs is dropped (after lower-priority runs).
    max_epochs : int or None
        Cap on every run's epochs (``None``: the recipe's full schedule).
    """

    probe_s: float = 75.0
    probe_epochs: int = 2
    predict_s: float = 45.0
    score_s: float = 25.0
    report_s: float = 30.0
    margin_s: float = 15.0
    min_epochs: int = 5
    max_epochs: int | None = None

    @property
    def after_training_s(self) -> float:
        return self.predict_s + self.score_s + self.report_s + self.margin_s


#: The ``--smoke`` phases: the synthetic sample on a CPU, everything small.
SMOKE_PHASES = PhaseBudget(
    probe_s=150.0, probe_epochs=1, predict_s=25.0, score_s=20.0, report_s=25.0, margin_s=2.0, min_epochs=1,
    max_epochs=1,
)


@dataclass(frozen=True)
class Probe:
    """What a timing probe of one model/recipe measured.

    ``epoch_s`` is the last completed probe epoch's time (training + validation) and
    ``startup_s`` the rest of the probe's wall time (imports, data, model, device start);
    ``None`` when no epoch finished.
    """

    config_key: str
    epochs_done: int
    epoch_s: float | None
    startup_s: float | None
    wall_s: float
    returncode: int | None
    concurrency: int

    @property
    def ok(self) -> bool:
        return self.epoch_s is not None and self.epoch_s > 0


def read_epoch_times(results_csv: Path, *, strict: bool = False) -> list[float]:
    """``time_s`` of each epoch in a run's ``results.csv`` (empty when absent or unreadable).

    ``strict``: a file that exists but is not a CSV (binary, not UTF-8, a broken quote) is an
    :class:`InputError` naming it (a run to be continued must be readable).
    """
    try:
        with Path(results_csv).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        return []
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        if strict:
            raise InputError(f"{results_csv}: not a readable results.csv ({exc.__class__.__name__})") from None
        return []
    if strict and rows and "time_s" not in rows[0]:
        raise InputError(f"{results_csv}: no time_s column; not a results.csv of irstd-bench train")
    times = []
    for row in rows:
        try:
            times.append(float(row.get("time_s") or "nan"))
        except ValueError:
            times.append(float("nan"))
    return [t for t in times if math.isfinite(t)]


def probe_from_run(
    config_key: str, results_csv: Path, wall_s: float, returncode: int | None, concurrency: int
) -> Probe:
    """A :class:`Probe` from a probe run's ``results.csv`` and its wall time."""
    times = read_epoch_times(results_csv)
    if not times:
        return Probe(config_key, 0, None, None, wall_s, returncode, concurrency)
    return Probe(config_key, len(times), times[-1], max(0.0, wall_s - sum(times)), wall_s, returncode, concurrency)


@dataclass(frozen=True)
class Scheduled:
    """A run of the plan with its epochs and the estimate they came from."""

    unit: RunUnit
    epochs: int
    full_epochs: int
    estimated_epoch_s: float
    estimated_s: float


@dataclass(frozen=True)
class Dropped:
    unit: RunUnit
    reason: str


def full_epochs(unit: RunUnit, default_epochs: int) -> int:
    """The recipe's full schedule in epochs (``default_epochs`` when the recipe does not set it)."""
    value = unit.recipe_train.get("epochs")
    return int(value) if isinstance(value, int | float) and value >= 1 else int(default_epochs)


def allocate(
    units: Sequence[RunUnit],
    probes: Mapping[str, Probe],
    *,
    window_s: float,
    default_epochs: int,
    min_epochs: int,
    max_epochs: int | None = None,
    memory_per_run_bytes: float | None = None,
    memory_total_bytes: float | None = None,
) -> tuple[list[Scheduled], list[Dropped]]:
    """Epochs of each run so that all of them, started together, end inside ``window_s``.

    Parameters
    ----------
    units : sequence of RunUnit
        Sorted by priority (the last is dropped first).
    probes : mapping
        ``config_key`` -> :class:`Probe`; a unit without a successful probe is dropped.
    window_s : float
        Seconds from the start of the trainings to their deadline.
    default_epochs : int
        Full schedule of runs whose recipe sets none (the engine's default).
    min_epochs, max_epochs : int
        Fewest epochs worth running; cap on every run.
    memory_per_run_bytes, memory_total_bytes : float, optional
        Device memory one run took during the probe and the device's total: runs are dropped
        until ``N x memory_per_run_bytes <= MEMORY_SAFETY x memory_total_bytes``.

    Returns
    -------
    scheduled : list of Scheduled
        In priority order.
    dropped : list of Dropped
    """
    dropped: list[Dropped] = []
    active: list[RunUnit] = []
    for unit in units:
        probe = probes.get(unit.config_key)
        if probe is None or not probe.ok:
            reason = "timing probe finished no epoch"
            if probe is not None:
                reason += f" in {probe.wall_s:.0f} s (exit code {probe.returncode})"
            dropped.append(Dropped(unit, reason))
        else:
            active.append(unit)
    if memory_per_run_bytes and memory_total_bytes:
        fits = max(1, int(MEMORY_SAFETY * memory_total_bytes // memory_per_run_bytes))
        while len(active) > fits:
            unit = active.pop()
            dropped.append(
                Dropped(unit, f"device memory: {fits} runs fit at {memory_per_run_bytes / 2**30:.1f} GiB each")
            )
    while active:
        scheduled, short = _epochs(active, probes, window_s, default_epochs, max_epochs, min_epochs)
        if not short:
            return scheduled, dropped
        last = active.pop()
        who = short[0]
        if who.unit is last:
            reason = f"time budget: {who.epochs} epochs fit (< {min_epochs})"
        else:
            reason = (f"time budget: gives way to {who.unit.run_id}, which would get {who.epochs} epochs "
                      f"(< {min_epochs}) with {len(active) + 1} runs at once")
        dropped.append(Dropped(last, reason))
    return [], dropped


def _epochs(active, probes, window_s, default_epochs, max_epochs, min_epochs):
    """Epochs of each active run when all run at once; the runs below ``min_epochs``."""
    scheduled, short = [], []
    for unit in active:
        probe = probes[unit.config_key]
        load = max(1.0, len(active) / max(1, probe.concurrency))
        epoch_s = probe.epoch_s * load
        available = WINDOW_SAFETY * window_s - (probe.startup_s or 0.0)
        full = full_epochs(unit, default_epochs)
        epochs = max(0, math.floor(available / epoch_s)) if available > 0 else 0
        epochs = min(epochs, full, max_epochs or full)
        item = Scheduled(unit, epochs, full, epoch_s, (probe.startup_s or 0.0) + epochs * epoch_s)
        scheduled.append(item)
        if epochs < min_epochs:
            short.append(item)
    return scheduled, short


def scaled_warmup(train: Mapping[str, object], defaults: Mapping[str, object], epochs: int, full: int) -> dict:
    """Warm-up settings of a schedule compressed from ``full`` to ``epochs`` epochs.

    Every length counted in epochs or iterations shrinks by ``epochs / full`` so the schedule
    keeps its shape (a 1000-iteration warm-up of a 300-epoch recipe would fill a 30-epoch run).
    Returns only the fields that change (``{}`` for the full schedule).
    """
    if epochs >= full:
        return {}
    factor = epochs / full
    out = {}
    for name in ("warmup_epochs", "warmup_iters"):
        value = train.get(name, defaults.get(name))
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            scaled = value * factor
            out[name] = round(scaled) if name == "warmup_iters" else round(scaled, 3)
    return out
