"""``irstd-bench report``: tables, figures and an HTML page from ``irstd-bench eval`` results."""

from __future__ import annotations

from pathlib import Path

import click

from irstd_bench._cli_options import count
from irstd_bench.evaluate import DEFAULT_RESAMPLES, DEFAULT_SEED, MAX_RESAMPLES
from irstd_bench.report import BAR_METRICS, build_report, default_command, format_terminal_table
from irstd_bench.report._selection import DEFAULT_BEST


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Report folder (e.g. reports/nuaa); --force replaces an earlier irstd-bench output.",
)
@click.option("--title", default=None, help="Title of the report page.")
@click.option(
    "--metric",
    default="f1",
    show_default=True,
    type=click.Choice(BAR_METRICS),
    help="Metric of the bar chart.",
)
@click.option(
    "--qualitative",
    default=4,
    show_default=True,
    type=click.IntRange(min=0),
    help="Images per dataset in the qualitative grid (0: no grid).",
)
@click.option(
    "--group-by",
    default=None,
    metavar="KEY",
    help="Config key for ablation tables (default: every key that varies within a method family).",
)
@click.option(
    "--bootstrap",
    default=DEFAULT_RESAMPLES,
    show_default=True,
    type=count(0, MAX_RESAMPLES),
    help="Resamples of the images for the tables' 95% intervals and the marks of rows not significantly "
    "different from the best (paired); 0: none.",
)
@click.option(
    "--bootstrap-seed",
    default=DEFAULT_SEED,
    show_default=True,
    type=count(0),
    help="Seed of the resamples.",
)
@click.option(
    "--intervals/--no-intervals",
    default=True,
    show_default=True,
    help="Print the intervals in the tables (--no-intervals: paste-ready numbers; the marks stay).",
)
@click.option(
    "--best",
    default=DEFAULT_BEST,
    show_default=True,
    type=click.IntRange(min=0),
    help="Figures draw the best N methods by --metric (tables list every method).",
)
@click.option(
    "--methods",
    multiple=True,
    metavar="NAME",
    help="A method the figures draw besides the best (repeatable); 'all': every method.",
)
@click.option("--force", is_flag=True, help="Replace an earlier irstd-bench output at --out (only files it wrote).")
def report(
    results: tuple[Path, ...],
    out_dir: Path,
    title: str | None,
    metric: str,
    qualitative: int,
    group_by: str | None,
    bootstrap: int,
    bootstrap_seed: int,
    intervals: bool,
    best: int,
    methods: tuple[str, ...],
    force: bool,
) -> None:
    """Build a report from results JSON files written by ``irstd-bench eval``.

    Tables (Markdown, LaTeX, CSV, HTML), PR / Pd-Fa / size / bar figures (PNG + PDF), a
    qualitative grid and a self-contained index.html. Runs on one dataset must share the split
    and matcher; each (method, dataset) pair may appear once.
    """
    options = {
        "bootstrap": bootstrap,
        "bootstrap_seed": bootstrap_seed,
        "intervals": intervals,
        "best": best,
        "methods": methods,
    }
    command = default_command(
        list(results), out_dir, title=title, metric=metric, qualitative=qualitative, group_by=group_by, **options
    )
    result = build_report(
        list(results),
        out_dir,
        title=title,
        metric=metric,
        qualitative=qualitative,
        group_by=group_by,
        command=command,
        force=force,
        **options,
    )
    click.echo(format_terminal_table(result.runs), nl=False)
    click.echo(
        f"Report: {result.index} ({len(result.tables) + len(result.ablations)} tables, "
        f"{len(result.figures) + len(result.qualitative)} figures)"
    )
