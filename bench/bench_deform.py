"""Benchmark the deformable convolution of the dynamic head: implementations side by side.

Two modes.

**One shape** (default): one forward + backward of a modulated deformable 3x3 convolution
(``--channels`` in and out, a ``--size`` x ``--size`` map, ``--batch`` images, random offsets of a
few pixels, ``--offset-std``).

**A model's training step** (``--model eflnet-n --imgsz 256 --batch 16``): every deformable
convolution one training step of that model runs (recorded by a forward pass: 7 per DyHead block
for 3 levels, 28 for EFLNet-n), each forward + backward, with the recorded input shapes, random
offsets (standard deviation 0.25 px, as a trained EFLNet-n's) and random masks; the time printed
is their sum, i.e. the deformable sampling of one step.

Implementations (:mod:`reference_model.eflnet.dyhead`):

- ``torchvision-fp32``: :func:`torchvision.ops.deform_conv2d` in float32 (the baseline);
- ``sparse-fp32``: :func:`~reference_model.eflnet.dyhead.deform_conv2d_sparse` (the CPU default);
- ``gathered-fp32`` and ``gathered-bf16``: :func:`~reference_model.eflnet.dyhead.deform_conv2d_gathered`
  without and under ``torch.autocast(dtype=torch.bfloat16)`` (what the dynamic head runs under
  bf16 autocast);
- ``baseline-tree``: with ``--baseline-tree PATH`` (a checkout of another commit, e.g. ``main``),
  the function that tree's ``ModulatedDeformConv`` runs on this device without autocast (main: its
  ``grid_sample`` implementation on the CPU), loaded from that tree's ``dyhead.py``.

It prints the median CPU and wall time of ``--runs`` runs per implementation (the runs interleaved
round by round, so a load that changes affects all alike), the ratio of the baseline's CPU time to
each (above 1: faster) and the largest deviation of each output from the float64 torchvision result,
relative to that result's largest magnitude (the first call, in model mode).

Examples::

    .venv/bin/python bench/bench_deform.py                                   # CPU, small shape
    .venv/bin/python bench/bench_deform.py --model eflnet-n --imgsz 256 --batch 16 --threads 1 \\
        --baseline-tree /tmp/main-tree --skip gathered-bf16                  # EFLNet-n's step
    .venv/bin/python bench/bench_deform.py --device cuda --channels 256 --size 80 --batch 16
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torchvision.ops import deform_conv2d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_model.eflnet.dyhead import (  # noqa: E402
    DEFORM_KERNEL,
    ModulatedDeformConv,
    deform_conv2d_gathered,
    deform_conv2d_sparse,
)
from reference_model.registry import build_model  # noqa: E402

#: standard deviation of the random offsets, in pixels: one shape (a stress test), a model's step (the
#: offsets of the bundled trained ``nuaa-eflnet-n`` have a standard deviation of 0.08 to 0.29 px).
OFFSET_STD_PX = {"shape": 2.0, "model": 0.25}
BASELINE = "torchvision-fp32"
PADDING = DEFORM_KERNEL // 2


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def baseline_tree_function(tree: Path, device: torch.device):
    """The deformable convolution ``tree``'s dynamic head runs on ``device`` without autocast."""
    path = tree / "reference_model" / "eflnet" / "dyhead.py"
    spec = importlib.util.spec_from_file_location("baseline_tree_dyhead", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    probe = torch.zeros(1, 1, 4, 4, device=device)
    conv = module.ModulatedDeformConv(1, 1)
    backend = conv.resolved_backend(probe)
    functions = {
        name.removeprefix("deform_conv2d_"): getattr(module, name) for name in dir(module)
        if name.startswith("deform_conv2d_")
    }
    if backend == "torchvision":
        return lambda x, offset, mask, weight, stride: deform_conv2d(
            x, offset, weight, stride=stride, padding=PADDING, mask=mask
        )
    function = functions[backend]
    return lambda x, offset, mask, weight, stride: function(x, offset, mask, weight, stride, PADDING)


def implementations(baseline_tree: Path | None, device: torch.device) -> dict:
    """name -> (function(x, offset, mask, weight, stride), autocast dtype or None)."""

    def torchvision_fn(x, offset, mask, weight, stride):
        return deform_conv2d(x, offset, weight, stride=stride, padding=PADDING, mask=mask)

    def sparse(x, offset, mask, weight, stride):
        return deform_conv2d_sparse(x, offset, mask, weight, stride, PADDING)

    def gathered(x, offset, mask, weight, stride):
        return deform_conv2d_gathered(x, offset, mask, weight, stride, PADDING)

    table = {
        BASELINE: (torchvision_fn, None),
        "sparse-fp32": (sparse, None),
        "gathered-fp32": (gathered, None),
        "gathered-bf16": (gathered, torch.bfloat16),
    }
    if baseline_tree is not None:
        table["baseline-tree"] = (baseline_tree_function(baseline_tree, device), None)
    return table


def random_call(
    shape: dict, offset_std: float, generator: torch.Generator, device: torch.device, dtype=torch.float32
) -> list:
    """Inputs ``[x, offset, mask, weight]`` of one call of ``shape`` (keys ``x``, ``out``, ``channels_out``),
    plus its ``stride``; ``x`` channels-last as the model's features are."""
    b, c, h, w = shape["x"]
    h_out, w_out = shape["out"]
    taps = DEFORM_KERNEL * DEFORM_KERNEL
    c_out = shape["channels_out"]
    tensors = [
        torch.randn(b, c, h, w, generator=generator),
        offset_std * torch.randn(b, 2 * taps, h_out, w_out, generator=generator),
        torch.rand(b, taps, h_out, w_out, generator=generator),
        torch.randn(c_out, c, DEFORM_KERNEL, DEFORM_KERNEL, generator=generator) / (3 * c**0.5),
    ]
    tensors = [t.to(device=device, dtype=dtype) for t in tensors]
    tensors[0] = tensors[0].contiguous(memory_format=torch.channels_last)
    return [*tensors, shape["stride"]]


def model_calls(name: str, imgsz: int, batch: int) -> list[dict]:
    """Shapes of every deformable convolution one forward pass of model ``name`` runs."""
    model = build_model(name)
    calls: list[dict] = []

    def record(module, args, output):
        x, offset, _ = args
        calls.append({"x": tuple(x.shape), "out": tuple(offset.shape[-2:]), "stride": module.stride,
                      "channels_out": module.weight.shape[0]})

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, ModulatedDeformConv)]
    with torch.no_grad():
        model(torch.zeros(batch, 3, imgsz, imgsz).contiguous(memory_format=torch.channels_last))
    for hook in hooks:
        hook.remove()
    return calls


def step(fn, autocast_dtype, device: torch.device, call: list) -> torch.Tensor:
    """One forward + backward; returns the (detached) output."""
    *tensors, stride = call
    leaves = [t.detach().requires_grad_() for t in tensors]
    context = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with context:
        out = fn(*leaves, stride)
    out.float().square().mean().backward()
    return out.detach()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=40, help="feature map side (80 = stride 8 at 640 px)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--model", default=None, help="time every deformable convolution of this model's step")
    parser.add_argument("--imgsz", type=int, default=256, help="input size with --model")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="also time the implementation of this source tree (a checkout of main)")
    parser.add_argument("--offset-std", type=float, default=None,
                        help=f"offsets' standard deviation in px (default {OFFSET_STD_PX})")
    parser.add_argument("--skip", nargs="*", default=[], help="implementations not to time")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.model:
        shapes = model_calls(args.model, args.imgsz, args.batch)
    else:
        c, s = args.channels, args.size
        shapes = [{"x": (args.batch, c, s, s), "out": (s, s), "stride": 1, "channels_out": c}]
    offset_std = args.offset_std if args.offset_std is not None else OFFSET_STD_PX["model" if args.model else "shape"]
    generator = torch.Generator().manual_seed(0)
    calls = [random_call(shape, offset_std, generator, device) for shape in shapes]
    first64 = random_call(shapes[0], offset_std, torch.Generator().manual_seed(0), device, torch.float64)
    reference = step(implementations(None, device)[BASELINE][0], None, device, first64)
    scale = reference.abs().max().item()
    table = {k: v for k, v in implementations(args.baseline_tree, device).items() if k not in args.skip}
    cpu: dict[str, list[float]] = {name: [] for name in table}
    wall: dict[str, list[float]] = {name: [] for name in table}
    errors = {}
    for name, (fn, autocast_dtype) in table.items():
        out = step(fn, autocast_dtype, device, calls[0])
        errors[name] = (out.double() - reference).abs().max().item() / scale
        for _ in range(args.warmup):
            for call in calls:
                step(fn, autocast_dtype, device, call)
    for _ in range(args.runs):  # round by round: every implementation once per round
        for name, (fn, autocast_dtype) in table.items():
            synchronize(device)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for call in calls:
                step(fn, autocast_dtype, device, call)
            synchronize(device)
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
    rows = [
        {"name": name, "cpu_s": statistics.median(cpu[name]), "wall_s": statistics.median(wall[name]),
         "cpu_runs": cpu[name], "max_rel_error": errors[name]}
        for name in table
    ]
    reference_row = "baseline-tree" if args.baseline_tree is not None and "baseline-tree" in table else BASELINE
    base = next(r["cpu_s"] for r in rows if r["name"] == reference_row)
    if args.model:
        what = (f"{len(calls)} deformable convolutions of one {args.model} training step at {args.imgsz} px, "
                f"batch {args.batch}")
    else:
        what = (f"deformable 3x3 conv, batch {args.batch}, {args.channels} -> {args.channels} channels, "
                f"{args.size}x{args.size}")
    print(f"{what}, offsets' std {offset_std} px, forward + backward: device {device}, "
          f"threads {torch.get_num_threads()}, median of {args.runs}")
    print(f"{'implementation':<18}{'CPU ms':>11}{'wall ms':>11}{'x vs ' + reference_row:>24}{'max rel. error':>16}")
    for row in rows:
        row["speedup_vs_" + reference_row] = base / row["cpu_s"]
        print(f"{row['name']:<18}{1000 * row['cpu_s']:>11.1f}{1000 * row['wall_s']:>11.1f}"
              f"{row['speedup_vs_' + reference_row]:>24.2f}{row['max_rel_error']:>16.2e}")
    if args.json:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"}
        settings["offset_std"] = offset_std
        args.json.write_text(json.dumps({"settings": settings, "calls": shapes, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
