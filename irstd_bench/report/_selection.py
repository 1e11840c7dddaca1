"""Which methods a crowded figure shows: the best few by the report's metric, plus those named.

A report of 16 methods draws 16 PR curves on one axes and a 17-column image grid: nothing can be
read. Figures therefore show, by default, the :data:`DEFAULT_BEST` best methods by the report's
metric (``--metric``, F1 at the val threshold by default; the mean over seeds and datasets), plus
every method named with ``--methods``; ``--methods all`` shows every method. The tables always
list every method. A method's seeds are all drawn in the curves; the image grid shows its first
seed only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from irstd_bench.errors import InputError
from irstd_bench.report._load import RunResult, unique_in_order
from irstd_bench.report._seeds import base_method, run_label

#: Methods a figure shows by default.
DEFAULT_BEST = 6
#: ``--methods`` value that selects every method.
ALL = "all"


@dataclass(frozen=True)
class FigureSelection:
    """The runs the figures draw and how they were chosen (for titles and captions)."""

    runs: list[RunResult]
    methods: list[str]
    total: int
    metric_label: str
    named: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return len(self.methods) == self.total

    def subtitle(self) -> str:
        """``6 of 16 methods, best by F1 (val thr.)`` or ``16 methods``."""
        if self.complete:
            return f"{self.total} method{'s' * (self.total != 1)}"
        extra = f" + {', '.join(self.named)}" if self.named else ""
        return f"{len(self.methods)} of {self.total} methods, best by {self.metric_label}{extra}"

    def caption(self) -> str:
        """What a figure caption says about the selection."""
        if self.complete:
            return ""
        return (
            f" Shown: {', '.join(self.methods)} ({self.subtitle()}; every method is in the tables; "
            "irstd-bench report --methods all draws them all)."
        )


def _score(runs: Sequence[RunResult], metric: str, lower_is_better: bool) -> float:
    values = [r.metrics.get(metric) for r in runs]
    values = [v for v in values if v is not None]
    if not values:
        return math.inf
    mean = sum(values) / len(values)
    return mean if lower_is_better else -mean


def select_methods(
    runs: Sequence[RunResult],
    metric: str,
    metric_label: str,
    *,
    lower_is_better: bool = False,
    best: int = DEFAULT_BEST,
    methods: Sequence[str] = (),
) -> FigureSelection:
    """The runs of the ``best`` methods by ``metric`` (ties: input order) plus those of ``methods``
    (base method names or run labels; ``["all"]``: every run). An unknown name is an
    :class:`InputError` listing the known ones."""
    names = unique_in_order(base_method(r) for r in runs)
    if best < 0:
        raise InputError(f"--best {best}: must be 0 or more")
    if ALL in methods:
        return FigureSelection(list(runs), names, len(names), metric_label)
    known = set(names) | {run_label(r) for r in runs}
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise InputError(f"--methods {unknown[0]!r}: no such method (known: {', '.join(names)}, or 'all')")
    ranked = sorted(
        names, key=lambda n: (_score([r for r in runs if base_method(r) == n], metric, lower_is_better), names.index(n))
    )
    chosen = set(ranked[:best])
    named = [m for m in methods if m not in chosen]
    wanted = chosen | {m for m in methods}
    picked = [r for r in runs if base_method(r) in wanted or run_label(r) in wanted]  # in input order
    shown = unique_in_order(base_method(r) for r in picked)
    return FigureSelection(picked, shown, len(names), metric_label, tuple(unique_in_order(named)))


def first_seeds(runs: Sequence[RunResult]) -> list[RunResult]:
    """One run per method and dataset: the first given (the image grid's columns)."""
    seen, out = set(), []
    for run in runs:
        key = (base_method(run), run.dataset_key)
        if key not in seen:
            seen.add(key)
            out.append(run)
    return out
