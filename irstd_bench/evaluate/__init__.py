"""Target-level evaluation of IRSTD predictions: boxes, masks and score maps alike.

>>> from irstd_bench.evaluate import Prediction, evaluate          # doctest: +SKIP
>>> result = evaluate(ground_truth, predictions, matcher="iou:0.5", conf=0.5)  # doctest: +SKIP
>>> result.metrics["f1"]                                             # doctest: +SKIP

How pixels become targets, when a prediction is a hit, and every metric are documented in
:func:`evaluate`, :func:`match_targets` and the private modules behind this namespace.
"""

from irstd_bench.evaluate._curves import DEFAULT_CURVE_LEVELS, level_components
from irstd_bench.evaluate._evaluator import (
    EvaluationResult,
    ImageRecord,
    evaluate,
    evaluate_split,
    score_image,
)
from irstd_bench.evaluate._ground_truth import read_gt_coco
from irstd_bench.evaluate._matching import (
    LEGACY_PD_DISTANCE_PX,
    UNMATCHED,
    Matcher,
    TargetMatch,
    greedy_by_score,
    match_targets,
    parse_matcher,
)
from irstd_bench.evaluate._metrics import SIZE_BINS, coco_average_precision
from irstd_bench.evaluate._pixel_metrics import PixelStats, legacy_pd_fa, pixel_stats
from irstd_bench.evaluate._predictions import (
    BOX_TOLERANCE_PX,
    FORMATS,
    Prediction,
    PredictionSet,
    open_predictions,
    read_predictions,
)

__all__ = [
    "BOX_TOLERANCE_PX",
    "DEFAULT_CURVE_LEVELS",
    "FORMATS",
    "LEGACY_PD_DISTANCE_PX",
    "SIZE_BINS",
    "UNMATCHED",
    "EvaluationResult",
    "ImageRecord",
    "Matcher",
    "PixelStats",
    "Prediction",
    "PredictionSet",
    "TargetMatch",
    "coco_average_precision",
    "evaluate",
    "evaluate_split",
    "greedy_by_score",
    "legacy_pd_fa",
    "level_components",
    "match_targets",
    "open_predictions",
    "parse_matcher",
    "pixel_stats",
    "read_gt_coco",
    "read_predictions",
    "score_image",
]
