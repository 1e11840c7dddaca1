"""The plain-text table ``irstd-bench report`` and the demo print in the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from irstd_bench._markdown import one_line
from irstd_bench.report._load import load_runs
from irstd_bench.report._tables import ASCII_NOTE_MARKS, ASCII_PLUS_MINUS, MISSING, Table, main_table


def format_terminal_table(
    results: Iterable[Any],
    metrics: Sequence[str] = ("precision", "recall", "f1", "best_f1", "ap50"),
) -> str:
    """A plain-text table of ``results`` (runs, results dicts or results file paths).

    Rows are methods (several seeds: ``mean+-std``), column groups datasets, sub-columns the
    ``metrics`` (3 decimals, Fa 2; ``-`` where missing). Above it, the line that says which matcher
    each column uses; under it, a footnote for each kind of value that cannot mean anything for
    its row (``-*``). Only ASCII characters, for any terminal.
    """
    table = main_table(load_runs(results), metrics)
    texts = [
        [table.formatted(i, j, ASCII_PLUS_MINUS, ASCII_NOTE_MARKS) for j in range(len(table.columns))]
        for i in range(len(table.rows))
    ]
    cell_w = max(6, *(len(c.label) for c in table.columns), *(len(t) for row in texts for t in row))
    rows = [one_line(r) for r in table.rows]  # a line break in a method name would split its row
    label_w = max(len(table.row_header), *(len(r) for r in rows))
    header1, header2 = [" " * label_w], [table.row_header.ljust(label_w)]
    for label, span in table._groups():
        width = span * cell_w + (span - 1)
        header1.append(one_line(label)[:width].center(width))
    header2 += [c.label.rjust(cell_w) for c in table.columns]
    body = []
    for i, label in enumerate(rows):
        cells = [label.ljust(label_w)] + [_ascii_missing(t).rjust(cell_w) for t in texts[i]]
        body.append(_join_groups(cells, table))
    lines = [_join_groups(header1, table, grouped=True), _join_groups(header2, table)]
    rule = "-" * len(lines[1])
    above = [_ascii(table.matching)] if table.matching else []
    below = [_ascii(line) for line in table.footnote_lines(ASCII_NOTE_MARKS)]
    return "\n".join([*above, lines[0], lines[1], rule, *body, *below]) + "\n"


def _ascii_missing(text: str) -> str:
    """A cell: the en dash of a missing value as ``-`` (its footnote mark kept)."""
    return "-" + text[len(MISSING) :] if text.startswith(MISSING) else text


def _ascii(text: str) -> str:
    """A line in ASCII: ``>=`` and ``<=`` stay, any other non-ASCII character becomes ``?``."""
    return text.replace("\u2265", ">=").replace("\u2264", "<=").encode("ascii", "replace").decode("ascii")


def _join_groups(cells: list[str], table: Table, grouped: bool = False) -> str:
    """Join a line: label, then groups separated by `` | ``, cells within a group by a space."""
    if grouped:
        return " | ".join(cells).rstrip()
    out, k = [cells[0]], 1
    for _, span in table._groups():
        out.append(" ".join(cells[k : k + span]))
        k += span
    return " | ".join(out).rstrip()
