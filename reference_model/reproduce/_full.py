"""Full schedules under a named protocol, resumable: ``irstd-bench reproduce --protocol NAME``.

The budgeted reproduction (:mod:`._run`) compresses every recipe to the epochs a GPU command can
hold. Under a protocol (:mod:`reference_model.protocol`) every run keeps its recipe's full
schedule instead, and the trainings are a queue: at most ``parallel`` at a time, in the plan's
priority order, until the budget's training deadline. A run stopped there keeps its last
checkpoint (written after every epoch); ``reproduce --protocol NAME --resume --out SAME`` starts
again where each run stopped (``train --resume``), starts the runs not begun, and leaves the
finished ones alone. Each call then predicts and scores the runs that have finished their full
schedule (predictions are kept and reused) and rewrites the report with what is done and what
remains.

A run folder found under ``OUT/work/runs`` is continued only when it is an irstd-bench training
(its manifest) of the same model, recipe, seed, protocol, data and split family as the plan's unit
(its ``args.json``): anything else is refused with its path, never trained over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from irstd_bench._io import read_json
from irstd_bench._outputs import read_manifest
from irstd_bench.errors import InputError
from reference_model.recipe import NO_RECIPE

from ._budget import read_epoch_times
from ._commands import command_args, shell_line
from ._jobs import Job, run_jobs
from ._plan import RunSpec, RunUnit

#: Validation points of a full-schedule run (``--val-every`` = epochs / this, at least 1).
FULL_VALIDATIONS_PER_RUN = 30
#: ``args.json`` fields that must match the plan's unit for a run folder to be continued.
MATCHED_ARGS = ("model", "recipe", "seed", "protocol", "split", "dataset")

#: The EFLNet paper's NUAA-SIRST comparison on a CPU (issue 21), lower priority first, in order of
#: the CPU hours measured for each full schedule (nuaa-sirst RUNS.md, one thread): ACM with 3 seeds
#: (0.7 h each), EFLNet-n (150 of its recipe's 300 epochs: 2.6 h before its 2x speed-up; a later
#: plan may continue it to 300), MSHNet (13 h), AGPCNet (26 h), ALCNet (about 71 h per seed: its
#: local contrast rolls a 64-channel full-resolution map 32 times per step), ISNet (104 h), DNANet
#: (1500 epochs: 189 h), and last MDvsFA, whose step at the authors' batch passed 20 GB resident on
#: the 24-GB machine and was killed: beside another training it would take that one down with it.
PROTOCOL_PLAN: tuple[RunSpec, ...] = (
    RunSpec("acm", seeds=(0, 1, 2), priority=0, extra_seed_priority=1),
    RunSpec("eflnet-n", "authors", priority=2, epochs=150),
    RunSpec("mshnet", priority=5),
    RunSpec("agpcnet", priority=6),
    RunSpec("alcnet", seeds=(0, 1, 2), priority=7, extra_seed_priority=10),
    RunSpec("isnet", priority=11),
    RunSpec("dnanet", priority=12),
    RunSpec("mdvsfa", priority=13),
)


@dataclass(frozen=True)
class RunState:
    """Where one planned run stands: epochs done of its full schedule, and whether it has a checkpoint."""

    epochs_done: int
    full_epochs: int
    resumable: bool

    @property
    def finished(self) -> bool:
        return self.epochs_done >= self.full_epochs


def full_epochs(unit: RunUnit, defaults: dict, cap: int | None = None) -> int:
    """The recipe's full schedule (the engine's default epochs without a recipe), at most ``cap``."""
    epochs = int(unit.recipe_train.get("epochs", defaults.get("epochs", 100)))
    return epochs if cap is None else min(epochs, int(cap))


def run_state(folder: Path, unit: RunUnit, epochs: int, expected: dict) -> RunState:
    """The state of ``unit``'s run folder; :class:`InputError` if it is not that run.

    ``expected`` holds the ``args.json`` values of :data:`MATCHED_ARGS` plus ``root`` (resolved).
    """
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        # absent, or an empty folder left by a run killed before it wrote anything: start it
        return RunState(0, epochs, False)
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is None or manifest.get("command") != "train":
        raise InputError(f"{folder}: not an irstd-bench training folder; move it away to let reproduce run there")
    args = read_json(folder / "args.json")
    if not isinstance(args, dict):
        raise InputError(f"{folder / 'args.json'}: not a run's settings (a JSON object), got {type(args).__name__}")
    for name, value in expected.items():
        found = args.get(name)
        if name == "root" and found is not None:
            found = str(Path(found).resolve())
        if found != value:
            raise InputError(
                f"{folder}: a run of {name} {found!r}, the plan's is {value!r} (another run: not continued)"
            )
    done = len(read_epoch_times(folder / "results.csv", strict=True))
    return RunState(done, epochs, (folder / "last.pt").is_file())


def check_runs(work: Path, units: list[RunUnit], expected: Callable[[RunUnit], dict], epochs: Callable[[RunUnit], int],
               ) -> None:
    """``--resume``: check every planned run folder under ``work/runs`` before anything is replaced.

    Each must be absent, empty, or the same run (:func:`run_state`: our manifest, its
    ``args.json``, a readable ``results.csv``) with a checkpoint that loads
    (:func:`~reference_model.engine.checkpoint.load_checkpoint`). The first problem is an
    :class:`InputError` naming the file: a resume never starts on a folder it would fail on later.
    """
    from reference_model.engine.checkpoint import load_checkpoint

    for unit in units:
        folder = work / "runs" / unit.run_id
        if run_state(folder, unit, epochs(unit), expected(unit)).resumable:
            load_checkpoint(folder / "last.pt")


def expected_args(session, unit: RunUnit) -> dict:
    """The ``args.json`` values a run folder of ``unit`` must hold to be continued."""
    return unit_args(unit, session.config.protocol, session.root, session.dataset, session.family)


def unit_args(unit: RunUnit, protocol: str | None, root: Path, dataset: str, family: str) -> dict:
    """:func:`expected_args` from the settings themselves (before a session exists)."""
    return {"model": unit.model, "recipe": unit.recipe, "seed": unit.seed, "protocol": protocol,
            "split": family, "dataset": dataset, "root": str(Path(root).resolve())}


def train_job(session, unit: RunUnit, state: RunState, threads: int) -> tuple[Job, str]:
    """The command continuing (``train --resume``) or starting ``unit``'s run, and its shell line."""
    out = session.work / "runs" / unit.run_id
    if state.resumable:
        # --epochs: the full schedule (the same as the run's own unless --max-epochs changed between calls)
        settings = {"resume": str(out), "epochs": state.full_epochs, "threads": threads, "progress": False}
    else:
        settings = {
            "dataset": session.dataset, "root": str(session.root), "split": session.family, "model": unit.model,
            "recipe": unit.recipe or NO_RECIPE, "protocol": session.config.protocol, "epochs": state.full_epochs,
            "seed": unit.seed, "device": session.config.device, "out": str(out),
            "val_every": max(1, state.full_epochs // FULL_VALIDATIONS_PER_RUN), "workers": session.config.workers,
            "threads": threads, "progress": False, "deterministic": False, "resize_masks": True,
            **session.config.train_overrides,
        }
        if state.epochs_done == 0 and out.exists():
            settings["force"] = True  # our own run folder that died before its first checkpoint
    args, _ = command_args("train", settings)
    return Job(unit.run_id, tuple(args), session.work / "logs" / f"train_{unit.run_id}.log"), shell_line(args)


def train_queue(session, units: list[RunUnit], defaults: dict, *, deadline: float, parallel: int,
                threads: int) -> dict[str, RunState]:
    """Continue or start every unfinished run until ``deadline``; the state of every unit after it."""
    def state_of(unit: RunUnit) -> RunState:
        epochs = full_epochs(unit, defaults, session.config.phases.max_epochs)
        return run_state(session.work / "runs" / unit.run_id, unit, epochs, expected_args(session, unit))

    states = {}
    jobs = []
    for unit in units:
        state = state_of(unit)
        states[unit.run_id] = state
        if state.finished:
            session.log(f"{unit.run_id}: finished earlier ({state.epochs_done}/{state.full_epochs} epochs)")
            continue
        job, line = train_job(session, unit, state, threads)
        session.record_command(line)
        jobs.append(job)
    if jobs and deadline > time.monotonic():
        session.log(f"train: {len(jobs)} runs to continue or start, {parallel} at a time, {threads} thread(s) each, "
                    f"{deadline - time.monotonic():.0f} s")
        run_jobs(jobs, deadline=deadline, max_parallel=parallel, threads=threads)
    return {unit.run_id: state_of(unit) for unit in units}
