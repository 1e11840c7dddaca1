"""Throughput of the classical baselines on NUAA-SIRST test images (images per second).

Two measurements per method, each the median over ``--runs`` repetitions:

- ``compute``: score maps only, images already decoded in memory, one process, one BLAS thread,
  also as a ratio to the time of the baseline method (``--baseline``, Top-Hat) measured in the
  same run (the machine's speed varies; ratios within one run are what compare);
- ``pipeline`` (with ``--workers N``): the full ``run_baseline`` (read, score, normalise,
  threshold, write ``.npy`` + ``.png`` to a temporary folder) with N worker processes.

Usage (from the repository root)::

    .venv/bin/python bench/bench_classical.py --root ../shared/datasets/NUAA-SIRST --runs 3 --workers 2
    .venv/bin/python bench/bench_classical.py --limit 8 --runs 3   # the slow low-rank methods too
    .venv/bin/python bench/bench_classical.py --limit 2 --runs 3 --methods tophat,ript   # README's RIPT row
    .venv/bin/python bench/bench_classical.py --dataset nudt --root ../shared/datasets/NUDT-SIRST \
        --split split_EFLNet/test --limit 3 --runs 1 --methods tophat,ipi,ript,nram
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

from irstd_bench._io import read_gray  # noqa: E402
from irstd_bench.datasets import open_dataset  # noqa: E402
from reference_model.classical import METHODS, image_to_unit, run_baseline  # noqa: E402

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "NUAA-SIRST"


@click.command()
@click.option("--root", default=str(DEFAULT_ROOT), show_default=True, type=click.Path(file_okay=False))
@click.option("--dataset", default="nuaa", show_default=True, help="Layout of --root (nuaa, nudt, ...).")
@click.option("--split", default="test", show_default=True)
@click.option("--methods", default=",".join(METHODS), show_default=True, help="Comma-separated names.")
@click.option("--runs", default=3, show_default=True, type=int, help="Repetitions; the median is reported.")
@click.option("--limit", default=None, type=int, help="Only the first N images of the split.")
@click.option(
    "--workers", default=0, show_default=True, type=int, help="Also time the pipeline with N workers."
)
@click.option("--baseline", default="tophat", show_default=True, help="Method the ratios refer to.")
def main(root, dataset, split, methods, runs, limit, workers, baseline):
    ds = open_dataset(root, dataset)
    stems = ds.stems(split)[:limit] if limit else ds.stems(split)
    paths = [(s, ds.sample(s).image_path) for s in stems]
    images = [image_to_unit(read_gray(p)) for _, p in paths]
    mpx = sum(im.size for im in images) / 1e6
    click.echo(f"{len(images)} images of {ds.layout.title} {split} ({mpx:.2f} Mpx), median of {runs} run(s)")
    click.echo(
        f"{'method':<10} {'compute img/s':>14} {'ms/img':>10} {'x ' + baseline:>10}"
        + (f" {'pipeline img/s':>15}" if workers else "")
    )

    def compute_time(method) -> float:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            for im in images:
                method(im)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    reference = compute_time(METHODS[baseline])
    for name in methods.split(","):
        method = METHODS[name.strip()]
        t = reference if method.name == baseline else compute_time(method)
        line = (
            f"{method.name:<10} {len(images) / t:>14.2f} {1000 * t / len(images):>10.1f}"
            f" {t / reference:>10.1f}"
        )
        if workers:
            pipe = []
            for _ in range(runs):
                with tempfile.TemporaryDirectory() as tmp:
                    pipe.append(run_baseline(method.name, paths, Path(tmp) / "out", workers=workers).seconds)
            line += f" {len(images) / statistics.median(pipe):>15.2f}"
        click.echo(line)


if __name__ == "__main__":
    main()
