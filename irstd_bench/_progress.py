"""Progress bars: tqdm on standard error, shown only to a person at a terminal.

Every command that shows a bar (``convert``, ``eval``, ``baseline``, ``predict``, ``train``, and
so the steps ``demo`` and ``reproduce`` run) asks :func:`show_progress`, the one rule: a bar is
drawn when it is wanted (no ``--no-progress``) and standard error is a terminal. Anywhere else
(a log file, a pipe, CI, ``2> file``, ``make demo > log 2>&1``) nothing is drawn, so no ``\\r``
ever lands in a log; commands that run long write one plain line per stage or epoch instead
(``train``'s ``epoch k/N ...`` lines). The bar goes to stderr (stdout stays clean for results and
pipes) and disappears when done.
"""

from __future__ import annotations

import sys
from typing import TextIO


def show_progress(enabled: bool = True, stream: TextIO | None = None) -> bool:
    """Whether to draw a progress bar on ``stream`` (default: the current ``sys.stderr``).

    ``True`` only when ``enabled`` (the command's ``--progress/--no-progress``) and the stream
    is a terminal; a stream without ``isatty``, or a closed one, is not.
    """
    if not enabled:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress_bar(total: int | None, desc: str, *, enabled: bool = True, unit: str = "img"):
    """A ``tqdm`` bar of ``total`` steps on stderr; call ``update(n)`` and ``close()`` (or use ``with``).

    Parameters
    ----------
    total : int or None
        Number of steps (images, batches); ``None`` when unknown.
    desc : str
        Label before the bar (the command name, or ``epoch k/N``).
    enabled : bool
        ``False`` (``--no-progress``) hides the bar; ``True`` shows it when stderr is a terminal
        (:func:`show_progress`).
    unit : str
        Name of one step.
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not show_progress(enabled, sys.stderr),
        leave=False,
        dynamic_ncols=True,
    )
