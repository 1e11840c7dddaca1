"""Benchmark of the bootstrap intervals against ``eval``'s own time on the same split.

On the first ``--images`` images of NUDT-SIRST (real masks; ``--root``), with box predictions
generated like a detector's output at a low confidence (each target found with probability 0.8,
score in [0.3, 1], a third of those boxes moved by up to 1 px; false alarms, score in [0.001, 0.6],
up to ``--candidates`` scored boxes per image), this times:

- ``evaluate_split`` without the bootstrap (``--bootstrap 0``: reading the masks, matching,
  curves, AP), the median of ``--eval-runs`` runs;
- the bootstrap alone on its result (``bootstrap_intervals``: ``--resamples`` resamples of P, R,
  F1 and AP50), the median of ``--runs`` runs;

and prints both with their ratio. The predictions are written to a temporary COCO results file;
the dataset is only read.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_bootstrap.py --root ../shared/datasets/NUDT-SIRST
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 0


def coco_predictions(samples, candidates: int, out: Path) -> Path:
    """A COCO results file: per image, the targets found (p = 0.8, jittered) and false alarms."""
    from irstd_bench.datasets import load_ground_truth

    rng = np.random.default_rng(SEED)
    rows = []
    for sample in samples:
        gt = load_ground_truth(sample)
        h, w = gt.targets.image_size
        boxes = [b + rng.integers(-1, 2, 4) * (rng.random() < 0.3) for b in gt.targets.boxes if rng.random() < 0.8]
        found = len(boxes)
        while len(boxes) < candidates:
            x, y = rng.integers(0, w - 8), rng.integers(0, h - 8)
            boxes.append(np.array([x, y, x + rng.integers(2, 8), y + rng.integers(2, 8)]))
        scores = np.concatenate([rng.uniform(0.3, 1.0, found), rng.uniform(0.001, 0.6, len(boxes) - found)])
        for box, score in zip(boxes, scores, strict=True):
            x0, y0, x1, y1 = np.clip(box, 0, [w, h, w, h]).tolist()
            if x1 > x0 and y1 > y0:
                bbox = [x0, y0, x1 - x0, y1 - y0]
                rows.append({"file_name": f"{sample.stem}.png", "category_id": 1, "bbox": bbox, "score": float(score)})
    out.write_text(json.dumps(rows))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/datasets/NUDT-SIRST")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=20, help="Scored boxes per image (AP candidates).")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7, help="Timed runs of the bootstrap (median).")
    parser.add_argument("--eval-runs", type=int, default=3, help="Timed runs of evaluate_split (median).")
    args = parser.parse_args()

    from irstd_bench.datasets import open_dataset
    from irstd_bench.evaluate import BootstrapSettings, bootstrap_intervals, evaluate_split, open_predictions

    dataset = open_dataset(args.root, "nudt")
    samples = dataset.samples("all")[: args.images]
    with tempfile.TemporaryDirectory(prefix="irstd-bench-bootstrap-") as tmp:
        preds = coco_predictions(samples, args.candidates, Path(tmp) / "preds.json")
        items = [(s.stem, (s, dataset.known_defect(s.stem))) for s in samples]
        eval_times = []
        for _ in range(args.eval_runs):
            start = time.perf_counter()
            pset = open_predictions(preds, stems=[stem for stem, _ in items])
            result = evaluate_split(items, pset, matcher="iou:0.5", conf=0.5, workers=1, bootstrap=0)
            eval_times.append(time.perf_counter() - start)
    data = result.per_image
    settings = BootstrapSettings(args.resamples, SEED)
    boot_times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        intervals = bootstrap_intervals(data, result.metrics, settings)
        boot_times.append(time.perf_counter() - start)
    t_eval, t_boot = statistics.median(eval_times), statistics.median(boot_times)
    print(
        f"split: {len(data)} images of NUDT-SIRST, {int(data.gt.sum())} targets, "
        f"{len(data.ap_scores)} AP candidates ({int(data.ap50_hits.sum())} hits), {int(data.pred.sum())} kept boxes"
    )
    print(f"evaluate_split (1 worker, no bootstrap): median {t_eval:.2f} s of {args.eval_runs}")
    print(
        f"bootstrap, {args.resamples} resamples (P, R, F1, AP50): median {t_boot:.3f} s of {args.runs} "
        f"(min {min(boot_times):.3f}, max {max(boot_times):.3f}); {t_boot / t_eval:.1%} of eval's time"
    )
    print("intervals: " + ", ".join(f"{k} [{v[0]:.3f}, {v[1]:.3f}]" for k, v in intervals.items() if v))


if __name__ == "__main__":
    main()
