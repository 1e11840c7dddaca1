"""``irstd-bench baseline``: run a classical method on a dataset split."""

from __future__ import annotations

import os

import click

from irstd_bench._cli_options import WORKERS, Number, count, max_pixels_option, skip_defects_option
from irstd_bench._io import check_pixels, image_size, pixel_limit
from irstd_bench.datasets import open_dataset
from irstd_bench.errors import InputError
from reference_model.classical._registry import METHODS, get_method, parse_params
from reference_model.classical._runner import parse_save, run_baseline

#: Largest window / patch / scale side a parameter may ask for, px: no IRSTD image is larger, and
#: ``maxmedian size=100001`` would otherwise try to allocate tens of GiB.
MAX_WINDOW_PX = 1025
#: Integer parameters that are window sides or steps, px: each must lie in [1, MAX_WINDOW_PX].
WINDOW_PARAMS = ("radius", "size", "scales", "smooth", "patch", "stride")


def check_param_ranges(method: str, params: dict) -> None:
    """Refuse window sizes, scales and counts outside ``[1, MAX_WINDOW_PX]`` and non-finite floats."""
    import math

    for key, value in params.items():
        values = value if isinstance(value, tuple) else (value,)
        if key in WINDOW_PARAMS:
            if not values or any(not 1 <= int(v) <= MAX_WINDOW_PX for v in values):
                raise InputError(f"--param {key}={value}: {method} needs values in [1, {MAX_WINDOW_PX}]")
        elif any(not (math.isfinite(float(v)) and float(v) > 0) for v in values):
            raise InputError(f"--param {key}={value}: {method} needs a finite positive number")


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
@click.option("--k", "k", default=3.0, show_default=True, type=Number(float), help="Mask threshold mean + k * std.")
@click.option("--workers", default=None, type=WORKERS, help="Processes (default: all CPU cores).")
@click.option("--save", default="scoremaps,masks", show_default=True, help="What to write: scoremaps, masks.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Method parameter (repeatable).")
@click.option("--limit", default=None, type=count(1), help="Only the first N images of the split.")
@max_pixels_option
@skip_defects_option
@click.option("--force", is_flag=True, help="Replace an earlier irstd-bench output at --out (only files it wrote).")
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr (when a terminal)."
)
def baseline(
    method, root, dataset, image_dir, mask_dir, split, out, k, workers, save, params, limit, max_pixels, skip_defects,
    force, progress,
):
    """Run the classical METHOD (listed below with its parameters) and write score maps and masks.

    Writes OUT/scoremaps/<stem>.npy (float32, per-image min-max normalised to [0, 1]) and
    OUT/masks/<stem>.png ({0, 255}: score > mean + k * std). Example:

        irstd-bench baseline mpcm --dataset nuaa --root DATA --split test --out preds/mpcm
    """
    spec = get_method(method)
    parsed = parse_params(spec, params)
    check_param_ranges(spec.name, parsed)
    save_kinds = parse_save(save)
    ds = open_dataset(root, dataset, image_dir=image_dir, mask_dir=mask_dir, skip_defects=skip_defects)
    stems = ds.stems(split)
    if limit is not None:
        stems = stems[:limit]
    images = [(stem, ds.sample(stem).image_path) for stem in stems]
    workers = workers if workers is not None else (os.cpu_count() or 1)
    with pixel_limit(max_pixels):
        for _, path in images:  # a decompression bomb is refused before any worker starts
            check_pixels(path, image_size(path))
        run = run_baseline(
            spec.name,
            images,
            out,
            k=k,
            workers=workers,
            save=save_kinds,
            params=parsed,
            force=force,
            inputs=[("dataset root", ds.root)],
            progress=progress,
        )
    click.echo(
        f"{run.method}: {run.images} images in {run.seconds:.2f} s "
        f"({run.images_per_s:.2f} images/s, {run.workers} worker(s)) -> {out}"
    )
