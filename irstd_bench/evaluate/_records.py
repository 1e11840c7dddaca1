"""One image's score: per-kind adapters feeding one record builder.

A prediction of any kind is first turned into the same thing, :class:`PredictedTargets`
(predicted targets with scores, and which of them are kept at ``conf``), by an adapter:

- :func:`box_targets`: boxes are checked against the image, clipped within the tolerance,
  and every box is a candidate; those with score ``>= conf`` are kept.
- :func:`map_targets`: a mask's foreground, or a score map's pixels with score ``>= conf``,
  split into components; each component is scored by its highest pixel score and kept.

:func:`score_image` then matches the kept targets with the ground truth, records the AP
candidates and the curve counts, and returns a compact :class:`ImageRecord` (no pixel arrays).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from irstd_bench.errors import InputError
from irstd_bench.evaluate._curves import CurveCounts, box_threshold_counts, score_map_level_counts
from irstd_bench.evaluate._matching import UNMATCHED, Matcher, box_iou_matrix, greedy_by_score, parse_matcher
from irstd_bench.evaluate._pixel_metrics import PixelStats, pixel_stats
from irstd_bench.evaluate._predictions import Prediction, clip_boxes, resize_nearest
from irstd_bench.targets import DEFAULT_CONNECTIVITY, Targets, boxes_to_targets, component_max, mask_to_targets

#: Score-map level of the pixel metrics (IoU, nIoU, Pd, Fa): pixels with score >= 0.5, the
#: field's convention (a sigmoid output > 0.5), whatever ``conf`` and the matcher are. The
#: results JSON records it as ``settings.pixel_threshold`` (``docs/CONTRACTS.md``).
PIXEL_THRESHOLD = 0.5
#: IoU threshold of ``ap50`` (COCO AP at IoU 0.5, whatever the run's matcher).
AP50_IOU = 0.5


def ap50_undefined(kind: str, matcher: Matcher | str) -> str | None:
    """Why ``ap50`` means nothing for a run of ``kind`` scored with ``matcher``; ``None`` when it does.

    The one rule, used by the evaluator (which then writes ``ap50: null`` and this text as
    ``settings.ap.ap50_undefined``) and by ``report`` (``–`` with this footnote, for older files too).

    ``ap50`` pairs predicted *boxes* with the targets' boxes at IoU ``>= 0.5``. Boxes and masks
    have their extents whatever ``conf`` is. A score map's AP candidates are its components at
    the run's ``conf``, so their extents are set by ``conf``, and ``conf`` is the operating point
    of the run's matcher (chosen on val for it). Under an IoU matcher that choice weighs the
    extents; under ``centroid``, ``legacy-pd`` or ``nwd`` it does not (a centroid-chosen level is
    often so high that each component is a peak of one to a few pixels, whose box cannot reach
    IoU 0.5 with a 3 x 3 px or larger target: AP50 0 by construction, next to a good F1).
    """
    m = parse_matcher(matcher)
    if kind != "scoremaps" or m.kind == "iou":
        return None
    return (
        f"AP50 undefined for score maps scored under {m.spec}: their AP candidates are the map's components at "
        f"the run's threshold, chosen for {m.spec}, which fixes centroids, not extents (at a high threshold, peaks "
        "of a few pixels whose boxes cannot reach IoU 0.5); use --match iou:0.5 for an AP50"
    )

#: Kinds of a run.
KINDS = ("boxes", "masks", "scoremaps")


@dataclass
class PredictedTargets:
    """What every prediction kind becomes before scoring.

    Attributes
    ----------
    targets : Targets
        The candidates: every box, or the components of a map at ``conf``.
    scores : ndarray (P,) float64
        Score of each candidate (a mask's components score 1).
    kept : ndarray (P,) bool
        Candidates kept at ``conf`` (the predicted targets of the counts).
    curve : CurveCounts or None
        Score maps: the per-level counts; ``None``: the record builder derives them, at every
        distinct score when ``curve_from_scores`` (boxes), else at ``conf`` alone (masks).
    pixels : PixelStats or None
        Pixel metrics (map predictions against mask ground truth).
    boxes_clipped : int
    resized : bool
    """

    targets: Targets
    scores: np.ndarray
    kept: np.ndarray
    curve: CurveCounts | None = None
    curve_from_scores: bool = False
    pixels: PixelStats | None = None
    boxes_clipped: int = 0
    resized: bool = False


@dataclass
class ImageRecord:
    """What the split metrics need from one image (small arrays, no pixels).

    ``gt_*`` describe the ground-truth targets (``G``); ``pred_*`` the predictions kept at
    ``conf`` (``P``), with ``pred_to_gt`` the matched target or ``UNMATCHED``; ``ap_*`` the AP
    candidates (every box, or the components of a map at ``conf``) in decreasing score, with
    whether each is a hit of the run's matcher (``ap_hits``) and of box IoU ``>= 0.5``
    (``ap50_hits``); ``curve`` the per-threshold counts; ``gt_warnings`` the warning lines the
    ground-truth reader wrote for this image (each naming its file; ``evaluate_split`` reports them
    in the calling process, whichever process read the mask).
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
    curve: CurveCounts
    pixels: PixelStats | None = None
    boxes_clipped: int = 0
    prediction_resized: bool = False
    gt_resized: bool = False
    gt_nonbinary: bool = False
    gt_warnings: tuple[str, ...] = ()

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


def box_targets(prediction: Prediction, image_size: tuple[int, int], conf: float) -> PredictedTargets:
    """Adapter for box predictions: every box a candidate, kept when its score is ``>= conf``."""
    h, w = image_size
    if prediction.image_size is not None and tuple(prediction.image_size) != (h, w):
        ph, pw = prediction.image_size
        raise InputError(
            f"{prediction.where}: boxes are for a {pw}x{ph} image but image {prediction.stem} is {w}x{h} "
            "(evaluation is at native resolution)"
        )
    prediction, clipped = clip_boxes(prediction, (h, w))
    scores = np.asarray(prediction.scores, np.float64)
    targets = boxes_to_targets(prediction.boxes, (h, w))
    return PredictedTargets(targets, scores, scores >= conf, curve_from_scores=True, boxes_clipped=clipped)


def map_targets(
    prediction: Prediction,
    gt: Targets,
    *,
    matcher: Matcher,
    conf: float,
    kind: str,
    levels: np.ndarray,
    connectivity: int,
    resize: bool,
) -> PredictedTargets:
    """Adapter for masks and score maps: the components of the pixels ``>= conf``."""
    h, w = gt.image_size
    score_map, resized = prediction.score_map, False
    if score_map.shape != (h, w):
        if not resize:
            sh, sw = score_map.shape
            raise InputError(
                f"{prediction.where}: prediction is {sw}x{sh} but image {prediction.stem} is {w}x{h} "
                "(use --resize for nearest-neighbour resizing)"
            )
        score_map, resized = resize_nearest(score_map, (h, w)), True
    is_mask = score_map.dtype == bool
    pred = mask_to_targets(score_map if is_mask else score_map >= conf, connectivity=connectivity)
    scores = np.ones(len(pred)) if is_mask else component_max(pred, score_map)
    curve = None
    if kind == "scoremaps":
        values = score_map.astype(np.float32) if is_mask else score_map
        curve = score_map_level_counts(values, gt, levels, matcher, connectivity)
    return PredictedTargets(
        pred,
        np.asarray(scores, np.float64),
        np.ones(len(pred), bool),
        curve=curve,
        pixels=None if gt.pixels is None else pixel_stats(gt, _pixel_targets(pred, score_map, conf, connectivity)),
        resized=resized,
    )


def _pixel_targets(pred: Targets, score_map: np.ndarray, conf: float, connectivity: int) -> Targets:
    """The predicted targets the pixel metrics (IoU, nIoU, Pd, Fa) use: a score map's pixels
    ``>= PIXEL_THRESHOLD``, whatever ``conf`` is (``conf`` is chosen per matcher, on val; the
    pixel metrics must not change with the box matcher). A mask is taken as it is."""
    if score_map.dtype == bool or conf == PIXEL_THRESHOLD:
        return pred
    return mask_to_targets(score_map >= PIXEL_THRESHOLD, connectivity=connectivity)


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
    has_prediction = prediction is not None
    if prediction is None:
        prediction = Prediction.empty(stem, kind, gt.image_size)
    if (prediction.kind == "boxes") != (kind == "boxes"):
        raise InputError(f"{prediction.where}: {prediction.kind} prediction in a {kind} evaluation")
    if prediction.kind == "boxes":
        predicted = box_targets(prediction, gt.image_size, conf)
    else:
        predicted = map_targets(
            prediction,
            gt,
            matcher=matcher,
            conf=conf,
            kind=kind,
            levels=levels,
            connectivity=connectivity,
            resize=resize,
        )
    return build_record(stem, gt, predicted, matcher=matcher, conf=conf, has_prediction=has_prediction)


def build_record(
    stem: str, gt: Targets, predicted: PredictedTargets, *, matcher: Matcher, conf: float, has_prediction: bool
) -> ImageRecord:
    """The record of one image from its ground truth and its predicted targets (any kind)."""
    cand, scores, kept = predicted.targets, predicted.scores, predicted.kept
    sim, valid = matcher.pair_matrix(cand.boxes, cand.centroids, gt.boxes, gt.centroids)
    match = matcher.assign(sim[kept], valid[kept])
    curve = predicted.curve
    if curve is None and predicted.curve_from_scores:
        curve = box_threshold_counts(scores, valid, matcher)
    elif curve is None:
        curve = CurveCounts(np.array([conf]), np.array([match.tp]), np.array([int(kept.sum())]))
    ap_hits = greedy_by_score(sim, valid, scores)
    iou50 = box_iou_matrix(cand.boxes, gt.boxes) if len(cand) and len(gt) else np.zeros((len(cand), len(gt)))
    ap50_hits = greedy_by_score(iou50, iou50 >= AP50_IOU, scores)
    order = np.argsort(-scores, kind="mergesort")
    return ImageRecord(
        stem=stem,
        image_size=tuple(gt.image_size),
        has_prediction=has_prediction,
        gt_boxes=np.asarray(gt.boxes),
        gt_area=np.asarray(gt.area_px),
        gt_centroids=np.asarray(gt.centroids),
        pred_boxes=np.asarray(cand.boxes)[kept],
        pred_scores=scores[kept],
        pred_area=np.asarray(cand.area_px)[kept],
        pred_centroids=np.asarray(cand.centroids)[kept],
        pred_to_gt=match.pred_to_gt,
        ap_scores=scores[order],
        ap_hits=ap_hits[order],
        ap50_hits=ap50_hits[order],
        curve=curve,
        pixels=predicted.pixels,
        boxes_clipped=predicted.boxes_clipped,
        prediction_resized=predicted.resized,
    )
