"""The ``irstd-bench`` command line: a thin layer over the library.

Subcommands are imported only when used, so ``irstd-bench --help`` and the light commands
start without importing torch. Every :class:`~irstd_bench.errors.InputError` becomes a
one-line ``Error: ...`` on stderr and exit code 2; every dataset warning a one-line
``warning: ...`` (:func:`irstd_bench._warnings.one_line_warnings`, entered for each command).
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator

import click

from irstd_bench import __version__
from irstd_bench._cli_options import check_utf8_arguments
from irstd_bench._warnings import one_line_warnings
from irstd_bench.errors import InputError

#: command name -> ("module", "attribute", one-line help shown by ``--help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("irstd_bench.synth.cli", "synth", "Generate the synthetic SIRST-like sample (NUDT-SIRST layout)."),
    "convert": ("irstd_bench.convert.cli", "convert", "Convert masks to boxes: COCO, YOLO and Pascal VOC."),
    "eval": ("irstd_bench.evaluate.cli", "eval_command", "Score predictions (boxes, masks, score maps)."),
    "audit": ("irstd_bench.audit.cli", "audit", "Compare a published box version with the boxes of the masks."),
    "train": ("reference_model.engine.cli", "train", "Train EFLNet or a segmentation baseline."),
    "predict": ("reference_model.engine.cli", "predict", "Run a trained model and write predictions."),
    "baseline": ("reference_model.classical.cli", "baseline", "Run a classical (training-free) method."),
    "report": ("irstd_bench.report.cli", "report", "Tables and plots from eval results."),
    "compare": (
        "irstd_bench.compare.cli",
        "compare",
        "Paired bootstrap of F1/AP50 differences between results (interval, p-value).",
    ),
    "demo": ("irstd_bench.demo", "demo", "The whole pipeline end to end on the synthetic sample."),
    "reproduce": (
        "reference_model.reproduce.cli",
        "reproduce",
        "Train, predict, score and report the EFLNet paper's Table I in one time budget.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[name]
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, _, help_) in COMMANDS.items()])


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``) ends a command like Ctrl-C, so that its clean-up runs:
    temporaries are removed, a run that wrote nothing yet removes its folder (Python's default
    would end the process on the spot). A handler the program set itself is left alone."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Main(LazyGroup):
    def invoke(self, ctx: click.Context):
        try:
            check_utf8_arguments(ctx.args)  # before any command reads or writes a path
            with one_line_warnings(), terminate_as_interrupt():
                return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="irstd-bench")
def cli() -> None:
    """irstd-bench: infrared small target detection datasets, evaluation and models."""


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="irstd-bench")
