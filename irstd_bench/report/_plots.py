"""Report figures: PR curves, Pd-Fa curves, recall by target size and a metric bar chart.

Every figure is written twice, as PNG (``FIGURE_SIZE_IN`` at ``DPI``: always
``FIGURE_SIZE_PX`` pixels) and as PDF. Figures are drawn on the Agg canvas directly, without
pyplot, so nothing here depends on or changes the user's matplotlib backend. Titles say what is
plotted (which dataset, split and matcher, and how many of the methods: a crowded report draws
the best few, :mod:`irstd_bench.report._selection`); legends sit beside the axes, never on the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from irstd_bench.report._load import RunResult, unique_in_order
from irstd_bench.report._seeds import base_method, run_label
from irstd_bench.report._selection import FigureSelection
from irstd_bench.report._tables import METRICS

DPI = 150
FIGURE_SIZE_IN = (6.4, 4.2)
FIGURE_SIZE_PX = (round(FIGURE_SIZE_IN[0] * DPI), round(FIGURE_SIZE_IN[1] * DPI))  # (width, height)
#: PDF metadata without a creation date, so the same inputs give the same bytes.
PDF_METADATA = {"CreationDate": None}


@dataclass(frozen=True)
class FigureFile:
    """A written figure: ``png`` and ``pdf`` paths, a short title and a caption."""

    name: str
    title: str
    caption: str
    png: Path
    pdf: Path


def new_figure(size_in: tuple[float, float] = FIGURE_SIZE_IN, layout: str | None = "constrained") -> Figure:
    """A figure on an Agg canvas (no pyplot state)."""
    figure = Figure(figsize=size_in, dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, folder: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.png`` (at ``DPI``, fixed size) and ``<name>.pdf`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    figure.savefig(png, dpi=DPI, format="png")
    figure.savefig(pdf, format="pdf", metadata=PDF_METADATA)
    return png, pdf


def method_colors(methods: Sequence[str]) -> dict[str, tuple]:
    """One colour per method, the same in every figure."""
    cmap = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _by_dataset(runs: Sequence[RunResult]) -> list[tuple[str, str, list[RunResult]]]:
    keys = unique_in_order((r.dataset_key, r.dataset_label) for r in runs)
    return [(key, label, [r for r in runs if r.dataset_key == key]) for key, label in keys]


def _slug(key: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in key).strip("_").lower() or "dataset"


def _legend(ax, title: str | None = None) -> None:
    """The legend beside the axes (right), where it covers no data."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
            fontsize="small",
            title=title,
            title_fontsize="small",
            frameon=False,
        )


def _title(ax, what: str, selection: FigureSelection | None, drawn: Sequence[RunResult]) -> str:
    """Two-line title: what is plotted, then which methods (``6 of 16 methods, best by F1``; the
    methods drawn first when some of those have nothing to draw here). Returns it on one line
    (the figure's title on the report page)."""
    n = len(drawn)
    subtitle = f"{n} run{'s' * (n != 1)}"
    if selection is not None:
        subtitle = selection.subtitle()
        methods = len(unique_in_order(base_method(r) for r in drawn))
        if methods < len(selection.methods):
            subtitle = f"{methods} with data of the {subtitle}"
    ax.set_title(f"{what}\n{subtitle}", fontsize="medium")
    return f"{what}: {subtitle}"


def _selection_caption(selection: FigureSelection | None) -> str:
    return "" if selection is None else selection.caption()


def matcher_ap(run: RunResult) -> float | None:
    """AP under the run's own matcher (``metrics.ap``): the area of the PR curve the figure draws.

    ``ap50`` is COCO box AP at IoU 0.5 whatever the matcher; it belongs beside an ``iou:0.5``
    curve only, so the legend names the matcher's AP instead.
    """
    value = run.data.get("metrics", {}).get("ap")
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        return None
    return float(value)


def pr_curve_figures(
    runs: Sequence[RunResult], folder: Path, colors: dict[str, tuple], selection: FigureSelection | None = None
) -> list[FigureFile]:
    """One precision-recall figure per dataset (methods with a PR curve); dots mark operating points."""
    out = []
    for key, dataset_label, group in _by_dataset(runs):
        with_curve = [r for r in group if r.curves.get("pr") and r.curves["pr"]["recall"]]
        if not with_curve:
            continue
        fig = new_figure()
        ax = fig.add_subplot()
        for run in with_curve:
            pr = run.curves["pr"]
            pairs = [
                (r, p)
                for r, p in zip(pr["recall"], pr["precision"], strict=True)
                if r is not None and p is not None
            ]
            if not pairs:
                continue
            recall, precision = np.array(pairs).T
            label = run_label(run)
            ap = matcher_ap(run)
            name = label + (f", {ap:.3f}" if ap is not None else "")
            ax.plot(recall, precision, color=colors[label], linewidth=1.6, label=name)
            ax.plot(
                [run.metrics["recall"]],
                [run.metrics["precision"]],
                "o",
                color=colors[label],
                markersize=5,
            )
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision")
        split, matcher = group[0].split, group[0].matcher
        title = _title(ax, f"Precision-recall, {dataset_label} ({split}, {matcher})", selection, with_curve)
        ax.grid(True, alpha=0.3)
        _legend(ax, title=f"method, AP ({matcher})")
        name = f"pr_{_slug(key)}"
        png, pdf = save_figure(fig, folder, name)
        out.append(
            FigureFile(
                name,
                title,
                "Dots: operating point (P, R at the run's confidence threshold). Legend: AP under the "
                "matcher of the curve (the area it draws)." + _selection_caption(selection),
                png,
                pdf,
            )
        )
    return out


def pd_fa_figures(
    runs: Sequence[RunResult], folder: Path, colors: dict[str, tuple], selection: FigureSelection | None = None
) -> list[FigureFile]:
    """One Pd-Fa (ROC) figure per dataset for methods with a ``pd_fa`` curve; Fa on a log axis.

    Points with Fa = 0 cannot sit on a log axis and are left out.
    """
    out = []
    for key, label, group in _by_dataset(runs):
        series = []
        for run in group:
            curve = run.curves.get("pd_fa")
            if not curve:
                continue
            pairs = [
                (f, p)
                for f, p in zip(curve["fa_e6"], curve["pd"], strict=True)
                if f is not None and p is not None and f > 0
            ]
            if pairs:
                series.append((run, np.array(sorted(pairs)).T))
        if not series:
            continue
        fig = new_figure()
        ax = fig.add_subplot()
        for run, (fa, pd) in series:
            ax.plot(fa, pd, color=colors[run_label(run)], linewidth=1.6, label=run_label(run))
        ax.set_xscale("log")
        ax.set(ylim=(0, 1.02), xlabel="Fa (false alarm pixels per $10^6$ pixels, log)", ylabel="Pd")
        title = _title(ax, f"Pd-Fa (3 px centroid rule), {label} ({group[0].split})", selection, [r for r, _ in series])
        ax.grid(True, which="both", alpha=0.3)
        _legend(ax)
        name = f"pdfa_{_slug(key)}"
        png, pdf = save_figure(fig, folder, name)
        out.append(
            FigureFile(
                name,
                title,
                "Probability of detection against false alarm rate, over score thresholds."
                + _selection_caption(selection),
                png,
                pdf,
            )
        )
    return out


def _grouped_bars(
    ax,
    groups: list[str],
    series: list[tuple[str, list[float | None]]],
    colors: dict[str, tuple],
    annotate: bool,
    digits: int = 3,
) -> None:
    """Bars for each series within each group; ``None`` draws nothing (and 'n/a' if annotating)."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    for k, (method, values) in enumerate(series):
        offsets = x - 0.4 + width * (k + 0.5)
        heights = [0.0 if v is None else v for v in values]
        bars = ax.bar(offsets, heights, width=width * 0.95, color=colors[method], label=method)
        if annotate:
            for bar, value in zip(bars, values, strict=True):
                text = "n/a" if value is None else f"{value:.{digits}f}"
                ax.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                )
    ax.set_xticks(x, groups)


def size_bin_figures(
    runs: Sequence[RunResult], folder: Path, colors: dict[str, tuple], selection: FigureSelection | None = None
) -> list[FigureFile]:
    """Recall by target size bin, grouped bars (bins x methods), one figure per dataset."""
    out = []
    for key, label, group in _by_dataset(runs):
        with_bins = [r for r in group if r.size_bins]
        if not with_bins:
            continue
        bins = unique_in_order(b["name"] for r in with_bins for b in r.size_bins)
        gt = {}
        for run in with_bins:
            for b in run.size_bins:
                gt.setdefault(b["name"], b.get("gt"))
        tick = [f"{b} px\n(n={int(gt[b])})" if gt[b] is not None else f"{b} px" for b in bins]
        series = []
        for run in with_bins:
            recall = {b["name"]: b.get("recall") for b in run.size_bins}
            series.append((run_label(run), [recall.get(b) for b in bins]))
        fig = new_figure()
        ax = fig.add_subplot()
        _grouped_bars(ax, tick, series, colors, annotate=len(series) * len(bins) <= 24)
        ax.set(ylim=(0, 1.15), ylabel="Recall", xlabel="Target area")
        matcher = with_bins[0].matcher
        title = _title(ax, f"Recall by target size, {label} ({with_bins[0].split}, {matcher})", selection, with_bins)
        ax.grid(True, axis="y", alpha=0.3)
        _legend(ax)
        name = f"size_recall_{_slug(key)}"
        png, pdf = save_figure(fig, folder, name)
        out.append(
            FigureFile(
                name,
                title,
                "Share of ground-truth targets found, by target area in pixels (n = targets)."
                + _selection_caption(selection),
                png,
                pdf,
            )
        )
    return out


def metric_bar_figure(
    runs: Sequence[RunResult],
    folder: Path,
    colors: dict[str, tuple],
    metric: str = "f1",
    selection: FigureSelection | None = None,
) -> FigureFile | None:
    """Grouped bars of ``metric``: groups = datasets, bars = methods. ``None`` if no run has it."""
    if not any(r.metrics.get(metric) is not None for r in runs):
        return None
    datasets = unique_in_order((r.dataset_key, r.dataset_label) for r in runs)
    methods = unique_in_order(run_label(r) for r in runs)
    index = {(run_label(r), r.dataset_key): r.metrics.get(metric) for r in runs}
    series = [(m, [index.get((m, key)) for key, _ in datasets]) for m in methods]
    label, _, digits, better = METRICS[metric]
    fig = new_figure()
    ax = fig.add_subplot()
    _grouped_bars(
        ax,
        [lbl for _, lbl in datasets],
        series,
        colors,
        annotate=len(methods) * len(datasets) <= 30,
        digits=digits,
    )
    bounded = metric != "fa_e6"
    if bounded:
        ax.set_ylim(0, 1.18)
    else:
        ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    ax.set(ylabel=label)
    what = f"{label} by method and dataset" + (" (lower is better)" if better == "min" else "")
    title = _title(ax, what, selection, [r for r in runs if r.metrics.get(metric) is not None])
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax)
    name = f"bars_{metric}"
    png, pdf = save_figure(fig, folder, name)
    caption = f"{label} of each method on every dataset." + _selection_caption(selection)
    return FigureFile(name, title, caption, png, pdf)
