"""The evaluator: score each image, then add the images up into the split's metrics.

:func:`score_image` turns one ground truth and one prediction into a compact
:class:`ImageRecord` (no pixel arrays are kept); :func:`summarise` computes every metric from
the records. :func:`evaluate` does both for in-memory data (training validation);
:func:`evaluate_split` streams files through worker processes (the ``eval`` command).
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from irstd_bench import __version__
from irstd_bench._io import write_text_atomic
from irstd_bench._progress import progress_bar
from irstd_bench.errors import InputError
from irstd_bench.evaluate._curves import (
    DEFAULT_CURVE_LEVELS,
    box_threshold_counts,
    merge_box_counts,
    score_map_level_counts,
    thin_indices,
)
from irstd_bench.evaluate._matching import (
    UNMATCHED,
    Matcher,
    TargetMatch,
    box_iou_matrix,
    greedy_by_score,
    legacy_pairs,
    optimal_pairs,
    parse_matcher,
)
from irstd_bench.evaluate._metrics import coco_average_precision, prf, ratio, size_bins
from irstd_bench.evaluate._pixel_metrics import LEGACY_PD, PixelStats, pixel_stats
from irstd_bench.evaluate._predictions import Prediction, PredictionSet, clip_boxes, load_task, resize_nearest
from irstd_bench.targets import (
    DEFAULT_CONNECTIVITY,
    DEFAULT_THRESHOLD,
    Targets,
    boxes_to_targets,
    component_max,
    mask_to_targets,
)

#: Score-map level of the pixel metrics (IoU, nIoU, Pd, Fa): pixels with score >= 0.5, the
#: field's convention (a sigmoid output > 0.5), whatever ``conf`` and the matcher are.
PIXEL_THRESHOLD = 0.5
#: IoU threshold of ``ap50`` (COCO AP at IoU 0.5, whatever the run's matcher).
AP50_IOU = 0.5

#: Fa is reported per million pixels (``fa_e6``).
PER_MILLION = 1e6

KINDS = ("boxes", "masks", "scoremaps")

SCHEMA = "irstd-bench/results"
SCHEMA_VERSION = 1

PER_IMAGE_COLUMNS = ("image", "gt", "pred", "tp", "fp", "fn", "iou")
PER_TARGET_COLUMNS = ("image", "kind", "x0", "y0", "x1", "y1", "cx", "cy", "area_px", "score", "matched_with")


@dataclass
class ImageRecord:
    """What the split metrics need from one image (small arrays, no pixels).

    ``pred_*`` are the predictions kept at ``conf``; ``ap_*`` the AP candidates (every box,
    or the components at ``conf`` of a map) in decreasing score; ``curve`` the per-threshold
    counts (see :mod:`irstd_bench.evaluate._curves`).
    """

    stem: str
    image_size: tuple[int, int]
    has_prediction: bool
    gt_boxes: np.ndarray
    gt_area: np.ndarray
    gt_centroids: np.ndarray
    pred_boxes: np.ndarray
    pred_scores: np.ndarray
    pred_area: np.ndarray
    pred_centroids: np.ndarray
    pred_to_gt: np.ndarray
    ap_scores: np.ndarray
    ap_hits: np.ndarray
    ap50_hits: np.ndarray
    pixels: PixelStats | None = None
    curve: tuple | dict | None = None
    boxes_clipped: int = 0
    prediction_resized: bool = False
    gt_resized: bool = False
    gt_nonbinary: bool = False

    @property
    def tp(self) -> int:
        return int(np.count_nonzero(self.pred_to_gt != UNMATCHED))

    def __reduce__(self):
        # Records travel from worker processes by the thousand: each array goes as
        # (dtype, shape, bytes), about twice cheaper to pickle and unpickle than an ndarray.
        values, arrays = {}, {}
        for name in _RECORD_FIELDS:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                arrays[name] = (value.dtype.str, value.shape, value.tobytes())
            else:
                values[name] = value
        return _unpack_record, (values, arrays)


_RECORD_FIELDS = tuple(f.name for f in fields(ImageRecord))


def _unpack_record(values: dict, arrays: dict) -> ImageRecord:
    for name, (dtype, shape, data) in arrays.items():
        values[name] = np.frombuffer(data, dtype).reshape(shape).copy()
    return ImageRecord(**values)


def _kind_family(kind: str) -> str:
    return "boxes" if kind == "boxes" else "maps"


def _assign(matcher: Matcher, sim: np.ndarray, valid: np.ndarray) -> TargetMatch:
    rows, cols = legacy_pairs(valid) if matcher.kind == "legacy-pd" else optimal_pairs(sim, valid)
    return TargetMatch.from_pairs(rows, cols, sim)


def score_image(
    gt: Targets,
    prediction: Prediction | None,
    *,
    stem: str,
    matcher: Matcher,
    conf: float,
    kind: str,
    levels: np.ndarray,
    connectivity: int = DEFAULT_CONNECTIVITY,
    resize: bool = False,
) -> ImageRecord:
    """Score one image.

    Which pixels form a target: ground truth as given (``mask_to_targets`` of its mask);
    a map prediction's pixels with score ``>= conf`` (a mask's foreground pixels), split into
    components with ``connectivity``, each scored by its highest pixel score. A box prediction
    is kept when its score is ``>= conf``. A kept prediction is a hit when ``matcher`` pairs it
    with a ground-truth target (see :func:`~irstd_bench.evaluate.match_targets`). The pixel
    metrics (IoU, nIoU, Pd, Fa) of a score map use its pixels ``>= PIXEL_THRESHOLD`` (0.5),
    whatever ``conf``: they do not depend on the matcher a threshold was chosen for.
    """
    h, w = gt.image_size
    has_prediction = prediction is not None
    if prediction is None:
        prediction = Prediction.empty(stem, kind, (h, w))
    if _kind_family(prediction.kind) != _kind_family(kind):
        raise InputError(f"{prediction.where}: {prediction.kind} prediction in a {kind} evaluation")
    clipped, resized = 0, False
    pixels, curve = None, None
    if prediction.kind == "boxes":
        if prediction.image_size is not None and tuple(prediction.image_size) != (h, w):
            ph, pw = prediction.image_size
            raise InputError(
                f"{prediction.where}: boxes are for a {pw}x{ph} image but image {stem} is {w}x{h} "
                "(evaluation is at native resolution)"
            )
        prediction, clipped = clip_boxes(prediction, (h, w))
        all_pred = boxes_to_targets(prediction.boxes, (h, w))
        scores = prediction.scores
        keep = scores >= conf
        sim, valid = matcher.pair_matrix(all_pred.boxes, all_pred.centroids, gt.boxes, gt.centroids)
        match = _assign(matcher, sim[keep], valid[keep])
        pred_boxes, pred_scores = all_pred.boxes[keep], scores[keep]
        pred_area, pred_centroids = all_pred.area_px[keep], all_pred.centroids[keep]
        ap_scores, ap_sim, ap_valid = scores, sim, valid
        ap_boxes = all_pred.boxes
        curve = box_threshold_counts(scores, valid, matcher)
    else:
        score_map = prediction.score_map
        if score_map.shape != (h, w):
            if not resize:
                sh, sw = score_map.shape
                raise InputError(
                    f"{prediction.where}: prediction is {sw}x{sh} but image {stem} is {w}x{h} "
                    "(use --resize for nearest-neighbour resizing)"
                )
            score_map, resized = resize_nearest(score_map, (h, w)), True
        foreground = score_map if score_map.dtype == bool else score_map >= conf
        pred = mask_to_targets(foreground, connectivity=connectivity)
        pred_scores = np.ones(len(pred)) if score_map.dtype == bool else component_max(pred, score_map)
        sim, valid = matcher.pair_matrix(pred.boxes, pred.centroids, gt.boxes, gt.centroids)
        match = _assign(matcher, sim, valid)
        pred_boxes, pred_area, pred_centroids = pred.boxes, pred.area_px, pred.centroids
        ap_scores, ap_sim, ap_valid, ap_boxes = pred_scores, sim, valid, pred.boxes
        if gt.pixels is not None:
            # IoU, nIoU, Pd and Fa at one fixed level, not at ``conf``: ``conf`` is chosen per
            # matcher (on val), and the pixel metrics must not change with the box matcher.
            at_level = score_map.dtype == bool or conf == PIXEL_THRESHOLD
            pixel_pred = pred if at_level else mask_to_targets(score_map >= PIXEL_THRESHOLD, connectivity=connectivity)
            pixels = pixel_stats(gt, pixel_pred)
        if kind == "scoremaps":
            curve = score_map_level_counts(
                score_map.astype(np.float32) if score_map.dtype == bool else score_map,
                gt,
                levels,
                matcher,
                LEGACY_PD,
                connectivity,
            )
    ap_hits = greedy_by_score(ap_sim, ap_valid, ap_scores)
    iou50 = box_iou_matrix(ap_boxes, gt.boxes) if len(ap_boxes) and len(gt) else np.zeros((len(ap_boxes), len(gt)))
    ap50_hits = greedy_by_score(iou50, iou50 >= AP50_IOU, ap_scores)
    order = np.argsort(-np.asarray(ap_scores), kind="mergesort")
    return ImageRecord(
        stem=stem,
        image_size=(h, w),
        has_prediction=has_prediction,
        gt_boxes=np.asarray(gt.boxes),
        gt_area=np.asarray(gt.area_px),
        gt_centroids=np.asarray(gt.centroids),
        pred_boxes=np.asarray(pred_boxes),
        pred_scores=np.asarray(pred_scores, np.float64),
        pred_area=np.asarray(pred_area),
        pred_centroids=np.asarray(pred_centroids),
        pred_to_gt=match.pred_to_gt,
        ap_scores=np.asarray(ap_scores, np.float64)[order],
        ap_hits=ap_hits[order],
        ap50_hits=ap50_hits[order],
        pixels=pixels,
        curve=curve,
        boxes_clipped=clipped,
        prediction_resized=resized,
    )


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class EvaluationResult:
    """Metrics of a split, with everything the results JSON and the CSVs hold.

    Attributes
    ----------
    metrics : dict
        ``tp fp fn precision recall f1 best_f1 best_f1_threshold ap50 ap iou niou pd fa_e6``;
        ``None`` where undefined or not applicable (pixel metrics for boxes).
    counts : dict
    size_bins : list of dict
    curves : dict
        ``pr`` (and ``pd_fa`` for score maps), thresholds increasing.
    records : list of ImageRecord
    """

    metrics: dict
    counts: dict
    size_bins: list[dict]
    curves: dict
    records: list[ImageRecord] = field(repr=False)
    matcher: str = "iou:0.5"
    conf: float = 0.5
    kind: str = "boxes"
    pred_format: str = "memory"
    settings: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def to_dict(self, *, per_image_csv: str | None = None, per_target_csv: str | None = None) -> dict:
        """The results JSON (``docs/CONTRACTS.md``)."""
        meta = self.meta
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "method": meta.get("method", "unnamed"),
            "dataset": meta.get("dataset"),
            "dataset_title": meta.get("dataset_title"),
            "root": meta.get("root"),
            "split": meta.get("split"),
            "matcher": self.matcher,
            "conf": self.conf,
            "pred_format": self.pred_format,
            "kind": self.kind,
            "counts": dict(self.counts),
            "metrics": dict(self.metrics),
            "size_bins": [dict(b) for b in self.size_bins],
            "curves": self.curves,
            "per_image_csv": per_image_csv,
            "per_target_csv": per_target_csv,
            "settings": dict(self.settings),
            **({"config": meta["config"]} if "config" in meta else {}),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "irstd_bench_version": __version__,
        }

    def per_image_rows(self) -> list[dict]:
        rows = []
        for r in self.records:
            n_pred, n_gt, tp = len(r.pred_scores), len(r.gt_boxes), r.tp
            image_iou = r.pixels.iou if r.pixels is not None else None
            rows.append(
                {
                    "image": r.stem,
                    "gt": n_gt,
                    "pred": n_pred,
                    "tp": tp,
                    "fp": n_pred - tp,
                    "fn": n_gt - tp,
                    "iou": "" if image_iou is None else f"{image_iou:.6g}",
                }
            )
        return rows

    def per_target_rows(self) -> list[dict]:
        rows = []
        for r in self.records:
            matched_gt = set()
            for i in range(len(r.pred_scores)):
                g = int(r.pred_to_gt[i])
                if g != UNMATCHED:
                    matched_gt.add(g)
                rows.append(
                    _target_row(
                        r.stem,
                        "tp" if g != UNMATCHED else "fp",
                        r.pred_boxes[i],
                        r.pred_centroids[i],
                        r.pred_area[i],
                        r.pred_scores[i],
                        "" if g == UNMATCHED else g,
                    )
                )
            for g in range(len(r.gt_boxes)):
                if g not in matched_gt:
                    rows.append(_target_row(r.stem, "fn", r.gt_boxes[g], r.gt_centroids[g], r.gt_area[g], None, ""))
        return rows

    def write(self, out: str | Path) -> dict:
        """Write the results JSON to ``out`` and the CSVs next to it (``<stem>.per_image.csv``,
        ``<stem>.per_target.csv``); every file is written atomically, all texts are built first."""
        out = Path(out)
        base = out.name[: -len(out.suffix)] if out.suffix else out.name
        image_csv, target_csv = f"{base}.per_image.csv", f"{base}.per_target.csv"
        data = self.to_dict(per_image_csv=image_csv, per_target_csv=target_csv)
        texts = {
            out.parent / image_csv: _csv_text(PER_IMAGE_COLUMNS, self.per_image_rows()),
            out.parent / target_csv: _csv_text(PER_TARGET_COLUMNS, self.per_target_rows()),
            out: json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n",
        }
        for path, text in texts.items():
            write_text_atomic(path, text)
        return data


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def _target_row(stem, kind, box, centroid, area, score, matched_with) -> dict:
    return {
        "image": stem,
        "kind": kind,
        "x0": _fmt(box[0]),
        "y0": _fmt(box[1]),
        "x1": _fmt(box[2]),
        "y1": _fmt(box[3]),
        "cx": _fmt(centroid[0]),
        "cy": _fmt(centroid[1]),
        "area_px": _fmt(area),
        "score": "" if score is None else _fmt(score),
        "matched_with": matched_with,
    }


def _csv_text(columns, rows) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def _curve_values(values: np.ndarray) -> list:
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


def summarise(
    records: Sequence[ImageRecord],
    *,
    matcher: Matcher,
    conf: float,
    kind: str,
    levels: np.ndarray,
    predictions_not_in_split: int = 0,
) -> dict:
    """Split metrics, counts, size bins and curves from per-image records."""
    n_gt = int(sum(len(r.gt_boxes) for r in records))
    n_pred = int(sum(len(r.pred_scores) for r in records))
    tp = int(sum(r.tp for r in records))
    metrics: dict = {"tp": tp, "fp": n_pred - tp, "fn": n_gt - tp, **prf(tp, n_pred, n_gt)}

    pr_thr, pr_tp, pr_kept = _pr_counts(records, kind, conf, levels)
    f1_curve = np.array([ratio(2 * t, k + n_gt) or 0.0 for t, k in zip(pr_tp, pr_kept, strict=True)])
    if len(f1_curve) and (n_gt or pr_kept.any()):
        best = int(np.argmax(f1_curve))
        metrics["best_f1"], metrics["best_f1_threshold"] = float(f1_curve[best]), float(pr_thr[best])
    else:
        metrics["best_f1"], metrics["best_f1_threshold"] = metrics["f1"], conf

    ap_scores = np.concatenate([r.ap_scores for r in records]) if records else np.zeros(0)
    metrics["ap50"] = (
        coco_average_precision(ap_scores, np.concatenate([r.ap50_hits for r in records]), n_gt) if records else None
    )
    metrics["ap"] = (
        coco_average_precision(ap_scores, np.concatenate([r.ap_hits for r in records]), n_gt) if records else None
    )

    with_pixels = bool(records) and all(r.pixels is not None for r in records)
    if with_pixels:
        px = [r.pixels for r in records]
        inter, union = sum(p.intersection for p in px), sum(p.union for p in px)
        per_image = [p.iou for p in px if p.iou is not None]
        total = sum(p.total_px for p in px)
        metrics["iou"] = ratio(inter, union)
        metrics["niou"] = float(np.mean(per_image)) if per_image else None
        metrics["pd"] = ratio(sum(p.pd_matched for p in px), n_gt)
        metrics["fa_e6"] = PER_MILLION * sum(p.fa_px for p in px) / total if total else None
    else:
        metrics.update(iou=None, niou=None, pd=None, fa_e6=None)

    order = np.argsort(pr_thr, kind="mergesort")
    keep = order[thin_indices(len(order))]
    curves: dict = {
        "pr": {
            "thresholds": _curve_values(pr_thr[keep]),
            "precision": _curve_values(
                [ratio(t, k) if k else math.nan for t, k in zip(pr_tp[keep], pr_kept[keep], strict=True)]
            ),
            "recall": _curve_values([t / n_gt if n_gt else math.nan for t in pr_tp[keep]]),
        },
        "pd_fa": None,
    }
    if kind == "scoremaps" and with_pixels:
        pd_counts = np.sum([r.curve["pd_matched"] for r in records], axis=0)
        fa_counts = np.sum([r.curve["fa_px"] for r in records], axis=0)
        total = sum(r.pixels.total_px for r in records)
        curves["pd_fa"] = {
            "thresholds": _curve_values(levels),
            "pd": _curve_values(pd_counts / n_gt if n_gt else np.full(len(levels), math.nan)),
            "fa_e6": _curve_values(PER_MILLION * fa_counts / total),
        }

    gt_hit = np.zeros(n_gt, bool)
    if records:
        offsets = np.cumsum([0] + [len(r.gt_boxes) for r in records[:-1]])
        matched = np.concatenate([r.pred_to_gt + offset for r, offset in zip(records, offsets, strict=True)])
        pred_matched = np.concatenate([r.pred_to_gt != UNMATCHED for r in records])
        gt_hit[matched[pred_matched]] = True
    bins = size_bins(
        np.concatenate([r.gt_area for r in records]) if records else np.zeros(0),
        gt_hit,
        np.concatenate([r.pred_area for r in records]) if records else np.zeros(0),
        np.concatenate([r.pred_to_gt != UNMATCHED for r in records]) if records else np.zeros(0, bool),
    )
    counts = {
        "images": len(records),
        "gt_targets": n_gt,
        "pred_targets": n_pred,
        "images_without_prediction": sum(not r.has_prediction for r in records),
        "predictions_not_in_split": int(predictions_not_in_split),
        "boxes_clipped": int(sum(r.boxes_clipped for r in records)),
        "predictions_resized": sum(r.prediction_resized for r in records),
        "gt_masks_resized": sum(r.gt_resized for r in records),
        "gt_masks_nonbinary": sum(r.gt_nonbinary for r in records),
    }
    return {"metrics": metrics, "counts": counts, "size_bins": bins, "curves": curves}


def _pr_counts(records, kind, conf, levels):
    """``(thresholds, tp, kept)`` of the PR curve."""
    if kind == "boxes":
        return merge_box_counts([r.curve for r in records])
    if kind == "scoremaps":
        tp = np.sum([r.curve["tp"] for r in records], axis=0) if records else np.zeros(len(levels), np.int64)
        kept = np.sum([r.curve["kept"] for r in records], axis=0) if records else np.zeros(len(levels), np.int64)
        return np.asarray(levels, np.float64), tp, kept
    tp = sum(r.tp for r in records)
    kept = sum(len(r.pred_scores) for r in records)
    return np.array([conf], np.float64), np.array([tp]), np.array([kept])


# --------------------------------------------------------------------------------------------
# Entry points


def _check_conf(conf: float) -> float:
    conf = float(conf)
    if not (math.isfinite(conf) and 0.0 < conf <= 1.0):
        raise InputError(f"conf must be in (0, 1], got {conf!r}")
    return conf


def curve_levels(conf: float, levels: Sequence[float] | None = None) -> np.ndarray:
    """Increasing score-map levels of the curves: ``levels`` (default :data:`DEFAULT_CURVE_LEVELS`)
    plus ``conf``."""
    values = np.asarray(DEFAULT_CURVE_LEVELS if levels is None else levels, np.float64)
    if values.size == 0 or not np.all((values > 0) & (values <= 1)):
        raise InputError("curve levels must be numbers in (0, 1]")
    return np.unique(np.append(values, conf))


def _run_kind(predictions: Sequence[Prediction], kind: str | None) -> str:
    if kind is not None:
        if kind not in KINDS:
            raise InputError(f"unknown prediction kind {kind!r} (known: {', '.join(KINDS)})")
        return kind
    kinds = {p.kind for p in predictions}
    if "boxes" in kinds and len(kinds) > 1:
        raise InputError("predictions mix boxes and masks/score maps")
    if not kinds:
        return "boxes"
    return "scoremaps" if "scoremaps" in kinds else kinds.pop()


def evaluate(
    ground_truth: Sequence,
    predictions: Sequence[Prediction],
    *,
    matcher: str | Matcher = "iou:0.5",
    conf: float = 0.5,
    kind: str | None = None,
    strict: bool = False,
    resize: bool = False,
    connectivity: int = DEFAULT_CONNECTIVITY,
    levels: Sequence[float] | None = None,
    meta: dict | None = None,
) -> EvaluationResult:
    """Score in-memory predictions against ground truth, image by image.

    Parameters
    ----------
    ground_truth : sequence of GroundTruth
        From :func:`irstd_bench.datasets.load_ground_truth` (``.sample.stem`` and ``.targets``);
        ``(stem, Targets)`` pairs are accepted too.
    predictions : sequence of Prediction
        At most one per image, matched to the ground truth by stem. A prediction for an image
        that is not in ``ground_truth`` is ignored and counted; an image without one has no
        detections and is counted (an error when ``strict``).
    matcher : str
        ``iou:T``, ``nwd:T[:C]``, ``centroid:D`` or ``legacy-pd`` (:func:`parse_matcher`).
    conf : float
        Confidence threshold in ``(0, 1]``: boxes with score ``>= conf`` are kept; map pixels
        with score ``>= conf`` are foreground and their 8-connected (``connectivity``)
        components are the predicted targets.
    kind : {"boxes", "masks", "scoremaps"}, optional
        Forced kind of the run (default: from the predictions).
    levels : sequence of float, optional
        Score-map levels of the curves (default :data:`DEFAULT_CURVE_LEVELS`, plus ``conf``).

    Returns
    -------
    EvaluationResult
        ``metrics``: ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` at ``conf``;
        ``best_f1`` and its threshold over the curve; ``ap50`` (COCO 101-point AP, box IoU
        ``>= 0.5``, greedy by score); ``ap`` (the same with the run's matcher rule);
        for maps ``iou`` (split-summed), ``niou`` (mean per image), ``pd`` and ``fa_e6``
        (always the legacy 3 px centroid rule; Fa in pixels per million).

    Examples
    --------
    >>> from irstd_bench.targets import boxes_to_targets
    >>> gt = [("a", boxes_to_targets(np.array([[10, 10, 14, 14]]), (32, 32)))]
    >>> pred = [Prediction.from_boxes("a", [[10, 10, 14, 15], [0, 0, 2, 2]], [0.9, 0.7], (32, 32))]
    >>> m = evaluate(gt, pred, matcher="iou:0.5", conf=0.5).metrics
    >>> m["tp"], m["fp"], m["precision"], m["best_f1"], m["best_f1_threshold"]
    (1, 1, 0.5, 1.0, 0.9)
    """
    m = parse_matcher(matcher)
    conf = _check_conf(conf)
    run_kind = _run_kind(predictions, kind)
    lv = curve_levels(conf, levels)
    gts = _gt_pairs(ground_truth)
    by_stem: dict[str, Prediction] = {}
    for p in predictions:
        if p.stem in by_stem:
            raise InputError(f"two predictions for image {p.stem!r}")
        by_stem[p.stem] = p
    gt_stems = {stem for stem, _, _ in gts}
    not_in_split = sum(stem not in gt_stems for stem in by_stem)
    records = []
    for stem, targets, flags in gts:
        pred = by_stem.get(stem)
        if pred is None and strict:
            raise InputError(f"image {stem!r} of the split has no prediction (strict)")
        record = score_image(
            targets,
            pred,
            stem=stem,
            matcher=m,
            conf=conf,
            kind=run_kind,
            levels=lv,
            connectivity=connectivity,
            resize=resize,
        )
        record.gt_resized, record.gt_nonbinary = flags
        records.append(record)
    summary = summarise(records, matcher=m, conf=conf, kind=run_kind, levels=lv, predictions_not_in_split=not_in_split)
    settings = {"connectivity": connectivity, "resize": resize, "strict": strict, "curve_levels": lv.tolist()}
    return EvaluationResult(
        **summary,
        records=records,
        matcher=m.spec,
        conf=conf,
        kind=run_kind,
        settings=settings,
        meta=dict(meta or {}),
    )


def _gt_pairs(ground_truth) -> list[tuple[str, Targets, tuple[bool, bool]]]:
    out, seen = [], set()
    for item in ground_truth:
        if isinstance(item, tuple):
            stem, targets = item
            flags = (False, False)
        else:
            stem, targets = item.sample.stem, item.targets
            flags = (bool(item.mask_resized), bool(item.nonbinary_values))
        if stem in seen:
            raise InputError(f"image {stem!r} appears twice in the ground truth")
        seen.add(stem)
        out.append((stem, targets, flags))
    return out


# --------------------------------------------------------------------------------------------
# Streaming over files (the eval command)


#: The jobs of the running :func:`evaluate_split`, ``(jobs, params)``. Worker processes are
#: forked after it is set and inherit it, so only chunk bounds travel to them.
_RUN: tuple[list, dict] | None = None


def _worker_init() -> None:
    torch = sys.modules.get("torch")  # only the nwd matcher uses torch; keep it to one thread per worker
    if torch is not None:
        torch.set_num_threads(1)


def _score_chunk(bounds: tuple[int, int]) -> list[ImageRecord]:
    """Score jobs ``start:stop`` of the running split (in a worker)."""
    jobs, params = _RUN
    return [_score_job(job, params) for job in jobs[bounds[0] : bounds[1]]]


def _score_job(job, params: dict) -> ImageRecord:
    """Load one image's ground truth and prediction, and score it."""
    from irstd_bench.datasets import load_ground_truth

    stem, gt_source, pred_task = job
    try:
        if isinstance(gt_source, Targets):
            targets, flags = gt_source, (False, False)
        else:
            sample, known = gt_source
            gt = load_ground_truth(
                sample,
                threshold=params["threshold"],
                connectivity=params["connectivity"],
                resize_masks=params["resize_masks"],
                known_defect=known,
            )
            targets, flags = gt.targets, (gt.mask_resized, bool(gt.nonbinary_values))
        prediction = load_task(stem, pred_task, targets.image_size, params["kind"])
        record = score_image(
            targets,
            prediction,
            stem=stem,
            matcher=params["matcher"],
            conf=params["conf"],
            kind=params["kind"],
            levels=params["levels"],
            connectivity=params["connectivity"],
            resize=params["resize"],
        )
    except InputError as exc:
        raise InputError(str(exc)) from None  # a plain InputError pickles across processes
    record.gt_resized, record.gt_nonbinary = flags
    return record


def evaluate_split(
    items: Sequence[tuple[str, object]],
    pset: PredictionSet,
    *,
    matcher: str | Matcher = "iou:0.5",
    conf: float = 0.5,
    strict: bool = False,
    resize: bool = False,
    resize_masks: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    connectivity: int = DEFAULT_CONNECTIVITY,
    levels: Sequence[float] | None = None,
    workers: int = 1,
    meta: dict | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Score the predictions of ``pset`` on a split, reading files image by image.

    Parameters
    ----------
    items : sequence of (stem, source)
        ``source`` is ``(Sample, known_defect)`` (the mask is read and converted by
        :func:`irstd_bench.datasets.load_ground_truth`) or ready ``Targets`` (``--gt-coco``).
    pset : PredictionSet
    workers : int
        Processes reading and scoring images (1: in this process). Only per-image records,
        a few small arrays each, come back, so memory does not grow with image size.
    progress : bool
        A progress bar on stderr (:func:`irstd_bench._progress.progress_bar`).

    Other parameters are those of :func:`evaluate`; ``threshold`` binarises ground-truth masks.
    """
    m = parse_matcher(matcher)
    conf = _check_conf(conf)
    lv = curve_levels(conf, levels)
    missing = [stem for stem, _ in items if stem not in pset]
    if strict and missing:
        raise InputError(f"{pset.path}: {len(missing)} split images have no prediction (first: {missing[0]}; strict)")
    params = {
        "matcher": m,
        "conf": conf,
        "kind": pset.kind,
        "levels": lv,
        "connectivity": connectivity,
        "resize": resize,
        "resize_masks": resize_masks,
        "threshold": threshold,
    }
    jobs = [(stem, source, pset.task(stem)) for stem, source in items]
    workers = max(1, min(int(workers), len(jobs) or 1))
    with progress_bar(len(jobs), "eval", enabled=progress) as bar:
        if workers == 1:
            _worker_init()
            records = []
            for job in jobs:
                records.append(_score_job(job, params))
                bar.update(1)
        else:
            records = _score_in_workers(jobs, params, workers, bar.update)
    summary = summarise(
        records,
        matcher=m,
        conf=conf,
        kind=pset.kind,
        levels=lv,
        predictions_not_in_split=len(pset.not_in_split),
    )
    settings = {
        "threshold": threshold,
        "connectivity": connectivity,
        "resize": resize,
        "resize_masks": resize_masks,
        "strict": strict,
        "curve_levels": lv.tolist(),
        "workers": workers,
    }
    return EvaluationResult(
        **summary,
        records=records,
        matcher=m.spec,
        conf=conf,
        kind=pset.kind,
        pred_format=pset.format,
        settings=settings,
        meta=dict(meta or {}),
    )


def _score_in_workers(jobs: list, params: dict, workers: int, done=lambda n: None) -> list[ImageRecord]:
    """Score ``jobs`` in ``workers`` forked processes, in chunks of up to 128 images; records come
    back in job order. ``done(n)`` is called as each chunk of ``n`` images comes back."""
    global _RUN
    chunk = max(1, min(128, len(jobs) // (workers * 8)))
    bounds = [(i, min(i + chunk, len(jobs))) for i in range(0, len(jobs), chunk)]
    context = multiprocessing.get_context("fork")
    _RUN = (jobs, params)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
            try:
                records = []
                for part in pool.map(_score_chunk, bounds):
                    records.extend(part)
                    done(len(part))
                return records
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        _RUN = None


def default_workers() -> int:
    """Worker processes used by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
