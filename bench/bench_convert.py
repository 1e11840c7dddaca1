"""Throughput of ``convert`` on a dataset (NUAA-SIRST by default) against the bare cost of decoding its PNGs.

Timings, each the median over ``--runs`` repetitions (seconds for the whole dataset), wall
clock and CPU (user + system of this process and its workers):

- ``decode``: Pillow decodes every image and its mask (``Image.open(...).load()``), one
  process: the floor that any conversion reading the files pays;
- ``files``: creating, in a new folder, as many files (one short line each) and symbolic
  links as the conversion's output holds (counted from its manifest): the floor of writing
  that output on this file system, whatever the content;
- ``convert (1 worker)``: ``convert_dataset`` in-process, all formats, into a temporary folder
  (``force``: each run replaces the previous one, as a user's rerun does);
- ``convert (N workers)``: the same with N worker processes (default: all CPUs);
- ``convert, COCO only``: 1 worker, ``--format coco``: every image read, checked and
  converted as above, but the output is two files (the COCO JSON and the summary), so it
  shows the reading and converting work without the YOLO and VOC trees' files.

Each row's ratio to ``decode`` is printed, and for the conversions also the ratio of what
is left after the ``files`` floor (``(convert - files) / decode``): the reading, checking and
encoding work. On a machine where creating a file costs about a millisecond (a loaded VM),
the ``files`` floor alone exceeds ``decode``.

A second table splits the in-process work of one conversion into its steps, each timed alone
over every image (same medians): verifying the images (read once, PNG chunk CRCs), reading
the masks (read once, CRCs, decode), masks -> targets (connected components), targets -> COCO
RLE, and the output texts (COCO JSON, YOLO labels, VOC XML), built in memory only.

Usage (from the repository root)::

    .venv/bin/python bench/bench_convert.py --runs 5                    # NUAA-SIRST, all 427 images
    .venv/bin/python bench/bench_convert.py --dataset nudt --runs 5     # NUDT-SIRST, all 1327 images

``--dataset`` names the layout (and, without ``--root``, the release in ``../shared/datasets``).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import click
from PIL import Image

from irstd_bench._io import read_mask, verify_image
from irstd_bench._outputs import MANIFEST_NAME
from irstd_bench.convert import convert_dataset
from irstd_bench.convert._coco import coco_document, dumps_json
from irstd_bench.convert._records import ConvertSettings, convert_chunk
from irstd_bench.convert._rle import target_rles
from irstd_bench.convert._voc import voc_xml
from irstd_bench.convert._yolo import label_text
from irstd_bench.datasets import dataset_image_ids, open_dataset
from irstd_bench.targets import mask_to_targets

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
#: Where each dataset's release is found when ``--root`` is not given.
DEFAULT_ROOTS = {"nuaa": SHARED_DATASETS / "NUAA-SIRST", "nudt": SHARED_DATASETS / "NUDT-SIRST"}


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _median_seconds(fns: dict, runs: int) -> dict[str, tuple[float, float]]:
    """``{name: (wall, cpu)}`` medians of ``runs`` calls of each function, interleaved (one call
    of each per round), so that every timing meets the same machine load."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            cpu, start = _cpu_seconds(), time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start, _cpu_seconds() - cpu))
    return {
        name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for name, values in samples.items()
    }


def _output_entries(out: Path) -> tuple[int, int]:
    """``(files, symbolic links)`` a conversion wrote, from its manifest (the manifest counted)."""
    names = json.loads((out / MANIFEST_NAME).read_text())["files"]
    links = sum((out / name).is_symlink() for name in names)
    return len(names) - links + 1, links


@click.command()
@click.option("--dataset", default="nuaa", show_default=True, help="Layout: nuaa, nudt, irstd1k, sirstv2.")
@click.option("--root", default=None, type=click.Path(file_okay=False), help="Dataset root (default: the release "
              "in ../shared/datasets for nuaa and nudt).")
@click.option("--split", default="all", show_default=True, help="Split to convert (default: every image).")
@click.option("--runs", default=5, show_default=True, type=int, help="Repetitions; the median is reported.")
@click.option("--workers", default=None, type=int, help="Worker processes (default: all CPUs).")
@click.option("--formats", default="coco,yolo,voc", show_default=True)
def main(dataset: str, root: str | None, split: str, runs: int, workers: int | None, formats: str) -> None:
    if root is None:
        if dataset not in DEFAULT_ROOTS:
            raise click.UsageError(f"--dataset {dataset}: give its --root")
        root = str(DEFAULT_ROOTS[dataset])
    ds = open_dataset(root, dataset)
    samples = ds.samples(split)
    pairs = [(s.image_path, s.mask_path) for s in samples]
    workers = workers or os.cpu_count() or 1
    link_target = str(Path(pairs[0][0]).resolve())

    def decode() -> None:
        for image, mask in pairs:
            with Image.open(image) as im:
                im.load()
            with Image.open(mask) as m:
                m.load()

    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        out = Path(tmp)

        def convert(n: int, folder: Path, chosen: str = formats):
            return lambda: convert_dataset(
                root, folder, dataset=dataset, splits=[split], formats=chosen, workers=n, warn=lambda m: None,
                force=True,
            )

        def create_files() -> None:
            folder = Path(tmp) / "files"
            folder.mkdir()
            for i in range(n_files):
                (folder / f"{i}.txt").write_bytes(b"0 0.5 0.5 0.1 0.1\n")
            for i in range(n_links):
                os.symlink(link_target, folder / f"{i}.png")
            shutil.rmtree(folder)

        decode()  # warm the page cache once, so every timing reads from memory
        convert(1, out / "first")()
        n_files, n_links = _output_entries(out / "first")
        timed = _median_seconds(
            {
                "decode": decode,
                "files": create_files,
                "one": convert(1, out / "one"),
                "many": convert(workers, out / "many"),
                "coco": convert(1, out / "coco", "coco"),
            },
            runs,
        )
        t_decode, t_files, t_one, t_many, t_coco = timed.values()

    steps = _steps(ds, samples, pairs, runs)
    n = len(pairs)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    click.echo(f"{ds.layout.title} {split}: {n} images, median of {runs} run(s), formats {formats}")
    click.echo(f"output: {n_files} files and {n_links} symbolic links; load average {load} ({os.cpu_count()} CPUs)")
    click.echo(f"{'':<24} {'wall s':>8} {'cpu s':>8} {'img/s':>8} {'x decode':>9} {'-files x decode':>16}")
    rows = (
        ("decode (1 process)", t_decode, False),
        (f"files ({n_files} + {n_links} links)", t_files, False),
        ("convert (1 worker)", t_one, True),
        (f"convert ({workers} workers)", t_many, True),
        ("convert, COCO only (1)", t_coco, False),
    )
    for name, (wall, cpu), less_files in rows:
        rest = f"{(wall - t_files[0]) / t_decode[0]:>16.2f}" if less_files else f"{'':>16}"
        click.echo(f"{name:<24} {wall:>8.3f} {cpu:>8.3f} {n / wall:>8.0f} {wall / t_decode[0]:>9.2f} {rest}")
    click.echo(f"\nsteps of one conversion, in-process, each alone over the {n} images:")
    click.echo(f"{'':<24} {'wall s':>8} {'cpu s':>8} {'x decode':>9}")
    for name, (wall, cpu) in steps.items():
        click.echo(f"{name:<24} {wall:>8.3f} {cpu:>8.3f} {wall / t_decode[0]:>9.2f}")


def _steps(ds, samples, pairs, runs: int) -> dict[str, tuple[float, float]]:
    """``{step: (wall, cpu)}`` medians of the conversion's steps, each over every image."""
    masks = [read_mask(mask) for _, mask in pairs]
    targets = [mask_to_targets(mask) for mask in masks]
    records = convert_chunk([(s, ds.known_defect(s.stem)) for s in samples], ConvertSettings(127, 8, False))
    ids = dataset_image_ids(ds)

    def texts() -> None:
        dumps_json(coco_document(records, "bench", ids))
        for rec in records:
            label_text(rec)
            voc_xml(rec, "images")

    return _median_seconds(
        {
            "verify images": lambda: [verify_image(image) for image, _ in pairs],
            "read masks": lambda: [read_mask(mask) for _, mask in pairs],
            "masks -> targets": lambda: [mask_to_targets(mask) for mask in masks],
            "targets -> RLE": lambda: [target_rles(t) for t in targets],
            "output texts": texts,
        },
        runs,
    )


if __name__ == "__main__":
    main()
