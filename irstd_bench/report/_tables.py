"""Result tables: methods x datasets (P, R, F1), the detailed metrics and ablations.

A :class:`Table` holds raw numbers and renders them as Markdown, LaTeX (booktabs), CSV and
HTML. Numbers print with 3 decimals (false alarms per 10^6 pixels with 2); a missing value
prints as an en dash. The best value of each column is bold in Markdown, LaTeX and HTML; the
CSV keeps the raw, unrounded numbers and marks nothing.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irstd_bench._csv import csv_cell
from irstd_bench.errors import InputError
from irstd_bench.report._load import RunResult, unique_in_order

#: What a table prints where a run has no value.
MISSING = "\u2013"
LATEX_MISSING = "--"

#: metric key -> (plain label, LaTeX label, decimals, which is better: "max", "min" or None)
METRICS: dict[str, tuple[str, str, int, str | None]] = {
    "precision": ("P", "P", 3, "max"),
    "recall": ("R", "R", 3, "max"),
    "f1": ("F1", "F1", 3, "max"),
    "ap50": ("AP50", "AP$_{50}$", 3, "max"),
    "best_f1": ("best F1", "best F1", 3, "max"),
    "best_f1_threshold": ("thr", "thr.", 3, None),
    "iou": ("IoU", "IoU", 3, "max"),
    "niou": ("nIoU", "nIoU", 3, "max"),
    "pd": ("Pd", "$P_d$", 3, "max"),
    "fa_e6": ("Fa x1e-6", "$F_a$ ($\\times10^{-6}$)", 2, "min"),
}
MAIN_METRICS = ("precision", "recall", "f1")
DETAILED_METRICS = ("ap50", "best_f1", "best_f1_threshold", "iou", "niou", "pd", "fa_e6")
ABLATION_METRICS = ("precision", "recall", "f1", "ap50")


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
    """

    name: str
    caption: str
    row_header: str
    rows: list[str]
    columns: list[Column]
    values: list[list[float | None]]

    def best_rows(self, j: int) -> set[int]:
        """Rows holding the best value of column ``j``, compared as printed (ties share it).

        Columns without a better direction, and columns with fewer than two values, have none.
        """
        column = self.columns[j]
        if column.better is None:
            return set()
        shown = {i: round(row[j], column.digits) for i, row in enumerate(self.values) if row[j] is not None}
        if len(shown) < 2:
            return set()
        best = max(shown.values()) if column.better == "max" else min(shown.values())
        return {i for i, v in shown.items() if v == best}

    def formatted(self, i: int, j: int) -> str:
        """Cell text without markup (``MISSING`` for no value)."""
        value = self.values[i][j]
        return MISSING if value is None else f"{value:.{self.columns[j].digits}f}"

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

        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        best = [self.best_rows(j) for j in range(len(self.columns))]
        header = [self.row_header] + [
            f"{c.group_label} {c.label}" if c.group_label else c.label for c in self.columns
        ]
        lines = [f"**{cell(self.caption)}**", "", "| " + " | ".join(cell(h) for h in header) + " |"]
        lines.append("|" + "|".join([":---"] + ["---:"] * len(self.columns)) + "|")
        for i, label in enumerate(self.rows):
            cells = [cell(label)]
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
                text = self.formatted(i, j)
                cells.append(f"\\textbf{{{text}}}" if i in best[j] else text)
            lines.append(" & ".join(cells) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Raw numbers (``repr`` precision, nothing rounded or marked); empty cell = missing.

        The header is the row header then ``<dataset>/<metric>`` for each column.
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([csv_cell(self.row_header)] + [csv_cell(c.csv_name) for c in self.columns])
        for label, row in zip(self.rows, self.values, strict=True):
            writer.writerow([csv_cell(label)] + ["" if v is None else repr(float(v)) for v in row])
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
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


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


def main_table(runs: Sequence[RunResult]) -> Table:
    """Rows = methods, column groups = datasets, sub-columns P, R, F1 (the EFLNet paper's Table I)."""
    methods = unique_in_order(r.method for r in runs)
    caption = f"Precision, recall and F1 at the operating point ({_split_note(runs)})"
    return _grid(runs, methods, lambda r: r.method, MAIN_METRICS, "main", caption, "Method")


def detailed_table(runs: Sequence[RunResult]) -> Table | None:
    """AP50, best F1 and its threshold, IoU, nIoU, Pd, Fa per method and dataset.

    Metrics no run has are left out; ``None`` when no run has any of them.
    """
    metrics = [m for m in DETAILED_METRICS if any(r.metrics.get(m) is not None for r in runs)]
    if not metrics:
        return None
    methods = unique_in_order(r.method for r in runs)
    caption = "Threshold-free and pixel-level metrics (Fa per 10^6 pixels; thr = score threshold of best F1)"
    return _grid(runs, methods, lambda r: r.method, metrics, "detailed", caption, "Method")


# -- ablations ----------------------------------------------------------------------------------


def method_family(run: RunResult) -> str:
    """The method family a run belongs to, for ablations.

    ``config["family"]`` or ``config["model"]`` when the run has one, else the leading
    alphanumeric word of the method name (``EFLNet-n (lambda=3)`` -> ``EFLNet``).
    """
    for key in ("family", "model"):
        value = run.config.get(key)
        if isinstance(value, str) and value:
            return value
    match = re.match(r"[A-Za-z0-9]+", run.method)
    return match.group(0) if match else run.method


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sort_key(value: Any) -> tuple:
    if isinstance(value, bool):
        return (0, int(value), "")
    if isinstance(value, int | float):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def _frozen(config: dict[str, Any], without: str) -> tuple:
    """The other settings of a config, hashable (non-scalar values as canonical JSON)."""
    items = []
    for key, value in sorted(config.items()):
        if key in (without, "family", "model"):
            continue
        items.append((key, value if _is_scalar(value) else json.dumps(value, sort_keys=True, default=str)))
    return tuple(items)


def varying_keys(runs: Sequence[RunResult]) -> list[str]:
    """Config keys whose (scalar) value varies across runs of one family on one dataset."""
    keys: list[str] = []
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((method_family(run), run.dataset_key), []).append(run)
    for group in groups.values():
        for key in unique_in_order(k for r in group for k in r.config):
            if key in ("family", "model"):
                continue
            values = [r.config[key] for r in group if key in r.config and _is_scalar(r.config[key])]
            if len(unique_in_order(values)) > 1 and key not in keys:
                keys.append(key)
    return keys


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"


def ablation_tables(runs: Sequence[RunResult], group_by: str | None = None) -> list[Table]:
    """Ablation tables: one per varied setting, rows = its values, columns = P/R/F1/AP50 per dataset.

    Runs are grouped by method family; within a family, the runs compared in one table share
    every other config setting (they differ in one setting only). ``group_by`` names the setting;
    without it every setting that varies within a family on a dataset gets tables.

    Raises
    ------
    InputError
        ``group_by`` is given but no two runs of one family differ in it alone.
    """
    keys = [group_by] if group_by else varying_keys(runs)
    tables: list[Table] = []
    used_names: set[str] = set()
    for key in keys:
        families = unique_in_order(
            method_family(r) for r in runs if key in r.config and _is_scalar(r.config[key])
        )
        for family in families:
            members = [
                r
                for r in runs
                if method_family(r) == family and key in r.config and _is_scalar(r.config[key])
            ]
            partitions: dict[tuple, list[RunResult]] = {}
            for run in members:
                partitions.setdefault(_frozen(run.config, key), []).append(run)
            for fixed, part in partitions.items():
                values = sorted(unique_in_order(r.config[key] for r in part), key=_sort_key)
                if len(values) < 2:
                    continue
                tables.append(_ablation_table(part, key, family, fixed, values, used_names))
    if group_by and not tables:
        have = sorted({k for r in runs for k in r.config})
        raise InputError(
            f"--group-by {group_by}: no two runs of one method family differ only in {group_by!r} "
            f"(config keys in the inputs: {', '.join(have) or 'none'})"
        )
    return tables


def _ablation_table(
    part: list[RunResult], key: str, family: str, fixed: tuple, values: list[Any], used_names: set[str]
) -> Table:
    labels: dict[int, str] = {}
    taken: set[tuple[str, str]] = set()
    ordered = sorted(part, key=lambda r: _sort_key(r.config[key]))
    for run in ordered:
        label = _setting_text(run.config[key])
        if (label, run.dataset_key) in taken:
            label = f"{label} ({run.method})"
        taken.add((label, run.dataset_key))
        labels[id(run)] = label
    rows = unique_in_order(labels[id(r)] for r in ordered)
    metrics = [m for m in ABLATION_METRICS if any(r.metrics.get(m) is not None for r in part)]
    fixed_text = ", ".join(f"{k}={_setting_text(v)}" for k, v in fixed)
    caption = f"Ablation of {key} ({family}" + (f"; fixed: {fixed_text})" if fixed_text else ")")
    name = f"ablation_{_slug(family)}_{_slug(key)}"
    base, n = name, 2
    while name in used_names:
        name, n = f"{base}_{n}", n + 1
    used_names.add(name)
    return _grid(part, rows, lambda r: labels[id(r)], metrics, name, caption, key)


# -- terminal -----------------------------------------------------------------------------------


def format_terminal_table(
    results: Iterable[Any],
    metrics: Sequence[str] = ("precision", "recall", "f1", "ap50"),
) -> str:
    """A plain-text table of ``results`` (runs, results dicts or results file paths).

    Rows are methods, column groups datasets, sub-columns the ``metrics`` (3 decimals, Fa 2;
    ``-`` where missing). Only ASCII characters, for any terminal.
    """
    from irstd_bench.report._load import load_runs

    runs = load_runs(results)
    metrics = [m for m in metrics if any(r.metrics.get(m) is not None for r in runs)]
    table = _grid(
        runs, unique_in_order(r.method for r in runs), lambda r: r.method, metrics, "terminal", "", "Method"
    )
    cell_w = max(6, max(len(METRICS[m][0]) for m in metrics))
    label_w = max(len(table.row_header), *(len(r) for r in table.rows))
    header1, header2 = [" " * label_w], [table.row_header.ljust(label_w)]
    for label, span in table._groups():
        width = span * cell_w + (span - 1)
        header1.append(label[:width].center(width))
    header2 += [c.label.rjust(cell_w) for c in table.columns]
    body = []
    for i, label in enumerate(table.rows):
        cells = [label.ljust(label_w)]
        for j in range(len(table.columns)):
            text = table.formatted(i, j)
            cells.append(("-" if text == MISSING else text).rjust(cell_w))
        body.append(_join_groups(cells, table))
    lines = [_join_groups(header1, table, grouped=True), _join_groups(header2, table)]
    rule = "-" * len(lines[1])
    return "\n".join([lines[0], lines[1], rule, *body]) + "\n"


def _join_groups(cells: list[str], table: Table, grouped: bool = False) -> str:
    """Join a line: label, then groups separated by `` | ``, cells within a group by a space."""
    if grouped:
        return " | ".join(cells).rstrip()
    out, k = [cells[0]], 1
    for _, span in table._groups():
        out.append(" ".join(cells[k : k + span]))
        k += span
    return " | ".join(out).rstrip()
