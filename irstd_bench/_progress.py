"""Progress bars: tqdm on standard error, shown only to a person at a terminal.

Every long command (``convert``, ``predict``, ``baseline``, ``eval``) uses :func:`progress_bar`,
so they all behave alike: the bar goes to stderr (stdout stays clean for results and pipes),
is hidden when stderr is not a terminal (logs, CI, ``2> file``) and with ``--no-progress``,
and disappears when done.
"""

from __future__ import annotations

import sys


def progress_bar(total: int | None, desc: str, *, enabled: bool = True, unit: str = "img"):
    """A ``tqdm`` bar of ``total`` steps on stderr; call ``update(n)`` and ``close()`` (or use ``with``).

    Parameters
    ----------
    total : int or None
        Number of steps (images); ``None`` when unknown.
    desc : str
        Label before the bar (the command name).
    enabled : bool
        ``False`` (``--no-progress``) hides the bar; ``True`` shows it when stderr is a terminal.
    unit : str
        Name of one step.
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=None if enabled else True,  # None: tqdm hides the bar when stderr is not a TTY
        leave=False,
        dynamic_ncols=True,
    )
