"""CSV cells that spreadsheets do not run: the one escaping rule of every CSV irstd-bench writes.

A spreadsheet opening a CSV treats a cell that begins with ``=``, ``+``, ``-`` or ``@`` (and,
in some programs, a tab or carriage return) as a formula: an image named
``=HYPERLINK("http://...")`` or a method named ``@SUM(...)`` would run. Such a cell is written
with a leading apostrophe (``'=HYPERLINK(...)``), which spreadsheets show as text, as OWASP
recommends. Numbers are left alone: ``-3.5`` and ``+1e-3`` are values, not formulas, and
escaping them would turn every negative number into text.

>>> csv_cell("=1+2"), csv_cell("-3.5"), csv_cell("@cmd"), csv_cell("Misc_1"), csv_cell(-2)
("'=1+2", '-3.5', "'@cmd", 'Misc_1', '-2')
>>> read_csv_cell("'=1+2"), read_csv_cell("'plain")
('=1+2', "'plain")
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from irstd_bench.errors import InputError

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: What is put in front of such a cell.
ESCAPE = "'"


def csv_cell(value) -> str:
    """``value`` as CSV cell text, escaped when a spreadsheet would run it (see module docstring)."""
    text = "" if value is None else str(value)
    if not text.startswith(FORMULA_PREFIXES):
        return text
    try:
        float(text)
    except ValueError:
        return ESCAPE + text
    return text


def read_csv_cell(text: str) -> str:
    """Undo :func:`csv_cell` for a reader of our own CSVs (``'=x`` -> ``=x``; other text unchanged)."""
    if text.startswith(ESCAPE) and text[1:].startswith(FORMULA_PREFIXES):
        return text[1:]
    return text


def read_csv_rows(path: str | Path) -> list[tuple[int, list[str]]]:
    """Every row of a CSV file with its line number, the header row first; UTF-8 (a BOM is dropped).

    The one CSV reader of the files users give (``eval``'s predictions, ``report``'s per-target
    CSVs): a missing file, a folder, bytes that are not UTF-8 text, NUL bytes (a binary file) and
    what the ``csv`` module refuses (a field over its 128 KiB limit, a stray quote in strict
    places) are each one :class:`~irstd_bench.errors.InputError` naming the file and line.
    """
    from irstd_bench._io import refuse_special_file

    path = Path(path)
    refuse_special_file(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a CSV file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if "\x00" in text:
        raise InputError(f"{path}: holds NUL bytes (a binary file, not CSV text)")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    return rows
