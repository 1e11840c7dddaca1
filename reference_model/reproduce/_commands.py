"""Command lines of the ``train``, ``predict`` and ``eval`` steps, built from setting names.

Options are looked up on the installed click commands, so a setting is passed only where the
command has it (the engine gains options over time); :func:`command_args` says which settings
a command did not take, and the caller records them.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

import click


def command_params(name: str) -> dict[str, click.Parameter]:
    """Parameters of the ``irstd-bench`` subcommand ``name``, by Python name."""
    from irstd_bench.cli import cli

    command = cli.get_command(click.Context(cli), name)
    if command is None:
        raise LookupError(f"irstd-bench has no command {name!r}")
    return {p.name: p for p in command.params if p.name}


def command_args(
    name: str, settings: Mapping[str, object], *, positional: tuple[str, ...] = ()
) -> tuple[list[str], list[str]]:
    """``[name, *positional, --option value, ...]`` for the settings the command has.

    Booleans become ``--flag`` / ``--no-flag`` (or are left out when the command has no form for
    that value); ``None`` values are left out.

    Returns
    -------
    args : list of str
    missing : list of str
        Settings the command does not have (or cannot express), in ``settings`` order.
    """
    params = command_params(name)
    args = [name, *positional]
    missing = []
    for key, value in settings.items():
        if value is None:
            continue
        param = params.get(key)
        if not isinstance(param, click.Option):
            missing.append(key)
            continue
        if param.is_flag or isinstance(value, bool):
            if not isinstance(value, bool):
                missing.append(key)
                continue
            on = param.opts[0] if param.opts else None
            off = param.secondary_opts[0] if param.secondary_opts else None
            if param.is_flag and param.flag_value is False:  # --no-x flag that sets x to False
                on, off = off, on
            flag = on if value else off
            if flag is None:
                if bool(param.default) != value:
                    missing.append(key)
                continue
            args.append(flag)
        else:
            args += [param.opts[0], str(value)]
    return args, missing


def shell_line(args: list[str]) -> str:
    """The command as a user types it: ``irstd-bench train --model acm ...``."""
    return "irstd-bench " + shlex.join(args)
