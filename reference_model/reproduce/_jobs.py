"""Run ``irstd-bench`` commands in parallel processes, each with its log, under a deadline.

Each job is one command line of the CLI (``["train", "--model", "acm", ...]``) run by
``irstd_bench.cli`` in a child process started by a ``forkserver`` (torch imported once, in the
server; every child starts without re-importing it and without the parent's CUDA state). A
child leads its own process group, so stopping it at the deadline also stops its data-loader
workers. A training stopped at the deadline keeps its ``best.pt`` (checkpoints are written
atomically).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Modules the fork server imports once for every child (one that fails to import is skipped).
PRELOAD = ("torch", "irstd_bench.cli", "irstd_bench.evaluate", "reference_model.registry", "reference_model.engine")
#: Seconds between polls of the running jobs.
POLL_S = 0.2
#: Seconds a stopped job gets to exit after SIGTERM before SIGKILL.
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class Job:
    """One command: a name, its ``irstd-bench`` arguments and the log file of its output."""

    name: str
    args: tuple[str, ...]
    log: Path


@dataclass(frozen=True)
class JobResult:
    """How a job ended: exit code (``None``: never started), wall time, stopped at the deadline."""

    name: str
    returncode: int | None
    wall_s: float
    stopped: bool
    started: bool


def _child(args: Sequence[str], log: str, threads: int) -> None:
    """Child process: own process group, output to ``log``, run the command, exit with its code."""
    os.setpgrp()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    from irstd_bench.cli import cli

    code = cli.main(args=list(args), prog_name="irstd-bench", standalone_mode=False)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code if isinstance(code, int) else 0)


def _context():
    """The fork-server context; it preloads :data:`PRELOAD` and every registry model's module."""
    from reference_model.registry import MODELS

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(dict.fromkeys([*PRELOAD, *(entry[0] for entry in MODELS.values())])))
    return ctx


def _noop() -> None:
    """Target of the child that :func:`start_server` waits for."""


def start_server() -> float:
    """Start the fork server and wait until it has imported :data:`PRELOAD`; returns the seconds taken.

    The first child of a fork server waits for these imports; starting it early keeps that wait
    out of the first phase's deadline.
    """
    started = time.monotonic()
    process = _context().Process(target=_noop, name="irstd-bench-forkserver-start")
    process.start()
    process.join()
    return time.monotonic() - started


def _stop(process) -> None:
    """SIGTERM to the job's process group, SIGKILL after :data:`STOP_GRACE_S`."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        if not process.is_alive():
            return
        try:
            os.killpg(process.pid, sig)  # the child leads its own group (os.setpgrp)
        except (ProcessLookupError, PermissionError):
            process.terminate() if sig == signal.SIGTERM else process.kill()
        process.join(wait)


def run_jobs(
    jobs: Sequence[Job],
    *,
    deadline: float,
    max_parallel: int,
    threads: int = 1,
    on_poll: Callable[[], None] | None = None,
) -> dict[str, JobResult]:
    """Run ``jobs``, at most ``max_parallel`` at a time, until they end or ``deadline`` passes.

    Parameters
    ----------
    jobs : sequence of Job
        Started in order.
    deadline : float
        ``time.monotonic()`` value; running jobs are stopped then, jobs not started are skipped.
    max_parallel : int
    threads : int
        torch / OpenMP threads of each child.
    on_poll : callable, optional
        Called at every poll (e.g. to sample device memory).

    Returns
    -------
    dict
        Job name -> :class:`JobResult`.
    """
    ctx = _context()
    pending = list(jobs)
    running: dict[str, tuple[object, float]] = {}
    results: dict[str, JobResult] = {}
    try:
        _loop(ctx, pending, running, results, deadline, max_parallel, threads, on_poll)
    finally:  # an interrupt (KeyboardInterrupt, SIGTERM turned into one) leaves no child behind
        for process, _ in running.values():
            _stop(process)
    return results


def _loop(ctx, pending, running, results, deadline, max_parallel, threads, on_poll) -> None:
    """Start, poll and stop jobs until all ended or the deadline passed (see :func:`run_jobs`)."""
    while pending or running:
        now = time.monotonic()
        if now >= deadline:
            for name, (process, started) in list(running.items()):
                _stop(process)
                results[name] = JobResult(name, process.exitcode, time.monotonic() - started, True, True)
                del running[name]
            for job in pending:
                results[job.name] = JobResult(job.name, None, 0.0, True, False)
            pending.clear()
            return
        while pending and len(running) < max_parallel:
            job = pending.pop(0)
            job.log.parent.mkdir(parents=True, exist_ok=True)
            process = ctx.Process(target=_child, args=(tuple(job.args), str(job.log), threads), name=job.name)
            process.start()
            running[job.name] = (process, time.monotonic())
        for name in list(running):
            process, started = running[name]
            if not process.is_alive():
                process.join()
                results[name] = JobResult(name, process.exitcode, time.monotonic() - started, False, True)
                del running[name]
        if on_poll is not None:
            on_poll()
        if running:
            time.sleep(POLL_S)
