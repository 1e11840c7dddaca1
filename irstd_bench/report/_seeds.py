"""Runs of one method with several seeds: which seed a run is, and mean ± std over seeds.

A run's seed is ``config["seed"]`` (``irstd-bench eval --config seed=1``) or, failing that, a
method name ending in ``(seed N)`` (``EFLNet-n (seed 1)``, what ``reports/`` scripts write).
Runs of one method on one dataset that differ only in the seed are one row of the main table:
the mean over seeds ± the sample standard deviation (``ddof = 1``); the detailed table lists
every seed.

The aggregation is a pandas ``groupby`` over a long table with one row per run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

#: A method name that names its seed: ``<method> (seed <N>)``.
SEED_SUFFIX = re.compile(r"^(?P<method>.*?)\s*\(seed\s+(?P<seed>-?\d+)\)\s*$")
#: Standard deviation over seeds: the sample one, as papers report mean ± std over runs.
STD_DDOF = 1


def run_seed(run) -> int | None:
    """The seed of a run (``config["seed"]``, else ``(seed N)`` in its method name), or ``None``."""
    value = run.config.get("seed")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = SEED_SUFFIX.match(run.method)
    return int(match.group("seed")) if match else None


def base_method(run) -> str:
    """The method name without its ``(seed N)`` suffix."""
    match = SEED_SUFFIX.match(run.method)
    return match.group("method") if match else run.method


def run_label(run) -> str:
    """How tables and figures name one run: its method, with its seed when the seed is only in config."""
    seed = run_seed(run)
    if seed is None or SEED_SUFFIX.match(run.method):
        return run.method
    return f"{run.method} (seed {seed})"


@dataclass(frozen=True)
class MethodSummary:
    """One method on one dataset: ``mean`` and ``std`` of each metric over its runs.

    ``std`` is ``None`` for a single run (nothing to spread); ``seeds`` lists the runs' seeds.
    """

    method: str
    dataset_key: str
    runs: int
    seeds: tuple[int | None, ...]
    mean: dict[str, float | None]
    std: dict[str, float | None]


def summarise_methods(runs: Sequence, metrics: Sequence[str]) -> list[MethodSummary]:
    """Mean and std of ``metrics`` per (base method, dataset), in order of first appearance."""
    rows = [
        {"method": base_method(r), "dataset_key": r.dataset_key, "seed": run_seed(r), "order": i}
        | {m: r.metrics.get(m) for m in metrics}
        for i, r in enumerate(runs)
    ]
    frame = pd.DataFrame(rows, columns=["method", "dataset_key", "seed", "order", *metrics])
    frame[list(metrics)] = frame[list(metrics)].astype("float64")
    grouped = frame.groupby(["method", "dataset_key"], sort=False)
    means, stds, counts = grouped[list(metrics)].mean(), grouped[list(metrics)].std(ddof=STD_DDOF), grouped.size()
    first = grouped["order"].min().sort_values()
    out = []
    for key in first.index:
        n = int(counts[key])
        members = frame[(frame["method"] == key[0]) & (frame["dataset_key"] == key[1])]
        out.append(
            MethodSummary(
                method=key[0],
                dataset_key=key[1],
                runs=n,
                seeds=tuple(None if pd.isna(s) else int(s) for s in members["seed"]),
                mean={m: _value(means.at[key, m]) for m in metrics},
                std={m: _value(stds.at[key, m]) if n > 1 else None for m in metrics},
            )
        )
    return out


def _value(x) -> float | None:
    return None if pd.isna(x) else float(x)
