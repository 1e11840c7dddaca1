"""The run folder: its file names, creating or replacing it, ``args.json``, ``results.csv``, clean-up.

A new run writes ``args.json``, ``results.csv``, ``last.pt`` and ``best.pt`` (and the manifest
listing them) into its folder: never over a user's files, and over an earlier run only with
``--force`` (:func:`check_new_run_folder`). A run that fails before its first checkpoint leaves
nothing behind (:func:`remove_unfinished_run`). Checkpoint contents are :mod:`.checkpoint`'s.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

from irstd_bench._io import write_text_atomic
from irstd_bench._outputs import (
    MANIFEST_NAME,
    check_folder_replaceable,
    missing_ancestors,
    remove_empty,
)
from irstd_bench.errors import InputError

from .config import LAST_NAME

BEST_NAME, CSV_NAME, ARGS_NAME = "best.pt", "results.csv", "args.json"


def check_new_run_folder(out: Path, *, force: bool) -> bool:
    """Refuse ``out`` for a new run unless it may be written; ``True`` when an earlier run is to be replaced.

    An earlier run (its manifest lists every file) is replaced only with ``force``; a folder
    holding anything else is refused (:func:`irstd_bench._outputs.check_folder_replaceable`).
    """
    if (out / LAST_NAME).exists() and not force:
        raise InputError(
            f"--out {out}: already holds a run ({LAST_NAME}); use --resume {out}, --force or another --out"
        )
    check_folder_replaceable(out, force=force)
    return out.is_dir() and any(out.iterdir())


def open_run_folder(out: Path, *, replace_earlier: bool) -> list[Path]:
    """Remove the earlier run in ``out`` when asked, create ``out``; the folders created, deepest first."""
    if replace_earlier:
        # Checked again just before deleting: a file added since the first check must not go.
        check_folder_replaceable(out, force=True)
        shutil.rmtree(out)
    return make_run_folder(out)


def make_run_folder(out: Path) -> list[Path]:
    """Create the run folder (and parents); return the folders created, deepest first."""
    created = ([out.absolute()] if not out.exists() else []) + missing_ancestors(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the run folder ({exc.strerror or exc})") from None
    return created


def remove_unfinished_run(out: Path, created: list[Path]) -> None:
    """Remove what a new run wrote before its first checkpoint, and the folders it created."""
    for name in (ARGS_NAME, CSV_NAME, MANIFEST_NAME):
        (out / name).unlink(missing_ok=True)
    remove_empty(created)


def write_args(out: Path, info: dict) -> None:
    """``args.json``: the run's settings and what was resolved from them (JSON-safe, indented)."""
    write_text_atomic(out / ARGS_NAME, json.dumps(info, indent=2) + "\n")


def results_row(epoch: int, lr, losses: dict, metrics: dict, seconds: float, cpu_seconds: float | None = None) -> dict:
    """One ``results.csv`` row: ``epoch`` (1-based), ``lr``, ``train/<term>``, ``val/<metric>``, ``time_s``, ``cpu_s``.

    ``time_s`` is the epoch's wall time (validation included when it ran), ``cpu_s`` the CPU time
    of this process in it (all threads): on a shared machine the wall time grows with the load,
    the CPU time much less.
    """
    row = {"epoch": epoch, "lr": lr}
    row.update({f"train/{k}": v for k, v in losses.items()})
    row.update({f"val/{k}": v for k, v in metrics.items()})
    row["time_s"] = seconds
    if cpu_seconds is not None:
        row["cpu_s"] = cpu_seconds
    return row


def write_results_csv(out: Path, history: list[dict]) -> None:
    """``results.csv`` from the per-epoch rows (:func:`csv_text`)."""
    write_text_atomic(out / CSV_NAME, csv_text(history))


def csv_text(history: list[dict]) -> str:
    """``results.csv``: one row per epoch, columns in order of first appearance."""
    columns: list[str] = []
    for row in history:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return buffer.getvalue()


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


