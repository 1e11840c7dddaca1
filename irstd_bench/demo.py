"""``irstd-bench demo``: the whole toolkit end to end, as a user would run it step by step.

synthetic sample -> boxes (convert) -> two classical baselines -> a small EFLNet trained on the
CPU -> predictions -> the evaluator on all three -> report. Each step is the real CLI command
(printed before it runs), so the demo is also a transcript of how to use irstd-bench. With
``--root`` it runs the same pipeline on a real dataset instead of the synthetic sample.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from pathlib import Path

import click

from irstd_bench.errors import InputError

#: Classical baselines the demo runs (fast ones; IPI is left to real runs).
DEMO_BASELINES = ("tophat", "mpcm")
#: The demo's default settings (the synthetic sample; the ranges below hold for these only).
DEFAULTS = {"n_images": 80, "size": 128, "model": "eflnet-n", "epochs": 40, "imgsz": 128, "seed": 0}
#: Test F1 (thresholds chosen on val) of the default demo, min and max over the runs of
#: :data:`EXPECTED_RUNS`, measured with ``bench/bench_demo.py``: CPU training is not bit-reproducible
#: across thread counts or CPU models, so the trained detector's F1 is a range, not one number.
EXPECTED_F1 = {"tophat": (0.392, 0.392), "mpcm": (0.292, 0.292), "eflnet-n": (0.345, 0.410)}
EXPECTED_RUNS = "6 runs: training seeds 0-2 x 1 and 2 threads, 2026-12-07"


def _run(args: list[str]) -> None:
    """Run one ``irstd-bench`` command in this process, printing it first."""
    from irstd_bench.cli import cli

    click.secho("$ irstd-bench " + shlex.join(args), fg="cyan", err=True)
    started = time.perf_counter()
    code = cli.main(args=args, prog_name="irstd-bench", standalone_mode=False)
    if code not in (None, 0):  # the command already printed its one-line error
        raise SystemExit(code)
    click.secho(f"  ({time.perf_counter() - started:.1f} s)", dim=True, err=True)


def _claim_out(out: Path, root: Path | None) -> list[Path] | None:
    """Make ``out`` the demo's folder: new, empty, or an earlier demo's (its manifest says so).

    The demo then passes ``--force`` to every step: each step replaces only its own earlier
    output (a folder with its manifest, a results file with our schema), never a user's file,
    so running the demo twice works and a user's folder is never emptied. The manifest lists
    no files (nothing else in the folder is claimed). Returns ``None`` for an earlier demo's
    folder, else the folders created (deepest first; empty when ``out`` was an empty folder): a
    failed demo in a new folder removes what it wrote (:class:`_Outputs`).
    """
    from irstd_bench._outputs import (
        MANIFEST_NAME,
        MANIFEST_SCHEMA,
        check_file_replaceable,
        json_schema_owner,
        manifest_text,
        missing_ancestors,
        read_manifest,
        refuse_inside_inputs,
        write_file_set,
    )

    refuse_inside_inputs(out, [("dataset root", root)])
    new = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    if out.exists():
        if not out.is_dir() or out.is_symlink():
            raise InputError(f"--out {out}: exists and is not a folder")
        manifest = read_manifest(out)
        if not new and (manifest is None or manifest.get("command") != "demo"):
            raise InputError(f"--out {out}: folder exists and is not an earlier demo output; choose a new --out")
    created = [] if out.exists() else [out.absolute(), *missing_ancestors(out)]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    manifest = out / MANIFEST_NAME  # lists no file: it only marks the folder as a demo's
    claim = check_file_replaceable(manifest, force=True, owned=json_schema_owner(MANIFEST_SCHEMA))
    write_file_set({manifest: manifest_text("demo", [])}, {manifest: claim})
    return created if new else None


class _Outputs:
    """What the steps of one demo wrote, so that a failed demo in a new folder leaves nothing.

    Each output is removed through the one ownership rule, checked again just before
    (:func:`irstd_bench._outputs.remove_output`): a folder only when its manifest lists all of
    it, a results set or prediction file only when provably ours. What is not is kept, and named.
    """

    def __init__(self, out: Path, created: list[Path]) -> None:
        self.out = out
        self.created = created
        self.claims: list = []

    def folder(self, path: Path) -> None:
        from irstd_bench._outputs import check_folder_replaceable

        self.claims.append(lambda: [check_folder_replaceable(path, force=True)])

    def results(self, path: Path) -> None:
        from irstd_bench.evaluate._results_io import results_claims

        self.claims.append(lambda: list(results_claims(path, force=True).values()))

    def predictions(self, path: Path) -> None:
        from reference_model.engine.predict import check_predictions_out

        self.claims.append(lambda: list(check_predictions_out(path, "coco", force=True).values()))

    def remove(self) -> None:
        from irstd_bench._outputs import MANIFEST_NAME, remove_empty, remove_output
        from irstd_bench._warnings import echo_warning

        kept = []
        for claims in reversed(self.claims):
            try:
                for claim in claims():
                    remove_output(claim)
            except InputError as exc:
                kept.append(str(exc))
        for folder in ("results/val", "results", "preds", "runs"):
            with contextlib.suppress(OSError):
                (self.out / folder).rmdir()
        if [p.name for p in self.out.iterdir()] == [MANIFEST_NAME]:
            (self.out / MANIFEST_NAME).unlink()
            remove_empty(self.created)
        for reason in kept:
            echo_warning(f"demo failed; kept {reason}")


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("demo_out"), show_default=True)
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A real dataset root instead of the synthetic sample.")
@click.option("--dataset", default=None, help="Layout of --root (default: detect).")
@click.option("--split-family", default=None, help="Split family to train/validate/test on (synthetic: split_synth).")
@click.option("--n-images", default=DEFAULTS["n_images"], show_default=True, help="Synthetic images to generate.")
@click.option("--size", default=DEFAULTS["size"], show_default=True, help="Synthetic image size in pixels.")
@click.option("--model", default=DEFAULTS["model"], show_default=True, help="Detector to train.")
@click.option("--epochs", default=DEFAULTS["epochs"], show_default=True, help="Training epochs (a short CPU schedule).")
@click.option("--imgsz", default=DEFAULTS["imgsz"], show_default=True, help="Training/inference image size.")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", default=DEFAULTS["seed"], show_default=True,
              help="Seed of the synthetic sample and of the training run.")
@click.option("--train-seed", default=None, type=int,
              help="Seed of the training run alone (default: --seed); the data stay those of --seed.")
def demo(out: Path, root: Path | None, dataset: str | None, split_family: str | None, n_images: int, size: int,
         model: str, epochs: int, imgsz: int, device: str, seed: int, train_seed: int | None) -> None:
    """Run the whole pipeline end to end and print the comparison table."""
    started = time.perf_counter()
    root_given = root
    if root is not None and not root.is_dir():
        raise InputError(f"{root}: dataset root not found")  # before anything is created
    created = _claim_out(out, root)
    outputs = _Outputs(out, created or [])
    try:
        table = _pipeline(out, root, dataset, split_family, n_images, size, model, epochs, imgsz, device, seed,
                          seed if train_seed is None else train_seed, outputs)
    except BaseException:
        if created is not None:  # a new folder: a failed demo leaves nothing behind
            outputs.remove()
        raise
    click.echo(f"\nDemo finished in {time.perf_counter() - started:.0f} s. Report: {out / 'report' / 'index.html'}")
    click.echo(f"Test split {table[0]}, centroid 3 px matching, thresholds chosen on {table[1]}:")
    click.echo(table[2])
    settings = {"n_images": n_images, "size": size, "model": model, "epochs": epochs, "imgsz": imgsz, "seed": seed}
    if root_given is None and settings == DEFAULTS and _on_cpu(device):
        click.echo(expected_range_line())


def _pipeline(out: Path, root: Path | None, dataset: str | None, split_family: str | None, n_images: int, size: int,
              model: str, epochs: int, imgsz: int, device: str, seed: int, train_seed: int,
              outputs: _Outputs) -> tuple[str, str, str]:
    """The demo's steps; each output is recorded in ``outputs`` before its step runs (a step that
    fails midway, a training with checkpoints say, is removed too).

    Returns the test split, the val split and the comparison table.
    """
    if root is None:
        root = out / "data"
        outputs.folder(root)
        _run(["synth", "--out", str(root), "--n-images", str(n_images), "--size", str(size), "--seed", str(seed),
              "--force"])
        dataset = dataset or "nudt"
        split_family = split_family or "split_synth"
    from irstd_bench.datasets import open_dataset

    ds = open_dataset(root, dataset)
    dataset = ds.name
    family = split_family or "default"
    test_split = ds.family_split(family, "test") or "test"
    ds_args = ["--dataset", dataset, "--root", str(root)]

    outputs.folder(out / "boxes")
    _run(["convert", str(root), "--dataset", dataset, "--out", str(out / "boxes"), "--resize-masks", "--force"])

    val_split = ds.family_split(family, "val") or test_split
    match = ["--match", "centroid:3", "--resize-masks", "--force"]

    def evaluate(name: str, val_preds: Path, test_preds: Path) -> str:
        """Eval on val, take the threshold of the best val F1, apply it on test (never select on test)."""
        val_result = out / "results" / "val" / f"{name}.json"
        outputs.results(val_result)
        _run(["eval", str(val_preds), *ds_args, "--split", val_split, *match, "--conf", "0.5", "--name", name,
              "--out", str(val_result)])
        threshold = json.loads(val_result.read_text())["metrics"]["best_f1_threshold"] or 0.5
        result = out / "results" / f"{name}.json"
        outputs.results(result)
        _run(["eval", str(test_preds), *ds_args, "--split", test_split, *match, "--conf", f"{threshold:.6g}",
              "--name", name, "--out", str(result)])
        return str(result)

    results: list[str] = []
    for method in DEMO_BASELINES:
        preds = {}
        for part, split in (("val", val_split), ("test", test_split)):
            preds[part] = out / "preds" / f"{method}-{part}"
            outputs.folder(preds[part])
            _run(["baseline", method, *ds_args, "--split", split, "--out", str(preds[part]), "--save", "scoremaps",
                  "--force"])
        results.append(evaluate(method, preds["val"] / "scoremaps", preds["test"] / "scoremaps"))

    run_dir = out / "runs" / model
    outputs.folder(run_dir)
    _run(["train", *ds_args, "--split", family, "--model", model, "--epochs", str(epochs), "--imgsz", str(imgsz),
          "--batch", "8", "--device", device, "--seed", str(train_seed), "--out", str(run_dir), "--val-every", "5",
          "--optimizer", "adamw", "--lr", "0.002", "--resize-masks", "--force",
          # Flips, photometric jitter and target-keeping crops (half the batches, zoom-in up to
          # 1 / 0.6), without the default scale/translate jitter: in 40 short epochs on 48 frames
          # of 128 px that jitter slowed learning (val F1 at IoU 0.5, epoch 20: 0.09 with it,
          # 0.22 without it, 0.16 with no augmentation at all).
          "--crop", "0.5", "--crop-min-side", "0.6", "--scale", "0", "--translate", "0"])
    preds = {}
    for part, split in (("val", val_split), ("test", test_split)):
        preds[part] = out / "preds" / f"{model}-{part}.json"
        outputs.predictions(preds[part])
        _run(["predict", "--weights", str(run_dir / "best.pt"), *ds_args, "--split", split, "--out",
              str(preds[part]), "--format", "coco", "--imgsz", str(imgsz), "--device", device, "--force"])
    results.append(evaluate(model, preds["val"], preds["test"]))

    outputs.folder(out / "report")
    _run(["report", *results, "--out", str(out / "report"), "--title", "irstd-bench demo", "--force"])
    from irstd_bench.report import format_terminal_table

    return test_split, val_split, format_terminal_table(results)


def _on_cpu(device: str) -> bool:
    """Whether ``--device`` trains on the CPU (the ranges were measured there)."""
    import torch

    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def expected_range_line() -> str:
    """What the default demo's table should show: :data:`EXPECTED_F1` and the runs it was measured over."""
    ranges = ", ".join(f"{name} {lo:.3f}" if lo == hi else f"{name} {lo:.2f}-{hi:.2f}"
                       for name, (lo, hi) in EXPECTED_F1.items())  # fmt: skip
    return f"Expected on a CPU, F1 (val thr.): {ranges} (measured over {EXPECTED_RUNS}; bench/bench_demo.py)."
