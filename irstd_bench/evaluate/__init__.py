"""Target-level evaluation of IRSTD predictions: boxes, masks and score maps alike.

>>> from irstd_bench.evaluate import Prediction, evaluate          # doctest: +SKIP
>>> result = evaluate(ground_truth, predictions, matcher="iou:0.5", conf=0.5)  # doctest: +SKIP
>>> result.metrics["f1"]                                             # doctest: +SKIP

How pixels become targets, when a prediction is a hit, and every metric are documented in
:func:`evaluate`, :func:`match_targets` and the private modules behind this namespace:

- ``_matching``: the :class:`Matcher` (allowed pairs, similarity, assignment);
- ``_predictions``, ``_readers``, ``_prediction_set``: predictions in memory and in files;
- ``_ground_truth``: the COCO ground-truth reader;
- ``_records``: one image's score (per-kind adapters, one record builder);
- ``_curves``, ``_metrics``, ``_pixel_metrics``, ``_summary``: the split's metrics;
- ``_per_image``, ``_bootstrap``: the per-image numbers and the bootstrap over images (intervals,
  paired differences);
- ``_results_io``: the results JSON and CSVs;
- ``_evaluator``: :func:`evaluate` and :func:`evaluate_split` (worker processes).
"""

from irstd_bench.evaluate._bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    INTERVAL_METRICS,
    MAX_RESAMPLES,
    BootstrapSettings,
    PairedDifference,
    bootstrap_intervals,
    metric_samples,
    paired_difference,
    percentile_interval,
    resample_counts,
)
from irstd_bench.evaluate._curves import DEFAULT_CURVE_LEVELS, CurveCounts, level_components
from irstd_bench.evaluate._evaluator import evaluate, evaluate_split
from irstd_bench.evaluate._ground_truth import read_coco_ground_truth
from irstd_bench.evaluate._matching import (
    LEGACY_PD_DISTANCE_PX,
    UNMATCHED,
    Matcher,
    TargetMatch,
    greedy_by_score,
    match_targets,
    parse_matcher,
)
from irstd_bench.evaluate._metrics import coco_average_precision
from irstd_bench.evaluate._per_image import PerImageData, align_images, parse_per_image
from irstd_bench.evaluate._pixel_metrics import PixelStats, legacy_pd_fa, pixel_stats
from irstd_bench.evaluate._prediction_set import FORMATS, PredictionSet, open_predictions, read_predictions
from irstd_bench.evaluate._predictions import BOX_TOLERANCE_PX, Prediction
from irstd_bench.evaluate._records import PIXEL_THRESHOLD, ImageRecord, ap50_undefined, score_image
from irstd_bench.evaluate._results_io import PER_IMAGE_COLUMNS, PER_TARGET_COLUMNS, EvaluationResult
from irstd_bench.targets import SIZE_BINS

__all__ = [
    "BOX_TOLERANCE_PX",
    "BootstrapSettings",
    "DEFAULT_CURVE_LEVELS",
    "DEFAULT_RESAMPLES",
    "MAX_RESAMPLES",
    "DEFAULT_SEED",
    "FORMATS",
    "INTERVAL_METRICS",
    "LEGACY_PD_DISTANCE_PX",
    "PER_IMAGE_COLUMNS",
    "PER_TARGET_COLUMNS",
    "PIXEL_THRESHOLD",
    "SIZE_BINS",
    "UNMATCHED",
    "CurveCounts",
    "EvaluationResult",
    "ImageRecord",
    "Matcher",
    "PairedDifference",
    "PerImageData",
    "PixelStats",
    "Prediction",
    "PredictionSet",
    "TargetMatch",
    "align_images",
    "ap50_undefined",
    "bootstrap_intervals",
    "coco_average_precision",
    "evaluate",
    "evaluate_split",
    "greedy_by_score",
    "legacy_pd_fa",
    "level_components",
    "match_targets",
    "metric_samples",
    "open_predictions",
    "paired_difference",
    "parse_matcher",
    "parse_per_image",
    "percentile_interval",
    "pixel_stats",
    "read_coco_ground_truth",
    "read_predictions",
    "resample_counts",
    "score_image",
]
