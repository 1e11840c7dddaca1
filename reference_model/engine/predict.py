"""Inference: letterboxed batches in, predictions in native pixels out, and the prediction writers.

:func:`predict_batch` is the one path from network outputs to
:class:`irstd_bench.evaluate.Prediction` objects; training validation and ``irstd-bench predict``
both use it, and ``predict`` writes what it returns in the formats ``irstd-bench eval`` reads
(``docs/CONTRACTS.md``, section Prediction files):

- detectors: ``coco`` (results JSON ``{image_id, category_id, bbox [x, y, w, h], score,
  file_name}``, ids as convert's COCO ground truth), ``yolo`` (``<stem>.txt``, lines
  ``0 cx cy w h conf`` normalised by the native size), ``csv`` (``image,x0,y0,x1,y1,score``);
- segmenters: ``scoremaps`` (``<stem>.npy`` float32 ``(H, W)`` in [0, 1]) or ``masks``
  (``<stem>.png`` 8-bit {0, 255}, foreground where the score is ``>= mask_threshold``).

Boxes are mapped from the input frame back to native pixels and clipped to the image; score
maps are cropped out of the letterbox and resized (bilinear) to the native size.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import DataLoader

from irstd_bench._csv import csv_cell
from irstd_bench._io import IMAGE_SUFFIXES, listed_name
from irstd_bench._outputs import (
    MANIFEST_SCHEMA,
    Claim,
    check_file_replaceable,
    check_folder_replaceable,
    json_schema_owner,
    output_folder,
    refuse_inside_inputs,
    sidecar_owner,
    sidecar_path,
    sidecar_text,
    write_file_set,
)
from irstd_bench._progress import progress_bar
from irstd_bench.boxes import box_convert, to_yolo
from irstd_bench.convert._coco import CATEGORY
from irstd_bench.datasets import Sample, folder_image_ids, stable_image_ids
from irstd_bench.errors import InputError
from irstd_bench.evaluate import Prediction

from .checkpoint import load_checkpoint, model_from_checkpoint, resolve_weights
from .config import DEFAULT_MAX_DET
from .data import IRDataset, collate
from .fuse import fuse_batchnorm
from .transforms import PAD_VALUE, Letterbox

#: Prediction formats per model task.
DETECT_FORMATS = ("coco", "yolo", "csv")
SEGMENT_FORMATS = ("scoremaps", "masks")
#: File written inside ``--out`` when it is a folder and the format is a single file.
SINGLE_FILE_NAMES = {"coco": "predictions.json", "csv": "predictions.csv"}
#: Suffix of the per-image files of folder formats.
FOLDER_SUFFIXES = {"yolo": ".txt", "scoremaps": ".npy", "masks": ".png"}
#: Default score threshold of ``masks`` output.
DEFAULT_MASK_THRESHOLD = 0.5
#: Header of ``csv`` predictions.
CSV_HEADER = "image,x0,y0,x1,y1,score"
#: Class index written in YOLO files (one class: target).
YOLO_CLASS = 0
#: Category id of COCO results (convert's one category, ``target``).
COCO_CATEGORY_ID = CATEGORY["id"]


@dataclass
class ImagePrediction:
    """One image's prediction in native pixels, with the image file it came from."""

    prediction: Prediction
    image_path: Path


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for CUDA with ``dtype``; a no-op context on the CPU or when ``dtype`` is None."""
    if dtype is None or device.type != "cuda":
        return nullcontext()
    return torch.autocast("cuda", dtype=dtype)


@torch.no_grad()
def predict_batch(
    model: nn.Module,
    images: torch.Tensor,
    meta: Sequence[dict],
    *,
    conf: float = 0.001,
    iou_threshold: float = 0.5,
    max_det: int = DEFAULT_MAX_DET,
    amp_dtype: torch.dtype | None = None,
) -> list[Prediction]:
    """Run ``model`` (in eval mode) on a batch and return native-pixel predictions.

    Parameters
    ----------
    images : Tensor (B, 3, S, S)
        Letterboxed inputs in [0, 1], already on the model's device.
    meta : sequence of dict
        Per image ``{"stem": str, "letterbox": Letterbox}`` (from :func:`~.data.collate`).
    conf : float
        Detector score threshold passed to ``postprocess`` (segmenters ignore it).

    Returns
    -------
    list of Prediction
        Detectors: ``from_boxes`` in native px with the native ``image_size``; segmenters:
        ``from_score_map`` with a native ``(H, W)`` float32 map.
    """
    device = images.device
    with autocast_context(device, amp_dtype):
        outputs = model(images)
    results = model.postprocess(outputs, conf_threshold=conf, iou_threshold=iou_threshold, max_det=max_det)
    predictions = []
    for result, info in zip(results, meta, strict=True):
        letterbox: Letterbox = info["letterbox"]
        if model.task == "detect":
            boxes = letterbox.boxes_to_native(result["boxes"].detach().float().cpu().numpy())
            scores = result["scores"].detach().float().clamp(0.0, 1.0).cpu().numpy()
            predictions.append(Prediction.from_boxes(info["stem"], boxes, scores, letterbox.native_size))
        else:
            score_map = letterbox.score_map_to_native(result["score_map"].detach().float().cpu().numpy())
            predictions.append(Prediction.from_score_map(info["stem"], score_map))
    return predictions


def predict_samples(
    model: nn.Module,
    samples: Sequence[Sample],
    input_size: int,
    device: torch.device,
    *,
    conf: float = 0.001,
    batch: int = 8,
    workers: int = 0,
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
    pad_value: float = PAD_VALUE,
    max_det: int = DEFAULT_MAX_DET,
) -> list[ImagePrediction]:
    """Predictions for every sample (its mask, if any, is not read), in sample order.

    ``pad_value``: the letterbox padding the model was trained with; ``max_det``: detections kept
    per image (both :func:`inference_settings` of a checkpoint). ``progress`` shows a bar on
    stderr (:func:`irstd_bench._progress.progress_bar`).
    """
    # Masks are not needed (nor read): a release defect in a mask cannot stop inference.
    images_only = [Sample(stem=s.stem, image_path=s.image_path, mask_path=None) for s in samples]
    dataset = IRDataset(images_only, input_size, cache=False, pad_value=pad_value)
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers, collate_fn=collate)
    paths = {s.stem: s.image_path for s in samples}
    out: list[ImagePrediction] = []
    with progress_bar(len(samples), "predict", enabled=progress) as bar:
        for images, _, meta in loader:
            preds = predict_batch(model, images.to(device), meta, conf=conf, max_det=max_det, amp_dtype=amp_dtype)
            out.extend(ImagePrediction(p, paths[p.stem]) for p in preds)
            bar.update(len(preds))
    return out


def inference_settings(checkpoint: dict, source: Path) -> tuple[float, int]:
    """``(pad_value, max_det)`` a checkpoint's run was trained and validated with.

    Read from its ``train_args`` (numbers only); a checkpoint without them (released weights,
    runs of earlier versions) gets the engine's defaults. Raises :class:`InputError` naming
    ``source`` for a value that is not a number in range.
    """
    args = checkpoint.get("train_args") or {}
    if not isinstance(args, dict):
        raise InputError(f"{source}: checkpoint's train_args is not a mapping")
    pad_value, max_det = args.get("pad_value", PAD_VALUE), args.get("max_det", DEFAULT_MAX_DET)
    if isinstance(pad_value, bool) or not isinstance(pad_value, int | float) or not 0.0 <= pad_value <= 1.0:
        raise InputError(f"{source}: checkpoint's pad_value {pad_value!r} is not a number in [0, 1]")
    if isinstance(max_det, bool) or not isinstance(max_det, int) or max_det < 1:
        raise InputError(f"{source}: checkpoint's max_det {max_det!r} is not a positive integer")
    return float(pad_value), int(max_det)


def image_samples(source: Path) -> list[Sample]:
    """Every image file of a folder (sorted), as samples without masks."""
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"--source {source}: folder not found")
    samples: dict[str, Sample] = {}
    for path in sorted(source.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            listed_name(path)
            if path.stem in samples:
                raise InputError(
                    f"--source {source}: two images with stem {path.stem!r} "
                    f"({samples[path.stem].image_path.name}, {path.name})"
                )
            samples[path.stem] = Sample(stem=path.stem, image_path=path, mask_path=None)
    if not samples:
        raise InputError(f"--source {source}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return list(samples.values())


def load_for_inference(
    weights: str | Path, device: torch.device, cli_model: str | None = None
) -> tuple[nn.Module, dict, Path]:
    """Resolve ``--weights``, rebuild its model (EMA weights when saved) on ``device`` in eval mode,
    with BatchNorm folded into the convolutions (:func:`~.fuse.fuse_batchnorm`).

    ``cli_model``: the ``--model`` the user typed; a checkpoint of a custom builder
    (``module:function``) is rebuilt only when it names the same builder.
    """
    path = resolve_weights(weights)
    checkpoint = load_checkpoint(path)
    model = fuse_batchnorm(model_from_checkpoint(checkpoint, path, cli_model=cli_model)).to(device)
    return model, checkpoint, path


# --------------------------------------------------------------------------------------------
# Writers


def output_path(out: Path, fmt: str) -> Path:
    """Where ``fmt`` is written for ``--out``: a ``.json``/``.csv`` file as given, else inside the folder.

    A folder format (yolo, scoremaps, masks) given an ``--out`` ending in ``.json``/``.csv`` is
    refused: it would make a folder with a file's name.
    """
    out = Path(out)
    if fmt in SINGLE_FILE_NAMES:
        wanted = Path(SINGLE_FILE_NAMES[fmt]).suffix
        if out.suffix.lower() == wanted:
            return out
        if out.suffix.lower() in (".json", ".csv"):
            raise InputError(f"--out {out}: a {out.suffix} file cannot hold --format {fmt} (use {wanted})")
        return out / SINGLE_FILE_NAMES[fmt]
    if out.suffix.lower() in (".json", ".csv"):
        raise InputError(f"--out {out}: --format {fmt} writes a folder of {FOLDER_SUFFIXES[fmt]} files, not a file")
    return out


def _is_single_file(out: Path, fmt: str) -> bool:
    return fmt in SINGLE_FILE_NAMES and output_path(out, fmt) == Path(out)


def check_predictions_out(out: Path, fmt: str, *, force: bool = False, inputs=()) -> dict[Path, Claim] | Claim:
    """Refuse an ``--out`` that is an input, holds one, or would replace what irstd-bench did not write.

    A single ``.json``/``.csv`` file is ours only when its sidecar manifest
    (:func:`irstd_bench._outputs.sidecar_owner`) names it with its current SHA-256: another
    detector's results, or a file predict wrote before sidecars existed, are never replaced.
    Returns the claims to write with: ``{file: claim, sidecar: claim}``, or the folder's claim.
    """
    out = Path(out)
    output_path(out, fmt)  # refuses a folder format given a file name
    single = _is_single_file(out, fmt)
    refuse_inside_inputs(out, inputs, folder=not single)
    if not single:
        return check_folder_replaceable(out, force=force)
    claim = check_file_replaceable(out, force=force, owned=sidecar_owner)
    # A sidecar whose file is gone (deleted by hand) is stale: replaced without --force.
    side = check_file_replaceable(sidecar_path(out), force=force or claim.identity is None,
                                  owned=json_schema_owner(MANIFEST_SCHEMA))
    return {out: claim, sidecar_path(out): side}


def _fmt(value: float) -> str:
    # Shortest text that reads back as the same float: files score exactly like the in-memory run.
    return repr(float(value))


def coco_results(items: Sequence[ImagePrediction]) -> list[dict]:
    """COCO detection results: ``[{image_id, category_id, bbox [x, y, w, h], score, file_name}]``.

    ``image_id`` is the image's stable id in its folder
    (:func:`irstd_bench.datasets.folder_image_ids`: rank of the stem among the folder's images,
    sorted), the id ``irstd-bench convert`` gives the same image, so ``COCO.loadRes`` pairs
    these results with convert's ground truth. ``file_name`` is kept as an extra key.
    """
    by_folder: dict[Path, set[str]] = {}
    for item in items:
        by_folder.setdefault(item.image_path.parent, set()).add(item.image_path.stem)
    ids: dict[Path, dict[str, int]] = {}
    for folder, stems in by_folder.items():
        # The folder's images (the rule); stems without a file there (in-memory items) join the ranking.
        listed = set(folder_image_ids(folder)) if folder.is_dir() else set()
        ids[folder] = stable_image_ids(listed | stems)
    rows = []
    for item in items:
        image_id = ids[item.image_path.parent][item.image_path.stem]
        p = item.prediction
        bboxes = box_convert(np.asarray(p.boxes, np.float64), "xyxy", "xywh").tolist()
        for bbox, score in zip(bboxes, p.scores, strict=True):
            rows.append(
                {
                    "image_id": image_id,
                    "category_id": COCO_CATEGORY_ID,
                    "bbox": bbox,
                    "score": float(score),
                    "file_name": item.image_path.name,
                }
            )
    return rows


def _coco_text(items: Sequence[ImagePrediction]) -> str:
    return json.dumps(coco_results(items), indent=0) + "\n"


def _csv_text(items: Sequence[ImagePrediction]) -> str:
    lines = [CSV_HEADER]
    for item in items:
        p = item.prediction
        for box, score in zip(p.boxes, p.scores, strict=True):
            lines.append(",".join([csv_cell(p.stem), *(_fmt(float(v)) for v in box), _fmt(float(score))]))
    return "\n".join(lines) + "\n"


def _write_folder_items(folder: Path, items: Sequence[ImagePrediction], fmt: str, mask_threshold: float) -> None:
    for item in items:
        p = item.prediction
        target = folder / f"{p.stem}{FOLDER_SUFFIXES[fmt]}"
        if fmt == "yolo":
            lines = []
            for (cx, cy, bw, bh), score in zip(to_yolo(p.boxes, p.image_size), p.scores, strict=True):
                lines.append(" ".join([str(YOLO_CLASS), *(_fmt(v) for v in (cx, cy, bw, bh, score))]))
            target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        elif fmt == "scoremaps":
            np.save(target, np.asarray(p.score_map, np.float32))
        else:
            mask = np.asarray(p.score_map, np.float32) >= mask_threshold
            buffer = io.BytesIO()
            Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
            target.write_bytes(buffer.getvalue())


def write_predictions(
    items: Sequence[ImagePrediction],
    out: Path,
    fmt: str,
    *,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    force: bool = False,
    inputs=(),
    claims=None,
) -> Path:
    """Write predictions in ``fmt`` (see module docstring) and return the path to pass to ``eval``.

    ``out`` ending in ``.json``/``.csv`` is one file with a sidecar manifest (replaced only with
    ``force`` and only when its sidecar proves it is a ``predict`` output); any other ``out`` is
    a folder irstd-bench creates with its manifest (:func:`irstd_bench._outputs.output_folder`): ``predictions.json`` /
    ``predictions.csv`` inside it, or one file per image. ``inputs`` (``(label, path)``) are
    never overwritten nor held by ``out``. ``claims``: what :func:`check_predictions_out`
    returned before the inference, so that whatever changed at ``out`` since is refused.
    """
    if fmt not in (*DETECT_FORMATS, *SEGMENT_FORMATS):
        raise InputError(
            f"--format {fmt!r}: expected one of {', '.join((*DETECT_FORMATS, *SEGMENT_FORMATS))}"
        )
    out = Path(out)
    if claims is None:
        claims = check_predictions_out(out, fmt, force=force, inputs=inputs)
    if fmt in SINGLE_FILE_NAMES:
        text = _coco_text(items) if fmt == "coco" else _csv_text(items)
        if _is_single_file(out, fmt):
            # The file first, its sidecar manifest (its proof of ownership) last.
            write_file_set({out: text, sidecar_path(out): sidecar_text(out, text, f"predict --format {fmt}")}, claims)
            return out
        with output_folder(out, f"predict --format {fmt}", force=force, inputs=inputs, claim=claims) as tmp:
            (tmp / SINGLE_FILE_NAMES[fmt]).write_text(text, encoding="utf-8", newline="\n")
        return out / SINGLE_FILE_NAMES[fmt]
    with output_folder(out, f"predict --format {fmt}", force=force, inputs=inputs, claim=claims) as tmp:
        _write_folder_items(tmp, items, fmt, mask_threshold)
    return out


def check_format(task: str, fmt: str) -> None:
    """Raise :class:`InputError` when ``fmt`` does not suit a ``detect``/``segment`` model."""
    allowed = DETECT_FORMATS if task == "detect" else SEGMENT_FORMATS
    if fmt not in allowed:
        raise InputError(
            f"--format {fmt}: a {'detector' if task == 'detect' else 'segmenter'} writes {', '.join(allowed)}"
        )
