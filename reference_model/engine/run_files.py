"""The run folder: its file names, claiming it, ``args.json``, ``results.csv``.

A new run writes ``args.json``, ``results.csv``, ``last.pt`` and ``best.pt`` (and the manifest
listing exactly them) into its folder, all first at its first checkpoint: never over a user's
files, and over an earlier run only with ``--force`` (:func:`run_folder`). A run that fails
or is killed before its first checkpoint leaves nothing a rerun has to ``--force``. Each file
is put in place through :class:`irstd_bench._outputs.OwnedFolder`, which replaces only what
this run (or the run it continues) wrote. Checkpoint contents are :mod:`.checkpoint`'s.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from irstd_bench._outputs import OwnedFolder, is_within
from irstd_bench.errors import InputError

from .config import LAST_NAME

BEST_NAME, CSV_NAME, ARGS_NAME = "best.pt", "results.csv", "args.json"
#: Command recorded in a run folder's manifest.
RUN_COMMAND = "train"


def run_folder(out: Path, *, force: bool, root: Path | None, resume: Path | None = None) -> OwnedFolder:
    """The run folder ``out``, checked now (nothing is created until :meth:`OwnedFolder.open`).

    A new run (or a resumed one given another ``--out``): ``out`` must be absent, empty, or
    (``force``) an earlier run every file of which its manifest lists
    (:func:`irstd_bench._outputs.check_folder_replaceable`); without ``force`` a folder with
    ``last.pt`` is refused with advice. It may not lie inside the dataset ``root`` nor hold it
    or the checkpoint being resumed. A run continued in its own folder (``out`` is the folder
    of ``resume``) writes only the files its manifest lists or that are new.
    """
    out = Path(out)
    if resume is not None and out.exists() and is_within(out, resume.parent) and is_within(resume.parent, out):
        return OwnedFolder.existing(out, RUN_COMMAND)
    inputs = [("dataset root", root), ("checkpoint being resumed", resume)]
    if (out / LAST_NAME).exists() and not force:
        raise InputError(
            f"--out {out}: already holds a run ({LAST_NAME}); use --resume {out}, --force or another --out"
        )
    return OwnedFolder.new(out, RUN_COMMAND, force=force, inputs=inputs)


def args_text(info: dict) -> str:
    """``args.json``: the run's settings and what was resolved from them (JSON-safe, indented)."""
    return json.dumps(info, indent=2) + "\n"


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


