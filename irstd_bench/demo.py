"""``irstd-bench demo``: the whole toolkit end to end, as a user would run it step by step.

synthetic sample -> boxes (convert) -> two classical baselines -> a small EFLNet trained on the
CPU -> predictions -> the evaluator on all three -> report. Each step is the real CLI command
(printed before it runs), so the demo is also a transcript of how to use irstd-bench. With
``--root`` it runs the same pipeline on a real dataset instead of the synthetic sample.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import click

from irstd_bench.errors import InputError

#: Classical baselines the demo runs (fast ones; IPI is left to real runs).
DEMO_BASELINES = ("tophat", "mpcm")


def _run(args: list[str]) -> None:
    """Run one ``irstd-bench`` command in this process, printing it first."""
    from irstd_bench.cli import cli

    click.secho("$ irstd-bench " + shlex.join(args), fg="cyan", err=True)
    started = time.perf_counter()
    code = cli.main(args=args, prog_name="irstd-bench", standalone_mode=False)
    if code not in (None, 0):  # the command already printed its one-line error
        raise SystemExit(code)
    click.secho(f"  ({time.perf_counter() - started:.1f} s)", dim=True, err=True)


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("demo_out"), show_default=True)
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A real dataset root instead of the synthetic sample.")
@click.option("--dataset", default=None, help="Layout of --root (default: detect).")
@click.option("--split-family", default=None, help="Split family to train/validate/test on (synthetic: split_synth).")
@click.option("--n-images", default=80, show_default=True, help="Synthetic images to generate.")
@click.option("--size", default=128, show_default=True, help="Synthetic image size in pixels.")
@click.option("--model", default="eflnet-n", show_default=True, help="Detector to train.")
@click.option("--epochs", default=40, show_default=True, help="Training epochs (a short CPU schedule).")
@click.option("--imgsz", default=128, show_default=True, help="Training/inference image size.")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", default=0, show_default=True)
def demo(out: Path, root: Path | None, dataset: str | None, split_family: str | None, n_images: int, size: int,
         model: str, epochs: int, imgsz: int, device: str, seed: int) -> None:
    """Run the whole pipeline end to end and print the comparison table."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if root is None:
        root = out / "data"
        _run(["synth", "--out", str(root), "--n-images", str(n_images), "--size", str(size), "--seed", str(seed),
              "--force"])
        dataset = dataset or "nudt"
        split_family = split_family or "split_synth"
    elif not root.is_dir():
        raise InputError(f"{root}: dataset root not found")
    from irstd_bench.datasets import open_dataset

    ds = open_dataset(root, dataset)
    dataset = ds.name
    family = split_family or "default"
    test_split = ds.family_split(family, "test") or "test"
    ds_args = ["--dataset", dataset, "--root", str(root)]

    _run(["convert", str(root), "--dataset", dataset, "--out", str(out / "boxes"), "--resize-masks"])

    val_split = ds.family_split(family, "val") or test_split
    match = ["--match", "centroid:3", "--resize-masks"]

    def evaluate(name: str, val_preds: Path, test_preds: Path) -> str:
        """Eval on val, take the threshold of the best val F1, apply it on test (never select on test)."""
        val_result = out / "results" / "val" / f"{name}.json"
        _run(["eval", str(val_preds), *ds_args, "--split", val_split, *match, "--conf", "0.5", "--name", name,
              "--out", str(val_result)])
        threshold = json.loads(val_result.read_text())["metrics"]["best_f1_threshold"] or 0.5
        result = out / "results" / f"{name}.json"
        _run(["eval", str(test_preds), *ds_args, "--split", test_split, *match, "--conf", f"{threshold:.6g}",
              "--name", name, "--out", str(result)])
        return str(result)

    results: list[str] = []
    for method in DEMO_BASELINES:
        preds = {}
        for part, split in (("val", val_split), ("test", test_split)):
            preds[part] = out / "preds" / f"{method}-{part}"
            _run(["baseline", method, *ds_args, "--split", split, "--out", str(preds[part]), "--save", "scoremaps"])
        results.append(evaluate(method, preds["val"] / "scoremaps", preds["test"] / "scoremaps"))

    run_dir = out / "runs" / model
    _run(["train", *ds_args, "--split", family, "--model", model, "--epochs", str(epochs), "--imgsz", str(imgsz),
          "--batch", "8", "--device", device, "--seed", str(seed), "--out", str(run_dir), "--val-every", "5",
          "--optimizer", "adamw", "--lr", "0.002", "--resize-masks"])
    preds = {}
    for part, split in (("val", val_split), ("test", test_split)):
        preds[part] = out / "preds" / f"{model}-{part}.json"
        _run(["predict", "--weights", str(run_dir / "best.pt"), *ds_args, "--split", split, "--out",
              str(preds[part]), "--format", "coco", "--imgsz", str(imgsz), "--device", device])
    results.append(evaluate(model, preds["val"], preds["test"]))

    _run(["report", *results, "--out", str(out / "report"), "--title", "irstd-bench demo", "--force"])
    from irstd_bench.report import format_terminal_table

    click.echo(f"\nDemo finished in {time.perf_counter() - started:.0f} s. Report: {out / 'report' / 'index.html'}")
    click.echo(f"Test split {test_split}, centroid 3 px matching, thresholds chosen on {val_split}:")
    click.echo(format_terminal_table(results))
