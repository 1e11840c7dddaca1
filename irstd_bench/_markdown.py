"""Text from files or the command line put into Markdown (and other line-based) outputs.

A method name, commit or path is data: written into a Markdown table or a line of ``RUNS.md``
it must stay inside its cell or line. A line break in a method name would end the table row; one
in ``--commit`` would start a new line, even a heading. Every such value goes through
:func:`one_line` (line breaks and other control characters become one space); table cells also
escape ``|`` (:func:`md_cell`); inline code gets a fence longer than any run of backticks in it
(:func:`md_code`).

>>> one_line("abc\\n# injected\\r\\nheading")
'abc # injected heading'
>>> md_cell("a|b\\nc")
'a\\\\|b c'
>>> md_code("x`y")
'`` x`y ``'
"""

from __future__ import annotations

import re

#: Line breaks and other control characters (C0, DEL, C1, Unicode line/paragraph separators).
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(value) -> str:
    """``value`` as text on one line: each run of line breaks or control characters becomes one space."""
    return _BREAKS.sub(" ", str(value))


def md_cell(value) -> str:
    """``value`` as the text of one Markdown table cell (one line, ``|`` escaped)."""
    return one_line(value).replace("|", "\\|")


def md_code(value) -> str:
    """``value`` as a Markdown inline code span, whatever backticks it holds."""
    text = one_line(value)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"
