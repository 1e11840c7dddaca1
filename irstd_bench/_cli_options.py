"""Command-line options shared by several commands, and the one check of option values.

Every numeric option of every command is declared with :class:`Number` (or one of its
shorthands below), so its value is checked while click parses the command line, before the
command does any work: a bad value never leaves partial output behind. An out-of-range,
non-finite or non-UTF-8 value is an :class:`~irstd_bench.errors.InputError` naming the option
and the value as typed (``--threshold -1: must be in [0, 65535)``), which the CLI prints as one
``Error:`` line with exit code 2.

Each option below is a click decorator; every command that reads images or masks takes the
same ``--max-pixels`` and ``--skip-defects`` with the same meaning (see ``docs/CONTRACTS.md``).
"""

from __future__ import annotations

import math

import click

from irstd_bench._io import DEFAULT_MAX_PIXELS
from irstd_bench.errors import InputError
from irstd_bench.targets import MASK_VALUE_LIMIT


class Number(click.ParamType):
    """A finite ``int`` or ``float`` option value within ``[low, high]`` (either end open or absent).

    Text that is not a number is click's usual usage error; a number outside the range (NaN
    and infinities included) is an :class:`InputError` naming the option and the value typed.

    Examples
    --------
    >>> Number(float, 0, 1).convert("0.5", None, None)
    0.5
    >>> Number(int, 1).convert("0", None, None)
    Traceback (most recent call last):
    ...
    irstd_bench.errors.InputError: value 0: must be >= 1
    """

    def __init__(self, kind: type = float, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> None:
        self.kind, self.low, self.high, self.low_open, self.high_open = kind, low, high, low_open, high_open
        self.name = "integer" if kind is int else "number"

    def range_text(self) -> str:
        """The accepted range in words: ``in [0, 1]``, ``>= 1``, ``> 0``."""
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "a finite number"

    def convert(self, value, param, ctx):
        if isinstance(value, self.kind) and not isinstance(value, bool):
            number, text = value, str(value)
        else:
            text = str(value).strip()
            try:
                number = self.kind(text)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a valid {self.name}", param, ctx)
        where = f"{param.opts[0]} {text}" if param is not None and param.opts else f"value {text}"
        if not math.isfinite(number):
            raise InputError(f"{where}: must be a finite number")
        below = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        above = self.high is not None and (number >= self.high if self.high_open else number > self.high)
        if below or above:
            raise InputError(f"{where}: must be {self.range_text()}")
        return number

    def __repr__(self) -> str:
        return f"Number({self.kind.__name__}, {self.range_text()})"


def count(low: int = 1, high: int | None = None) -> Number:
    """An integer option ``>= low`` (and ``<= high``): workers, batches, epochs, sides."""
    return Number(int, low, high)


#: A probability or score threshold, ``[0, 1]``.
UNIT_INTERVAL = Number(float, 0.0, 1.0)
#: The evaluator's confidence: what scores ``>= conf`` keeps, ``(0, 1]`` (0 would keep empty pixels).
CONFIDENCE = Number(float, 0.0, 1.0, low_open=True)
#: A mask binarisation threshold (foreground where value > threshold): masks hold values
#: 0..65535, so a negative threshold makes every pixel a target and one of 65535 or more none.
MASK_THRESHOLD = Number(float, 0.0, MASK_VALUE_LIMIT, high_open=True)
#: Most worker processes an option may ask for: far above any useful count (one per CPU), low
#: enough that a typo (``--workers 100000``) cannot start a process storm.
MAX_WORKERS = 256
#: Worker processes.
WORKERS = count(1, MAX_WORKERS)

max_pixels_option = click.option(
    "--max-pixels",
    type=count(1),
    default=None,
    help=f"Largest image or mask decoded, in pixels (default {DEFAULT_MAX_PIXELS}); a larger declared size is refused.",
)

skip_defects_option = click.option(
    "--skip-defects", is_flag=True, help="Leave known release defects (NUAA-SIRST Misc_111) out of every split."
)


def check_utf8_arguments(args: list[str]) -> None:
    """Refuse command-line arguments that are not UTF-8 text (bytes the shell passed undecoded).

    Every file irstd-bench writes is UTF-8 (JSON, CSV, Markdown): a path or name holding such
    bytes could be neither written nor printed, and would fail half-way through a command.
    """
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape")
            raise InputError(f"argument {shown!r} is not UTF-8 text; rename the file or folder") from None
