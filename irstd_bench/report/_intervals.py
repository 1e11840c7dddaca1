"""Bootstrap intervals and significance marks in report tables.

For each dataset, one set of resamples of its images (:func:`irstd_bench.evaluate.resample_counts`,
the report's seed) serves every run on it, so every comparison in a column is paired:

- a cell's interval is the 95 % percentile interval of the row's value over the resamples; for a
  method with several seeds, the row's value is the mean over its seeds, and so is each
  resample's (the images are resampled jointly across the seeds' results): the interval of the
  seed-mean over images, next to the ± std over seeds, which is the spread over training runs;
- a cell is marked (:data:`INDISTINCT_MARK`) when the paired difference between its row and the
  column's best row is not significant at 5 % (:func:`irstd_bench.evaluate.paired_difference`).

A run's per-image numbers come from its results (``per_image``) or, for files of older
evaluators, its per-image CSV (P, R, F1 only): cells without them get no interval and no mark.
Runs of a dataset whose image sets differ get none either, with a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from irstd_bench.errors import InputError
from irstd_bench.evaluate import (
    INTERVAL_METRICS,
    BootstrapSettings,
    align_images,
    metric_samples,
    paired_difference,
    percentile_interval,
    resample_counts,
)
from irstd_bench.report._load import RunResult, load_per_image, unique_in_order
from irstd_bench.report._seeds import run_label

#: Level of the marks: a difference to the best row with p >= ALPHA is "not significant".
ALPHA = 0.05
#: Mark of a cell not significantly different from its column's best: Markdown/HTML/CSV, LaTeX, ASCII.
INDISTINCT_MARK = " \u2248"
LATEX_INDISTINCT_MARK = " $\\approx$"
ASCII_INDISTINCT_MARK = " ~"


@dataclass
class Resampled:
    """Every run's metrics on its dataset's resamples: ``(run label, dataset key) -> {metric: (B,)}``;
    ``runs`` lists every run's key, with per-image data or not."""

    settings: BootstrapSettings
    runs: set[tuple[str, str]] = field(default_factory=set)
    samples: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def resample_runs(runs: Sequence[RunResult], settings: BootstrapSettings) -> Resampled:
    """Resample the images of each dataset once and score every run with per-image data on them."""
    out = Resampled(settings, {(run_label(r), r.dataset_key) for r in runs})
    if not settings.resamples:
        return out
    for key in unique_in_order(r.dataset_key for r in runs):
        group = [(r, load_per_image(r)) for r in runs if r.dataset_key == key]
        usable = [(r, d) for r, d in group if d is not None]
        if not usable:
            continue
        try:
            aligned = align_images([(r.source, d) for r, d in usable])
        except InputError as exc:
            out.notes.append(f"{usable[0][0].dataset_label}: no intervals ({exc})")
            continue
        weights = resample_counts(len(aligned[0]), settings.resamples, settings.seed)
        for (run, _), data in zip(usable, aligned, strict=True):
            out.samples[(run_label(run), key)] = metric_samples(data, weights)
    return out


def attach_intervals(table, resampled: Resampled, *, show: bool = True) -> None:
    """Fill ``table.intervals``, ``table.p_vs_best`` and ``table.indistinct`` from ``resampled``
    (rows are ``table.members``' runs) and say in the caption what they are."""
    if table.members is None or not resampled.samples:
        return
    n_rows, n_cols = len(table.rows), len(table.columns)
    table.intervals = [[None] * n_cols for _ in range(n_rows)]
    table.p_vs_best = [[None] * n_cols for _ in range(n_rows)]
    table.show_intervals = show
    marks = set()
    for j, column in enumerate(table.columns):
        if column.metric not in INTERVAL_METRICS:
            continue
        row_samples = {}
        for i, labels in enumerate(table.members):
            here = [label for label in labels if (label, column.group) in resampled.runs]
            parts = [resampled.samples.get((label, column.group), {}).get(column.metric) for label in here]
            if not parts or any(p is None for p in parts) or table.values[i][j] is None:
                continue
            row_samples[i] = np.mean(parts, axis=0)  # several seeds: the seed-mean of each resample
            table.intervals[i][j] = percentile_interval(row_samples[i])
        best = sorted(table.best_rows(j))
        if not best or best[0] not in row_samples:
            continue
        for i, values in row_samples.items():
            if i in best or i in table.unranked:
                continue
            p = paired_difference(row_samples[best[0]], values).p_value
            table.p_vs_best[i][j] = p
            if p is not None and p >= ALPHA:
                marks.add((i, j))
    table.indistinct = frozenset(marks)
    table.caption = table.caption.removesuffix(".") + ". " + interval_note(resampled.settings, show) + "."


def interval_note(settings: BootstrapSettings, show: bool) -> str:
    """What the intervals and marks of a table are (its caption says it)."""
    shown = (
        f"[lo, hi]: 95 % interval over images (bootstrap of the test images, {settings.resamples} resamples, "
        f"seed {settings.seed}, percentile; for several seeds, the interval of the seed mean, images resampled "
        "jointly across the seeds' results), not the spread over seeds (± std)"
    )
    mark = (
        f"{INDISTINCT_MARK.strip()}: not significantly different from the column's best (bold) row at 5 % "
        "(paired bootstrap over the same images, two-sided)"
    )
    return (shown + "; " if show else "") + mark
