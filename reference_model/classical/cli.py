"""``irstd-bench baseline``: run a classical method on a dataset split."""

from __future__ import annotations

import os

import click

from irstd_bench.datasets import open_dataset
from irstd_bench.errors import InputError
from reference_model.classical._registry import METHODS, get_method, parse_params
from reference_model.classical._runner import parse_save, run_baseline


def _method_help() -> str:
    lines = [
        f"  {m.name}: {m.reference}; params " + ", ".join(f"{k}={v}" for k, v in m.defaults.items())
        for m in METHODS.values()
    ]
    return "\n".join(lines)


@click.command("baseline", epilog="\b\nMethods:\n" + _method_help())
@click.argument("method")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="Dataset root folder.")
@click.option("--dataset", default=None, help="nuaa|nudt|irstd1k|sirstv2|custom (default: detect).")
@click.option("--image-dir", default=None, help="Custom layout: image folder relative to root.")
@click.option("--mask-dir", default=None, help="Custom layout: mask folder relative to root.")
@click.option("--split", default="test", show_default=True, help="Split name (e.g. test, idx_427/test, all).")
@click.option(
    "--out", required=True, type=click.Path(), help="Output folder (scoremaps/<stem>.npy, masks/<stem>.png)."
)
@click.option("--k", "k", default=3.0, show_default=True, type=float, help="Mask threshold mean + k * std.")
@click.option("--workers", default=None, type=int, help="Processes (default: all CPU cores).")
@click.option("--save", default="scoremaps,masks", show_default=True, help="What to write: scoremaps, masks.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Method parameter (repeatable).")
@click.option("--limit", default=None, type=int, help="Only the first N images of the split.")
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr (when a terminal)."
)
def baseline(method, root, dataset, image_dir, mask_dir, split, out, k, workers, save, params, limit, progress):
    """Run the classical METHOD (tophat, maxmedian, lcm, mpcm, ipi) and write score maps and masks.

    Writes OUT/scoremaps/<stem>.npy (float32, per-image min-max normalised to [0, 1]) and
    OUT/masks/<stem>.png ({0, 255}: score > mean + k * std). Example:

        irstd-bench baseline mpcm --dataset nuaa --root DATA --split test --out preds/mpcm
    """
    spec = get_method(method)
    parsed = parse_params(spec, params)
    save_kinds = parse_save(save)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be >= 1, got {limit}")
    ds = open_dataset(root, dataset, image_dir=image_dir, mask_dir=mask_dir)
    stems = ds.stems(split)
    if limit is not None:
        stems = stems[:limit]
    images = [(stem, ds.sample(stem).image_path) for stem in stems]
    workers = workers if workers is not None else (os.cpu_count() or 1)
    run = run_baseline(
        spec.name, images, out, k=k, workers=workers, save=save_kinds, params=parsed, progress=progress
    )
    click.echo(
        f"{run.method}: {run.images} images in {run.seconds:.2f} s "
        f"({run.images_per_s:.2f} images/s, {run.workers} worker(s)) -> {out}"
    )
