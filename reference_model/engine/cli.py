"""``irstd-bench train`` and ``irstd-bench predict``: thin click layers over the engine.

Multi-GPU: the same command under torchrun, ``torchrun --nproc_per_node N -m irstd_bench train ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from irstd_bench._cli_options import UNIT_INTERVAL, Number, count, max_pixels_option, skip_defects_option
from irstd_bench._io import check_pixels, image_size, pixel_limit
from irstd_bench.errors import InputError
from reference_model.engine.transforms import MAX_INPUT_SIZE, SIZE_DIVISOR

#: ``predict --imgsz`` for a checkpoint that does not record its training size, px.
DEFAULT_INPUT_SIZE = 512

#: Model switches of ``train`` -> EFLNet builder keywords (``docs/CONTRACTS.md``, Models).
EFLNET_SWITCHES = ("use_atfl", "use_nwd", "atfl_lambda", "nwd_constant", "dyhead_blocks", "strides")


def parse_strides(text: str | None) -> list[int] | None:
    """``"4,8,16"`` -> ``[4, 8, 16]``; raises :class:`InputError` for anything else."""
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--strides {text!r}: expected comma-separated integers such as 4,8,16") from None
    if not values:
        raise InputError(f"--strides {text!r}: expected comma-separated integers such as 4,8,16")
    return values


def parse_model_args(items: tuple[str, ...]) -> dict:
    """``("key=value", ...)`` -> builder keywords; values are read as JSON when they parse, else strings."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise InputError(f"--model-arg {item!r}: expected KEY=VALUE with KEY a Python identifier")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _explicit(ctx: click.Context) -> set[str]:
    """Parameters the user typed (not defaults), by TrainConfig field name."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given.add(name)
    return given


@click.command("train")
@click.option("--dataset", default=None, help="nuaa, nudt, irstd1k, sirstv2 or custom (default: detect).")
@click.option("--root", default=None, help="Dataset root folder.")
@click.option(
    "--split",
    default="default",
    show_default=True,
    help="Split family: a folder of split files (idx_427, split_EFLNet, 50_50, split_synth) or default. "
    "Trains on FAMILY/train (or trainval), validates on FAMILY/val, else FAMILY/test (with a warning).",
)
@click.option("--model", default=None, help="eflnet-n|s|m|l, acm, alcnet, dnanet, or package.module:builder.")
@click.option("--epochs", default=100, show_default=True, type=int)
@click.option(
    "--imgsz", default=512, show_default=True, type=int, help="Square input side, px (multiple of 32)."
)
@click.option("--batch", default=16, show_default=True, type=int, help="Images per batch (per process).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", default=None, help="Run folder (default runs/train; with --resume: the resumed run).")
@click.option("--val-every", default=1, show_default=True, type=int, help="Validate every N epochs.")
@click.option(
    "--val-conf", default=0.5, show_default=True, type=float, help="Confidence of the validation F1."
)
@click.option(
    "--recipe",
    default=None,
    help="Named recipe of the model (paper, authors...): its model options and training settings; "
    "options given here win. Default: the model's default recipe where it has one; 'none': the engine's defaults.",
)
@click.option(
    "--protocol", default=None,
    help="Named comparison protocol (cpu-native-256, authors-sizes): settings applied over the recipe's.",
)
@click.option(
    "--optimizer", default="sgd", show_default=True, type=click.Choice(["sgd", "adamw", "adagrad"])
)
@click.option("--lr", default=None, type=float, help="Default: sgd 0.01, adamw 0.001, adagrad 0.05.")
@click.option("--weight-decay", default=None, type=float, help="Default: sgd 5e-4, adamw 0.05, adagrad 1e-4.")
@click.option("--momentum", default=0.937, show_default=True, type=float, help="SGD momentum / AdamW beta1.")
@click.option(
    "--schedule", default="cosine", show_default=True, type=click.Choice(["cosine", "poly", "linear"]),
    help="Learning-rate decay shape.",
)
@click.option(
    "--schedule-step", default="iteration", show_default=True, type=click.Choice(["iteration", "epoch"]),
    help="iteration: decay after warm-up, every iteration; epoch: per epoch from epoch 0, warm-up rising to it "
    "(YOLOv7).",
)
@click.option("--lr-final-ratio", default=0.01, show_default=True, type=float, help="Final lr / lr.")
@click.option("--poly-power", default=0.9, show_default=True, type=float, help="Exponent of --schedule poly.")
@click.option("--warmup-epochs", default=3.0, show_default=True, type=float)
@click.option(
    "--warmup-iters", default=0, show_default=True, type=int,
    help="Warm-up lasts max(warmup-epochs x iterations per epoch, this) iterations.",
)
@click.option(
    "--warmup-start-ratio", default=0.01, show_default=True, type=float,
    help="Learning rate at the start of warm-up, fraction of --lr (YOLOv7: 0).",
)
@click.option(
    "--warmup-bias-lr", default="none", show_default=True, callback=lambda _c, _p, v: _number_or_none(v),
    help="Biases' learning rate at the start of warm-up, falling to --lr (YOLOv7: 0.1); 'none': as the rest.",
)
@click.option(
    "--warmup-momentum", default="none", show_default=True, callback=lambda _c, _p, v: _number_or_none(v),
    help="SGD momentum at the start of warm-up, rising to --momentum (YOLOv7: 0.8); 'none': constant.",
)
@click.option(
    "--nominal-batch", default=None, type=int,
    help="Accumulate gradients to this many images per optimizer step (default: one step per batch).",
)
@click.option(
    "--accumulate-ramp/--no-accumulate-ramp", default=False, show_default=True,
    help="Batches per optimizer step rise from 1 to the nominal number over the warm-up (YOLOv7).",
)
@click.option(
    "--weight-decay-rule", default="ndim", show_default=True, type=click.Choice(["ndim", "yolov7"]),
    help="ndim: decay on parameters of more than one dimension; yolov7: on every module's weight but "
    "BatchNorm's (GroupNorm scales included).",
)
@click.option(
    "--fitness", default="f1", show_default=True, type=click.Choice(["f1", "ap", "iou"]),
    help="best.pt by: f1 (val F1 at --val-conf), ap (0.1 AP50 + 0.9 AP50:95), iou (segmenters).",
)
@click.option(
    "--grad-clip", default="10", show_default=True, callback=lambda _c, _p, v: _number_or_none(v),
    help="Largest gradient norm of an optimizer step; 'none': no clipping.",
)
@click.option(
    "--max-det", default=100, show_default=True, type=int,
    help="Detections kept per image after NMS in validation (and, from the checkpoint, predict).",
)
@click.option(
    "--ema/--no-ema", default=True, show_default=True, help="EMA weights for validation and saving."
)
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision (CUDA only).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="Image decoding processes (at start).")
@click.option("--resume", default=None, help="Continue the run in this folder (or from this last.pt).")
@max_pixels_option
@skip_defects_option
@click.option("--force", is_flag=True, help="A new run may replace an earlier run at --out (only files train wrote).")
@click.option(
    "--augment/--no-augment", default=True, show_default=True, help="Flips, scale/crop, mosaic, mixup, jitter."
)
@click.option("--mosaic", default=0.0, show_default=True, type=float, help="Mosaic probability.")
@click.option(
    "--mosaic9", default=0.0, show_default=True, type=float, help="Probability of a 9-image mosaic among mosaics."
)
@click.option(
    "--mosaic-style", default="grid", show_default=True, type=click.Choice(["grid", "yolov7"]),
    help="grid: letterboxed tiles on a fixed grid; yolov7: the images around a random centre, gaps --pad-value.",
)
@click.option("--mixup", default=0.0, show_default=True, type=float, help="Mixup probability.")
@click.option(
    "--mixup-beta", default=32.0, show_default=True, type=float, help="Mixup ratio ~ Beta(this, this) (YOLOv7: 8)."
)
@click.option(
    "--mixup-partner", default="batch", show_default=True, type=click.Choice(["batch", "fresh"]),
    help="Image blended in: another of the batch, or a fresh mosaic/window of a random image (YOLOv7).",
)
@click.option("--scale", default=0.3, show_default=True, type=float, help="Scale jitter: 1 +- this.")
@click.option("--translate", default=0.1, show_default=True, type=float, help="Translation, fraction of imgsz.")
@click.option(
    "--window-style", default="canvas", show_default=True, type=click.Choice(["canvas", "yolov7"]),
    help="canvas: windows reach the whole canvas; yolov7: scale in [1 - scale, 1.1 + scale] about the canvas "
    "centre, shifted by --translate.",
)
@click.option(
    "--min-box-side", default=0.0, show_default=True, type=float,
    help="Drop augmented boxes not wider and higher than this, px (YOLOv7: 2).",
)
@click.option(
    "--pad-value", default=0.0, show_default=True, type=float,
    help="Letterbox padding and mosaic gap value in [0, 1] (YOLOv7: 114/255); predict reads it from the run.",
)
@click.option("--hsv-h", default=0.0, show_default=True, type=float, help="Hue gain (no effect on gray IR).")
@click.option("--hsv-s", default=0.0, show_default=True, type=float, help="Saturation gain (no effect on gray IR).")
@click.option("--hsv-v", default=0.0, show_default=True, type=float, help="Value (brightness) gain.")
@click.option("--brightness", default=0.1, show_default=True, type=float, help="Brightness offset: +- this.")
@click.option("--contrast", default=0.2, show_default=True, type=float, help="Contrast factor: 1 +- this.")
@click.option("--noise", default=0.02, show_default=True, type=float, help="Largest Gaussian noise sigma.")
@click.option("--fliplr", default=0.5, show_default=True, type=float, help="Left-right flip probability.")
@click.option("--flipud", default=0.5, show_default=True, type=float, help="Up-down flip probability.")
@click.option(
    "--crop", default=0.5, show_default=True, type=float,
    help="Probability of a target-keeping crop (all targets kept, zoom-in) instead of scale/translate.",
)
@click.option(
    "--crop-min-side", default=0.6, show_default=True, type=float,
    help="Smallest crop side, fraction of --imgsz (zoom-in up to 1 / this).",
)
@click.option(
    "--base-size", default=None, type=int,
    help="Letterbox onto this side and cut random --imgsz windows (default: letterbox to --imgsz).",
)
@click.option(
    "--eval-size", default=None, type=int,
    help="Side of the validation input and predict's default --imgsz (default: --imgsz).",
)
@click.option(
    "--channels-last/--no-channels-last", default=True, show_default=True, help="Channels-last memory format."
)
@click.option("--compile", is_flag=True, help="torch.compile the forward pass.")
@click.option(
    "--memory-fraction", default=None, type=float,
    help="CUDA: use at most this fraction of the GPU memory (several runs on one GPU).",
)
@click.option("--threads", default=None, type=int, help="CPU threads of torch ops during the run.")
@click.option("--resize-masks", is_flag=True, help="Resize masks whose size differs from their image.")
@click.option("--no-atfl", "no_atfl", is_flag=True, help="EFLNet: BCE instead of ATFL.")
@click.option("--no-nwd", "no_nwd", is_flag=True, help="EFLNet: IoU instead of NWD everywhere.")
@click.option("--atfl-lambda", default=None, type=float, help="EFLNet: ATFL lambda.")
@click.option("--nwd-constant", default=None, type=float, help="EFLNet: NWD constant C, px.")
@click.option("--dyhead-blocks", default=None, type=int, help="EFLNet: DyHead blocks (0-6).")
@click.option("--strides", default=None, help="EFLNet: output strides, e.g. 4,8,16.")
@click.option("--model-arg", "model_args", multiple=True, help="Any builder keyword, KEY=VALUE (repeatable).")
@click.option("--image-dir", default=None, help="--dataset custom: image folder under the root.")
@click.option("--mask-dir", default=None, help="--dataset custom: mask folder under the root.")
@click.option("--mask-suffix", default="", help="--dataset custom: mask name = stem + suffix + .png.")
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Progress bar on stderr (when a terminal; one line per epoch either way).",
)
@click.option(
    "--deterministic/--no-deterministic",
    default=True,
    show_default=True,
    help="Deterministic torch kernels where they exist (bitwise-reproducible runs; slower on some GPU ops).",
)
@click.pass_context
def train(ctx: click.Context, **opts) -> None:
    """Train a detector (EFLNet) or a segmenter (ACM, ALCNet, DNANet) on a dataset split family.

    Writes OUT/args.json, OUT/results.csv, OUT/last.pt (every epoch) and OUT/best.pt.
    """
    from reference_model.engine.config import TrainConfig
    from reference_model.engine.trainer import train as run_training

    explicit = _explicit(ctx)
    force = opts.pop("force")
    max_pixels = opts.pop("max_pixels")
    overrides = parse_model_args(opts.pop("model_args"))
    if opts.pop("no_atfl"):
        overrides["use_atfl"] = False
    if opts.pop("no_nwd"):
        overrides["use_nwd"] = False
    for name in ("atfl_lambda", "nwd_constant", "dyhead_blocks"):
        value = opts.pop(name)
        if value is not None:
            overrides[name] = value
    strides = parse_strides(opts.pop("strides"))
    if strides is not None:
        overrides["strides"] = strides
    model = opts.get("model") or ""
    switches = sorted(k for k in overrides if k in EFLNET_SWITCHES)
    if switches and model and not model.startswith("eflnet"):
        raise InputError(f"model {model}: EFLNet switches do not apply ({', '.join(switches)})")
    if opts["resume"] and overrides:
        raise InputError(
            "model switches cannot change a resumed run (its model is rebuilt from the checkpoint)"
        )
    if opts["resume"] and opts["recipe"]:
        raise InputError("--recipe cannot change a resumed run (it keeps the recipe it was started with)")
    if opts["resume"] and opts["protocol"]:
        raise InputError("--protocol cannot change a resumed run (it keeps the protocol it was started with)")
    config = TrainConfig(model_overrides=overrides, **opts)
    with pixel_limit(max_pixels):
        result = run_training(config, explicit=explicit, force=force)
    if result.best_fitness is not None:
        click.echo(
            f"done: {result.out} (best fitness {result.best_fitness[0]:.4f} at epoch "
            f"{result.best_metrics.get('epoch')})"
        )


def _number_or_none(value: str | float | None) -> float | None:
    """An option that takes a number or ``none`` (``--grad-clip``, ``--warmup-bias-lr``...)."""
    if value is None or str(value).strip().lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: a number or 'none'") from None


@click.command("predict")
@click.option(
    "--weights", required=True, help="Checkpoint file, run folder, or bundled name (nuaa-eflnet-n)."
)
@click.option(
    "--model",
    "cli_model",
    default=None,
    help="Only for weights of a custom builder: the same package.module:builder they were trained with.",
)
@click.option("--source", default=None, type=click.Path(path_type=Path), help="Folder of images.")
@click.option("--dataset", default=None, help="nuaa, nudt, irstd1k, sirstv2 or custom (with --root).")
@click.option("--root", default=None, type=click.Path(path_type=Path), help="Dataset root folder.")
@click.option(
    "--split", default="test", show_default=True, help="Split name with --root (test, idx_427/test...)."
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Output folder (or .json/.csv file)."
)
@click.option(
    "--format",
    "fmt",
    default=None,
    type=click.Choice(["coco", "yolo", "csv", "scoremaps", "masks"]),
    help="Detectors: coco (default), yolo, csv. Segmenters: scoremaps (default), masks.",
)
@click.option("--conf", default=0.001, show_default=True, type=UNIT_INTERVAL, help="Detector score threshold.")
@click.option(
    "--max-det", default=None, type=count(1),
    help="Detections kept per image after NMS (default: the run's max_det, in its checkpoint; else 100).",
)
@max_pixels_option
@skip_defects_option
@click.option("--force", is_flag=True, help="Replace an earlier predict output at --out (only what predict wrote).")
@click.option(
    "--mask-threshold", default=0.5, show_default=True, type=Number(float, 0, 1, low_open=True),
    help="masks: score >= this.",
)
@click.option(
    "--imgsz", default=None, type=count(SIZE_DIVISOR, MAX_INPUT_SIZE),
    help=f"Input side, px, a multiple of {SIZE_DIVISOR} (default: the training size).",
)
@click.option("--batch", default=8, show_default=True, type=count(1))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--image-dir", default=None, help="--dataset custom: image folder under the root.")
@click.option("--mask-dir", default=None, help="--dataset custom: mask folder under the root.")
@click.option("--mask-suffix", default="", help="--dataset custom: mask name = stem + suffix + .png.")
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr (when a terminal)."
)
def predict(
    weights,
    cli_model,
    source,
    dataset,
    root,
    split,
    out,
    fmt,
    conf,
    max_det,
    max_pixels,
    skip_defects,
    force,
    mask_threshold,
    imgsz,
    batch,
    device,
    image_dir,
    mask_dir,
    mask_suffix,
    progress,
) -> None:
    """Run a trained model on images and write predictions that `irstd-bench eval` reads."""
    import torch

    from reference_model.engine.distributed import resolve_device
    from reference_model.engine.predict import (
        check_format,
        check_predictions_out,
        inference_settings,
        load_for_inference,
        predict_samples,
        write_predictions,
    )
    from reference_model.engine.runtime import amp_dtype_for
    from reference_model.engine.transforms import check_input_size

    if (source is None) == (root is None):
        raise InputError("give the images: --source FOLDER or --root DATA_ROOT (with --dataset, --split)")
    if imgsz is not None:
        try:
            check_input_size(imgsz)
        except ValueError as exc:
            raise InputError(f"--imgsz {imgsz}: {exc}") from None
    dev = resolve_device(device)
    model, checkpoint, path = load_for_inference(weights, dev, cli_model)
    pad_value, trained_max_det = inference_settings(checkpoint, path)  # the letterbox the model was trained on
    fmt = fmt or ("coco" if model.task == "detect" else "scoremaps")
    check_format(model.task, fmt)
    size = imgsz if imgsz is not None else checkpoint.get("input_size") or DEFAULT_INPUT_SIZE
    if source is not None:
        from reference_model.engine.predict import image_samples

        samples = image_samples(source)
    else:
        from irstd_bench.datasets import open_dataset

        ds = open_dataset(
            root,
            dataset,
            image_dir=image_dir,
            mask_dir=mask_dir,
            mask_suffix=mask_suffix,
            skip_defects=skip_defects,
        )
        samples = [ds.sample(stem) for stem in ds.stems(split)]
    inputs = [("image folder", source), ("dataset root", root), ("weights", path)]
    claims = check_predictions_out(out, fmt, force=force, inputs=inputs)  # before the (long) inference
    amp = amp_dtype_for(dev, True)  # predict has no --amp option: CUDA inference always autocasts
    try:
        with pixel_limit(max_pixels):
            for sample in samples:  # a decompression bomb is refused before the network sees it
                check_pixels(sample.image_path, image_size(sample.image_path))
            items = predict_samples(
                model, samples, size, dev, conf=conf, batch=batch, amp_dtype=amp, progress=progress,
                pad_value=pad_value, max_det=max_det or trained_max_det,
            )
    except torch.OutOfMemoryError:
        raise InputError(
            f"out of memory on {dev} with --batch {batch} --imgsz {size}; try smaller values"
        ) from None
    written = write_predictions(items, out, fmt, mask_threshold=mask_threshold, force=force, inputs=inputs,
                                claims=claims)
    n_targets = sum(len(i.prediction.boxes) for i in items) if model.task == "detect" else None
    what = f", {n_targets} boxes" if n_targets is not None else ""
    click.echo(f"{checkpoint['model_name']} ({path}): {len(items)} images{what} -> {written} ({fmt})")
