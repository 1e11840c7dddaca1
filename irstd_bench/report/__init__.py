"""Reports from evaluation results: tables, figures, a qualitative grid and one HTML page.

>>> from irstd_bench.report import build_report, format_terminal_table
>>> report = build_report(["runs/eflnet.json", "runs/acm.json"], "reports/nuaa")   # doctest: +SKIP
>>> print(format_terminal_table(report.runs))                                        # doctest: +SKIP

A report folder holds::

    index.html               everything, self-contained (figures embedded)
    report.json              what was built from what (.irstd-bench-output.json marks the folder as ours)
    tables/main.{md,tex,csv,html}       methods x datasets: P, R, F1 (val thr.), F1 (best on test);
                                        several seeds: mean ± std; 95 % intervals over images
                                        [lo, hi] and ≈ (not significantly different from the best)
    tables/detailed.{...}               both F1 protocols, AP50, IoU, nIoU, Pd, Fa; every seed
    tables/ablation_<family>_<key>.{...}
    figures/*.png, *.pdf                PR, Pd-Fa, recall by size, metric bars, qualitative grids

The folder is built in a temporary sibling and moved into place at the end: an error leaves
no partial report.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from irstd_bench import __version__
from irstd_bench._outputs import Claim, check_folder_replaceable, output_folder, refuse_inside_inputs
from irstd_bench.errors import InputError
from irstd_bench.evaluate import DEFAULT_RESAMPLES, DEFAULT_SEED, BootstrapSettings
from irstd_bench.report._ablation import ablation_tables
from irstd_bench.report._html import render_index
from irstd_bench.report._intervals import attach_intervals, resample_runs
from irstd_bench.report._load import (
    SCHEMA,
    SCHEMA_VERSION,
    RunResult,
    check_compatible,
    load_results,
    load_runs,
    parse_results,
)
from irstd_bench.report._plots import (
    DPI,
    FIGURE_SIZE_PX,
    FigureFile,
    method_colors,
    metric_bar_figure,
    pd_fa_figures,
    pr_curve_figures,
    size_bin_figures,
)
from irstd_bench.report._qualitative import QualitativeGrid, grid_size_px, qualitative_figures
from irstd_bench.report._seeds import run_label
from irstd_bench.report._selection import DEFAULT_BEST, first_seeds, select_methods
from irstd_bench.report._tables import (
    METRICS,
    Table,
    detailed_table,
    main_table,
)
from irstd_bench.report._terminal import format_terminal_table

REPORT_SCHEMA = "irstd-bench/report"
#: Metrics ``--metric`` accepts for the bar chart.
BAR_METRICS = ("f1", "precision", "recall", "best_f1", "ap50", "iou", "niou", "pd", "fa_e6")
DEFAULT_TITLE = "IRSTD benchmark report"

__all__ = [
    "BAR_METRICS",
    "DPI",
    "FIGURE_SIZE_PX",
    "METRICS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Report",
    "RunResult",
    "Table",
    "build_report",
    "check_compatible",
    "format_terminal_table",
    "grid_size_px",
    "load_results",
    "load_runs",
    "parse_results",
]


@dataclass
class Report:
    """What :func:`build_report` wrote (paths are inside ``out_dir``, after the move)."""

    out_dir: Path
    runs: list[RunResult]
    tables: list[Table]
    ablations: list[Table]
    figures: list[FigureFile] = field(default_factory=list)
    qualitative: list[QualitativeGrid] = field(default_factory=list)
    command: str = ""

    @property
    def index(self) -> Path:
        return self.out_dir / "index.html"


def default_command(
    results_paths: Sequence,
    out_dir: Path,
    *,
    title: str | None,
    metric: str,
    qualitative: int,
    group_by: str | None,
    bootstrap: int = DEFAULT_RESAMPLES,
    bootstrap_seed: int = DEFAULT_SEED,
    intervals: bool = True,
    best: int = DEFAULT_BEST,
    methods: Sequence[str] = (),
) -> str:
    """The ``irstd-bench report`` command line that builds this report."""
    args = [
        "irstd-bench",
        "report",
        *(str(p) for p in results_paths if isinstance(p, str | Path)),
        "--out",
        str(out_dir),
    ]
    if title:
        args += ["--title", title]
    if metric != "f1":
        args += ["--metric", metric]
    if qualitative != 4:
        args += ["--qualitative", str(qualitative)]
    if group_by:
        args += ["--group-by", group_by]
    if bootstrap != DEFAULT_RESAMPLES:
        args += ["--bootstrap", str(bootstrap)]
    if bootstrap_seed != DEFAULT_SEED:
        args += ["--bootstrap-seed", str(bootstrap_seed)]
    if not intervals:
        args += ["--no-intervals"]
    if best != DEFAULT_BEST:
        args += ["--best", str(best)]
    for name in methods:
        args += ["--methods", name]
    return shlex.join(args)


def _report_inputs(runs: Sequence[RunResult]) -> list[tuple[str, Path | None]]:
    """The files a report reads (results JSON and per-target CSVs): never inside its --out."""
    return [("input", path) for run in runs for path in (run.path, run.per_target_csv)]


def _check_out_dir(out_dir: Path, runs: Sequence[RunResult], force: bool) -> Claim:
    refuse_inside_inputs(out_dir, _report_inputs(runs))
    return check_folder_replaceable(out_dir, force=force)


def build_report(
    results_paths: Iterable[str | Path | RunResult | Mapping],
    out_dir: str | Path,
    *,
    title: str | None = None,
    metric: str = "f1",
    qualitative: int = 4,
    group_by: str | None = None,
    command: str | None = None,
    force: bool = False,
    bootstrap: int = DEFAULT_RESAMPLES,
    bootstrap_seed: int = DEFAULT_SEED,
    intervals: bool = True,
    best: int = DEFAULT_BEST,
    methods: Sequence[str] = (),
) -> Report:
    """Build a report folder from results JSON files.

    Parameters
    ----------
    results_paths : iterable
        Results JSON files (or parsed results dicts / :class:`RunResult`), any mix of methods,
        datasets and splits; one split and one matcher per dataset.
    out_dir : path
        The report folder, built whole or not at all; an earlier irstd-bench output there is
        replaced only with ``force`` (:func:`irstd_bench._outputs.output_folder`).
    title : str, optional
        Page title.
    metric : str
        Metric of the bar chart (one of ``BAR_METRICS``).
    qualitative : int
        Images in the qualitative grid of each dataset (0: no grid).
    group_by : str, optional
        Config key for ablation tables; default: every key that varies within a method family.
    command : str, optional
        The command shown on the page; default: the equivalent ``irstd-bench report`` line.
    force : bool
        Replace an earlier irstd-bench output at ``out_dir`` (only files irstd-bench wrote).
    bootstrap, bootstrap_seed : int
        Resamples of each dataset's images for the tables' 95 % intervals and the marks of rows
        not significantly different from the best (:mod:`irstd_bench.report._intervals`); 0: none.
    intervals : bool
        Print the intervals in the tables (``False``: paste-ready numbers, marks kept).
    best, methods :
        The figures draw the ``best`` methods by ``metric`` plus those named in ``methods``
        (``["all"]``: every method; :mod:`irstd_bench.report._selection`); tables list every method.

    Raises
    ------
    InputError
        Invalid or incompatible inputs (nothing is written then).
    """
    items = list(results_paths)
    out_dir = Path(out_dir)
    if metric not in BAR_METRICS:
        raise InputError(f"--metric {metric!r}: unknown (choose from {', '.join(BAR_METRICS)})")
    if qualitative < 0:
        raise InputError(f"--qualitative {qualitative}: must be 0 or more")
    runs = load_runs(items)
    if not any(r.metrics.get(metric) is not None for r in runs):
        raise InputError(f"--metric {metric}: no input run has this metric")
    claim = _check_out_dir(out_dir, runs, force)  # checked again when written
    title = title or DEFAULT_TITLE
    command = command or default_command(
        items,
        out_dir,
        title=title if title != DEFAULT_TITLE else None,
        metric=metric,
        qualitative=qualitative,
        group_by=group_by,
        bootstrap=bootstrap,
        bootstrap_seed=bootstrap_seed,
        intervals=intervals,
        best=best,
        methods=methods,
    )
    metric_label, _, _, better = METRICS[metric]
    selection = select_methods(
        runs, metric, metric_label, lower_is_better=better == "min", best=best, methods=methods
    )

    tables = [main_table(runs)]
    detailed = detailed_table(runs)
    if detailed is not None:
        tables.append(detailed)
    resampled = resample_runs(runs, BootstrapSettings(bootstrap, bootstrap_seed))
    for table in tables:
        attach_intervals(table, resampled, show=intervals)
    if resampled.notes:
        tables[0].caption += " " + " ".join(f"Note: {n}." for n in resampled.notes)
    ablations = ablation_tables(runs, group_by)
    methods = list(dict.fromkeys(run_label(r) for r in runs))
    colors = method_colors(methods)
    created = datetime.now(UTC).replace(microsecond=0).isoformat()

    with output_folder(out_dir, "report", force=force, inputs=_report_inputs(runs), claim=claim) as tmp:
        table_dir, figure_dir = tmp / "tables", tmp / "figures"
        table_files = [p for t in tables + ablations for p in t.write(table_dir)]
        figures: list[FigureFile] = []
        shown = selection.runs
        bars = metric_bar_figure(shown, figure_dir, colors, metric, selection)
        if bars is not None:
            figures.append(bars)
        figures += pr_curve_figures(shown, figure_dir, colors, selection)
        figures += pd_fa_figures(shown, figure_dir, colors, selection)
        figures += size_bin_figures(shown, figure_dir, colors, selection)
        subtitle = selection.subtitle() + ("" if len(first_seeds(shown)) == len(shown) else ", first seed of each")
        grids = qualitative_figures(first_seeds(shown), figure_dir, qualitative, subtitle)
        page = render_index(
            title=title,
            command=command,
            runs=runs,
            tables=tables,
            ablations=ablations,
            figures=figures,
            qualitative=[g.figure for g in grids],
            created=created,
        )
        (tmp / "index.html").write_text(page, encoding="utf-8", newline="\n")
        manifest = {
            "schema": REPORT_SCHEMA,
            "schema_version": 1,
            "title": title,
            "command": command,
            "created": created,
            "irstd_bench_version": __version__,
            "inputs": [
                {
                    "source": r.source,
                    "method": r.method,
                    "dataset": r.dataset,
                    "split": r.split,
                    "matcher": r.matcher,
                }
                for r in runs
            ],
            "metric": metric,
            "bootstrap": resampled.settings.to_dict(),
            "figure_methods": selection.methods,
            "files": sorted(str(p.relative_to(tmp)) for p in table_files)
            + sorted(
                str(p.relative_to(tmp)) for f in figures + [g.figure for g in grids] for p in (f.png, f.pdf)
            )
            + ["index.html"],
        }
        (tmp / "report.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    def moved(path: Path) -> Path:
        return out_dir / path.parent.name / path.name

    def moved_figure(f: FigureFile) -> FigureFile:
        return FigureFile(f.name, f.title, f.caption, moved(f.png), moved(f.pdf))

    for grid in grids:
        grid.figure = moved_figure(grid.figure)
    return Report(
        out_dir=out_dir,
        runs=runs,
        tables=tables,
        ablations=ablations,
        figures=[moved_figure(f) for f in figures],
        qualitative=grids,
        command=command,
    )
