"""Throughput of ``convert`` on NUAA-SIRST against the bare cost of decoding its PNGs.

Three timings, each the median over ``--runs`` repetitions (seconds for the whole dataset):

- ``decode``: Pillow decodes every image and its mask (``Image.open(...).load()``), one
  process: the floor that any conversion reading the files pays;
- ``convert (1 worker)``: ``convert_dataset`` in-process, all formats, into a temporary folder;
- ``convert (N workers)``: the same with N worker processes (default: all CPUs).

The ratio ``convert / decode`` is printed for both; the goal is at most 1.5 with N workers.

Usage (from the repository root)::

    .venv/bin/python bench/bench_convert.py --runs 5
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import click
from PIL import Image

from irstd_bench.convert import convert_dataset
from irstd_bench.datasets import open_dataset

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "NUAA-SIRST"


def _median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@click.command()
@click.option("--root", default=str(DEFAULT_ROOT), show_default=True, type=click.Path(file_okay=False))
@click.option("--split", default="all", show_default=True, help="Split to convert (default: every image).")
@click.option("--runs", default=5, show_default=True, type=int, help="Repetitions; the median is reported.")
@click.option("--workers", default=None, type=int, help="Worker processes (default: all CPUs).")
@click.option("--formats", default="coco,yolo,voc", show_default=True)
def main(root: str, split: str, runs: int, workers: int | None, formats: str) -> None:
    ds = open_dataset(root)
    samples = ds.samples(split)
    pairs = [(s.image_path, s.mask_path) for s in samples]
    workers = workers or os.cpu_count() or 1

    def decode() -> None:
        for image, mask in pairs:
            with Image.open(image) as im:
                im.load()
            with Image.open(mask) as m:
                m.load()

    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:

        def convert(n: int):
            return lambda: convert_dataset(
                root, Path(tmp) / "out", splits=[split], formats=formats, workers=n, warn=lambda m: None, force=True
            )

        decode()  # warm the page cache once, so every timing reads from memory
        t_decode = _median_seconds(decode, runs)
        t_one = _median_seconds(convert(1), runs)
        t_many = _median_seconds(convert(workers), runs)

    n = len(pairs)
    click.echo(f"{ds.layout.title} {split}: {n} images, median of {runs} run(s), formats {formats}")
    click.echo(f"{'':<22} {'seconds':>8} {'img/s':>8} {'x decode':>9}")
    for name, t in (("decode (1 process)", t_decode), ("convert (1 worker)", t_one),
                    (f"convert ({workers} workers)", t_many)):  # fmt: skip
        click.echo(f"{name:<22} {t:>8.3f} {n / t:>8.0f} {t / t_decode:>9.2f}")


if __name__ == "__main__":
    main()
