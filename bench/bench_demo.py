"""The spread of ``irstd-bench demo``'s figures over training seeds and CPU thread counts.

CPU training is not bit-reproducible across thread counts nor across CPU models (different
SIMD kernels sum in different orders), so the demo's EFLNet-n F1 is a draw from a distribution,
not one number. This script runs the demo (default settings, the synthetic sample of ``--seed 0``)
once per ``--train-seeds`` x ``--threads`` pair, each in its own process with
``OMP_NUM_THREADS`` set, and prints the range of every method's test F1 and of the wall time:
the figures the README and the demo's closing lines state.

Example (what the README's range was measured with)::

    nice -n 10 .venv/bin/python bench/bench_demo.py --train-seeds 0 1 2 --threads 1 2 \\
        --work /tmp/demo_range --json bench/results/demo_range.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: Methods of the demo's table, in its order.
METHODS = ("tophat", "mpcm", "eflnet-n")


def run_demo(work: Path, train_seed: int, threads: int) -> dict:
    """One default demo run in a fresh process; its per-method test F1 and wall time (s)."""
    out = work / f"demo-s{train_seed}-t{threads}"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    # Idle OpenMP threads sleep instead of spinning (a loaded machine; the wait policy changes no result).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cmd = [sys.executable, "-m", "irstd_bench", "demo", "--out", str(out), "--device", "cpu",
           "--train-seed", str(train_seed)]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"demo failed (train seed {train_seed}, {threads} threads):\n{proc.stderr[-3000:]}")
    row = {"train_seed": train_seed, "threads": threads, "wall_s": round(wall, 1)}
    for method in METHODS:
        metrics = json.loads((out / "results" / f"{method}.json").read_text())["metrics"]
        row[method] = {"f1": metrics["f1"], "best_f1": metrics["best_f1"]}
    return row


def summary(rows: list[dict]) -> dict:
    """Min and max over the runs of each method's F1 and best F1, and of the wall time."""
    out = {"runs": len(rows), "wall_s": [min(r["wall_s"] for r in rows), max(r["wall_s"] for r in rows)]}
    for method in METHODS:
        for key in ("f1", "best_f1"):
            values = [r[method][key] for r in rows]
            out[f"{method}/{key}"] = [round(min(values), 3), round(max(values), 3)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, required=True, help="Folder for the demo outputs (one per run).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the runs and the summary here.")
    args = parser.parse_args()
    rows = []
    for threads in args.threads:
        for seed in args.train_seeds:
            row = run_demo(args.work, seed, threads)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:  # after every run: a long measurement killed half-way keeps what it measured
                result = {"command": " ".join(sys.argv), "rows": rows, "summary": summary(rows)}
                args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary(rows), indent=1))


if __name__ == "__main__":
    main()
