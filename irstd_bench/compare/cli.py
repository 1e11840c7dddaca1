"""``irstd-bench compare``: paired bootstrap of F1 and AP50 differences between results files."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from irstd_bench._cli_options import count
from irstd_bench._outputs import Claim, check_file_replaceable, json_schema_owner, refuse_inside_inputs, write_file_set
from irstd_bench.compare import COMPARE_SCHEMA, compare_runs, comparison_json
from irstd_bench.evaluate import DEFAULT_RESAMPLES, DEFAULT_SEED, MAX_RESAMPLES
from irstd_bench.report._load import as_run


def check_compare_out(out: Path, force: bool, inputs: list[tuple[str, Path | None]]) -> Claim:
    """Refuse an ``--out`` that is an input, or a file irstd-bench did not write (``--force``
    replaces an earlier ``compare`` output only); the claim is checked again when written."""
    refuse_inside_inputs(out, inputs, folder=False)
    return check_file_replaceable(out, force=force, owned=json_schema_owner(COMPARE_SCHEMA))


@click.command("compare")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the comparison as JSON here (default: print only); --force replaces an earlier compare output.",
)
@click.option("--all-pairs", is_flag=True, help="Every pair of runs, not only each run against the first.")
@click.option(
    "--bootstrap",
    "resamples",
    default=DEFAULT_RESAMPLES,
    show_default=True,
    type=count(1, MAX_RESAMPLES),
    help="Paired resamples of the images.",
)
@click.option(
    "--bootstrap-seed",
    "seed", default=DEFAULT_SEED,
    show_default=True,
    type=count(0),
    help="Seed of the resamples.",
)
@click.option("--force", is_flag=True, help="Replace an earlier compare output at --out.")
def compare(results: tuple[Path, ...], out: Path | None, all_pairs: bool, resamples: int, seed: int, force: bool):
    """Is a difference more than chance? Paired bootstrap over images of the differences in F1
    and AP50 between RESULTS files (eval's results JSON) of one dataset split and matcher: each
    against the first, or every pair with --all-pairs. Prints the difference B - A, its 95%
    interval and a two-sided p-value."""
    runs = [as_run(path) for path in results]
    claim = None
    if out is not None:  # before the bootstrap: a refused --out costs no work
        inputs = [("input", p) for r in runs for p in (r.path, r.per_image_csv, r.per_target_csv)]
        claim = check_compare_out(out, force, inputs)
    comparison = compare_runs(runs, all_pairs=all_pairs, resamples=resamples, seed=seed)
    if out is not None:
        args = ["irstd-bench", "compare", *map(str, results), "--out", str(out)]
        args += ["--all-pairs"] * all_pairs
        args += [] if resamples == DEFAULT_RESAMPLES else ["--bootstrap", str(resamples)]
        args += [] if seed == DEFAULT_SEED else ["--bootstrap-seed", str(seed)]
        write_file_set({out: comparison_json(comparison, shlex.join(args))}, {out: claim})
    click.echo(comparison.format_table(), nl=False)
    if out is not None:
        click.echo(f"wrote {out}")
