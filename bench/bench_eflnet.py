"""Benchmark EFLNet scales: parameters, GFLOPs, inference and training throughput, eflnet-n latency.

Examples::

    .venv/bin/python bench/bench_eflnet.py --threads 2                       # CPU, all scales
    .venv/bin/python bench/bench_eflnet.py --device cuda --amp --batch 8 --train-batch 8
    .venv/bin/python bench/bench_eflnet.py --scales n s --no-train --json out.json

GFLOPs are :class:`torch.utils.flop_counter.FlopCounterMode` totals (multiply-add = 2 FLOPs, the
convention YOLO reports use) for one image at ``--size``, counted with the sampling implementation
of the deformable convolution (its matrix product is counted; the bilinear sampling is not, and
the torchvision kernel would not be counted at all). If ``ultralytics`` is importable, a YOLOv8
model of the same scale letter is built from its yaml (random weights, one class) and measured the
same way; it is not a dependency of this project.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irstd_bench.synth import generate_image  # noqa: E402
from reference_model.eflnet import build_eflnet  # noqa: E402
from reference_model.eflnet.dyhead import ModulatedDeformConv  # noqa: E402
from reference_model.engine.fuse import fuse_batchnorm  # noqa: E402
from reference_model.engine.predict import load_for_inference  # noqa: E402

#: boxes per synthetic training image (tiny targets, like IRSTD data).
TARGETS_PER_IMAGE = 3


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, warmup: int, runs: int) -> list[float]:
    """Wall times in seconds of ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def count_gflops(model: torch.nn.Module, size: int) -> float:
    """Forward GFLOPs of one ``size x size`` image (CPU, float32, sampled deformable convolution)."""
    model = model.to("cpu").eval()
    backends = {m: m.backend for m in model.modules() if isinstance(m, ModulatedDeformConv)}
    for m in backends:
        m.backend = "sampled"
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.rand(1, 3, size, size))
    for m, backend in backends.items():
        m.backend = backend
    return counter.get_total_flops() / 1e9


def synthetic_targets(batch: int, size: int, device: torch.device) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    targets = []
    for _ in range(batch):
        xy = torch.randint(8, size - 16, (TARGETS_PER_IMAGE, 2), generator=g).float()
        wh = torch.randint(2, 8, (TARGETS_PER_IMAGE, 2), generator=g).float()
        targets.append({"boxes": torch.cat([xy, xy + wh], dim=1).to(device)})
    return targets


def autocast(device: torch.device, enabled: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


def synthetic_frame(size: int) -> torch.Tensor:
    """``(1, 3, size, size)`` in [0, 1]: image 0 of the synthetic sample (clutter and 3 small targets)."""
    image = generate_image(0, 0, 3, size=size).image
    gray = torch.from_numpy(image.astype("float32") / float(image.max() or 1))
    return gray.expand(1, 3, size, size).contiguous()


def measure_inference(model, args, device, size: int, batch: int, images=None, conf: float = 0.001) -> dict:
    """Median seconds of ``forward`` + ``postprocess`` (at ``conf``) on ``images`` (default: noise)."""
    model = model.to(device).eval()
    images = torch.rand(batch, 3, size, size, device=device) if images is None else images.to(device)

    def step():
        with torch.inference_mode(), autocast(device, args.amp):
            outputs = model(images)
            if hasattr(model, "postprocess"):
                model.postprocess(outputs, conf_threshold=conf)

    times = timed(step, device, args.warmup, args.runs)
    median = statistics.median(times)
    return {
        "batch": batch,
        "size": size,
        "median_s": median,
        "images_per_s": batch / median,
        "ms_per_image": 1e3 * median / batch,
    }


def measure_training(model, args, device) -> dict:
    model = model.to(device).train()
    images = torch.rand(args.train_batch, 3, args.size, args.size, device=device)
    targets = synthetic_targets(args.train_batch, args.size, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda")

    def step():
        with autocast(device, args.amp):
            losses = model.compute_loss(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(sum(losses.values())).backward()
        scaler.step(optimizer)
        scaler.update()

    times = timed(step, device, max(1, args.warmup // 2), args.train_runs)
    median = statistics.median(times)
    return {
        "batch": args.train_batch,
        "size": args.size,
        "median_s": median,
        "images_per_s": args.train_batch / median,
    }


def build_yolov8(scale: str):
    """YOLOv8 of the same scale letter from ultralytics' yaml (no weights), or None."""
    try:
        from ultralytics.nn.tasks import DetectionModel
    except ImportError:
        return None
    return DetectionModel(f"yolov8{scale}.yaml", nc=1, verbose=False)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["n", "s", "m", "l"], choices=["n", "s", "m", "l"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast (fp16 on CUDA, bf16 on CPU)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1, help="inference batch")
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--train-runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--latency-size", type=int, default=256)
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--dyhead-blocks", type=int, default=None, help="override DyHead blocks")
    parser.add_argument(
        "--latency-blocks", type=int, nargs="*", default=[0, 1, 2, 4], help="DyHead blocks of the latency sweep"
    )
    parser.add_argument(
        "--latency-weights", default="nuaa-eflnet-n", help="trained weights timed at --latency-size ('' to skip)"
    )
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--no-flops", action="store_true")
    parser.add_argument("--no-yolo", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = {} if args.dyhead_blocks is None else {"dyhead_blocks": args.dyhead_blocks}
    report: dict = {
        "device": str(device),
        "amp": args.amp,
        "threads": args.threads,
        "torch": torch.__version__,
        "models": {},
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)

    def run(name: str, model) -> None:
        entry = {"parameters": sum(p.numel() for p in model.parameters())}
        if not args.no_flops:
            entry["gflops"] = count_gflops(model, args.size)
        entry["inference"] = measure_inference(model, args, device, args.size, args.batch)
        if not args.no_train and hasattr(model, "compute_loss"):
            entry["training"] = measure_training(model, args, device)
        report["models"][name] = entry
        line = f"{name:10s} params {entry['parameters'] / 1e6:6.2f} M"
        if "gflops" in entry:
            line += f"  GFLOPs@{args.size} {entry['gflops']:7.2f}"
        line += f"  infer {entry['inference']['images_per_s']:7.2f} img/s (batch {args.batch})"
        if "training" in entry:
            line += f"  train {entry['training']['images_per_s']:6.2f} img/s (batch {args.train_batch})"
        print(line, flush=True)

    for scale in args.scales:
        torch.manual_seed(0)
        run(f"eflnet-{scale}", build_eflnet(scale, **overrides))
        if not args.no_yolo:
            yolo = build_yolov8(scale)
            if yolo is not None:
                run(f"yolov8{scale}", yolo)

    if "n" in args.scales:
        latency_args = argparse.Namespace(**{**vars(args), "runs": args.latency_runs})
        where = f"at {args.latency_size}x{args.latency_size}, batch 1, {args.threads} threads"
        model = build_eflnet("n", **overrides)
        latency = measure_inference(model, latency_args, device, args.latency_size, 1)
        report["latency_eflnet_n"] = latency
        print(
            f"eflnet-n latency {where}: {latency['ms_per_image']:.1f} ms/image (median of {args.latency_runs}; "
            "random weights and noise input: worst-case postprocess)",
            flush=True,
        )
        report["latency_eflnet_n_by_dyhead_blocks"] = {}
        for blocks in args.latency_blocks:
            torch.manual_seed(0)
            swept = fuse_batchnorm(build_eflnet("n", **{**overrides, "dyhead_blocks": blocks}))
            frame = synthetic_frame(args.latency_size)
            entry = measure_inference(swept, latency_args, device, args.latency_size, 1, images=frame, conf=0.25)
            report["latency_eflnet_n_by_dyhead_blocks"][blocks] = entry
            print(f"  forward + postprocess, BatchNorm folded, {blocks} DyHead blocks: {entry['ms_per_image']:.1f} ms")
        if args.latency_weights:
            trained, _, path = load_for_inference(args.latency_weights, device)
            frame = synthetic_frame(args.latency_size)
            entry = measure_inference(trained, latency_args, device, args.latency_size, 1, images=frame, conf=0.25)
            entry["weights"] = path.name
            report["latency_trained"] = entry
            print(
                f"  trained {path.name} ({trained.config['dyhead_blocks']} DyHead blocks, BatchNorm folded) on a "
                f"synthetic IR frame, conf 0.25: {entry['ms_per_image']:.1f} ms/image"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
