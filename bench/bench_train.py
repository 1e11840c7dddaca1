"""Benchmark the training engine: where a step's time goes, and training images/s.

Examples::

    .venv/bin/python bench/bench_train.py --threads 2                       # CPU: overhead share
    .venv/bin/python bench/bench_train.py --device cuda --imgsz 512 --batch 16 --models eflnet-n eflnet-s

One timed *step* is one engine iteration as :class:`reference_model.engine.trainer.Trainer`
runs it: ``prepare_batch`` (draws, batched augmentation on the device, targets), ``forward_backward``
(forward, loss, backward), ``optimizer_step`` (clip, step, zero), ``ema_update`` and the schedule
step, each followed by a device synchronisation so its time is its own. *Overhead* is everything
but forward, backward and the optimizer: batch preparation, EMA and schedule. The share is
``overhead / step`` summed over ``--iters`` iterations; the figure printed is the median of
``--runs`` runs (goal: under 5 % on the CPU).

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
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irstd_bench.synth import generate_sample  # noqa: E402
from reference_model.engine import TrainConfig, Trainer  # noqa: E402
from reference_model.engine.distributed import init_distributed  # noqa: E402
from reference_model.engine.runtime import torch_settings  # noqa: E402

PHASES = ("prepare", "forward_backward", "optimizer", "ema", "schedule")
INSIDE = ("forward_backward", "optimizer")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(trainer: Trainer, iters: int, warmup: int) -> dict[str, float]:
    """Seconds per phase summed over ``iters`` iterations (after ``warmup`` untimed ones)."""
    device = trainer.device
    trainer.model.train()
    batches = trainer.epoch_batches(0)
    totals = dict.fromkeys(PHASES, 0.0)
    for it in range(warmup + iters):
        indices = batches[it % len(batches)]
        marks = [time.perf_counter()]
        images, targets = trainer.prepare_batch(0, it, indices)
        _sync(device)
        marks.append(time.perf_counter())
        trainer.forward_backward(images, targets, f"bench iteration {it}")
        _sync(device)
        marks.append(time.perf_counter())
        trainer.optimizer_step()
        _sync(device)
        marks.append(time.perf_counter())
        trainer.ema_update()
        _sync(device)
        marks.append(time.perf_counter())
        trainer.scheduler.step()
        marks.append(time.perf_counter())
        if it >= warmup:
            for phase, start, end in zip(PHASES, marks[:-1], marks[1:], strict=True):
                totals[phase] += end - start
    return totals


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["eflnet-n"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", default=None, help="data set root (default: a generated synthetic sample)")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--split", default=None, help="split family (synthetic: split_synth)")
    parser.add_argument("--imgsz", type=int, default=128)
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
    parser.add_argument("--no-yolo", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    report: dict = {"device": str(device), "torch": torch.__version__, "args": vars(args) | {"json": None},
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
            config = TrainConfig(
                root=root, dataset=args.dataset, split=split or "default", model=name, epochs=1,
                imgsz=args.imgsz, batch=args.batch, device=args.device, out=str(Path(tmp) / name), workers=0,
                progress=False, mosaic=args.mosaic, mixup=args.mixup, amp=args.amp, compile=args.compile,
                channels_last=args.channels_last, deterministic=False, threads=args.threads,
            )
            with torch_settings(config):
                trainer = Trainer(config, init_distributed(args.device))
                trainer.setup()
                runs = [time_engine(trainer, args.iters, args.warmup) for _ in range(args.runs)]
            shares = [1.0 - sum(r[p] for p in INSIDE) / sum(r.values()) for r in runs]
            steps = [sum(r.values()) / args.iters for r in runs]
            entry = {
                "overhead_share_median": statistics.median(shares),
                "overhead_shares": shares,
                "step_s_median": statistics.median(steps),
                "images_per_s": args.batch / statistics.median(steps),
                "phase_s_per_iter": {p: statistics.median(r[p] for r in runs) / args.iters for p in PHASES},
            }
            report["models"][name] = entry
            phases = " ".join(f"{p}={1e3 * v:.1f}ms" for p, v in entry["phase_s_per_iter"].items())
            print(
                f"{name}: overhead {100 * entry['overhead_share_median']:.2f} % of a step (median of {args.runs}; "
                f"runs {', '.join(f'{100 * s:.2f}' for s in shares)}), {entry['images_per_s']:.1f} train img/s "
                f"at {args.imgsz} px batch {args.batch} | {phases}",
                flush=True,
            )
            scale = name.removeprefix("eflnet-")
            if not args.no_yolo and len(scale) == 1:
                step = yolov8_step_time(scale, args, device)
                if step is None:
                    print(f"  yolov8{scale}: skipped (ultralytics is not installed)", flush=True)
                else:
                    entry["yolov8_images_per_s"] = args.batch / step
                    ratio = entry["images_per_s"] / entry["yolov8_images_per_s"]
                    print(f"  yolov8{scale}: {entry['yolov8_images_per_s']:.1f} train img/s; engine/yolov8 "
                          f"{ratio:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
