"""Ablation tables: runs of one method family that differ in one setting (Tables II-VII style)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from irstd_bench.errors import InputError
from irstd_bench.report._load import RunResult, unique_in_order
from irstd_bench.report._tables import ABLATION_METRICS, Table, _grid, shown_metrics


def method_family(run: RunResult) -> str:
    """The method family a run belongs to, for ablations.

    ``config["family"]`` or ``config["model"]`` when the run has one, else the leading
    alphanumeric word of the method name (``EFLNet-n (lambda=3)`` -> ``EFLNet``).
    """
    for key in ("family", "model"):
        value = run.config.get(key)
        if isinstance(value, str) and value:
            return value
    match = re.match(r"[A-Za-z0-9]+", run.method)
    return match.group(0) if match else run.method


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sort_key(value: Any) -> tuple:
    if isinstance(value, bool):
        return (0, int(value), "")
    if isinstance(value, int | float):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def _frozen(config: dict[str, Any], without: str) -> tuple:
    """The other settings of a config, hashable (non-scalar values as canonical JSON)."""
    items = []
    for key, value in sorted(config.items()):
        if key in (without, "family", "model"):
            continue
        items.append((key, value if _is_scalar(value) else json.dumps(value, sort_keys=True, default=str)))
    return tuple(items)


def varying_keys(runs: Sequence[RunResult]) -> list[str]:
    """Config keys whose (scalar) value varies across runs of one family on one dataset."""
    keys: list[str] = []
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((method_family(run), run.dataset_key), []).append(run)
    for group in groups.values():
        for key in unique_in_order(k for r in group for k in r.config):
            if key in ("family", "model"):
                continue
            values = [r.config[key] for r in group if key in r.config and _is_scalar(r.config[key])]
            if len(unique_in_order(values)) > 1 and key not in keys:
                keys.append(key)
    return keys


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"


def ablation_tables(runs: Sequence[RunResult], group_by: str | None = None) -> list[Table]:
    """Ablation tables: one per varied setting, rows = its values, columns = P/R/F1/AP50 per dataset.

    Runs are grouped by method family; within a family, the runs compared in one table share
    every other config setting (they differ in one setting only). ``group_by`` names the setting;
    without it every setting that varies within a family on a dataset gets tables.

    Raises
    ------
    InputError
        ``group_by`` is given but no two runs of one family differ in it alone.
    """
    keys = [group_by] if group_by else varying_keys(runs)
    tables: list[Table] = []
    used_names: set[str] = set()
    for key in keys:
        families = unique_in_order(
            method_family(r) for r in runs if key in r.config and _is_scalar(r.config[key])
        )
        for family in families:
            members = [
                r
                for r in runs
                if method_family(r) == family and key in r.config and _is_scalar(r.config[key])
            ]
            partitions: dict[tuple, list[RunResult]] = {}
            for run in members:
                partitions.setdefault(_frozen(run.config, key), []).append(run)
            for fixed, part in partitions.items():
                values = sorted(unique_in_order(r.config[key] for r in part), key=_sort_key)
                if len(values) < 2:
                    continue
                tables.append(_ablation_table(part, key, family, fixed, values, used_names))
    if group_by and not tables:
        have = sorted({k for r in runs for k in r.config})
        raise InputError(
            f"--group-by {group_by}: no two runs of one method family differ only in {group_by!r} "
            f"(config keys in the inputs: {', '.join(have) or 'none'})"
        )
    return tables


def _ablation_table(
    part: list[RunResult], key: str, family: str, fixed: tuple, values: list[Any], used_names: set[str]
) -> Table:
    labels: dict[int, str] = {}
    taken: set[tuple[str, str]] = set()
    ordered = sorted(part, key=lambda r: _sort_key(r.config[key]))
    for run in ordered:
        label = _setting_text(run.config[key])
        if (label, run.dataset_key) in taken:
            label = f"{label} ({run.method})"
        taken.add((label, run.dataset_key))
        labels[id(run)] = label
    rows = unique_in_order(labels[id(r)] for r in ordered)
    metrics = shown_metrics(part, ABLATION_METRICS)
    fixed_text = ", ".join(f"{k}={_setting_text(v)}" for k, v in fixed)
    caption = f"Ablation of {key} ({family}" + (f"; fixed: {fixed_text})" if fixed_text else ")")
    name = f"ablation_{_slug(family)}_{_slug(key)}"
    base, n = name, 2
    while name in used_names:
        name, n = f"{base}_{n}", n + 1
    used_names.add(name)
    return _grid(part, rows, lambda r: labels[id(r)], metrics, name, caption, key)
