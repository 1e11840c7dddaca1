"""Benchmark the deformable convolution of the dynamic head: bf16 gathers vs torchvision float32.

Times one forward + backward of a modulated deformable 3x3 convolution at a DyHead shape
(``--channels`` in and out, a ``--size`` x ``--size`` map, ``--batch`` images, random offsets of a
few pixels) for each implementation in :mod:`reference_model.eflnet.dyhead`:

- ``torchvision-fp32``: :func:`torchvision.ops.deform_conv2d` in float32 (the baseline);
- ``sampled-fp32``: :func:`~reference_model.eflnet.dyhead.deform_conv2d_sampled` (grid_sample);
- ``gathered-fp32`` and ``gathered-bf16``: :func:`~reference_model.eflnet.dyhead.deform_conv2d_gathered`
  without and under ``torch.autocast(dtype=torch.bfloat16)`` (what the dynamic head runs under
  bf16 autocast).

It prints the median of ``--runs`` timings per implementation, its ratio to the baseline (above 1:
faster) and the largest deviation of its output from the float64 torchvision result, relative to
that result's largest magnitude.

Examples::

    .venv/bin/python bench/bench_deform.py                                   # CPU, small shape
    .venv/bin/python bench/bench_deform.py --device cuda --channels 256 --size 80 --batch 16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torchvision.ops import deform_conv2d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_model.eflnet.dyhead import deform_conv2d_gathered, deform_conv2d_sampled  # noqa: E402

#: standard deviation of the random offsets, in pixels.
OFFSET_STD_PX = 2.0
BASELINE = "torchvision-fp32"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def implementations(device: torch.device) -> dict:
    """name -> (function(x, offset, mask, weight), autocast dtype or None)."""

    def torchvision_fn(x, offset, mask, weight):
        return deform_conv2d(x, offset, weight, padding=1, mask=mask)

    def sampled(x, offset, mask, weight):
        return deform_conv2d_sampled(x, offset, mask, weight, 1, 1)

    def gathered(x, offset, mask, weight):
        return deform_conv2d_gathered(x, offset, mask, weight, 1, 1)

    return {
        BASELINE: (torchvision_fn, None),
        "sampled-fp32": (sampled, None),
        "gathered-fp32": (gathered, None),
        "gathered-bf16": (gathered, torch.bfloat16),
    }


def inputs(args: argparse.Namespace, device: torch.device, dtype: torch.dtype = torch.float32) -> list:
    g = torch.Generator().manual_seed(0)
    b, c, s = args.batch, args.channels, args.size
    tensors = [
        torch.randn(b, c, s, s, generator=g),
        OFFSET_STD_PX * torch.randn(b, 18, s, s, generator=g),
        torch.rand(b, 9, s, s, generator=g),
        torch.randn(c, c, 3, 3, generator=g) / (3 * c**0.5),
    ]
    return [t.to(device=device, dtype=dtype) for t in tensors]


def step(fn, autocast_dtype, device: torch.device, tensors: list) -> torch.Tensor:
    """One forward + backward; returns the (detached) output."""
    leaves = [t.detach().requires_grad_() for t in tensors]
    context = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with context:
        out = fn(*leaves)
    out.float().square().mean().backward()
    return out.detach()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=40, help="feature map side (80 = stride 8 at 640 px)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tensors = inputs(args, device)
    reference = step(implementations(device)[BASELINE][0], None, device, inputs(args, device, torch.float64))
    scale = reference.abs().max().item()
    rows = []
    for name, (fn, autocast_dtype) in implementations(device).items():
        for _ in range(args.warmup):
            step(fn, autocast_dtype, device, tensors)
        synchronize(device)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            out = step(fn, autocast_dtype, device, tensors)
            synchronize(device)
            times.append(time.perf_counter() - start)
        error = (out.double() - reference).abs().max().item() / scale
        rows.append({"name": name, "median_s": statistics.median(times), "max_rel_error": error})
    baseline = next(r["median_s"] for r in rows if r["name"] == BASELINE)
    print(
        f"deformable 3x3 conv, forward + backward: device {device}, batch {args.batch}, "
        f"{args.channels} -> {args.channels} channels, {args.size}x{args.size}, median of {args.runs}"
    )
    print(f"{'implementation':<18}{'median ms':>12}{'x vs ' + BASELINE:>26}{'max rel. error':>16}")
    for row in rows:
        row["speedup_vs_baseline"] = baseline / row["median_s"]
        print(
            f"{row['name']:<18}{1000 * row['median_s']:>12.2f}{row['speedup_vs_baseline']:>26.2f}"
            f"{row['max_rel_error']:>16.2e}"
        )
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        args.json.write_text(json.dumps({"settings": settings, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
