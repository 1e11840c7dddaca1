"""Benchmark of the evaluator on mask predictions: generated 256x256 images, or a real dataset.

Compares, on the same files and machine:

- bare decoding of every prediction and ground-truth PNG (Pillow -> numpy), the floor;
- ``irstd_bench.evaluate.evaluate_split`` (what ``irstd-bench eval`` runs), 1 and N workers;
- ``pyirstdmetrics`` (Pd/Fa, split IoU and nIoU at 0.5), when importable; it is not a dependency:
  install it outside the project (``pip install --target /tmp/pyirstd pyirstdmetrics``) and pass
  ``--pyirstd-path /tmp/pyirstd``.

The ground truth is a generated NUDT-SIRST-like tree of ``--images`` masks, or, with ``--root``,
the masks of a real dataset split (``--dataset``, ``--split``). The predictions are made from the
ground truth by one rule (:func:`perturb`: each target kept with probability 0.85, moved by up
to one pixel, a 3x3 false alarm in 30 % of the images; seed 0), written as 8-bit PNG masks to a
temporary folder, unless ``--preds`` names a folder of mask predictions.

Usage::

    .venv/bin/python bench/bench_eval.py --images 2000 --workers 2 --pyirstd-path /tmp/pyirstd
    .venv/bin/python bench/bench_eval.py --root ../shared/datasets/NUDT-SIRST --dataset nudt --split all \
        --workers 2 --pyirstd-path /tmp/pyirstd
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 256
SEED = 0


def perturb(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A predicted mask made from ``gt`` ``(H, W)`` bool: every target (8-connected) kept with
    probability 0.85 and moved by up to one pixel in each direction, plus a 3x3 false alarm with
    probability 0.3. 8-bit, {0, 255}."""
    from irstd_bench.targets import mask_to_targets

    h, w = gt.shape
    pred = np.zeros((h, w), np.uint8)
    targets = mask_to_targets(gt)
    rows, cols = np.divmod(targets.pixels, w)
    for i in range(len(targets)):
        if rng.random() < 0.85:  # detected, sometimes shifted by a pixel
            dr, dc = rng.integers(-1, 2, 2)
            mine = targets.pixel_labels == i + 1
            pred[np.clip(rows[mine] + dr, 0, h - 1), np.clip(cols[mine] + dc, 0, w - 1)] = 255
    if rng.random() < 0.3:  # a false alarm
        r, c = rng.integers(0, h - 4), rng.integers(0, w - 4)
        pred[r : r + 3, c : c + 3] = 255
    return pred


def generate(root: Path, n: int) -> None:
    """A NUDT-SIRST-like tree with ``n`` blank images and masks of 1-3 rectangular targets."""
    rng = np.random.default_rng(SEED)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "50_50").mkdir()
    image = Image.fromarray(np.zeros((SIZE, SIZE), np.uint8))
    stems = [f"{i:06d}" for i in range(1, n + 1)]
    for stem in stems:
        image.save(root / "images" / f"{stem}.png")
        gt = np.zeros((SIZE, SIZE), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            r, c = rng.integers(8, SIZE - 16, 2)
            h, w = rng.integers(1, 9, 2)
            gt[r : r + h, c : c + w] = 255
        Image.fromarray(gt).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\n".join(stems) + "\n")
    (root / "50_50" / "train.txt").write_text(stems[0] + "\n")


def write_predictions(pairs: list[tuple[str, Path]], out: Path) -> None:
    """``out/<stem>.png``: :func:`perturb` of each ``(stem, mask path)``, in order (seed 0)."""
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True)
    for stem, mask in pairs:
        Image.fromarray(perturb(np.asarray(Image.open(mask)) > 127, rng)).save(out / f"{stem}.png")


def _decode(paths: list[str]) -> int:
    total = 0
    for p in paths:
        total += int(np.asarray(Image.open(p)).shape[0])
    return total


def bare_decode(pairs: list[tuple[Path, Path]], workers: int) -> float:
    """Seconds to decode every ground-truth and predicted PNG, in 1 or ``workers`` processes."""
    paths = [str(m) for m, _ in pairs] + [str(p) for _, p in pairs]
    start = time.perf_counter()
    if workers == 1:
        _decode(paths)
    else:
        chunks = [paths[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_decode, chunks))
    return time.perf_counter() - start


def ours(root: Path, dataset: str, split: str, preds: Path, workers: int) -> tuple[float, dict]:
    from irstd_bench.datasets import open_dataset
    from irstd_bench.evaluate import evaluate_split, open_predictions

    start = time.perf_counter()
    ds = open_dataset(root, dataset)
    items = [(s.stem, (s, ds.known_defect(s.stem))) for s in ds.samples(split)]
    pset = open_predictions(preds, stems=[stem for stem, _ in items])
    result = evaluate_split(items, pset, matcher="centroid:3", conf=0.5, workers=workers)
    return time.perf_counter() - start, result.metrics


def pyirstd(pairs: list[tuple[Path, Path]]) -> tuple[float, dict]:
    from py_irstd_metrics import CMMetrics, IoUHandler, ProbabilityDetectionAndFalseAlarmRate

    start = time.perf_counter()
    pdfa = ProbabilityDetectionAndFalseAlarmRate(num_bins=1, distance_threshold=3)
    cm = CMMetrics(
        num_bins=1,
        threshold=0.5,
        metric_handlers={
            "iou": IoUHandler(with_binary=True, sample_based=False),
            "niou": IoUHandler(with_binary=True, sample_based=True),
        },
    )
    for mask_path, pred_path in pairs:
        mask = np.asarray(Image.open(mask_path)) > 127
        prob = np.asarray(Image.open(pred_path)).astype(np.float64) / 255
        pdfa.update(prob, mask)
        cm.update(prob, mask)
    out = pdfa.get()
    metrics = cm.get()
    return time.perf_counter() - start, {
        "pd": float(out["probability_detection"][0]),
        "fa_e6": float(out["false_alarm"][0]) * 1e6,
        "iou": float(np.ravel(metrics["iou"]["binary"])[0]),
        "niou": float(np.ravel(metrics["niou"]["binary"])[0]),
    }


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its largest child so far."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000, help="Generated images (without --root).")
    parser.add_argument("--root", type=Path, default=None, help="A real dataset instead of generated images.")
    parser.add_argument("--dataset", default=None, help="Layout of --root (default: detect).")
    parser.add_argument("--split", default="all", help="Split of --root (default: every image).")
    parser.add_argument("--preds", type=Path, default=None, help="Mask predictions <stem>.png (default: perturb).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pyirstd-path", default=None, help="Folder where pyirstdmetrics is installed.")
    parser.add_argument(
        "--pyirstd-images",
        type=int,
        default=None,
        help="Time pyirstdmetrics on the first N images only and scale (default: all).",
    )
    args = parser.parse_args()
    if args.pyirstd_path:
        sys.path.insert(0, args.pyirstd_path)
    import irstd_bench.datasets  # noqa: F401  (imports are not part of the timings)
    import irstd_bench.evaluate  # noqa: F401
    from irstd_bench.datasets import open_dataset

    with tempfile.TemporaryDirectory(prefix="irstd-bench-eval-") as tmp:
        if args.root is None:
            root, dataset, split = Path(tmp) / "data", "nudt", "test"
            t0 = time.perf_counter()
            generate(root, args.images)
            took = time.perf_counter() - t0
            print(f"generated {args.images} images + masks ({SIZE}x{SIZE}) in {took:.1f} s")
        else:
            root, dataset, split = args.root, args.dataset, args.split
        ds = open_dataset(root, dataset)
        samples = ds.samples(split)
        preds = args.preds or Path(tmp) / "preds"
        if args.preds is None:
            write_predictions([(s.stem, s.mask_path) for s in samples], preds)
        pairs = [(s.mask_path, preds / f"{s.stem}.png") for s in samples]
        made = "perturbed from the masks" if args.preds is None else str(preds)
        print(f"{ds.layout.title} {split}: {len(pairs)} masks; predictions {made}")
        decode1 = bare_decode(pairs, 1)
        decode_n = bare_decode(pairs, args.workers)
        print(f"bare PNG decode of GT + predictions: {decode1:.2f} s (1 process), ", end="")
        print(f"{decode_n:.2f} s ({args.workers} processes)")
        t1, m1 = ours(root, ds.name, split, preds, 1)
        tn, mn = ours(root, ds.name, split, preds, args.workers)
        assert m1 == mn, "worker count changed the metrics"
        own, child = peak_rss_mb()
        print(
            f"irstd-bench evaluate_split: {t1:.2f} s (1 worker, {t1 / decode1:.2f}x decode), "
            f"{tn:.2f} s ({args.workers} workers, {tn / decode_n:.2f}x decode)"
        )
        print(f"  peak RSS: main {own:.0f} MB, largest worker {child:.0f} MB")
        print(
            f"  pd {mn['pd']:.6f} fa_e6 {mn['fa_e6']:.4f} iou {mn['iou']:.6f} niou {mn['niou']:.6f} "
            f"P {mn['precision']:.4f} R {mn['recall']:.4f}"
        )
        try:
            import py_irstd_metrics  # noqa: F401
        except ImportError:
            print(
                "pyirstdmetrics not importable: skipped (install it with "
                "`pip install --target /tmp/pyirstd pyirstdmetrics` and pass --pyirstd-path /tmp/pyirstd)"
            )
            return
        if args.pyirstd_images:
            tp, mp = pyirstd(pairs[: args.pyirstd_images])
            tp *= len(pairs) / args.pyirstd_images
            print(f"pyirstdmetrics: {tp:.2f} s (scaled from {args.pyirstd_images} images)")
        else:
            tp, mp = pyirstd(pairs)
            print(f"pyirstdmetrics: {tp:.2f} s (1 process; it has no parallel mode)")
            print(f"  pd {mp['pd']:.6f} fa_e6 {mp['fa_e6']:.4f} iou {mp['iou']:.6f} niou {mp['niou']:.6f}")
        print(f"speed-up: {tp / t1:.1f}x with 1 worker, {tp / tn:.1f}x with {args.workers} workers")


if __name__ == "__main__":
    main()
