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
