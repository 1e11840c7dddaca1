"""``irstd-bench synth``: write the synthetic sample data set."""

from __future__ import annotations

from pathlib import Path

import click

from irstd_bench.synth._generate import (
    DEFAULT_EMPTY_FRACTION,
    DEFAULT_MAX_AREA_PX,
    DEFAULT_MAX_TARGETS,
    DEFAULT_N_IMAGES,
    DEFAULT_SCR,
    DEFAULT_SIZE,
    generate_sample,
    parse_scr,
)


@click.command("synth")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("synth_sample"),
    show_default=True,
    help="Output folder (NUDT-SIRST layout); --force replaces an earlier irstd-bench output.",
)
@click.option("--n-images", type=int, default=DEFAULT_N_IMAGES, show_default=True, help="Number of images.")
@click.option(
    "--size", type=int, default=DEFAULT_SIZE, show_default=True, help="Image side in pixels (>= 32)."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Same seed and options: identical bytes."
)
@click.option(
    "--max-targets",
    type=int,
    default=DEFAULT_MAX_TARGETS,
    show_default=True,
    help="Most targets in one image; images that are not background-only get 1..N.",
)
@click.option(
    "--scr",
    "scr_text",
    default=f"{DEFAULT_SCR[0]:g}:{DEFAULT_SCR[1]:g}",
    show_default=True,
    help="Signal-to-clutter ratio range LOW:HIGH (or one value), drawn per target.",
)
@click.option(
    "--max-area", type=int, default=DEFAULT_MAX_AREA_PX, show_default=True, help="Largest target, px."
)
@click.option(
    "--empty-fraction",
    type=float,
    default=DEFAULT_EMPTY_FRACTION,
    show_default=True,
    help="Fraction of background-only images.",
)
@click.option("--force", is_flag=True, help="Replace an earlier irstd-bench output at --out (only files it wrote).")
def synth(
    out: Path,
    n_images: int,
    size: int,
    seed: int,
    max_targets: int,
    scr_text: str,
    max_area: int,
    empty_fraction: float,
    force: bool,
) -> None:
    """Generate the synthetic SIRST-like sample: cluttered backgrounds, small targets, exact masks.

    Writes images/, masks/, 50_50/{train,test}.txt, split_synth/{train,val,test}.txt and
    synth_targets.json (every target's box, area, centroid and SCR) under --out.
    """
    summary = generate_sample(
        out,
        n_images=n_images,
        size=size,
        seed=seed,
        max_targets=max_targets,
        scr=parse_scr(scr_text),
        max_area_px=max_area,
        empty_fraction=empty_fraction,
        force=force,
    )
    click.echo(summary.line())
