"""Result tables: methods x datasets (P, R, F1), the detailed metrics and ablations.

A :class:`Table` holds raw numbers and renders them as Markdown, LaTeX (booktabs), CSV and
HTML. Numbers print with 3 decimals (false alarms per 10^6 pixels with 2); a missing value
prints as an en dash, and a value that cannot mean anything for its row (``RunResult.undefined``:
AP50 of a score map under a non-IoU matcher) as an en dash with a footnote mark, the reason
printed under the table. A line above each table (:func:`matching_line`) says which matcher each
column uses. The best value of each column is bold in Markdown, LaTeX and HTML; the CSV keeps the
raw, unrounded numbers and marks nothing (an undefined value is an empty cell, like a missing one).
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from irstd_bench._csv import csv_cell
from irstd_bench._markdown import md_cell, one_line
from irstd_bench.errors import InputError
from irstd_bench.report._intervals import INDISTINCT_MARK, LATEX_INDISTINCT_MARK
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
#: How each metric pairs predictions with targets: ``None`` for the run's own matcher (``--match``,
#: one per dataset in a report), else the fixed rule it uses whatever the matcher.
METRIC_MATCHING: dict[str, str | None] = {
    "precision": None,
    "recall": None,
    "f1": None,
    "best_f1": None,
    "best_f1_threshold": None,
    "ap50": "box IoU >= 0.5 (COCO AP), whatever the matcher",
    "iou": "pixels at score >= 0.5, no target matching",
    "niou": "pixels at score >= 0.5, no target matching",
    "pd": "centroid distance < 3 px (BasicIRSTD's rule), whatever the matcher",
    "fa_e6": "pixels of the components Pd's rule leaves unmatched",
}
#: Footnote marks, in order of first use: Markdown/HTML, LaTeX, terminal (ASCII only).
NOTE_MARKS = ("\u2020", "\u2021", "\u00a7", "\u00b6")
LATEX_NOTE_MARKS = ("\\dag", "\\ddag", "\\S", "\\P")
ASCII_NOTE_MARKS = ("*", "**", "***", "****")
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
    matching : str
        The line that says which matcher each column uses (:func:`matching_line`), shown with the
        caption (above the table).
    notes : dict
        ``(row, column) -> text`` of the cells whose value cannot mean anything for their row
        (``None`` in ``values``): printed as an en dash with a footnote mark, the text under the table.
    members : list of list of str, optional
        The runs (``run_label``) each row stands for: one, or a method's seeds.
    intervals, p_vs_best : list of list, optional
        Each cell's 95 % bootstrap interval ``[lo, hi]`` and the p-value of its paired
        difference to its column's best row (:mod:`irstd_bench.report._intervals`).
    indistinct : frozenset of (int, int)
        Cells not significantly different from their column's best, marked ``≈``.
    show_intervals : bool
        Print the intervals (``False``: paste-ready numbers; the marks stay).
    """

    name: str
    caption: str
    row_header: str
    rows: list[str]
    columns: list[Column]
    values: list[list[float | None]]
    spread: list[list[float | None]] | None = None
    unranked: frozenset[int] = frozenset()
    matching: str = ""
    notes: dict[tuple[int, int], str] = field(default_factory=dict)
    members: list[list[str]] | None = None
    intervals: list[list[list[float] | None]] | None = None
    p_vs_best: list[list[float | None]] | None = None
    indistinct: frozenset[tuple[int, int]] = frozenset()
    show_intervals: bool = True

    def std(self, i: int, j: int) -> float | None:
        return None if self.spread is None else self.spread[i][j]

    def interval(self, i: int, j: int) -> list[float] | None:
        return None if self.intervals is None else self.intervals[i][j]

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

    def footnotes(self) -> list[str]:
        """The notes' texts, each once, in order of first use (row by row)."""
        return unique_in_order(self.notes[cell] for cell in sorted(self.notes))

    def note_mark(self, i: int, j: int, marks: Sequence[str] = NOTE_MARKS) -> str:
        """The footnote mark of cell ``(i, j)`` (``""`` without a note)."""
        text = self.notes.get((i, j))
        return "" if text is None else footnote_mark(self.footnotes().index(text), marks)

    def footnote_lines(self, marks: Sequence[str] = NOTE_MARKS) -> list[str]:
        """``<mark> <text>`` for each note, in mark order."""
        return [f"{footnote_mark(k, marks)} {text}" for k, text in enumerate(self.footnotes())]

    def heading(self) -> str:
        """The caption and, after it, the matching line."""
        return f"{self.caption} {self.matching}".strip()

    def formatted(
        self,
        i: int,
        j: int,
        plus_minus: str = PLUS_MINUS,
        marks: Sequence[str] = NOTE_MARKS,
        indistinct: str = INDISTINCT_MARK,
    ) -> str:
        """Cell text without markup (``MISSING`` for no value, with its footnote mark where the value
        is undefined for the row; ``mean ± std`` over seeds; then the interval ``[lo, hi]`` and the
        ``indistinct`` mark when the cell has them)."""
        value, digits = self.values[i][j], self.columns[j].digits
        if value is None:
            return MISSING + self.note_mark(i, j, marks)
        std, interval = self.std(i, j), self.interval(i, j)
        text = f"{value:.{digits}f}" + ("" if std is None else f"{plus_minus}{std:.{digits}f}")
        if interval is not None and self.show_intervals:
            text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
        return text + (indistinct if (i, j) in self.indistinct else "")

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
        lines = [f"**{md_cell(self.caption)}**", ""]
        if self.matching:
            lines += [md_cell(self.matching), ""]
        lines.append("| " + " | ".join(md_cell(h) for h in header) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * len(self.columns)) + "|")
        for i, label in enumerate(self.rows):
            cells = [md_cell(label)]
            for j in range(len(self.columns)):
                text = self.formatted(i, j)
                cells.append(f"**{text}**" if i in best[j] else text)
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines.append("")
            lines += [md_cell(line) + "  " for line in self.footnote_lines()]  # two spaces: a line break
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """A booktabs ``table`` with dataset column groups (``\\usepackage{booktabs}``)."""
        best = [self.best_rows(j) for j in range(len(self.columns))]
        groups = self._groups()
        spec = "l" + "".join(" " + "c" * span for _, span in groups)
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{latex_escape(self.heading())}}}",
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
                    mark = self.note_mark(i, j, LATEX_NOTE_MARKS)
                    cells.append(LATEX_MISSING + (f"\\textsuperscript{{{mark}}}" if mark else ""))
                    continue
                text = self.formatted(i, j, LATEX_PLUS_MINUS, indistinct=LATEX_INDISTINCT_MARK)
                cells.append(f"\\textbf{{{text}}}" if i in best[j] else text)
            lines.append(" & ".join(cells) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        for k, text in enumerate(self.footnotes()):
            mark = footnote_mark(k, LATEX_NOTE_MARKS)
            lines.append(f"\\par{{\\footnotesize\\textsuperscript{{{mark}}} {latex_escape(text)}}}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Raw numbers (``repr`` precision, nothing rounded or marked); empty cell = missing.

        The header is the row header then ``<dataset>/<metric>`` for each column, and
        ``<dataset>/<metric>_std`` after it when the table has means over seeds; with intervals,
        ``_ci_lo``, ``_ci_hi`` and ``_p_vs_best`` columns follow (:func:`_interval_frame`).
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
        if self.intervals is not None:
            frame = pd.concat([frame, _interval_frame(self, frame.index)], axis=1)
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
            f"<caption>{esc(self.caption)}"
            + (f'<br><span class="matching">{esc(self.matching)}</span>' if self.matching else "")
            + "</caption>",
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
        if self.notes:
            span = len(self.columns) + 1
            out.append("<tfoot>")
            out += [f'<tr><td colspan="{span}" class="note">{esc(line)}</td></tr>' for line in self.footnote_lines()]
            out.append("</tfoot>")
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


def _interval_frame(table: Table, index: pd.Index) -> pd.DataFrame:
    """``<column>_ci_lo``, ``_ci_hi`` and ``_p_vs_best`` of every column with an interval."""
    columns = {}
    for j, column in enumerate(table.columns):
        cells = [table.interval(i, j) for i in range(len(table.rows))]
        if all(c is None for c in cells):
            continue
        name = csv_cell(column.csv_name)
        columns[f"{name}_ci_lo"] = [None if c is None else c[0] for c in cells]
        columns[f"{name}_ci_hi"] = [None if c is None else c[1] for c in cells]
        columns[f"{name}_p_vs_best"] = [table.p_vs_best[i][j] for i in range(len(table.rows))]
    return pd.DataFrame(columns, index=index, dtype="float64")


def footnote_mark(k: int, marks: Sequence[str] = NOTE_MARKS) -> str:
    """The ``k``-th footnote mark (from 0): the marks in turn, doubled after the last one."""
    return marks[k % len(marks)] * (k // len(marks) + 1)


def _matcher_words(spec: str) -> str:
    """``centroid:3 (centroid distance < 3 px)``; a spec this version cannot parse as it is."""
    from irstd_bench.evaluate import parse_matcher

    try:
        return f"{spec} ({parse_matcher(spec).description})"
    except InputError:
        return spec


def matching_line(runs: Sequence[RunResult], metrics: Sequence[str]) -> str:
    """Which matcher each of the ``metrics`` columns uses, as one line (``""`` for no metric).

    P, R and both F1 protocols use each dataset's matcher (one per dataset in a report); AP50
    always pairs boxes at IoU >= 0.5; the pixel metrics and Pd/Fa have their fixed rules
    (:data:`METRIC_MATCHING`).
    """
    own = [METRICS[m][0] for m in metrics if METRIC_MATCHING.get(m, "") is None]
    parts = []
    if own:
        per_dataset = [
            (label, next(r.matcher for r in runs if r.dataset_key == key)) for key, label in _datasets(runs)
        ]
        if len({spec for _, spec in per_dataset}) == 1:
            which = _matcher_words(per_dataset[0][1])
        else:
            which = ", ".join(f"{label}: {_matcher_words(spec)}" for label, spec in per_dataset)
        parts.append(f"{', '.join(own)}: {which}")
    fixed = [m for m in metrics if METRIC_MATCHING.get(m)]
    for rule in unique_in_order(METRIC_MATCHING[m] for m in fixed):
        parts.append(f"{', '.join(METRICS[m][0] for m in fixed if METRIC_MATCHING[m] == rule)}: {rule}")
    return f"Matching: {'; '.join(parts)}." if parts else ""


def shown_metrics(runs: Sequence[RunResult], metrics: Sequence[str]) -> list[str]:
    """The ``metrics`` some run has a value of, or has as undefined (a column of dashes with its note)."""
    return [m for m in metrics if any(r.metrics.get(m) is not None or m in r.undefined for r in runs)]


def cell_note(runs: Sequence[RunResult], metric: str) -> str | None:
    """The note of a cell holding ``runs``: why ``metric`` means nothing for all of them, else ``None``."""
    reasons = [r.undefined.get(metric) for r in runs]
    if not reasons or any(reason is None for reason in reasons):
        return None
    return reasons[0]


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
    "<": "\\textless{}",  # OT1 fonts print a bare < or > as inverted punctuation
    ">": "\\textgreater{}",
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
    values, notes = [], {}
    for i, row in enumerate(rows):
        line = []
        for j, column in enumerate(columns):
            run = index.get((row, column.group))
            line.append(None if run is None else run.metrics.get(column.metric))
            note = None if run is None else cell_note([run], column.metric)
            if note is not None:
                notes[(i, j)] = note
        values.append(line)
    return Table(
        name=name,
        caption=caption,
        row_header=row_header,
        rows=rows,
        columns=columns,
        values=values,
        matching=matching_line(runs, metrics),
        notes=notes,
    )


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
    values, spread, notes = [], [], {}
    for i, method in enumerate(methods):
        cells = [index.get((method, c.group)) for c in columns]
        values.append([None if s is None else s.mean[c.metric] for s, c in zip(cells, columns, strict=True)])
        spread.append([None if s is None else s.std[c.metric] for s, c in zip(cells, columns, strict=True)])
        for j, column in enumerate(columns):
            members = [r for r in runs if base_method(r) == method and r.dataset_key == column.group]
            note = cell_note(members, column.metric)
            if note is not None:
                notes[(i, j)] = note
    rows = []
    for method in methods:
        counts = {s.runs for s in summaries if s.method == method}
        rows.append(f"{method} ({counts.pop()} seeds)" if len(counts) == 1 and max(counts) > 1 else method)
    has_spread = any(v is not None for row in spread for v in row)
    table = Table(
        name, caption, "Method", rows, columns, values, spread if has_spread else None,
        matching=matching_line(runs, metrics), notes=notes,
    )  # fmt: skip
    table.members = [unique_in_order(run_label(r) for r in runs if base_method(r) == m) for m in methods]
    return table, summaries


def main_table(runs: Sequence[RunResult], metrics: Sequence[str] = MAIN_METRICS) -> Table:
    """Rows = methods, column groups = datasets, sub-columns P, R, F1 (val thr.), F1 (best on test).

    The EFLNet paper's Table I layout, with both F1 protocols named (:data:`PROTOCOL_NOTE`).
    Runs of one method with several seeds are one row, ``mean ± std`` over the seeds.
    """
    metrics = shown_metrics(runs, metrics)
    caption = f"Precision, recall and F1 at the operating point ({_split_note(runs)}). {PROTOCOL_NOTE}"
    if any(len(s.seeds) > 1 for s in summarise_methods(runs, metrics)):
        caption += "; several seeds: mean \u00b1 std (sample) over seeds, each seed in the detailed table"
    return _summary_grid(runs, metrics, "main", caption + ".")[0]


def detailed_table(runs: Sequence[RunResult]) -> Table | None:
    """Both F1 protocols, best-F1 threshold, AP50, IoU, nIoU, Pd, Fa per method and dataset.

    A method run with several seeds has its ``mean ± std`` row followed by one row per seed.
    Metrics no run has are left out; ``None`` when no run has any of them.
    """
    metrics = shown_metrics(runs, DETAILED_METRICS)
    if not metrics:
        return None
    caption = (
        "Both F1 protocols, threshold-free and pixel-level metrics (Fa per 10^6 pixels; "
        f"thr. of best F1 = the test score threshold of F1 (best on test)). {PROTOCOL_NOTE}."
    )
    summary, summaries = _summary_grid(runs, metrics, "detailed", caption)
    per_run = _grid(runs, unique_in_order(run_label(r) for r in runs), run_label, metrics, "", "", "")
    rows, values, spread, unranked, notes, row_members = [], [], [], set(), {}, []
    for i, method in enumerate(unique_in_order(s.method for s in summaries)):
        members = [run_label(r) for r in runs if base_method(r) == method]
        if len(set(members)) > 1:  # several seeds: the mean ± std row, then each seed
            notes.update({(len(rows), j): text for (row, j), text in summary.notes.items() if row == i})
            rows.append(summary.rows[i])
            values.append(summary.values[i])
            spread.append(summary.spread[i] if summary.spread else [None] * len(summary.columns))
            row_members.append(summary.members[i])
        for label in unique_in_order(members):
            k = per_run.rows.index(label)
            if len(set(members)) > 1:
                unranked.add(len(rows))
            notes.update({(len(rows), j): text for (row, j), text in per_run.notes.items() if row == k})
            rows.append(label if len(set(members)) == 1 else f"  {label}")
            values.append(per_run.values[k])
            spread.append([None] * len(summary.columns))
            row_members.append([label])
    has_spread = any(v is not None for row in spread for v in row)
    spread_or_none = spread if has_spread else None
    table = Table(
        "detailed", caption, "Method", rows, summary.columns, values, spread_or_none, frozenset(unranked),
        matching=summary.matching, notes=notes,
    )  # fmt: skip
    table.members = row_members
    return table
