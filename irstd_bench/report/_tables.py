"""Result tables: methods x datasets (P, R, F1), the detailed metrics and ablations.

A :class:`Table` holds raw numbers and renders them as Markdown, LaTeX (booktabs), CSV and
HTML. Numbers print with 3 decimals (false alarms per 10^6 pixels with 2); a missing value
prints as an en dash. The best value of each column is bold in Markdown, LaTeX and HTML; the
CSV keeps the raw, unrounded numbers and marks nothing.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from irstd_bench._csv import csv_cell
from irstd_bench._markdown import md_cell, one_line
from irstd_bench.report._load import RunResult, unique_in_order
from irstd_bench.report._seeds import MethodSummary, base_method, run_label, summarise_methods

#: What a table prints where a run has no value.
MISSING = "\u2013"
LATEX_MISSING = "--"

#: metric key -> (plain label, LaTeX label, decimals, which is better: "max", "min" or None)
METRICS: dict[str, tuple[str, str, int, str | None]] = {
    "precision": ("P", "P", 3, "max"),
    "recall": ("R", "R", 3, "max"),
    "f1": ("F1 (val thr.)", "F1 (val thr.)", 3, "max"),
    "ap50": ("AP50", "AP$_{50}$", 3, "max"),
    "best_f1": ("F1 (best on test)", "F1 (best on test)", 3, "max"),
    "best_f1_threshold": ("thr. of best F1", "thr. of best F1", 3, None),
    "iou": ("IoU", "IoU", 3, "max"),
    "niou": ("nIoU", "nIoU", 3, "max"),
    "pd": ("Pd", "$P_d$", 3, "max"),
    "fa_e6": ("Fa x1e-6", "$F_a$ ($\\times10^{-6}$)", 2, "min"),
}
MAIN_METRICS = ("precision", "recall", "f1", "best_f1")
DETAILED_METRICS = ("f1", "best_f1", "best_f1_threshold", "ap50", "iou", "niou", "pd", "fa_e6")
ABLATION_METRICS = ("precision", "recall", "f1", "best_f1", "ap50")
#: How every table names the two F1 protocols (13.4): ours, and the paper-comparable one.
PROTOCOL_NOTE = (
    "F1 (val thr.): F1 at the run's confidence threshold, chosen on the val split "
    "(irstd-bench's protocol, nothing selected on test); F1 (best on test): the best F1 over all "
    "thresholds on the test split itself, the paper-comparable figure (what the EFLNet authors' "
    "YOLOv7 test.py reports)"
)
#: Between a mean and its standard deviation: Markdown/HTML/CSV, LaTeX, terminal (ASCII).
PLUS_MINUS = " \u00b1 "
LATEX_PLUS_MINUS = " $\\pm$ "
ASCII_PLUS_MINUS = "+-"


@dataclass(frozen=True)
class Column:
    """One numeric column: a metric of one dataset (``group``)."""

    group: str
    group_label: str
    metric: str

    @property
    def label(self) -> str:
        return METRICS[self.metric][0]

    @property
    def latex_label(self) -> str:
        return METRICS[self.metric][1]

    @property
    def digits(self) -> int:
        return METRICS[self.metric][2]

    @property
    def better(self) -> str | None:
        return METRICS[self.metric][3]

    @property
    def csv_name(self) -> str:
        return f"{self.group}/{self.metric}" if self.group else self.metric


@dataclass
class Table:
    """A table of numbers: ``values[i][j]`` is row ``i``, column ``j`` (``None``: missing).

    Attributes
    ----------
    name : str
        File stem of the rendered table (``main``, ``detailed``, ``ablation_eflnet_atfl_lambda``).
    caption : str
    row_header : str
        Header of the label column (``Method``, or the varied setting of an ablation).
    rows : list of str
        Row labels.
    columns : list of Column
    values : list of list of float or None
        Numbers as printed (a mean over seeds where ``spread`` has a value).
    spread : list of list of float or None, optional
        Standard deviation over seeds of each cell (``None``: a single run); printed ``mean ± std``.
    unranked : frozenset of int
        Rows never marked best (the single seeds listed under their mean).
    """

    name: str
    caption: str
    row_header: str
    rows: list[str]
    columns: list[Column]
    values: list[list[float | None]]
    spread: list[list[float | None]] | None = None
    unranked: frozenset[int] = frozenset()

    def std(self, i: int, j: int) -> float | None:
        return None if self.spread is None else self.spread[i][j]

    def best_rows(self, j: int) -> set[int]:
        """Rows holding the best value of column ``j``, compared as printed (ties share it).

        Columns without a better direction, and columns with fewer than two values, have none.
        """
        column = self.columns[j]
        if column.better is None:
            return set()
        shown = {
            i: round(row[j], column.digits)
            for i, row in enumerate(self.values)
            if row[j] is not None and i not in self.unranked
        }
        if len(shown) < 2:
            return set()
        best = max(shown.values()) if column.better == "max" else min(shown.values())
        return {i for i, v in shown.items() if v == best}

    def formatted(self, i: int, j: int, plus_minus: str = PLUS_MINUS) -> str:
        """Cell text without markup (``MISSING`` for no value; ``mean ± std`` over seeds)."""
        value, digits = self.values[i][j], self.columns[j].digits
        if value is None:
            return MISSING
        std = self.std(i, j)
        return f"{value:.{digits}f}" + ("" if std is None else f"{plus_minus}{std:.{digits}f}")

    def _groups(self) -> list[tuple[str, int]]:
        """Consecutive column groups as ``(label, span)``."""
        spans: list[tuple[str, int]] = []
        for column in self.columns:
            if spans and spans[-1][0] == column.group_label:
                spans[-1] = (spans[-1][0], spans[-1][1] + 1)
            else:
                spans.append((column.group_label, 1))
        return spans

    # -- renderers ----------------------------------------------------------------------------

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown; column headers read ``<dataset> <metric>``; best in bold."""

        best = [self.best_rows(j) for j in range(len(self.columns))]
        header = [self.row_header] + [
            f"{c.group_label} {c.label}" if c.group_label else c.label for c in self.columns
        ]
        lines = [f"**{md_cell(self.caption)}**", "", "| " + " | ".join(md_cell(h) for h in header) + " |"]
        lines.append("|" + "|".join([":---"] + ["---:"] * len(self.columns)) + "|")
        for i, label in enumerate(self.rows):
            cells = [md_cell(label)]
            for j in range(len(self.columns)):
                text = self.formatted(i, j)
                cells.append(f"**{text}**" if i in best[j] else text)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """A booktabs ``table`` with dataset column groups (``\\usepackage{booktabs}``)."""
        best = [self.best_rows(j) for j in range(len(self.columns))]
        groups = self._groups()
        spec = "l" + "".join(" " + "c" * span for _, span in groups)
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{latex_escape(self.caption)}}}",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
        ]
        if any(label for label, _ in groups):
            heads, rules, start = [""], [], 2
            for label, span in groups:
                heads.append(f"\\multicolumn{{{span}}}{{c}}{{{latex_escape(label)}}}")
                rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
                start += span
            lines.append(" & ".join(heads) + " \\\\")
            lines.append(" ".join(rules))
        lines.append(
            " & ".join([latex_escape(self.row_header)] + [c.latex_label for c in self.columns]) + " \\\\"
        )
        lines.append("\\midrule")
        for i, label in enumerate(self.rows):
            cells = [latex_escape(label)]
            for j in range(len(self.columns)):
                if self.values[i][j] is None:
                    cells.append(LATEX_MISSING)
                    continue
                text = self.formatted(i, j, LATEX_PLUS_MINUS)
                cells.append(f"\\textbf{{{text}}}" if i in best[j] else text)
            lines.append(" & ".join(cells) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Raw numbers (``repr`` precision, nothing rounded or marked); empty cell = missing.

        The header is the row header then ``<dataset>/<metric>`` for each column, and
        ``<dataset>/<metric>_std`` after it when the table has means over seeds.
        """
        # Text cells pass csv_cell: a label can never start a spreadsheet formula.
        index = pd.Index([csv_cell(r) for r in self.rows], name=csv_cell(self.row_header))
        frame = pd.DataFrame(self.values, index=index, dtype="float64")
        frame.columns = [csv_cell(c.csv_name) for c in self.columns]
        if self.spread is not None:
            spread = pd.DataFrame(self.spread, index=frame.index, dtype="float64")
            spread.columns = [csv_cell(f"{c.csv_name}_std") for c in self.columns]
            order = [name for pair in zip(frame.columns, spread.columns, strict=True) for name in pair]
            frame = pd.concat([frame, spread], axis=1)[order]
        buffer = io.StringIO()
        frame.to_csv(buffer, lineterminator="\n", float_format=_repr_float)
        return buffer.getvalue()

    def to_html(self) -> str:
        """An HTML ``<table>`` fragment with grouped headers; best values in ``<b>``."""
        esc = html.escape
        best = [self.best_rows(j) for j in range(len(self.columns))]
        groups = self._groups()
        grouped = any(label for label, _ in groups)
        out = [
            f'<table class="results" id="table-{esc(self.name)}">',
            f"<caption>{esc(self.caption)}</caption>",
        ]
        out.append("<thead>")
        if grouped:
            out.append(
                f'<tr><th rowspan="2">{esc(self.row_header)}</th>'
                + "".join(f'<th colspan="{span}" class="group">{esc(label)}</th>' for label, span in groups)
                + "</tr>"
            )
            out.append("<tr>" + "".join(f"<th>{esc(c.label)}</th>" for c in self.columns) + "</tr>")
        else:
            out.append(
                f"<tr><th>{esc(self.row_header)}</th>"
                + "".join(f"<th>{esc(c.label)}</th>" for c in self.columns)
                + "</tr>"
            )
        out.append("</thead>")
        out.append("<tbody>")
        for i, label in enumerate(self.rows):
            cells = [f'<th scope="row">{esc(label)}</th>']
            for j in range(len(self.columns)):
                text = esc(self.formatted(i, j))
                if self.values[i][j] is None:
                    cells.append(f'<td class="missing">{text}</td>')
                elif i in best[j]:
                    cells.append(f'<td class="best"><b>{text}</b></td>')
                else:
                    cells.append(f"<td>{text}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody>")
        out.append("</table>")
        return "\n".join(out) + "\n"

    def write(self, folder: Path) -> list[Path]:
        """Write ``<name>.md``, ``.tex``, ``.csv`` and ``.html`` into ``folder``; return the paths."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix, text in (
            (".md", self.to_markdown()),
            (".tex", self.to_latex()),
            (".csv", self.to_csv()),
            (".html", self.to_html()),
        ):
            path = folder / f"{self.name}{suffix}"
            path.write_text(text, encoding="utf-8", newline="\n")
            paths.append(path)
        return paths


def _repr_float(value: float) -> str:
    """Shortest text that reads back as the same float (nothing rounded)."""
    return repr(float(value))


_LATEX_SPECIALS = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text, on one line (:func:`~irstd_bench._markdown.one_line`)."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in one_line(text))


# -- building tables from runs ------------------------------------------------------------------


def _datasets(runs: Sequence[RunResult]) -> list[tuple[str, str]]:
    """``(dataset_key, label)`` in order of first appearance."""
    return unique_in_order((r.dataset_key, r.dataset_label) for r in runs)


def _grid(
    runs: Sequence[RunResult],
    rows: list[str],
    row_of,
    metrics: Sequence[str],
    name: str,
    caption: str,
    row_header: str,
) -> Table:
    """Lay ``runs`` out: row ``row_of(run)``, one column group per dataset, ``metrics`` within."""
    datasets = _datasets(runs)
    columns = [Column(key, label, m) for key, label in datasets for m in metrics]
    index = {(row_of(r), r.dataset_key): r for r in runs}
    values = []
    for row in rows:
        line = []
        for column in columns:
            run = index.get((row, column.group))
            line.append(None if run is None else run.metrics.get(column.metric))
        values.append(line)
    return Table(name=name, caption=caption, row_header=row_header, rows=rows, columns=columns, values=values)


def _split_note(runs: Sequence[RunResult]) -> str:
    parts = [
        f"{label}: {r.split}, {r.matcher}"
        for key, label in _datasets(runs)
        for r in [next(x for x in runs if x.dataset_key == key)]
    ]
    return "; ".join(parts)


def _summary_grid(
    runs: Sequence[RunResult], metrics: Sequence[str], name: str, caption: str
) -> tuple[Table, list[MethodSummary]]:
    """Rows = methods (seeds merged: mean, std), column groups = datasets."""
    summaries = summarise_methods(runs, metrics)
    datasets = _datasets(runs)
    columns = [Column(key, label, m) for key, label in datasets for m in metrics]
    methods = unique_in_order(s.method for s in summaries)
    index = {(s.method, s.dataset_key): s for s in summaries}
    values, spread = [], []
    for method in methods:
        cells = [index.get((method, c.group)) for c in columns]
        values.append([None if s is None else s.mean[c.metric] for s, c in zip(cells, columns, strict=True)])
        spread.append([None if s is None else s.std[c.metric] for s, c in zip(cells, columns, strict=True)])
    rows = []
    for method in methods:
        counts = {s.runs for s in summaries if s.method == method}
        rows.append(f"{method} ({counts.pop()} seeds)" if len(counts) == 1 and max(counts) > 1 else method)
    has_spread = any(v is not None for row in spread for v in row)
    table = Table(name, caption, "Method", rows, columns, values, spread if has_spread else None)
    return table, summaries


def main_table(runs: Sequence[RunResult], metrics: Sequence[str] = MAIN_METRICS) -> Table:
    """Rows = methods, column groups = datasets, sub-columns P, R, F1 (val thr.), F1 (best on test).

    The EFLNet paper's Table I layout, with both F1 protocols named (:data:`PROTOCOL_NOTE`).
    Runs of one method with several seeds are one row, ``mean ± std`` over the seeds.
    """
    metrics = [m for m in metrics if any(r.metrics.get(m) is not None for r in runs)]
    caption = f"Precision, recall and F1 at the operating point ({_split_note(runs)}). {PROTOCOL_NOTE}"
    if any(len(s.seeds) > 1 for s in summarise_methods(runs, metrics)):
        caption += "; several seeds: mean \u00b1 std (sample) over seeds, each seed in the detailed table"
    return _summary_grid(runs, metrics, "main", caption + ".")[0]


def detailed_table(runs: Sequence[RunResult]) -> Table | None:
    """Both F1 protocols, best-F1 threshold, AP50, IoU, nIoU, Pd, Fa per method and dataset.

    A method run with several seeds has its ``mean ± std`` row followed by one row per seed.
    Metrics no run has are left out; ``None`` when no run has any of them.
    """
    metrics = [m for m in DETAILED_METRICS if any(r.metrics.get(m) is not None for r in runs)]
    if not metrics:
        return None
    caption = (
        "Both F1 protocols, threshold-free and pixel-level metrics (Fa per 10^6 pixels; "
        f"thr. of best F1 = the test score threshold of F1 (best on test)). {PROTOCOL_NOTE}."
    )
    summary, summaries = _summary_grid(runs, metrics, "detailed", caption)
    per_run = _grid(runs, unique_in_order(run_label(r) for r in runs), run_label, metrics, "", "", "")
    rows, values, spread, unranked = [], [], [], set()
    for i, method in enumerate(unique_in_order(s.method for s in summaries)):
        members = [run_label(r) for r in runs if base_method(r) == method]
        if len(set(members)) > 1:  # several seeds: the mean ± std row, then each seed
            rows.append(summary.rows[i])
            values.append(summary.values[i])
            spread.append(summary.spread[i] if summary.spread else [None] * len(summary.columns))
        for label in unique_in_order(members):
            k = per_run.rows.index(label)
            if len(set(members)) > 1:
                unranked.add(len(rows))
            rows.append(label if len(set(members)) == 1 else f"  {label}")
            values.append(per_run.values[k])
            spread.append([None] * len(summary.columns))
    has_spread = any(v is not None for row in spread for v in row)
    spread_or_none = spread if has_spread else None
    return Table("detailed", caption, "Method", rows, summary.columns, values, spread_or_none, frozenset(unranked))
