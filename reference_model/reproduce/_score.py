"""Predictions and scores of one run: what ``predict`` wrote, stored small, and both protocols.

Two figures per method on the test split, both from ``irstd-bench eval`` results:

- **val threshold** (ours): F1 at IoU 0.5 (the run's matcher) at the score threshold of the best
  F1 on *val*; nothing is chosen on test.
- **paper protocol**: the best F1 over thresholds on *test* itself, what the EFLNet authors'
  YOLOv7 ``test.py`` reports; the evaluator's ``best_f1``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from irstd_bench._io import read_array

#: Largest 8-bit value; score maps are stored as ``round(score x 255)``.
UINT8_MAX = 255
#: ``predict`` writes one COCO results file with this name into an output folder.
COCO_FILE = "predictions.json"
#: Threshold used on test when val gave none (no val prediction above any threshold).
FALLBACK_THRESHOLD = 0.5


def store_predictions(source: Path, target: Path) -> int:
    """Copy what ``predict`` wrote in ``source`` into ``target`` in the form that is scored and packed.

    ``predictions.json`` (boxes) is copied; ``<stem>.npy`` float score maps become 8-bit PNGs
    (``round(score x 255)``). The evaluator reads an 8-bit PNG as ``value / 255`` unless its only
    non-zero value is 1 (then it is a 0/1 mask); such a map, whose every score is below 1.5 / 255,
    is written as all zeros, which is what the quantization does to every score below 0.5 / 255
    anyway. ``source`` (``predict``'s own folder) is left as it is; ``target`` must be new.

    Returns
    -------
    int
        Files written.
    """
    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=False)
    if (source / COCO_FILE).is_file():
        (target / COCO_FILE).write_bytes((source / COCO_FILE).read_bytes())
        return 1
    count = 0
    for npy in sorted(source.glob("*.npy")):
        scores = read_array(npy).astype(np.float32)
        q = np.round(np.clip(scores, 0.0, 1.0) * UINT8_MAX).astype(np.uint8)
        if q.max() == 1:
            q[:] = 0
        buffer = BytesIO()
        Image.fromarray(q).save(buffer, format="PNG")
        (target / f"{npy.stem}.png").write_bytes(buffer.getvalue())
        count += 1
    return count


def prediction_input(folder: Path) -> tuple[Path, list[str]] | None:
    """The ``eval`` input of a ``predict`` output folder and its format options (``None``: empty)."""
    folder = Path(folder)
    if (folder / COCO_FILE).is_file():
        return folder / COCO_FILE, []
    if any(folder.glob("*.png")):
        return folder, ["--format", "scoremaps"]
    return None


@dataclass(frozen=True)
class Scores:
    """The figures of one run: val threshold, the test metrics at it, and the paper protocol."""

    threshold: float
    threshold_from_val: bool
    val_best_f1: float | None
    f1: float | None
    precision: float | None
    recall: float | None
    best_f1: float | None
    best_f1_threshold: float | None
    ap50: float | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def read_metrics(results_json: Path) -> dict:
    """``metrics`` of an ``irstd-bench eval`` results file."""
    return dict(json.loads(Path(results_json).read_text())["metrics"])


def val_threshold(val_metrics: dict) -> tuple[float, bool]:
    """Threshold of the best val F1, and whether val gave one (else :data:`FALLBACK_THRESHOLD`)."""
    value = val_metrics.get("best_f1_threshold")
    if value is None:
        return FALLBACK_THRESHOLD, False
    return float(value), True


def scores(val_metrics: dict, test_metrics: dict) -> Scores:
    threshold, from_val = val_threshold(val_metrics)
    return Scores(
        threshold=threshold,
        threshold_from_val=from_val,
        val_best_f1=val_metrics.get("best_f1"),
        f1=test_metrics.get("f1"),
        precision=test_metrics.get("precision"),
        recall=test_metrics.get("recall"),
        best_f1=test_metrics.get("best_f1"),
        best_f1_threshold=test_metrics.get("best_f1_threshold"),
        ap50=test_metrics.get("ap50"),
    )


def matcher_tag(matcher: str) -> str:
    """``iou:0.5`` -> ``iou50``, ``centroid:3`` -> ``centroid3`` (folder names)."""
    kind, _, value = matcher.partition(":")
    value = value.split(":")[0]
    if kind in ("iou", "nwd") and value.startswith("0."):
        value = value[2:].ljust(2, "0")
    return f"{kind}{value}".replace(".", "").replace("-", "")
