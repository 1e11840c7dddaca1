"""Paired comparison of runs on the same images: is a difference in F1 or AP50 more than chance?

>>> from irstd_bench.compare import compare_runs                         # doctest: +SKIP
>>> result = compare_runs(["eflnet.json", "pstnn.json"])                  # doctest: +SKIP
>>> print(result.format_table())                                          # doctest: +SKIP

Each pair is resampled together: one bootstrap resample draws images with replacement, and both
runs are scored on those same images (:func:`irstd_bench.evaluate.metric_samples` with one
weight matrix), so what the images have in common (an easy or a hard image) cancels out of the
difference. For each pair ``(A, B)`` and metric: the difference ``B - A`` of the split itself,
the 95 % percentile interval of the resampled differences, and the two-sided p-value

    p = min(1, 2 * min((1 + #{d <= 0}) / (R + 1), (1 + #{d >= 0}) / (R + 1)))

over the ``R`` resampled differences ``d`` (:func:`irstd_bench.evaluate.paired_difference`): the
smallest level at which the interval of the difference excludes 0. Identical runs give 1; a run
better on every resample ``2 / (R + 1)``, the smallest value ``R`` resamples can show.

Runs must come from the same dataset, split and matcher, and hold the same images with the same
ground truth; anything else is refused with one line. AP50 needs the AP candidates that results
files carry since the bootstrap was added (``per_image``); files of older evaluators are compared
on F1 only (from their per-image CSV), with a note.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from irstd_bench import __version__
from irstd_bench._markdown import one_line
from irstd_bench.errors import InputError
from irstd_bench.evaluate import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    BootstrapSettings,
    PairedDifference,
    align_images,
    metric_samples,
    paired_difference,
    percentile_interval,
    resample_counts,
)
from irstd_bench.report._load import RunResult, as_run, load_per_image
from irstd_bench.report._seeds import run_label

COMPARE_SCHEMA = "irstd-bench/compare"
#: Metrics compared, with the label the table prints.
COMPARED_METRICS = {"f1": "F1", "ap50": "AP50"}
#: The p-value, as the output states it.
P_VALUE_DEFINITION = (
    "two-sided: min(1, 2 * min((1 + #{d <= 0}) / (R + 1), (1 + #{d >= 0}) / (R + 1))) over the R paired "
    "resampled differences d = B - A"
)
#: Below this p-value a difference is called significant (the table's mark).
ALPHA = 0.05


@dataclass(frozen=True)
class PairRow:
    """One metric of one pair: ``b - a`` over the same resampled images."""

    a: str
    b: str
    metric: str
    a_value: float | None
    b_value: float | None
    paired: PairedDifference

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "metric": self.metric,
            "a_value": self.a_value,
            "b_value": self.b_value,
            "difference": self.paired.difference,
            "ci95": self.paired.interval,
            "p_value": self.paired.p_value,
            "resamples": self.paired.resamples,
        }


@dataclass
class Comparison:
    """What :func:`compare_runs` found: each run's values and intervals, and each pair's test."""

    runs: list[RunResult]
    labels: list[str]
    images: int
    settings: BootstrapSettings
    intervals: list[dict[str, list[float] | None]]
    pairs: list[PairRow]
    notes: list[str] = field(default_factory=list)

    def to_dict(self, command: str | None = None) -> dict:
        """The ``compare --out`` JSON (``docs/CONTRACTS.md``)."""
        first = self.runs[0]
        return {
            "schema": COMPARE_SCHEMA,
            "schema_version": 1,
            "dataset": first.dataset,
            "split": first.split,
            "matcher": first.matcher,
            "images": self.images,
            "bootstrap": self.settings.to_dict(),
            "difference": "B - A",
            "p_value": P_VALUE_DEFINITION,
            "runs": [
                {
                    "label": label,
                    "source": run.source,
                    "method": run.method,
                    **{m: run.metrics.get(m) for m in COMPARED_METRICS},
                    "ci95": ci,
                }
                for run, label, ci in zip(self.runs, self.labels, self.intervals, strict=True)
            ],
            "pairs": [p.to_dict() for p in self.pairs],
            "notes": list(self.notes),
            "command": command,
            "irstd_bench_version": __version__,
        }

    def format_table(self) -> str:
        """The plain-text table ``compare`` prints."""
        first = self.runs[0]
        s = self.settings
        head = (
            f"Paired bootstrap over {self.images} images ({first.dataset_label} {first.split}, {first.matcher}; "
            f"{s.resamples} resamples, seed {s.seed}); difference = B - A"
        )
        head = one_line(head)  # names from the files: a line break or escape sequence stays text
        rows = [("A", "B", "metric", "A", "B", "B - A", "95% interval", "p")]
        for p in self.pairs:
            d = p.paired
            rows.append(
                (
                    one_line(p.a),
                    one_line(p.b),
                    COMPARED_METRICS[p.metric],
                    _num(p.a_value),
                    _num(p.b_value),
                    _num(d.difference, signed=True),
                    "-" if d.interval is None else f"[{d.interval[0]:+.3f}, {d.interval[1]:+.3f}]",
                    "-" if d.p_value is None else f"{d.p_value:.3f}" + ("*" if d.p_value < ALPHA else ""),
                )
            )
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        lines = [head, "-" * len(head)]
        for r in rows:
            cells = [r[k].ljust(widths[k]) if k < 3 else r[k].rjust(widths[k]) for k in range(len(r))]
            lines.append("  ".join(cells).rstrip())
        lines.append(f"*: p < {ALPHA:g}. p: {P_VALUE_DEFINITION}.")
        lines += [f"note: {one_line(n)}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _labels(runs: Sequence[RunResult]) -> list[str]:
    """How the table names each run: its method (and seed); the file name where two share it."""
    labels = [run_label(r) for r in runs]
    return [
        f"{label} ({run.source})" if labels.count(label) > 1 else label
        for label, run in zip(labels, runs, strict=True)
    ]


def check_same_split(runs: Sequence[RunResult]) -> None:
    """Refuse runs of another dataset, split or matcher than the first (one line, both files)."""
    first = runs[0]
    for run in runs[1:]:
        for what in ("dataset_key", "split", "matcher"):
            a, b = getattr(first, what), getattr(run, what)
            if a != b:
                name = what.removesuffix("_key")
                raise InputError(
                    f"{first.source} and {run.source}: scored with {name} {a!r} and {b!r}; "
                    f"a paired comparison needs one {name}"
                )


def compare_runs(
    items: Iterable[RunResult | Mapping | str | Path],
    *,
    all_pairs: bool = False,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Comparison:
    """Paired bootstrap of the differences in F1 and AP50 between runs on the same images.

    Parameters
    ----------
    items : iterable
        Two or more results (files, parsed dicts or runs); the first is the reference.
    all_pairs : bool
        Every pair ``(A, B)`` in input order, instead of each run against the first.
    resamples, seed : int
        The bootstrap (:class:`~irstd_bench.evaluate.BootstrapSettings`; ``resamples`` >= 1).

    Raises
    ------
    InputError
        Fewer than two runs, different datasets, splits, matchers or images, a run without
        per-image data, or nothing to compare (no images; F1 and AP50 undefined).
    """
    runs = [as_run(item, i) for i, item in enumerate(items)]
    if len(runs) < 2:
        raise InputError("compare needs two or more results files")
    if resamples < 1:
        raise InputError(f"--bootstrap {resamples}: compare needs at least one resample")
    settings = BootstrapSettings(resamples, seed)
    check_same_split(runs)
    data = []
    for run in runs:
        per_image = load_per_image(run)
        if per_image is None:
            raise InputError(
                f"{run.source}: no per-image data (neither 'per_image' in the results nor its per-image CSV); "
                "score it again with irstd-bench eval"
            )
        data.append(per_image)
    labels = _labels(runs)
    aligned = align_images(list(zip([r.source for r in runs], data, strict=True)))
    weights = resample_counts(len(aligned[0]), resamples, seed)
    samples = [metric_samples(d, weights, tuple(COMPARED_METRICS)) for d in aligned]
    notes = []
    for label, run, d in zip(labels, runs, aligned, strict=True):
        if run.metrics.get("ap50") is None:
            why = run.undefined.get("ap50") or "the results have no AP50"
            notes.append(f"{label}: AP50 not compared ({why})")
        elif not d.has_ap50:
            notes.append(
                f"{label}: AP50 not compared (its results have no AP candidates: scored by an evaluator older "
                "than the bootstrap; score it again with irstd-bench eval)"
            )
    intervals = [{m: percentile_interval(s[m]) if m in s else None for m in COMPARED_METRICS} for s in samples]
    pairs = itertools.combinations(range(len(runs)), 2) if all_pairs else ((0, j) for j in range(1, len(runs)))
    rows = []
    for i, j in pairs:
        for metric in COMPARED_METRICS:
            a, b = runs[i].metrics.get(metric), runs[j].metrics.get(metric)
            if a is None or b is None or metric not in samples[i] or metric not in samples[j]:
                continue  # undefined for a run, or no per-image data of it: in the notes
            observed = b - a
            paired = paired_difference(samples[i][metric], samples[j][metric], observed)
            rows.append(PairRow(labels[i], labels[j], metric, a, b, paired))
    if not rows:  # no images, or F1 and AP50 undefined for a run: a table without a row says nothing
        raise InputError(
            f"{runs[0].source} and {runs[-1].source}: nothing to compare over {len(aligned[0])} images "
            f"(F1 and AP50 undefined for a run{': ' + '; '.join(notes) if notes else ''})"
        )
    return Comparison(runs, labels, len(aligned[0]), settings, intervals, rows, notes)


def comparison_json(comparison: Comparison, command: str | None = None) -> str:
    """The text of the ``--out`` file."""
    return json.dumps(comparison.to_dict(command), indent=2, allow_nan=False) + "\n"


__all__ = ["ALPHA", "COMPARED_METRICS", "COMPARE_SCHEMA", "Comparison", "PairRow", "compare_runs", "comparison_json"]
