"""Command-line options shared by several commands, declared once.

Each is a click decorator; every command that reads images or masks takes the same
``--max-pixels`` and ``--skip-defects`` with the same meaning (see ``docs/CONTRACTS.md``).
"""

from __future__ import annotations

import click

from irstd_bench._io import DEFAULT_MAX_PIXELS

max_pixels_option = click.option(
    "--max-pixels",
    type=int,
    default=None,
    help=f"Largest image or mask decoded, in pixels (default {DEFAULT_MAX_PIXELS}); a larger declared size is refused.",
)

skip_defects_option = click.option(
    "--skip-defects", is_flag=True, help="Leave known release defects (NUAA-SIRST Misc_111) out of every split."
)
