"""Warnings on the command line: one line each, ``warning: <message>``, on standard error.

The library reports the data problems it handles (a known release defect resized, a {0, 1}
mask read as binary) with :class:`~irstd_bench.errors.DatasetDefectWarning` through
:func:`warnings.warn`, so a program using it can catch or filter them. Python would print each
with the file and line of the code that warned plus that source line; a user of the command
needs the data file and value the message names, nothing else. :func:`one_line_warnings` shows
them so for the duration of one command (the CLI enters it around every subcommand, never at
import time); warnings of other libraries keep Python's format.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import click

from irstd_bench.errors import DatasetDefectWarning

#: What starts every warning line (the CLI's errors start with ``Error: ``).
WARNING_PREFIX = "warning: "


def warning_line(message: object) -> str:
    """``warning: <message>`` as one line (runs of whitespace, line breaks included, become one space)."""
    return WARNING_PREFIX + " ".join(str(message).split())


def echo_warning(message: object) -> None:
    """Print :func:`warning_line` of ``message`` on standard error."""
    click.echo(warning_line(message), err=True)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Inside the block, each :class:`DatasetDefectWarning` prints as one :func:`warning_line`.

    Python's warning filters still decide what is shown (``-W ignore`` hides them); the previous
    ``warnings.showwarning`` and filters are restored on leaving.
    """
    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if issubclass(category, DatasetDefectWarning):
                click.echo(warning_line(message), err=True, file=file)
            else:
                previous(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield
