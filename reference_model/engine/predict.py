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

from irstd_bench._io import IMAGE_SUFFIXES, atomic_directory, write_text_atomic
from irstd_bench._progress import progress_bar
from irstd_bench.convert._coco import CATEGORY
from irstd_bench.datasets import Sample, folder_image_ids
from irstd_bench.errors import InputError
from irstd_bench.evaluate import Prediction

from .checkpoint import load_checkpoint, model_from_checkpoint, resolve_weights
from .data import IRDataset, collate
from .fuse import fuse_batchnorm
from .transforms import Letterbox

#: Prediction formats per model task.
DETECT_FORMATS = ("coco", "yolo", "csv")
SEGMENT_FORMATS = ("scoremaps", "masks")
#: File written inside ``--out`` when it is a folder and the format is a single file.
SINGLE_FILE_NAMES = {"coco": "predictions.json", "csv": "predictions.csv"}
#: Suffix of the per-image files of folder formats.
FOLDER_SUFFIXES = {"yolo": ".txt", "scoremaps": ".npy", "masks": ".png"}
#: Default score threshold of ``masks`` output.
DEFAULT_MASK_THRESHOLD = 0.5
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
    max_det: int = 100,
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
) -> list[ImagePrediction]:
    """Predictions for every sample (its mask, if any, is not read), in sample order.

    ``progress`` shows a bar on stderr (:func:`irstd_bench._progress.progress_bar`).
    """
    # Masks are not needed (nor read): a release defect in a mask cannot stop inference.
    images_only = [Sample(stem=s.stem, image_path=s.image_path, mask_path=None) for s in samples]
    dataset = IRDataset(images_only, input_size, augment=None, cache=False)
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers, collate_fn=collate)
    paths = {s.stem: s.image_path for s in samples}
    out: list[ImagePrediction] = []
    with progress_bar(len(samples), "predict", enabled=progress) as bar:
        for images, _, meta in loader:
            preds = predict_batch(model, images.to(device), meta, conf=conf, amp_dtype=amp_dtype)
            out.extend(ImagePrediction(p, paths[p.stem]) for p in preds)
            bar.update(len(preds))
    return out


def image_samples(source: Path) -> list[Sample]:
    """Every image file of a folder (sorted), as samples without masks."""
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"--source {source}: folder not found")
    samples: dict[str, Sample] = {}
    for path in sorted(source.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            if path.stem in samples:
                raise InputError(
                    f"--source {source}: two images with stem {path.stem!r} "
                    f"({samples[path.stem].image_path.name}, {path.name})"
                )
            samples[path.stem] = Sample(stem=path.stem, image_path=path, mask_path=None)
    if not samples:
        raise InputError(f"--source {source}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return list(samples.values())


def load_for_inference(weights: str | Path, device: torch.device) -> tuple[nn.Module, dict, Path]:
    """Resolve ``--weights``, rebuild its model (EMA weights when saved) on ``device`` in eval mode,
    with BatchNorm folded into the convolutions (:func:`~.fuse.fuse_batchnorm`)."""
    path = resolve_weights(weights)
    checkpoint = load_checkpoint(path)
    model = fuse_batchnorm(model_from_checkpoint(checkpoint, path)).to(device)
    return model, checkpoint, path


# --------------------------------------------------------------------------------------------
# Writers


def output_path(out: Path, fmt: str) -> Path:
    """Where ``fmt`` is written for ``--out``: a ``.json``/``.csv`` file as given, else inside the folder."""
    out = Path(out)
    if fmt in SINGLE_FILE_NAMES:
        wanted = Path(SINGLE_FILE_NAMES[fmt]).suffix
        if out.suffix.lower() == wanted:
            return out
        if out.suffix.lower() in (".json", ".csv"):
            raise InputError(f"--out {out}: a {out.suffix} file cannot hold --format {fmt} (use {wanted})")
        return out / SINGLE_FILE_NAMES[fmt]
    return out


def _check_folder(out: Path, fmt: str) -> None:
    if out.is_file():
        raise InputError(f"--out {out}: is a file; --format {fmt} writes a folder")
    if out.is_dir():
        foreign = [p.name for p in out.iterdir() if p.suffix.lower() != FOLDER_SUFFIXES[fmt]]
        if foreign:
            raise InputError(
                f"--out {out}: folder holds other files ({foreign[0]}); give an empty or new folder"
            )


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
    ids: dict[Path, dict[str, int]] = {}
    rows = []
    for item in items:
        folder = item.image_path.parent
        if folder not in ids:
            ids[folder] = folder_image_ids(folder)
        image_id = ids[folder][item.image_path.stem]
        p = item.prediction
        for box, score in zip(p.boxes, p.scores, strict=True):
            x0, y0, x1, y1 = (float(v) for v in box)
            rows.append(
                {
                    "image_id": image_id,
                    "category_id": COCO_CATEGORY_ID,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                    "file_name": item.image_path.name,
                }
            )
    return rows


def write_predictions(
    items: Sequence[ImagePrediction], out: Path, fmt: str, *, mask_threshold: float = DEFAULT_MASK_THRESHOLD
) -> Path:
    """Write predictions in ``fmt`` (see module docstring) and return the path to pass to ``eval``.

    Files are written atomically; a folder output replaces an earlier output of the same format.
    """
    out = output_path(out, fmt)
    if fmt == "coco":
        write_text_atomic(out, json.dumps(coco_results(items), indent=0) + "\n")
        return out
    if fmt == "csv":
        lines = ["image,x0,y0,x1,y1,score"]
        for item in items:
            p = item.prediction
            for box, score in zip(p.boxes, p.scores, strict=True):
                lines.append(",".join([p.stem, *(_fmt(float(v)) for v in box), _fmt(float(score))]))
        write_text_atomic(out, "\n".join(lines) + "\n")
        return out
    if fmt not in FOLDER_SUFFIXES:
        raise InputError(
            f"--format {fmt!r}: expected one of {', '.join((*DETECT_FORMATS, *SEGMENT_FORMATS))}"
        )
    _check_folder(out, fmt)
    with atomic_directory(out) as tmp:
        tmp.chmod(0o755)
        for item in items:
            p = item.prediction
            target = tmp / f"{p.stem}{FOLDER_SUFFIXES[fmt]}"
            if fmt == "yolo":
                h, w = p.image_size
                lines = []
                for (x0, y0, x1, y1), score in zip(p.boxes, p.scores, strict=True):
                    cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
                    lines.append(" ".join([str(YOLO_CLASS), *(_fmt(v) for v in (cx, cy, bw, bh, score))]))
                target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            elif fmt == "scoremaps":
                np.save(target, np.asarray(p.score_map, np.float32))
            else:
                mask = np.asarray(p.score_map, np.float32) >= mask_threshold
                buffer = io.BytesIO()
                Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
                target.write_bytes(buffer.getvalue())
    return out


def check_format(task: str, fmt: str) -> None:
    """Raise :class:`InputError` when ``fmt`` does not suit a ``detect``/``segment`` model."""
    allowed = DETECT_FORMATS if task == "detect" else SEGMENT_FORMATS
    if fmt not in allowed:
        raise InputError(
            f"--format {fmt}: a {'detector' if task == 'detect' else 'segmenter'} writes {', '.join(allowed)}"
        )
