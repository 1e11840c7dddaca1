"""CPU cost of an epoch of every method of the CPU comparison, under each protocol (issue 21).

Example::

    .venv/bin/python bench/bench_protocol_epochs.py --root ../shared/datasets/NUAA-SIRST --out /tmp/epochs

For each method of :data:`reference_model.reproduce._full.PROTOCOL_PLAN` and each protocol, one
``irstd-bench train`` (its default recipe, one thread, the plan's seed 0) runs two epochs on a
subset of ``split_EFLNet`` (``--train-images`` of train, ``--val-images`` of val; a folder of
symbolic links to the release plus subset split files, nothing copied), validating once, after the
second. From its ``results.csv``: ``cpu_s`` of epoch 1 (training only) scaled to the full train
split, and epoch 2 minus epoch 1 (one validation pass) scaled to the full val split. The table
gives CPU seconds (this process, all threads: with ``--threads 1`` about the wall time of an idle
core, and much less sensitive than wall time to other load on the machine) per training epoch,
per validation pass, and the CPU hours of the full schedule (validating every ``epochs / 30``
epochs, as ``reproduce --protocol`` does).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_model.recipe import recipes_for, resolve_recipe_name  # noqa: E402
from reference_model.reproduce._full import FULL_VALIDATIONS_PER_RUN, PROTOCOL_PLAN  # noqa: E402
from reference_model.reproduce._plan import RunSpec  # noqa: E402


def subset_root(root: Path, out: Path, n_train: int, n_val: int) -> Path:
    """``out/data``: links to ``root``'s images and masks, and ``split_EFLNet`` lists cut to the first items."""
    data = out / "data"
    (data / "split_EFLNet").mkdir(parents=True, exist_ok=True)
    for name in ("images", "masks"):
        link = data / name
        if not link.exists():
            link.symlink_to((root / name).resolve(), target_is_directory=True)
    sizes = {"train": n_train, "val": n_val, "test": 1}
    for part, n in sizes.items():
        stems = (root / "split_EFLNet" / f"{part}.txt").read_text().split()
        (data / "split_EFLNet" / f"{part}.txt").write_text("\n".join(stems[:n]) + "\n")
    return data


def full_sizes(root: Path) -> dict[str, int]:
    return {part: len((root / "split_EFLNet" / f"{part}.txt").read_text().split()) for part in ("train", "val")}


def measure(data: Path, out: Path, model: str, recipe: str | None, protocol: str) -> dict:
    run = out / "runs" / f"{model}-{protocol}"
    args = [sys.executable, "-m", "irstd_bench", "train", "--dataset", "nuaa", "--root", str(data),
            "--split", "split_EFLNet", "--model", model, "--recipe", recipe or "none", "--protocol", protocol,
            "--epochs", "2", "--val-every", "2", "--threads", "1", "--device", "cpu", "--workers", "0",
            "--no-progress", "--no-deterministic", "--resize-masks", "--out", str(run), "--force"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    # Peak resident memory of the finished children (the training), KB on Linux.
    peak_gb = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 1)
    if proc.returncode != 0:
        if proc.returncode in (-9, 137):
            return {"error": f"killed by signal 9 (out of memory on this machine?) after {wall:.0f} s; "
                             f"peak RSS of the trainings so far {peak_gb} GB", "peak_rss_gb": peak_gb}
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    with (run / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    settings = json.loads((run / "args.json").read_text())
    return {"cpu_epoch1": float(rows[0]["cpu_s"]), "cpu_epoch2": float(rows[1]["cpu_s"]), "wall_s": wall,
            "imgsz": settings["imgsz"], "base_size": settings["base_size"], "eval_size": settings.get("eval_size"),
            "batch": settings["batch"], "epochs": None, "peak_rss_gb": peak_gb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="NUAA-SIRST release root.")
    parser.add_argument("--out", type=Path, required=True, help="Scratch folder (links, runs, results JSON).")
    parser.add_argument("--train-images", type=int, default=32)
    parser.add_argument("--val-images", type=int, default=16)
    parser.add_argument("--protocols", nargs="+", default=["cpu-windows-256", "authors-sizes"])
    parser.add_argument("--models", nargs="*", default=None, help="Default: every model of the CPU plan.")
    opts = parser.parse_args()
    data = subset_root(opts.root, opts.out, opts.train_images, opts.val_images)
    full = full_sizes(opts.root)
    train_scale, val_scale = full["train"] / opts.train_images, full["val"] / opts.val_images
    rows = []
    seen = set()
    # The plan's methods, then any other registry model named by --models (its ``authors`` recipe
    # where it has one: eflnet-s, to compare with eflnet-n).
    planned = {spec.model for spec in PROTOCOL_PLAN}
    extra = [RunSpec(m, "authors") for m in opts.models or [] if m not in planned]
    for spec in (*PROTOCOL_PLAN, *extra):
        if spec.model in seen or (opts.models and spec.model not in opts.models):
            continue
        seen.add(spec.model)
        recipe = resolve_recipe_name(spec.model, spec.recipe if spec.recipe in recipes_for(spec.model) else None)
        epochs = int(recipes_for(spec.model)[recipe].train.get("epochs", 100)) if recipe else 100
        for protocol in opts.protocols:
            found = measure(data, opts.out, spec.model, recipe, protocol)
            row = {"model": spec.model, "recipe": recipe, "protocol": protocol, **found, "epochs": epochs}
            if "error" not in found:
                train_s = found["cpu_epoch1"] * train_scale
                val_s = max(0.0, found["cpu_epoch2"] - found["cpu_epoch1"]) * val_scale
                every = max(1, epochs // FULL_VALIDATIONS_PER_RUN)
                row.update(train_epoch_cpu_s=round(train_s, 1), val_pass_cpu_s=round(val_s, 1),
                           full_schedule_cpu_h=round(epochs * (train_s + val_s / every) / 3600, 2))
            rows.append(row)
            print(json.dumps(row), flush=True)
    (opts.out / "epochs.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n| method | recipe | protocol | train / canvas / eval px | batch | CPU s per train epoch | "
          "CPU s per val pass | epochs | CPU h, full schedule |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['recipe']} | {r['protocol']} | – | – | failed: {r['error']} | | | |")
            continue
        print(f"| {r['model']} | {r['recipe']} | {r['protocol']} | {r['imgsz']} / {r['base_size']} / "
              f"{r['eval_size'] or r['imgsz']} | {r['batch']} | {r['train_epoch_cpu_s']} | {r['val_pass_cpu_s']} | "
              f"{r['epochs']} | {r['full_schedule_cpu_h']} |")


if __name__ == "__main__":
    main()
