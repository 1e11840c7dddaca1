"""``irstd-bench eval``: score predictions against a dataset split."""

from __future__ import annotations

from pathlib import Path

import click

from irstd_bench._cli_options import CONFIDENCE, MASK_THRESHOLD, WORKERS, count, max_pixels_option, skip_defects_option
from irstd_bench._io import pixel_limit
from irstd_bench.errors import InputError
from irstd_bench.evaluate._bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, MAX_RESAMPLES
from irstd_bench.evaluate._evaluator import default_workers, evaluate_split
from irstd_bench.evaluate._ground_truth import read_coco_ground_truth
from irstd_bench.evaluate._prediction_set import FORMATS, open_predictions
from irstd_bench.evaluate._readers import coco_image_names
from irstd_bench.evaluate._results_io import EvaluationResult
from irstd_bench.targets import DEFAULT_CONNECTIVITY, DEFAULT_THRESHOLD

#: Rows of the printed table: (metrics key, label).
TABLE_ROWS = (
    ("tp", "TP"),
    ("fp", "FP"),
    ("fn", "FN"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("best_f1", "best F1"),
    ("best_f1_threshold", "  at threshold"),
    ("ap50", "AP50 (COCO, IoU 0.5)"),
    ("ap", "AP ({matcher})"),
    ("iou", "IoU (split)"),
    ("niou", "nIoU"),
    ("pd", "Pd (3 px)"),
    ("fa_e6", "Fa (x1e-6)"),
)


def result_files(out: Path) -> tuple[Path, Path, Path]:
    """The set ``eval --out`` writes: the per-image CSV, the per-target CSV and the results JSON."""
    base = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.parent / f"{base}.per_image.csv", out.parent / f"{base}.per_target.csv", out


def check_results_out(out: Path, force: bool, inputs) -> dict:
    """Refuse an ``--out`` set that would overwrite an input or a file irstd-bench did not write;
    return the claims to write the set with (:func:`~irstd_bench.evaluate._results_io.results_claims`)."""
    from irstd_bench._outputs import refuse_inside_inputs
    from irstd_bench.evaluate._results_io import results_claims

    image_csv, target_csv, _ = result_files(out)
    for path in (out, image_csv, target_csv):  # the --out typed is named first
        refuse_inside_inputs(path, inputs, folder=False)
    return results_claims(out, force=force)


def _default_out(preds: Path) -> Path:
    name = preds.name[: -len(preds.suffix)] if preds.is_file() and preds.suffix else preds.name
    return preds.parent / f"{name}.results.json"


def format_table(result: EvaluationResult, title: str) -> str:
    """The plain-text table ``eval`` prints; a metric with a bootstrap interval shows it after
    its value (``0.7410  95% [0.690, 0.790]``)."""
    lines = [title, "-" * len(title)]
    intervals = result.metrics.get("ci95") or {}
    undefined = result.settings.get("ap", {}).get("ap50_undefined")
    for key, label in TABLE_ROWS:
        value = result.metrics.get(key)
        if key == "ap50" and value is None and undefined:
            lines.append(f"{label:<24}{'-*':>10}")
            continue
        if value is None:
            continue
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        interval = intervals.get(key)
        digits = 2 if key == "fa_e6" else 3
        ci = f"  95% [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]" if interval else ""
        lines.append(f"{label.format(matcher=result.matcher):<24}{text:>10}{ci}")
    lines.append("size bins (area px)     recall  precision")
    for b in result.size_bins:
        rec = "-" if b["recall"] is None else f"{b['recall']:.3f}"
        prec = "-" if b["precision"] is None else f"{b['precision']:.3f}"
        lines.append(f"  {b['name']:<8} gt {b['gt']:>5}  {rec:>7}  {prec:>9}")
    if undefined:
        lines.append(f"* {undefined}")
    resampling = result.settings.get("bootstrap") or {}
    if intervals and resampling.get("resamples"):
        lines.append(
            f"95% intervals: bootstrap over images, {resampling['resamples']} resamples, seed {resampling['seed']} "
            "(percentile)"
        )
    return "\n".join(lines)


def _warnings(counts: dict) -> list[str]:
    """Count lines of what the evaluator handled. A resized ground-truth mask has none: each was
    named in its own line already (``evaluate_split`` warns once per file)."""
    notes = {
        "images_without_prediction": "split images have no prediction (scored as no detections)",
        "predictions_not_in_split": "predictions are for images not in the split (ignored)",
        "boxes_clipped": "boxes reached up to 1 px beyond their image and were clipped",
        "predictions_resized": "predictions were resized to their image (nearest neighbour, --resize)",
        "gt_masks_nonbinary": "ground-truth masks are not 0/255 only (binarised at --threshold)",
    }
    return [f"warning: {counts[k]} {text}" for k, text in notes.items() if counts.get(k)]


@click.command("eval")
@click.argument("preds", type=click.Path(path_type=Path))
@click.option("--dataset", default=None, help="nuaa, nudt, irstd1k, sirstv2 or custom (default: detect).")
@click.option("--root", type=click.Path(path_type=Path), default=None, help="Dataset root folder.")
@click.option("--split", default="test", show_default=True, help="Split name (test, idx_427/test, all, ...).")
@click.option(
    "--match",
    "matcher",
    default="iou:0.5",
    show_default=True,
    help="iou:T, nwd:T[:C], centroid:D or legacy-pd.",
)
@click.option(
    "--conf",
    default=0.5,
    show_default=True,
    type=CONFIDENCE,
    help="Confidence threshold in (0, 1]: boxes with score >= conf, map pixels >= conf.",
)
@click.option("--name", "method", default=None, help="Method name stored in the results.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Results JSON (default: <PREDS>.results.json); CSVs are written next to it. "
    "'-': the results JSON on standard output only (the table goes to standard error, no CSVs).",
)
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr (when a terminal)."
)
@click.option("--format", "pred_format", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option(
    "--gt-coco",
    type=click.Path(path_type=Path),
    default=None,
    help="COCO JSON from convert: the ground truth when --root is not given; "
    "otherwise only resolves image_id of COCO predictions.",
)
@click.option("--strict", is_flag=True, help="A split image without a prediction file is an error.")
@max_pixels_option
@skip_defects_option
@click.option("--force", is_flag=True, help="Replace an earlier results set at --out (only files eval wrote).")
@click.option("--skip-missing", is_flag=True, help="Leave out split images that have no mask (named in a warning).")
@click.option("--resize", is_flag=True, help="Resize predicted maps of another size (nearest neighbour).")
@click.option(
    "--resize-masks", is_flag=True, help="Resize ground-truth masks of another size than their image."
)
@click.option(
    "--threshold",
    default=DEFAULT_THRESHOLD,
    show_default=True,
    type=MASK_THRESHOLD,
    help="Ground-truth mask binarisation: foreground where value > threshold.",
)
@click.option(
    "--connectivity", default=DEFAULT_CONNECTIVITY, show_default=True, type=click.Choice(["4", "8"])
)
@click.option(
    "--max-dets",
    default=None,
    type=click.IntRange(min=1),
    help="AP only: count each image's N highest-scored detections (pycocotools' maxDets; "
    "100 gives its default AP50). Default: every detection.",
)
@click.option(
    "--bootstrap",
    default=DEFAULT_RESAMPLES,
    show_default=True,
    type=count(0, MAX_RESAMPLES),
    help="Resamples of the images for the 95% intervals of P, R, F1, AP50 (and IoU, nIoU, Pd, Fa); 0: none.",
)
@click.option(
    "--bootstrap-seed",
    default=DEFAULT_SEED,
    show_default=True,
    type=count(0),
    help="Seed of the resamples (the same seed gives the same intervals on any machine).",
)
@click.option("--workers", default=None, type=WORKERS, help="Worker processes (default: all CPUs).")
@click.option("--image-dir", default=None, help="--dataset custom: image folder under the root.")
@click.option("--mask-dir", default=None, help="--dataset custom: mask folder under the root.")
@click.option("--mask-suffix", default="", help="--dataset custom: mask name = stem + suffix + .png.")
@click.option(
    "--config",
    "config_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="A setting of the method stored in the results' config (repeatable; report groups ablations by it).",
)
@click.option(
    "--config-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Store the model settings of this checkpoint (run folder, .pt or bundled name) as the results' config.",
)
def eval_command(*args, **kwargs):
    """Score predictions PREDS (a folder of masks / score maps / YOLO txt, a COCO JSON or a CSV)
    against a dataset split; print a table and write the results JSON and CSVs."""
    with pixel_limit(kwargs.get("max_pixels")):
        _eval(*args, **kwargs)


def _eval(
    preds,
    dataset,
    root,
    split,
    matcher,
    conf,
    method,
    out,
    pred_format,
    gt_coco,
    strict,
    max_pixels,
    skip_defects,
    force,
    skip_missing,
    resize,
    resize_masks,
    threshold,
    connectivity,
    max_dets,
    bootstrap,
    bootstrap_seed,
    workers,
    image_dir,
    mask_dir,
    mask_suffix,
    config_items,
    config_from,
    progress,
):
    """``eval`` itself, run under its ``--max-pixels`` limit."""
    connectivity = int(connectivity)
    meta = {"method": method or (preds.stem if preds.is_file() else preds.name)}
    config = _method_config(config_items, config_from)
    if config:
        meta["config"] = config
    if root is not None:
        from irstd_bench.datasets import open_dataset

        ds = open_dataset(
            root,
            dataset,
            image_dir=image_dir,
            mask_dir=mask_dir,
            mask_suffix=mask_suffix,
            skip_defects=skip_defects,
        )
        split_file = ds.resolve_split(split)
        split_name = (
            "all" if split_file is None else split_file.relative_to(ds.root).with_suffix("").as_posix()
        )
        samples = ds.samples(split, skip_missing=skip_missing)
        left_out = len(ds.stems(split)) - len(samples)
        if left_out:
            click.echo(f"warning: left out {left_out} split image(s) without a mask (--skip-missing)", err=True)
        image_names = coco_image_ids(gt_coco, ds)
        items = [(s.stem, (s, ds.known_defect(s.stem))) for s in samples]
        meta.update(
            dataset=ds.name, dataset_title=ds.layout.title, root=str(ds.root.resolve()), split=split_name
        )
    elif gt_coco is not None:
        items = list(read_coco_ground_truth(gt_coco).items())
        image_names = coco_image_ids(gt_coco, None)
        meta.update(
            dataset=dataset or "coco",
            dataset_title=None,
            root=str(Path(gt_coco).resolve().parent),
            split=f"coco:{Path(gt_coco).name}",
        )
    else:
        raise InputError(
            "give the ground truth: --root DATA_ROOT (with --dataset, --split) or --gt-coco FILE"
        )
    if not items:
        raise InputError(f"split {split!r} has no images")
    out = out if out is not None else _default_out(preds)
    inputs = [("predictions", preds), ("ground truth", gt_coco)]
    if root is not None:
        inputs.append(("dataset root", Path(root)))
    to_stdout = str(out) == STDOUT
    claims = None if to_stdout else check_results_out(out, force, inputs)
    pset = open_predictions(preds, pred_format, stems=[stem for stem, _ in items], image_names=image_names)
    result = evaluate_split(
        items,
        pset,
        matcher=matcher,
        conf=conf,
        strict=strict,
        resize=resize,
        resize_masks=resize_masks,
        threshold=threshold,
        connectivity=connectivity,
        max_dets=max_dets,
        bootstrap=bootstrap,
        bootstrap_seed=bootstrap_seed,
        workers=workers or default_workers(),
        meta=meta,
        progress=progress,
    )
    if not to_stdout:
        result.write(out, claims=claims)  # refused if anything at --out changed meanwhile
    title = (
        f"{meta['method']} on {meta.get('dataset')} {meta.get('split')} ({pset.format}, {result.matcher}, "
        f"conf {result.conf:g})"
    )
    click.echo(format_table(result, title), err=to_stdout)
    click.echo(
        f"images {result.counts['images']}, gt targets {result.counts['gt_targets']}, "
        f"predicted targets {result.counts['pred_targets']}",
        err=to_stdout,
    )
    for line in _warnings(result.counts):
        click.echo(line, err=True)
    if to_stdout:
        click.echo(results_json_text(result), nl=False)
    else:
        click.echo(f"wrote {out}")


#: ``--out`` value that sends the results JSON to standard output.
STDOUT = "-"


def results_json_text(result: EvaluationResult) -> str:
    """The results JSON of ``result`` as ``write`` stores it, without CSV file names."""
    from irstd_bench.evaluate._results_io import json_text

    return json_text(result.to_dict())


def coco_image_ids(gt_coco: Path | None, ds) -> dict[int, str]:
    """``{image_id: stem}`` for COCO results that name images by ``image_id`` only.

    The ``images`` table of ``--gt-coco`` when given, else the dataset's stable ids (rank of
    the stem among the sorted image files; what ``convert`` and ``predict`` write).
    """
    if gt_coco is not None:
        return coco_image_names(gt_coco)
    from irstd_bench.datasets import dataset_image_ids

    return {image_id: stem for stem, image_id in dataset_image_ids(ds).items()}


def _parse_value(text: str):
    """``KEY=VALUE`` values: numbers and booleans as such, anything else as a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _method_config(items: tuple[str, ...], config_from: Path | None) -> dict:
    """The ``config`` of the results: a checkpoint's model settings, then ``--config`` pairs on top."""
    config: dict = {}
    if config_from is not None:
        from reference_model.engine.checkpoint import load_checkpoint, resolve_weights

        checkpoint = load_checkpoint(resolve_weights(str(config_from), option="--config-from"))
        config["model"] = checkpoint["model_name"]
        for key, value in dict(checkpoint["model_config"]).items():
            config[key] = list(value) if isinstance(value, tuple) else value
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--config {item!r}: expected KEY=VALUE")
        config[key.strip()] = _parse_value(value)
    return config
