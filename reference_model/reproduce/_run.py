"""``irstd-bench reproduce``: train, predict, score and report the plan inside one time budget.

Phases, each with a deadline computed back from the end of the budget (the later phases'
reserves of :class:`~._budget.PhaseBudget` are never spent by an earlier one)::

    probe    one short training per distinct model/recipe, all at once -> seconds per epoch
    train    every planned run at once, epochs scaled to the window -> best.pt chosen on val
    predict  val and test of every run that has a best.pt
    score    eval on val (threshold of the best val F1), eval on test at it (+ best F1 on test)
    report   tables and figures (``irstd-bench report``'s library), RUNS.md, summary.json, pack

Each step is an ``irstd-bench`` command (recorded next to every number), run in a child
process by :mod:`._jobs`.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import click

from irstd_bench._outputs import (
    MANIFEST_NAME,
    check_folder_replaceable,
    manifest_text,
    missing_ancestors,
    read_manifest,
    remove_empty,
    remove_output,
    write_manifest,
    write_new_file,
)
from irstd_bench.errors import InputError
from reference_model.recipe import NO_RECIPE

from ._budget import (
    PhaseBudget,
    Probe,
    Scheduled,
    allocate,
    probe_from_run,
    read_epoch_times,
    scaled_warmup,
)
from ._commands import command_args, command_params, shell_line
from ._full import check_runs, full_epochs, train_queue, unit_args
from ._jobs import Job, JobResult, run_jobs, start_server
from ._plan import DEFAULT_PLAN, LeftOut, RunSpec, RunUnit, registry_models, resolve_plan
from ._score import Scores, matcher_tag, prediction_input, read_metrics, scores, store_predictions, val_threshold

#: Synthetic sample of ``--smoke``: images, side in px, seed, layout and split family.
SMOKE_SAMPLE = {"n_images": 30, "size": 64, "seed": 0}
SMOKE_DATASET, SMOKE_FAMILY = "nudt", "split_synth"
#: Training settings ``--smoke`` imposes on every run (CPU-sized), where the command has them.
SMOKE_TRAIN = {"imgsz": 64, "batch": 4, "base_size": 64, "nominal_batch": 4}
#: Validation points of a training run (``--val-every`` = epochs / this, at least 1).
VALIDATIONS_PER_RUN = 10
#: Parallel ``predict`` commands on one device.
MAX_PARALLEL_PREDICT = 8
#: Score threshold of the predictions written for scoring (every box the model keeps).
PREDICT_CONF = 0.001
#: Confidence of the val evaluation (its best F1 and threshold do not depend on it).
VAL_CONF = 0.5


@dataclass
class ReproduceConfig:
    """Settings of one ``irstd-bench reproduce`` call (see the command's ``--help``)."""

    out: Path
    root: Path | None = None
    dataset: str | None = None
    family: str = "split_EFLNet"
    budget_s: float = 480.0
    device: str = "auto"
    matcher: str = "iou:0.5"
    phases: PhaseBudget = field(default_factory=PhaseBudget)
    plan: tuple[RunSpec, ...] = DEFAULT_PLAN
    max_seeds: int | None = None
    only: tuple[str, ...] = ()
    workers: int = 1
    train_overrides: dict = field(default_factory=dict)
    pack_dir: Path | None = None
    commit: str | None = None
    command: str = ""
    smoke: bool = False
    protocol: str | None = None
    resume: bool = False
    parallel: int = 1
    threads: int | None = None


@dataclass
class RunRecord:
    """Everything known about one training of the plan, filled phase by phase."""

    unit: RunUnit
    epochs_planned: int
    full_epochs: int
    estimated_s: float
    schedule: dict
    not_passed: list[str]
    train_command: str
    train: JobResult | None = None
    epochs_done: int = 0
    train_s: float | None = None
    predictions: dict = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    scores: Scores | None = None
    test_results: Path | None = None
    status: str = "planned"
    ready: bool = True


@dataclass
class Session:
    """One reproduce call in progress: settings, folders, clock, records."""

    config: ReproduceConfig
    root: Path
    dataset: str
    family: str
    started: float
    end: float
    work: Path
    report: Path
    left_out: list[LeftOut] = field(default_factory=list)
    dropped: list[tuple[RunUnit, str]] = field(default_factory=list)
    probes: dict[str, Probe] = field(default_factory=dict)
    records: list[RunRecord] = field(default_factory=list)
    phase_s: dict[str, float] = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def log(self, message: str) -> None:
        click.echo(f"[reproduce {self.elapsed():6.1f} s] {message}", err=True)

    def record_command(self, line: str) -> None:
        files = [self.report / "commands.txt"]
        if self.config.protocol:  # every call's commands, kept across --resume (report/ is rewritten)
            files.append(self.work / "commands.txt")
        for path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                fh.write(line + "\n")

    def phase_deadline(self, *later: float) -> float:
        return self.end - sum(later) - self.config.phases.margin_s


def _cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


# ---------------------------------------------------------------------------------- set-up
def _claim_outputs(config: ReproduceConfig):
    """Refuse (before anything is created) an ``--out`` or ``--pack-dir`` that is not absent or
    empty, or that is, lies inside or holds the dataset root. Both are checked again when written.

    ``--resume``: ``--out`` must hold an earlier ``--protocol`` call's ``work/runs``; its report
    folder is replaced, so it must be wholly ours. Returns that folder's claim (``None`` otherwise).
    """
    from irstd_bench._outputs import refuse_inside_inputs

    inputs = [] if config.smoke else [("dataset root", config.root)]
    for option, path in (("--out", config.out), ("--pack-dir", config.pack_dir)):
        if path is None:
            continue
        refuse_inside_inputs(path, inputs, option=option)
        if option == "--out" and config.resume:
            if not (path / "work" / "runs").is_dir():
                raise InputError(f"--out {path}: no earlier reproduce --protocol output to resume (no work/runs)")
            if not is_reproduce_output(path):
                raise InputError(
                    f"--out {path}: not an output of irstd-bench reproduce (no manifest of ours in it, its report "
                    "or its runs); --resume writes only into its own"
                )
            continue
        if path.exists() and (path.is_symlink() or not path.is_dir() or any(path.iterdir())):
            hint = "; --resume continues an earlier --protocol run" if option == "--out" and config.protocol else ""
            raise InputError(f"{option} {path}: exists and is not an empty folder (reproduce writes a new one{hint})")
        check_folder_replaceable(path, force=False, option=option)  # absent or empty
    if config.resume and (config.out / "report").exists():  # rewritten by this call: wholly ours, or refused
        return check_folder_replaceable(config.out / "report", force=True, option="report folder")
    return None


def is_reproduce_output(out: Path) -> bool:
    """``out`` was made by ``reproduce``: its manifest says so (written when the folder is created);
    for folders of earlier versions, without one, its report's manifest or a training folder of
    ours under ``work/runs`` does. A user's folder that merely has a ``work/runs`` has none."""
    manifest = read_manifest(out)
    if manifest is not None:
        return manifest.get("command") == "reproduce"
    report = read_manifest(out / "report") if (out / "report").is_dir() else None
    if report is not None and report.get("command") == "reproduce":
        return True
    runs = out / "work" / "runs"
    return any(
        folder.is_dir() and (read_manifest(folder) or {}).get("command") == "train" for folder in runs.iterdir()
    )


def _mark_output(out: Path) -> None:
    """Write ``out``'s manifest (:func:`is_reproduce_output`) unless it has one. It lists no file:
    nothing replaces ``out`` as a whole; ``report/`` and each run carry their own manifests."""
    if read_manifest(out) is None:
        write_new_file(out / MANIFEST_NAME, manifest_text("reproduce", (), ("work", "report")))


class NothingScored(RuntimeError):
    """A reproduce call ran to its end but scored no training (RUNS.md says why for each)."""


def check_settings(config: ReproduceConfig) -> tuple[list[RunUnit], list[LeftOut]]:
    """Check every setting of a reproduce call before any work; return the plan resolved
    (:func:`~._plan.resolve_plan`: the runnable trainings and the entries left out).

    A bad value would otherwise surface only after the trainings (``--match``), make the
    command train on nothing (``--only`` naming no model of the plan), or run on another device
    than asked (``--device cuda`` without a GPU): each is an :class:`InputError` naming the
    option and value, raised before anything is written.
    """
    from irstd_bench.evaluate import parse_matcher
    from reference_model.engine.distributed import resolve_device

    budget = config.budget_s
    if not math.isfinite(budget) or budget <= config.phases.after_training_s:
        raise InputError(f"--budget-s {budget:g}: must be finite and must exceed the "
                         f"{config.phases.after_training_s:g} s kept for predicting, scoring and the report")
    parse_matcher(config.matcher)
    resolve_device(config.device)
    planned = sorted({spec.model for spec in config.plan})
    for model in config.only:
        if model not in planned:
            raise InputError(f"--only {model}: not a model of the plan (plan: {', '.join(planned)})")
    units, left_out = resolve_plan(
        config.plan, registry_models(), max_seeds=config.max_seeds,
        only=(lambda m: m in config.only) if config.only else None,
        train_has_recipe="recipe" in command_params("train"),
    )
    if not units:
        reasons = sorted({entry.reason for entry in left_out})
        raise InputError(f"no training of the plan can run ({'; '.join(reasons) or 'empty plan'})")
    return units, left_out


def _smoke_sample(out: Path) -> Path:
    from irstd_bench.cli import cli

    root = out / "data"
    args = ["synth", "--out", str(root), *(f"--{k.replace('_', '-')}={v}" for k, v in SMOKE_SAMPLE.items())]
    code = cli.main(args=args, prog_name="irstd-bench", standalone_mode=False)
    if code not in (None, 0):
        raise InputError(f"synthetic sample: irstd-bench synth exited with {code}")
    return root


def _open(config: ReproduceConfig) -> tuple[Path, str, str]:
    """The dataset root, layout name and split family, checked (train, val and test exist)."""
    from irstd_bench.datasets import open_dataset

    root, dataset, family = config.root, config.dataset, config.family
    if config.smoke:
        root, dataset, family = config.out / "data", SMOKE_DATASET, SMOKE_FAMILY
    if root is None:
        raise InputError("--root is required (or --smoke)")
    ds = open_dataset(root, dataset)
    for part in ("train", "val", "test"):
        if ds.family_split(family, part) is None:
            raise InputError(f"{ds.root}: split family {family!r} has no {part} split (reproduce needs all three)")
    return Path(root), ds.name, family


def _set_up(config: ReproduceConfig, units: list[RunUnit]) -> tuple[tuple[Path, str, str], list[Path]]:
    """Check the outputs and the data, then create ``--out`` (and the smoke sample in it).

    Everything that can be checked is checked before anything is created; ``--resume`` checks
    every planned run folder (:func:`~._full.check_runs`) before its report folder is replaced.
    Returns the dataset (root, layout, split family) and the folders created (deepest first)
    for :func:`_undo_set_up`.
    """
    report = _claim_outputs(config)
    if config.resume:  # --out is an earlier call's (its smoke sample included): only the report is replaced
        opened = _open(config)
        root, dataset, family = opened
        defaults = _train_defaults()
        check_runs(config.out / "work", units,
                   lambda unit: unit_args(unit, config.protocol, root, dataset, family),
                   lambda unit: full_epochs(unit, defaults, config.phases.max_epochs))
        if report is not None:
            remove_output(report)
        _mark_output(config.out)  # an output of an earlier version gets its manifest now
        return opened, []
    if not config.smoke:
        opened = _open(config)
    created = ([config.out.absolute()] if not config.out.exists() else []) + missing_ancestors(config.out)
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {config.out}: cannot create the folder ({exc.strerror or exc})") from None
    if config.protocol:
        _mark_output(config.out)  # what a later --resume recognises as its own
    if not config.smoke:
        return opened, created
    try:
        _smoke_sample(config.out)
        return _open(config), created
    except BaseException:
        _undo_set_up(config, created)
        raise


def _undo_set_up(config: ReproduceConfig, created: list[Path]) -> None:
    """Remove what a reproduction that failed before its first phase created: the smoke sample
    (only if wholly the sample's, :func:`irstd_bench._outputs.remove_output`), empty folders."""
    sample = config.out / "data"
    if config.smoke and sample.exists():
        try:
            remove_output(check_folder_replaceable(sample, force=True))
        except InputError:
            pass  # not wholly the sample's: left as it is
    marker = config.out / MANIFEST_NAME
    if created and marker.is_file() and set(os.listdir(config.out)) <= {MANIFEST_NAME, "report", "work"}:
        marker.unlink()  # ours, in a folder this call created: nothing else is in it
    remove_empty([config.out / "report", config.out / "work", *created])


def _train_defaults() -> dict:
    """``TrainConfig`` defaults by field name (the full schedule of runs without a recipe)."""
    from reference_model.engine import TrainConfig

    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def _train_settings(session: Session, unit: RunUnit, out: Path, epochs: int, val_every: int,
                    schedule: dict) -> dict:
    cfg = session.config
    settings = {
        "dataset": session.dataset, "root": str(session.root), "split": session.family, "model": unit.model,
        "recipe": unit.recipe or NO_RECIPE, "epochs": epochs, "seed": unit.seed, "device": cfg.device, "out": str(out),
        "val_every": val_every, "workers": cfg.workers, "progress": False,
        "deterministic": False, "resize_masks": True,
    }
    settings.update(schedule)
    settings.update(cfg.train_overrides)
    return settings


# ---------------------------------------------------------------------------------- phases
class _MemorySampler:
    """Peak device memory in use (all processes) while jobs run; CUDA only."""

    def __init__(self, device: str) -> None:
        self.enabled = device.startswith("cuda") or device == "auto"
        self.peak = self.baseline = self.total = None
        if self.enabled:
            import torch

            self.enabled = torch.cuda.is_available()
            if self.enabled:
                free, self.total = torch.cuda.mem_get_info()
                self.baseline = self.peak = self.total - free

    def __call__(self) -> None:
        if self.enabled:
            import torch

            free, total = torch.cuda.mem_get_info()
            self.peak = max(self.peak, total - free)


def _probe(session: Session, units: list[RunUnit]) -> None:
    cfg, phases = session.config, session.config.phases
    first: dict[str, RunUnit] = {}
    for unit in units:
        first.setdefault(unit.config_key, unit)
    jobs = []
    threads = max(1, _cpu_count() // max(1, len(first)))
    for key, unit in first.items():
        out = session.work / "probe" / key.replace("/", "-")
        settings = _train_settings(session, unit, out, phases.probe_epochs, 1, {})
        settings["seed"] = 0
        args, _ = command_args("train", settings)
        session.record_command(shell_line(args))
        jobs.append(Job(key, tuple(args), session.work / "logs" / f"probe_{key.replace('/', '-')}.log"))
    if not jobs:
        return
    deadline = min(time.monotonic() + phases.probe_s, session.phase_deadline(phases.after_training_s))
    session.log(f"probe: {len(jobs)} model/recipe configurations at once, {phases.probe_epochs} epoch(s) each")
    sampler = _MemorySampler(cfg.device)
    results = run_jobs(jobs, deadline=deadline, max_parallel=len(jobs), threads=threads, on_poll=sampler)
    for key, result in results.items():
        csv_path = session.work / "probe" / key.replace("/", "-") / "results.csv"
        probe = probe_from_run(key, csv_path, result.wall_s, result.returncode, len(jobs))
        session.probes[key] = probe
        epoch = f"{probe.epoch_s:.1f} s/epoch, start-up {probe.startup_s:.1f} s" if probe.ok else "no epoch"
        session.log(f"probe {key}: {epoch} (exit {result.returncode})")
    if sampler.enabled and sampler.peak is not None:
        session.memory = {
            "probe_peak_bytes": int(sampler.peak - sampler.baseline),
            "per_run_bytes": int((sampler.peak - sampler.baseline) / len(jobs)),
            "total_bytes": int(sampler.total),
        }


def _plan_runs(session: Session, units: list[RunUnit]) -> list[Scheduled]:
    phases = session.config.phases
    window = session.phase_deadline(phases.after_training_s) - time.monotonic()
    defaults = _train_defaults()
    scheduled, dropped = allocate(
        units,
        session.probes,
        window_s=window,
        default_epochs=int(defaults.get("epochs", 100)),
        min_epochs=phases.min_epochs,
        max_epochs=phases.max_epochs,
        memory_per_run_bytes=session.memory.get("per_run_bytes"),
        memory_total_bytes=session.memory.get("total_bytes"),
    )
    session.dropped = [(d.unit, d.reason) for d in dropped]
    session.log(f"plan: {len(scheduled)} runs in a {window:.0f} s window, {len(dropped)} dropped")
    return scheduled


def _train(session: Session, scheduled: list[Scheduled]) -> None:
    if not scheduled:
        return
    defaults = _train_defaults()
    threads = max(1, _cpu_count() // len(scheduled))
    jobs = []
    for item in scheduled:
        unit = item.unit
        schedule = scaled_warmup(unit.recipe_train, defaults, item.epochs, item.full_epochs)
        val_every = max(1, item.epochs // VALIDATIONS_PER_RUN)
        out = session.work / "runs" / unit.run_id
        settings = _train_settings(session, unit, out, item.epochs, val_every, schedule)
        args, missing = command_args("train", settings)
        line = shell_line(args)
        session.record_command(line)
        session.records.append(
            RunRecord(unit, item.epochs, item.full_epochs, item.estimated_s, schedule, missing, line)
        )
        jobs.append(Job(unit.run_id, tuple(args), session.work / "logs" / f"train_{unit.run_id}.log"))
    deadline = session.phase_deadline(session.config.phases.after_training_s)
    session.log(f"train: {len(jobs)} runs at once, deadline in {deadline - time.monotonic():.0f} s")
    results = run_jobs(jobs, deadline=deadline, max_parallel=len(jobs), threads=threads)
    for record in session.records:
        result = results[record.unit.run_id]
        record.train = result
        times = read_epoch_times(session.work / "runs" / record.unit.run_id / "results.csv")
        record.epochs_done, record.train_s = len(times), result.wall_s
        if not (session.work / "runs" / record.unit.run_id / "best.pt").is_file():
            reason = _last_line(session.work / "logs" / f"train_{record.unit.run_id}.log")
            stopped = "; stopped at the deadline" if result.stopped else ""
            record.status = f"no best.pt (train exit {result.returncode}{stopped}): {reason}"
        else:
            record.status = "trained (stopped at the deadline)" if result.stopped else "trained"
        session.log(f"train {record.unit.run_id}: {record.epochs_done}/{record.epochs_planned} epochs, "
                    f"{result.wall_s:.0f} s, {record.status}")


def _train_full(session: Session, units: list[RunUnit]) -> None:
    """``--protocol``: full schedules as a resumable queue (:mod:`._full`); records of every unit."""
    cfg = session.config
    threads = cfg.threads or max(1, _cpu_count() // cfg.parallel)
    deadline = session.phase_deadline(cfg.phases.after_training_s)
    begun = time.monotonic()
    states = train_queue(session, units, _train_defaults(), deadline=deadline, parallel=cfg.parallel,
                         threads=threads)
    wall = time.monotonic() - begun
    for unit in units:
        state = states[unit.run_id]
        times = read_epoch_times(session.work / "runs" / unit.run_id / "results.csv")
        record = RunRecord(unit, state.full_epochs, state.full_epochs, 0.0, {}, [],
                           _last_command(session, unit.run_id))
        record.epochs_done, record.train_s = state.epochs_done, round(sum(times), 1) if times else None
        record.ready = state.finished
        if state.finished:
            record.status = "trained (full schedule)"
        elif state.epochs_done:
            record.status = f"partial: {state.epochs_done}/{state.full_epochs} epochs (continue with --resume)"
        else:
            record.status = "not started (continue with --resume)"
        session.records.append(record)
    done = sum(s.finished for s in states.values())
    session.log(f"train: {done}/{len(states)} runs finished their full schedule after {wall:.0f} s this call; "
                + "; ".join(f"{u.run_id} {states[u.run_id].epochs_done}/{states[u.run_id].full_epochs}"
                            for u in units if not states[u.run_id].finished))


def _last_command(session: Session, run_id: str) -> str:
    """The first ``train`` command recorded for ``run_id`` in ``commands.txt`` (how the run began)."""
    try:
        lines = (session.work / "commands.txt").read_text().splitlines()
    except OSError:
        return ""
    marker = f"/runs/{run_id}"
    found = [ln for ln in lines if " train " in f" {ln} " and marker in ln]
    return found[0] if found else ""


def _predict(session: Session) -> None:
    cfg, phases = session.config, session.config.phases
    jobs = []
    for record in session.records:
        best = session.work / "runs" / record.unit.run_id / "best.pt"
        if not best.is_file() or not record.ready:
            continue
        for part in ("val", "test"):
            # --protocol: named by the epochs trained, so that an earlier call's predictions of the same
            # checkpoint are reused and a continued run's are not
            name = f"{record.unit.run_id}-{part}" + (f"-e{record.epochs_done}" if cfg.protocol else "")
            stored = session.work / "preds" / name
            if cfg.protocol and stored.is_dir():
                record.predictions[part] = stored
                continue
            out = session.work / "predict" / name
            settings = {"weights": str(best), "dataset": session.dataset, "root": str(session.root),
                        "split": f"{session.family}/{part}", "out": str(out), "conf": PREDICT_CONF,
                        "device": cfg.device}
            args, _ = command_args("predict", settings)
            line = shell_line(args)
            session.record_command(line)
            record.commands.append(line)
            record.predictions[part] = out
            jobs.append(Job(f"{record.unit.run_id}-{part}", tuple(args),
                            session.work / "logs" / f"predict_{record.unit.run_id}-{part}.log"))
    if not jobs:
        return
    deadline = session.phase_deadline(phases.score_s, phases.report_s)
    parallel = MAX_PARALLEL_PREDICT if not cfg.smoke else _cpu_count()
    threads = max(1, _cpu_count() // min(parallel, len(jobs)))
    session.log(f"predict: {len(jobs)} commands, {parallel} at a time")
    results = run_jobs(jobs, deadline=deadline, max_parallel=parallel, threads=threads)
    for record in session.records:
        for part in list(record.predictions):
            if record.predictions[part].parent == session.work / "preds":
                continue
            result = results.get(f"{record.unit.run_id}-{part}")
            if result is None or result.returncode != 0:
                record.predictions.pop(part)
                code = None if result is None else result.returncode
                record.status = f"predict {part} failed (exit {code})"
            else:
                stored = session.work / "preds" / record.predictions[part].name
                store_predictions(record.predictions[part], stored)
                record.predictions[part] = stored


def _eval_job(session: Session, record: RunRecord, part: str, conf: float) -> Job | None:
    found = prediction_input(record.predictions.get(part, Path("/nonexistent")))
    if found is None:
        return None
    pred, fmt = found
    out = session.report / "results" / f"{session.family}-{part}" / matcher_tag(session.config.matcher)
    settings = {"dataset": session.dataset, "root": str(session.root), "split": f"{session.family}/{part}",
                "matcher": session.config.matcher, "conf": f"{conf:.6g}", "method": record.unit.method,
                "out": str(out / f"{record.unit.run_id}.json"), "resize_masks": True, "workers": 1}
    args, _ = command_args("eval", settings, positional=(str(pred),))
    args += fmt
    line = shell_line(args)
    session.record_command(line)
    record.commands.append(line)
    name = f"{record.unit.run_id}-{part}"
    return Job(name, tuple(args), session.work / "logs" / f"eval_{name}.log")


def _score(session: Session) -> None:
    phases = session.config.phases
    deadline = session.phase_deadline(phases.report_s)
    parallel = _cpu_count()
    ready = [r for r in session.records if {"val", "test"} <= set(r.predictions)]
    val_jobs = {r.unit.run_id: _eval_job(session, r, "val", VAL_CONF) for r in ready}
    session.log(f"score: {len(ready)} runs on val, then test")
    val_results = run_jobs([j for j in val_jobs.values() if j], deadline=deadline, max_parallel=parallel)
    val_metrics, test_jobs = {}, []
    for record in ready:
        path = session.report / "results" / f"{session.family}-val" / matcher_tag(session.config.matcher)
        result = val_results.get(f"{record.unit.run_id}-val")
        if result is None or result.returncode != 0:
            record.status = f"eval val failed (exit {None if result is None else result.returncode})"
            continue
        val_metrics[record.unit.run_id] = read_metrics(path / f"{record.unit.run_id}.json")
        threshold, _ = val_threshold(val_metrics[record.unit.run_id])
        job = _eval_job(session, record, "test", threshold)
        if job is not None:
            test_jobs.append(job)
    test_results = run_jobs(test_jobs, deadline=deadline, max_parallel=parallel)
    for record in ready:
        result = test_results.get(f"{record.unit.run_id}-test")
        if record.unit.run_id not in val_metrics:
            continue
        if result is None or result.returncode != 0:
            record.status = f"eval test failed (exit {None if result is None else result.returncode})"
            continue
        path = (session.report / "results" / f"{session.family}-test" / matcher_tag(session.config.matcher)
                / f"{record.unit.run_id}.json")
        record.test_results = path
        record.scores = scores(val_metrics[record.unit.run_id], read_metrics(path))
        record.status = "scored"


# ---------------------------------------------------------------------------------- entry
def _commit(config: ReproduceConfig) -> str:
    if config.commit:
        return config.commit
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git repository here; pass --commit)"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def device_description(device: str) -> str:
    """The device in words: GPU name and torch version, or the CPU and its cores."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else 0
        return f"{torch.cuda.get_device_name(index)}, torch {torch.__version__}, {_cpu_count()} CPU cores"
    return f"CPU ({platform.machine()}, {_cpu_count()} cores), torch {torch.__version__}"


def reproduce(config: ReproduceConfig):
    """Run the whole reproduction; returns the :class:`~._write.Outcome` written to ``config.out``.

    Raises
    ------
    InputError
        A bad setting (:func:`check_settings`, before anything is written), ``out`` not empty,
        no root, a split family without train/val/test.
    NothingScored
        The phases ran but no training was scored (RUNS.md and the pack are written first).
    """
    from ._write import write_outputs

    started = time.monotonic()
    if config.resume and not config.protocol:
        raise InputError("--resume continues a --protocol run (give the same --protocol)")
    units, left_out = check_settings(config)
    (root, dataset, family), created = _set_up(config, units)
    session = Session(config, root, dataset, family, started, started + config.budget_s,
                      config.out / "work", config.out / "report", left_out=left_out)
    try:  # a failure before the first phase leaves nothing behind
        session.report.mkdir(parents=True, exist_ok=True)
        # Claimed at once and after each phase (every file in it is this call's: an earlier report
        # was replaced), so that a call killed midway leaves a folder the next --resume replaces.
        (session.report / "commands.txt").touch()
        write_manifest(session.report, "reproduce")
        session.log(f"{len(units)} trainings runnable, {len(session.left_out)} plan entries left out; "
                    f"budget {config.budget_s:.0f} s on {config.device}")
        session.log(f"process server ready in {start_server():.1f} s")
    except BaseException:
        for name in ("commands.txt", MANIFEST_NAME):  # this call's claim of its new report folder
            (session.report / name).unlink(missing_ok=True)
        _undo_set_up(config, created)
        raise
    failure = None
    training = (("train", lambda: _train_full(session, units)),) if config.protocol else (
        ("probe", lambda: _probe(session, units)), ("train", lambda: _train(session, _plan_runs(session, units))))
    for name, step in (*training,
                       ("predict", lambda: _predict(session)),
                       ("score", lambda: _score(session))):
        begun = time.monotonic()
        try:
            step()
        except Exception as exc:  # keep what finished: RUNS.md and the pack are still written
            failure = exc
            session.errors.append(f"{name} phase failed: {exc.__class__.__name__}: {exc}")
            session.log(session.errors[-1])
            break
        finally:
            session.phase_s[name] = time.monotonic() - begun
            write_manifest(session.report, "reproduce")
    outcome = write_outputs(session, commit=_commit(config), device=device_description(config.device))
    if failure is not None:
        raise failure
    still_training = config.protocol and any(not record.ready for record in session.records)
    if not still_training and not any(record.status == "scored" for record in session.records):
        statuses = sorted({record.status for record in session.records}) or ["no training was planned"]
        raise NothingScored(f"no run was scored ({'; '.join(statuses)[:300]}); see {outcome.runs_md}")
    return outcome
