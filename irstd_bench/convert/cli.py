"""``irstd-bench convert``: masks -> COCO / YOLO / Pascal VOC boxes, a thin layer over the library."""

from __future__ import annotations

from pathlib import Path

import click

from irstd_bench._cli_options import MASK_THRESHOLD, WORKERS, max_pixels_option, skip_defects_option
from irstd_bench._io import pixel_limit
from irstd_bench.convert._convert import FORMATS, convert_dataset
from irstd_bench.convert._summary import render_text
from irstd_bench.datasets import NAMED_LAYOUTS
from irstd_bench.errors import InputError
from irstd_bench.targets import DEFAULT_THRESHOLD

DATASETS = (*sorted(layout.name for layout in NAMED_LAYOUTS), "custom")


@click.command("convert", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("root", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--dataset",
    type=click.Choice(DATASETS, case_sensitive=False),
    default=None,
    help="Release layout (default: detected from the folders).",
)
@click.option(
    "--split",
    "splits",
    multiple=True,
    help="Split name (idx_427/test, test, all) or split family (split_EFLNet); repeat or comma-separate. "
    "Default: every split file of the release, then 'all'.",
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    default=(",".join(FORMATS),),
    show_default=True,
    help="Output formats: coco, yolo, voc (repeat or comma-separate).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Output folder (default: ./<root folder name>-converted), built whole or not at all.",
)
@max_pixels_option
@skip_defects_option
@click.option("--force", is_flag=True, help="Replace an earlier irstd-bench output at --out (only files it wrote).")
@click.option(
    "--threshold",
    type=MASK_THRESHOLD,
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Mask binarisation: foreground where value > threshold.",
)
@click.option("--connectivity", type=click.Choice(["4", "8"]), default="8", show_default=True)
@click.option(
    "--resize-masks",
    is_flag=True,
    help="Resize a mask of another size than its image (nearest neighbour) instead of stopping "
    "(known release defects are resized anyway).",
)
@click.option(
    "--skip-missing", is_flag=True, help="Leave out images without a mask (reported) instead of failing."
)
@click.option("--image-dir", default=None, help="--dataset custom: image folder under ROOT.")
@click.option("--mask-dir", default=None, help="--dataset custom: mask folder under ROOT.")
@click.option("--mask-suffix", default="", help="--dataset custom: mask file = <stem><suffix>.png.")
@click.option("--split-dir", default="", help="--dataset custom: folder of split files (default: ROOT).")
@click.option("--workers", type=WORKERS, default=None, help="Worker processes (default: all CPUs).")
@click.option(
    "--copy-images",
    is_flag=True,
    help="YOLO images: byte copies of the release's files (default: symbolic links to them).",
)
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr (when a terminal)."
)
@click.pass_context
def convert(
    ctx: click.Context,
    root: Path,
    dataset: str | None,
    splits: tuple[str, ...],
    formats: tuple[str, ...],
    out: Path | None,
    max_pixels: int | None,
    skip_defects: bool,
    force: bool,
    threshold: float,
    connectivity: str,
    resize_masks: bool,
    skip_missing: bool,
    image_dir: str | None,
    mask_dir: str | None,
    mask_suffix: str,
    split_dir: str,
    workers: int | None,
    copy_images: bool,
    progress: bool,
) -> None:
    """Convert the masks under ROOT into boxes: COCO JSON, YOLO and Pascal VOC, plus summary.json.

    Each connected component (8-connectivity by default) of a binarised mask is one target with
    a tight box in pixels. Known release defects (NUAA-SIRST Misc_111, IRSTD-1k labels with
    value 64) are handled and reported by name.
    """
    if out is None:
        out = Path.cwd() / f"{root.resolve().name}-converted"
    try:
        with pixel_limit(max_pixels):
            result = convert_dataset(
                root,
                out,
                dataset=dataset.lower() if dataset else None,
                splits=splits,
                formats=formats,
                threshold=threshold,
                connectivity=int(connectivity),
                resize_masks=resize_masks,
                skip_missing=skip_missing,
                image_dir=image_dir,
                mask_dir=mask_dir,
                mask_suffix=mask_suffix,
                split_dir=split_dir,
                workers=workers,
                link_images=not copy_images,
                force=force,
                skip_defects=skip_defects,
                progress=progress,
            )
    except InputError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(2)
    click.echo(render_text(result.summary))
