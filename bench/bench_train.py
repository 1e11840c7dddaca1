"""Benchmark the training engine: where a step's time goes, training images/s, and whole epochs.

Examples::

    .venv/bin/python bench/bench_train.py --threads 2                       # CPU: overhead share
    .venv/bin/python bench/bench_train.py --device cuda --imgsz 512 --batch 16 --models eflnet-n eflnet-s
    # EFLNet-n on NUAA-SIRST at 256 px, this tree against a checkout of main, one thread each:
    .venv/bin/python bench/bench_train.py --root ../shared/datasets/NUAA-SIRST --dataset nuaa \\
        --split split_EFLNet --imgsz 256 --base-size 256 --batch 16 --threads 1 --no-yolo \\
        --baseline-tree /tmp/main-tree --runs 3 --iters 3 --validate
    .venv/bin/python bench/bench_train.py ... --epoch --baseline-tree /tmp/main-tree --runs 3
    # EFLNet-n with the authors' recipe under the CPU protocol (YOLOv7 mosaics of the 640 canvas):
    .venv/bin/python bench/bench_train.py --root ../shared/datasets/NUAA-SIRST --dataset nuaa \
        --split split_EFLNet --threads 1 --no-yolo --epoch --recipe authors --protocol cpu-windows-256 \
        --baseline-tree /tmp/main-tree --runs 3

**Phases** (default). One timed *step* is one engine iteration as
:class:`reference_model.engine.trainer.Trainer` runs it, cut into phases, each followed by a device
synchronisation so its time is its own: ``prepare`` (``prepare_batch``: draws, batched augmentation
on the device, targets), ``forward`` (the network), ``loss`` (``compute_loss``: decoding, label
assignment, loss terms), ``backward``, ``optimizer`` (``optimizer_step``: clip, step, zero),
``ema`` and ``schedule``. These are the statements of ``Trainer.forward_backward`` run one by one,
under the run's torch settings (``torch_settings``: deterministic algorithms, as ``irstd-bench train``).
*Overhead* is everything but forward, loss, backward and the optimizer. The share is
``overhead / step`` summed over ``--iters`` iterations; the figure printed is the median of
``--runs`` runs (goal: under 5 % on the CPU). ``--validate`` also times one validation pass
(``Trainer.validate``: the EMA model over the whole val split, then the evaluator). Each phase is
timed in wall seconds and in CPU seconds of this process (``time.process_time``; with one thread
on a shared machine the CPU time is the steadier figure).

**Epochs** (``--epoch``). ``reference_model.engine.train`` runs ``--epochs`` epochs (default 2)
exactly as ``irstd-bench train`` does with these options (the model's default recipe, validation
every epoch, checkpoints), in a temporary folder; every epoch after the first is timed from one
epoch's end to the next (training, validation, checkpoint writing), wall and CPU, with the
validation's share.

**Against another tree** (``--baseline-tree PATH``, e.g. ``git archive main | tar -x -C PATH``):
every run is made in a child process, once with PATH's ``reference_model`` and once with this
tree's, alternating round by round (baseline, this, baseline, this...) so that a load that
changes affects both; the medians of ``--runs`` rounds and the ratio baseline / this are printed.

Data: the synthetic sample (``irstd_bench.synth``, generated into a temporary folder) unless
``--root`` names a data set. Training images/s = batch / median step time.

If ``ultralytics`` is importable, a YOLOv8 of the same scale letter (``yolov8n.yaml``... random
weights, one class) is timed on the same image size and batch: forward, its own loss, backward
and an SGD step on tensors already on the device, i.e. without its data loader (an upper bound
of its trainer's speed). It is not a dependency of this project; without it the column is
skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _source_tree(argv: list[str]) -> Path:
    """The tree whose ``reference_model`` is imported: ``--tree PATH`` (child runs) or this one."""
    if "--tree" in argv:
        return Path(argv[argv.index("--tree") + 1]).resolve()
    return Path(__file__).resolve().parents[1]


sys.path.insert(0, str(_source_tree(sys.argv)))

import torch  # noqa: E402

from irstd_bench.synth import generate_sample  # noqa: E402
from reference_model.engine import TrainConfig, Trainer, train  # noqa: E402
from reference_model.engine.distributed import init_distributed  # noqa: E402
from reference_model.engine.predict import autocast_context  # noqa: E402
from reference_model.engine.runtime import finite_sum, torch_settings  # noqa: E402

PHASES = ("prepare", "forward", "loss", "backward", "optimizer", "ema", "schedule")
INSIDE = ("forward", "loss", "backward", "optimizer")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(trainer: Trainer, iters: int, warmup: int) -> dict[str, dict[str, float]]:
    """Seconds per phase and clock (``{"wall": {...}, "cpu": {...}}``) summed over ``iters``
    iterations (after ``warmup`` untimed ones)."""
    device = trainer.device
    trainer.model.train()
    batches = trainer.epoch_batches(0)
    totals = {clock: dict.fromkeys(PHASES, 0.0) for clock in CLOCKS}
    marks: list[dict[str, float]] = []

    def mark() -> None:
        _sync(device)
        marks.append({clock: now() for clock, now in CLOCKS.items()})

    for it in range(warmup + iters):
        indices = batches[it % len(batches)]
        marks.clear()
        mark()
        images, targets = trainer.prepare_batch(0, it, indices)
        mark()
        if trainer.adversary is not None:  # two optimizers inside: timed as one "forward" phase
            trainer.forward_backward(images, targets, f"bench iteration {it}")
            mark()
            mark()
            mark()
        else:
            with autocast_context(device, trainer.amp_dtype):  # Trainer.forward_backward, statement by statement
                outputs = trainer.forward(images)
                mark()
                terms = trainer.raw.compute_loss(outputs, targets)
            loss = finite_sum(terms, f"bench iteration {it}")
            mark()
            scale = 1.0 if getattr(trainer.raw, "loss_sums_over_images", False) else 1.0 / trainer.accumulate
            trainer.scaler.scale(loss * scale).backward()
            mark()
        trainer.optimizer_step()
        mark()
        trainer.ema_update()
        mark()
        trainer.scheduler.step()
        mark()
        if it >= warmup:
            for phase, start, end in zip(PHASES, marks[:-1], marks[1:], strict=True):
                for clock in CLOCKS:
                    totals[clock][phase] += end[clock] - start[clock]
    return totals


def time_validation(trainer: Trainer) -> dict[str, float]:
    """Seconds of one ``Trainer.validate()`` per clock."""
    start = {clock: now() for clock, now in CLOCKS.items()}
    trainer.validate()
    _sync(trainer.device)
    return {clock: now() - start[clock] for clock, now in CLOCKS.items()}


def time_epochs(config: TrainConfig) -> list[dict[str, float]]:
    """Run ``train(config)``; per epoch after the first: wall / CPU seconds and validation's share."""
    marks: list[dict[str, float]] = []
    validation = {clock: 0.0 for clock in CLOCKS}
    original = Trainer.validate

    def timed_validate(self):
        start = {clock: now() for clock, now in CLOCKS.items()}
        try:
            return original(self)
        finally:
            for clock, now in CLOCKS.items():
                validation[clock] += now() - start[clock]

    def on_epoch_end(epoch: int, metrics: dict) -> None:
        marks.append({**{clock: now() for clock, now in CLOCKS.items()},
                      **{f"val_{clock}": validation[clock] for clock in CLOCKS}})

    Trainer.validate = timed_validate
    try:
        train(config, on_epoch_end=on_epoch_end, force=True)
    finally:
        Trainer.validate = original
    return [
        {**{clock: end[clock] - start[clock] for clock in CLOCKS},
         **{f"val_{clock}": end[f"val_{clock}"] - start[f"val_{clock}"] for clock in CLOCKS}}
        for start, end in zip(marks[:-1], marks[1:], strict=True)
    ]


def yolov8_step_time(scale: str, args, device: torch.device) -> float | None:
    """Median seconds of one YOLOv8 training step on device tensors, or None without ultralytics."""
    try:
        from ultralytics.cfg import get_cfg
        from ultralytics.nn.tasks import DetectionModel
    except ImportError:
        return None
    torch.manual_seed(0)
    model = DetectionModel(f"yolov8{scale}.yaml", nc=1, verbose=False).to(device).train()
    model.args = get_cfg()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    b, s = args.batch, args.imgsz
    images = torch.rand(b, 3, s, s, device=device)
    per_image = 3
    batch = {
        "img": images,
        "batch_idx": torch.arange(b, device=device).repeat_interleave(per_image).float(),
        "cls": torch.zeros(b * per_image, 1, device=device),
        "bboxes": torch.rand(b * per_image, 4, device=device) * 0.02 + torch.tensor([0.4, 0.4, 0.01, 0.01],
                                                                                     device=device),
    }
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    dtype = torch.bfloat16 if args.amp and device.type == "cuda" else None

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model.loss(batch)[0].sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = []
    for it in range(args.warmup + args.iters):
        start = time.perf_counter()
        step()
        _sync(device)
        if it >= args.warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_config(args, name: str, root: str, split: str | None, out: Path) -> TrainConfig:
    """The run's settings: ``--epoch`` leaves everything else to the engine (as ``irstd-bench train``)."""
    common = {
        "root": root, "dataset": args.dataset, "split": split or "default", "model": name, "imgsz": args.imgsz,
        "batch": args.batch, "device": args.device, "out": str(out), "progress": False, "threads": args.threads,
        "base_size": args.base_size,
    }
    if args.epoch:
        if args.recipe:  # sizes and batch from the recipe and protocol, as `train --recipe --protocol`
            common = {k: v for k, v in common.items() if k not in ("imgsz", "batch", "base_size")}
            return TrainConfig(**common, epochs=args.epochs, recipe=args.recipe, protocol=args.protocol)
        return TrainConfig(**common, epochs=args.epochs)
    return TrainConfig(
        **common, epochs=1, workers=0, mosaic=args.mosaic, mixup=args.mixup, amp=args.amp, compile=args.compile,
        channels_last=args.channels_last,
    )


def measure(args) -> dict:
    """One run of every model in this process (``--runs`` runs without ``--baseline-tree``)."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    report: dict = {"device": str(device), "torch": torch.__version__, "tree": str(_source_tree(sys.argv)),
                    "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                    "models": {}}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    with tempfile.TemporaryDirectory() as tmp:
        root, split = args.root, args.split
        if root is None:
            root = str(Path(tmp) / "synth")
            generate_sample(root, n_images=max(48, 4 * args.batch), size=args.imgsz, seed=0)
            split = split or "split_synth"
        for name in args.models:
            config = train_config(args, name, root, split, Path(tmp) / name)
            if args.epoch:
                report["models"][name] = {"epochs": [e for _ in range(args.runs) for e in time_epochs(config)]}
                continue
            with torch_settings(config):
                trainer = Trainer(config, init_distributed(args.device), force=True)
                trainer.setup()
                runs = [time_engine(trainer, args.iters, args.warmup) for _ in range(args.runs)]
                validation = [time_validation(trainer) for _ in range(args.runs)] if args.validate else []
            report["models"][name] = {"runs": runs, "validation": validation}
    return report


def summarize(name: str, runs: list[dict], validation: list[dict], args) -> dict:
    """Medians over runs of one model's phase timings (both clocks)."""
    entry: dict = {}
    for clock in CLOCKS:
        totals = [r[clock] for r in runs]
        steps = [sum(t.values()) / args.iters for t in totals]
        entry[clock] = {
            "overhead_share_median": statistics.median(1.0 - sum(t[p] for p in INSIDE) / sum(t.values())
                                                       for t in totals),
            "step_s_median": statistics.median(steps),
            "images_per_s": args.batch / statistics.median(steps),
            "phase_s_per_iter": {p: statistics.median(t[p] for t in totals) / args.iters for p in PHASES},
        }
        if validation:
            entry[clock]["validation_s_median"] = statistics.median(v[clock] for v in validation)
    return entry


def print_phases(label: str, name: str, entry: dict, args) -> None:
    for clock in CLOCKS:
        e = entry[clock]
        phases = " ".join(f"{p}={1e3 * v:.0f}" for p, v in e["phase_s_per_iter"].items())
        val = f" | validation {e['validation_s_median']:.2f} s" if "validation_s_median" in e else ""
        print(f"{label}{name} [{clock}]: step {e['step_s_median']:.3f} s, {e['images_per_s']:.2f} train img/s, "
              f"overhead {100 * e['overhead_share_median']:.2f} % | ms per step: {phases}{val}", flush=True)


def summarize_epochs(epochs: list[dict]) -> dict:
    return {key: statistics.median(e[key] for e in epochs) for key in epochs[0]}


def print_epochs(label: str, name: str, entry: dict) -> None:
    print(f"{label}{name}: epoch {entry['wall']:.1f} s wall, {entry['cpu']:.1f} s CPU (validation "
          f"{entry['val_wall']:.1f} s wall, {entry['val_cpu']:.1f} s CPU); median of {entry['n']} epochs", flush=True)


def child_argv(argv: list[str], tree: Path, out: Path) -> list[str]:
    """``argv`` for one child run with ``tree``'s package: one run, no baseline, JSON to ``out``."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--baseline-tree", "--json", "--runs", "--tree"):
            skip = True
            continue
        if arg.startswith(("--baseline-tree=", "--json=", "--runs=", "--tree=")):
            continue
        kept.append(arg)
    return [sys.executable, str(Path(__file__).resolve()), *kept, "--runs", "1", "--tree", str(tree),
            "--json", str(out)]


def compare_trees(args, argv: list[str]) -> dict:
    """Runs alternating between ``--baseline-tree`` and this tree in child processes; medians and ratios."""
    trees = {"baseline": args.baseline_tree.resolve(), "this": Path(__file__).resolve().parents[1]}
    results: dict[str, list[dict]] = {label: [] for label in trees}
    load = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.runs):
            for label, tree in trees.items():
                out = Path(tmp) / f"{label}-{round_index}.json"
                env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
                subprocess.run(child_argv(argv, tree, out), check=True, env=env)
                results[label].append(json.loads(out.read_text()))
                load.append(os.getloadavg()[0])
    report = {"trees": {k: str(v) for k, v in trees.items()}, "load_average_1min": load, "models": {}}
    for name in args.models:
        entry: dict = {}
        for label in trees:
            models = [r["models"][name] for r in results[label]]
            if args.epoch:
                epochs = [e for m in models for e in m["epochs"]]
                entry[label] = {**summarize_epochs(epochs), "n": len(epochs), "epochs": epochs}
                print_epochs(f"{label}: ", name, entry[label])
            else:
                runs = [r for m in models for r in m["runs"]]
                validation = [v for m in models for v in m["validation"]]
                entry[label] = summarize(name, runs, validation, args)
                print_phases(f"{label}: ", name, entry[label], args)
        entry["baseline_over_this"] = ratios(entry, args.epoch)
        print(f"  baseline / this: {', '.join(f'{k} {v:.2f}' for k, v in entry['baseline_over_this'].items())}")
        report["models"][name] = entry
    print(f"load average (1 min) after each run: {', '.join(f'{x:.1f}' for x in load)}")
    return report


def ratios(entry: dict, epoch: bool) -> dict[str, float]:
    """Baseline time / this tree's time for every figure (above 1: this tree is faster)."""
    base, this = entry["baseline"], entry["this"]
    if epoch:
        return {k: base[k] / this[k] for k in ("wall", "cpu", "val_wall", "val_cpu")}
    out = {}
    for clock in CLOCKS:
        out[f"step_{clock}"] = base[clock]["step_s_median"] / this[clock]["step_s_median"]
        for p in PHASES:
            if this[clock]["phase_s_per_iter"][p] > 0:
                out[f"{p}_{clock}"] = base[clock]["phase_s_per_iter"][p] / this[clock]["phase_s_per_iter"][p]
        if "validation_s_median" in this[clock]:
            out[f"validation_{clock}"] = base[clock]["validation_s_median"] / this[clock]["validation_s_median"]
    return out


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["eflnet-n"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", default=None, help="data set root (default: a generated synthetic sample)")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--split", default=None, help="split family (synthetic: split_synth)")
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--base-size", type=int, default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=6, help="timed iterations per run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mosaic", type=float, default=0.5)
    parser.add_argument("--mixup", type=float, default=0.15)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--validate", action="store_true", help="also time one validation pass per run")
    parser.add_argument("--epoch", action="store_true", help="time whole epochs as `irstd-bench train` runs them")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run with --epoch (the first is not timed)")
    parser.add_argument("--recipe", default=None,
                        help="--epoch: train with this recipe (its sizes and batch: not --imgsz, --batch)")
    parser.add_argument("--protocol", default=None, help="--epoch with --recipe: under this protocol (cpu-windows-256)")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="source tree to compare with (a checkout of main), runs alternating in child processes")
    parser.add_argument("--tree", type=Path, default=None, help=argparse.SUPPRESS)  # child runs: the tree imported
    parser.add_argument("--no-yolo", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.epoch and args.epochs < 2:
        parser.error("--epoch needs --epochs >= 2 (the first epoch is not timed)")
    if args.baseline_tree is not None:
        report = compare_trees(args, argv)
    else:
        report = measure(args)
        if args.tree is None:  # a child run leaves the printing to its parent
            print_report(report, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


def print_report(report: dict, args) -> None:
    device = torch.device(args.device)
    for name, model in report["models"].items():
        if args.epoch:
            epochs = model["epochs"]
            model.update(summarize_epochs(epochs), n=len(epochs))
            print_epochs("", name, model)
            continue
        model.update(summarize(name, model["runs"], model["validation"], args))
        print_phases("", name, model, args)
        scale = name.removeprefix("eflnet-")
        if not args.no_yolo and len(scale) == 1:
            step = yolov8_step_time(scale, args, device)
            if step is None:
                print(f"  yolov8{scale}: skipped (ultralytics is not installed)", flush=True)
            else:
                model["yolov8_images_per_s"] = args.batch / step
                ratio = model["wall"]["images_per_s"] / model["yolov8_images_per_s"]
                print(f"  yolov8{scale}: {model['yolov8_images_per_s']:.1f} train img/s; engine/yolov8 "
                      f"{ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
