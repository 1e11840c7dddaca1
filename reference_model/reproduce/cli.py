"""``irstd-bench reproduce``: a thin click layer over :func:`reference_model.reproduce.reproduce`."""

from __future__ import annotations

import dataclasses
import shlex
import signal
from pathlib import Path

import click

from irstd_bench._cli_options import MAX_WORKERS, Number, count
from irstd_bench.errors import InputError

#: Total budget (s) when ``--budget-s`` is not given: one device command of 9 minutes at most,
#: less the script's checks and ``timeout``'s grace (``reports/nuaa-sirst/gpu_reproduce.sh``).
DEFAULT_BUDGET_S = 480.0
#: Total budget (s) of a ``--smoke`` run when ``--budget-s`` is not given.
SMOKE_BUDGET_S = 420.0
#: Seeds per plan entry of a ``--smoke`` run.
SMOKE_MAX_SEEDS = 1


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _command_line(ctx: click.Context) -> str:
    """The command as typed: every option the user gave (not the defaults)."""
    args = ["irstd-bench", "reproduce"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        value = ctx.params.get(param.name)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP") or value is None:
            continue
        if param.is_flag if isinstance(param, click.Option) else False:
            args.append(param.opts[0] if value else (param.secondary_opts or [""])[0])
        elif isinstance(value, tuple):
            for item in value:
                args += [param.opts[0], str(item)]
        else:
            args += [param.opts[0], str(value)]
    return shlex.join(a for a in args if a)


@click.command("reproduce")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Dataset root (e.g. NUAA-SIRST); not with --smoke.")
@click.option("--dataset", default=None, help="Layout of --root (default: detect).")
@click.option("--split-family", "family", default="split_EFLNet", show_default=True,
              help="Split family with train, val and test parts.")
@click.option("--budget-s", type=Number(float, 0, low_open=True), default=None,
              help="Seconds for everything, trainings included (default 480; --smoke: 420). A ceiling: "
              "the command ends when its work does.")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N (default auto; --smoke: cpu).")
@click.option("--match", "matcher", default="iou:0.5", show_default=True, help="Matcher of the scores.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("reproduce_out"),
              show_default=True, help="New folder: work/ (runs, predictions, logs) and report/.")
@click.option("--pack-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for the packed files (at most 8, 16 MB each; default OUT/pack).")
@click.option("--max-seeds", type=click.IntRange(min=1), default=None,
              help="Seeds per plan entry at most (default: the plan's; --smoke: 1).")
@click.option("--only", multiple=True, metavar="MODEL", help="Run only these registry models (repeatable).")
@click.option("--min-epochs", type=click.IntRange(min=1), default=None,
              help="Drop a run that would get fewer epochs (default 5; --smoke: 1).")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None,
              help="Cap every run's epochs (default: the recipe's schedule; --smoke: 1).")
@click.option("--workers", type=count(0, MAX_WORKERS), default=None,
              help="Data-loader workers per training (default 1; --smoke: 0).")
@click.option("--commit", default=None, help="Commit recorded in RUNS.md (default: git rev-parse HEAD).")
@click.option("--smoke", is_flag=True, help="The same path on the synthetic sample, on the CPU, in about a minute.")
@click.option("--protocol", default=None,
              help="Full schedules under this protocol (cpu-windows-256, authors-sizes) as a resumable queue, "
              "instead of schedules compressed to the budget.")
@click.option("--resume", is_flag=True, help="--protocol: continue the runs of an earlier call in --out.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="--protocol: trainings at a time.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="--protocol: threads per training (default: CPU cores / --parallel).")
@click.pass_context
def reproduce(ctx: click.Context, root, dataset, family, budget_s, device, matcher, out, pack_dir, max_seeds,
              only, min_epochs, max_epochs, workers, commit, smoke, protocol, resume, parallel, threads) -> None:
    """Train the EFLNet paper's Table I methods, predict, score both protocols, write the report.

    Every training runs at the same time on the one device, its recipe's schedule compressed to
    the epochs a timing probe says fit in the budget. Writes OUT/report (tables, figures,
    RUNS.md, summary.json, like reports/nuaa-sirst) and the packed files.
    """
    from reference_model.reproduce import SMOKE_PHASES, PhaseBudget, ReproduceConfig
    from reference_model.reproduce import reproduce as run
    from reference_model.reproduce._run import SMOKE_TRAIN, NothingScored

    if smoke and root is not None:
        raise InputError("--smoke generates its own synthetic sample; leave out --root")
    phases = SMOKE_PHASES if smoke else PhaseBudget()
    changes = {k: v for k, v in (("min_epochs", min_epochs), ("max_epochs", max_epochs)) if v is not None}
    phases = dataclasses.replace(phases, **changes)
    budget = budget_s if budget_s is not None else (SMOKE_BUDGET_S if smoke else DEFAULT_BUDGET_S)
    config = ReproduceConfig(
        out=out, root=root, dataset=dataset, family=family, budget_s=budget,
        device=device or ("cpu" if smoke else "auto"), matcher=matcher, phases=phases,
        max_seeds=max_seeds if max_seeds is not None else (SMOKE_MAX_SEEDS if smoke else None),
        only=tuple(only), workers=workers if workers is not None else (0 if smoke else 1),
        train_overrides=dict(SMOKE_TRAIN) if smoke else {}, pack_dir=pack_dir, commit=commit,
        command=_command_line(ctx), smoke=smoke, protocol=protocol, resume=resume, parallel=parallel,
        threads=threads,
    )
    if protocol is not None:
        from reference_model.protocol import find_protocol
        from reference_model.reproduce._full import PROTOCOL_PLAN

        find_protocol(protocol)
        if not smoke:
            config = dataclasses.replace(config, plan=PROTOCOL_PLAN)
    elif resume or parallel != 1 or threads is not None:
        raise InputError("--resume, --parallel and --threads go with --protocol")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `timeout`: stop the trainings, then exit
    try:
        outcome = run(config)
    except NothingScored as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(outcome.runs_md.read_text().split("## Every run")[0].rstrip())
    click.echo(f"\nRUNS.md: {outcome.runs_md}\nPacked: {', '.join(str(p) for p in outcome.pack.files)}")
