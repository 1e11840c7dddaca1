"""The evaluator's entry points: :func:`evaluate` (in-memory data, training validation) and
:func:`evaluate_split` (files read image by image in worker processes, the ``eval`` command).

Both score each image with :func:`~irstd_bench.evaluate._records.score_image` and add the
images up with :func:`~irstd_bench.evaluate._summary.summarise`.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from irstd_bench._progress import progress_bar
from irstd_bench.errors import DatasetDefectWarning, InputError
from irstd_bench.evaluate._bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, BootstrapSettings
from irstd_bench.evaluate._curves import DEFAULT_CURVE_LEVELS
from irstd_bench.evaluate._matching import Matcher, parse_matcher
from irstd_bench.evaluate._metrics import COCO_RECALL_POINTS
from irstd_bench.evaluate._prediction_set import PredictionSet, load_task
from irstd_bench.evaluate._predictions import Prediction
from irstd_bench.evaluate._records import AP50_IOU, KINDS, PIXEL_THRESHOLD, ImageRecord, ap50_undefined, score_image
from irstd_bench.evaluate._results_io import EvaluationResult
from irstd_bench.evaluate._summary import summarise
from irstd_bench.targets import DEFAULT_CONNECTIVITY, DEFAULT_THRESHOLD, Targets

#: Images a worker scores per task: large enough that the per-task overhead is negligible.
MAX_CHUNK_IMAGES = 128


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
    max_dets: int | None = None,
    bootstrap: int = DEFAULT_RESAMPLES,
    bootstrap_seed: int = DEFAULT_SEED,
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
    max_dets : int, optional
        AP only: each image's ``max_dets`` highest-scored detections count (pycocotools'
        ``maxDets``; ``100`` gives its default AP50 exactly). ``None`` (default): every detection.
    bootstrap : int
        Resamples of the images for the metrics' 95 % intervals (``metrics["ci95"]``,
        :mod:`~irstd_bench.evaluate._bootstrap`); 0: none (training validation).
    bootstrap_seed : int
        Seed of the resamples: the same seed gives the same intervals on any machine.

    Returns
    -------
    EvaluationResult
        ``metrics``: ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` at ``conf``;
        ``best_f1`` and its threshold over the curve; ``ap50`` (COCO 101-point AP, box IoU
        ``>= 0.5``, greedy by score, every detection unless ``max_dets``); ``ap`` (the same with
        the run's matcher rule);
        for maps ``iou`` (split-summed), ``niou`` (mean per image), ``pd`` and ``fa_e6``
        (always the legacy 3 px centroid rule; Fa in pixels per million); ``ci95``: ``{metric:
        [lo, hi] or None}`` for P, R, F1, AP50, IoU, nIoU, Pd, Fa (with ``bootstrap``).
        ``per_image``: the numbers the metrics add up, image by image (the results JSON's).

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
    max_dets = check_max_dets(max_dets)
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
    resampling = BootstrapSettings(bootstrap, bootstrap_seed)
    summary = summarise(
        records,
        conf=conf,
        kind=run_kind,
        levels=lv,
        matcher=m,
        predictions_not_in_split=not_in_split,
        max_dets=max_dets,
        bootstrap=resampling,
    )
    settings = {
        "connectivity": connectivity,
        "resize": resize,
        "strict": strict,
        "curve_levels": lv.tolist(),
        "pixel_threshold": pixel_threshold_setting(run_kind),
        "ap": ap_conventions(max_dets, run_kind, m),
        "bootstrap": resampling.to_dict(),
    }
    return EvaluationResult(
        **summary,
        records=records,
        matcher=m.spec,
        conf=conf,
        kind=run_kind,
        settings=settings,
        meta=dict(meta or {}),
    )


def check_max_dets(max_dets: int | None) -> int | None:
    """``None`` or a positive integer (AP's per-image cap)."""
    if max_dets is None:
        return None
    if isinstance(max_dets, bool) or not isinstance(max_dets, (int, np.integer)) or max_dets < 1:
        raise InputError(f"max_dets must be a positive integer, got {max_dets!r}")
    return int(max_dets)


def pixel_threshold_setting(kind: str) -> float | None:
    """Score level of the pixel metrics (IoU, nIoU, Pd, Fa), for the results JSON
    (``settings.pixel_threshold``): :data:`PIXEL_THRESHOLD` for masks and score maps (a mask is
    its own pixels at any level), ``None`` for boxes, which have no pixel metrics."""
    return None if kind == "boxes" else PIXEL_THRESHOLD


def ap_conventions(max_dets: int | None, kind: str, matcher: Matcher) -> dict:
    """How ``ap50`` and ``ap`` are computed, for the results JSON (``settings.ap``);
    ``ap50_undefined``: why ``ap50`` is ``null`` for this run (:func:`ap50_undefined`), else ``null``."""
    return {
        "interpolation": f"coco-{len(COCO_RECALL_POINTS)}-point",
        "max_dets": max_dets,
        "ap50_iou": AP50_IOU,
        "assignment": "greedy by decreasing score (pycocotools)",
        "ap50_undefined": ap50_undefined(kind, matcher),
    }


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

#: Warning of a ground-truth mask of another size than its image, not a known release defect,
#: resized because of ``resize_masks`` (after the mask's path).
UNNAMED_RESIZE_NOTE = "mask size differs from its image; resized to the image (nearest neighbour, --resize-masks)"


def _worker_init() -> None:
    """Start of a worker process: one torch thread (only the nwd matcher uses torch). Runs in the
    worker only; the caller's thread count is never touched."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _score_chunk(jobs: list, params: dict) -> list[ImageRecord]:
    """Score a chunk of jobs (in a worker); the jobs and parameters come as arguments."""
    return [_score_job(job, params) for job in jobs]


def _score_job(job, params: dict) -> ImageRecord:
    """Load one image's ground truth and prediction, and score it."""
    from irstd_bench.datasets import load_ground_truth

    stem, gt_source, pred_task = job
    notes: list[str] = []  # the ground truth's warning lines, reported by the parent
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
                warn=notes.append,
            )
            targets, flags = gt.targets, (gt.mask_resized, bool(gt.nonbinary_values))
            if gt.mask_resized and not known:  # a known defect is named by its reader's line
                notes.append(f"{sample.mask_path}: {UNNAMED_RESIZE_NOTE}")
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
    record.gt_warnings = tuple(notes)
    return record


def _warn_ground_truth(records: Sequence[ImageRecord]) -> None:
    """Report, in this process and in image order, each warning line the ground-truth readers
    wrote (in workers or here) as one :class:`DatasetDefectWarning`: one line per defect, naming
    its file (the CLI prints each as ``warning: <line>``)."""
    for record in records:
        for line in record.gt_warnings:
            warnings.warn(line, DatasetDefectWarning, stacklevel=3)


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
    max_dets: int | None = None,
    bootstrap: int = DEFAULT_RESAMPLES,
    bootstrap_seed: int = DEFAULT_SEED,
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
    max_dets = check_max_dets(max_dets)
    resampling = BootstrapSettings(bootstrap, bootstrap_seed)
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
            records = []
            for job in jobs:
                records.extend(_score_chunk([job], params))
                bar.update(1)
        else:
            records = _score_in_workers(jobs, params, workers, bar.update)
    _warn_ground_truth(records)
    summary = summarise(
        records,
        conf=conf,
        kind=pset.kind,
        levels=lv,
        matcher=m,
        predictions_not_in_split=len(pset.not_in_split),
        max_dets=max_dets,
        bootstrap=resampling,
    )
    settings = {
        "threshold": threshold,
        "connectivity": connectivity,
        "resize": resize,
        "resize_masks": resize_masks,
        "strict": strict,
        "curve_levels": lv.tolist(),
        "workers": workers,
        "pixel_threshold": pixel_threshold_setting(pset.kind),
        "ap": ap_conventions(max_dets, pset.kind, m),
        "bootstrap": resampling.to_dict(),
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
    """Score ``jobs`` in ``workers`` processes, in chunks of up to :data:`MAX_CHUNK_IMAGES`
    images passed to each task as arguments; records come back in job order. ``done(n)`` is
    called as each chunk of ``n`` images comes back (the progress bar)."""
    size = max(1, min(MAX_CHUNK_IMAGES, len(jobs) // (workers * 8)))
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
        try:
            records = []
            for part in pool.map(_score_chunk, chunks, [params] * len(chunks)):
                records.extend(part)
                done(len(part))
            return records
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def default_workers() -> int:
    """Worker processes used by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
