"""Validation scores and the fitness that selects ``best.pt``, all through the one evaluator.

AP50:95 is COCO's mean of AP over box IoU thresholds 0.50, 0.55, ..., 0.95. It is computed with
:func:`irstd_bench.evaluate.evaluate` itself: with the matcher ``iou:T`` the evaluator's ``ap``
is COCO's 101-point AP at IoU ``T`` (greedy by score), so AP50:95 is the mean of ten ``ap``
values and no second AP implementation exists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irstd_bench.evaluate import evaluate

#: COCO's IoU thresholds of AP50:95.
AP_IOU_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.5, 0.951, 0.05), 2))
#: ``fitness="ap"``: weights of AP50 and AP50:95 (the YOLO code bases' ``[0.1, 0.9]``).
AP_FITNESS_WEIGHTS = (0.1, 0.9)


def ap50_95(ground_truth: Sequence, predictions: Sequence, conf: float = 0.5) -> float | None:
    """COCO AP averaged over IoU 0.50:0.95 (``None`` without ground-truth targets).

    ``conf`` only sets the evaluator's F1 operating point; AP uses every prediction.
    """
    values = [
        evaluate(ground_truth, predictions, matcher=f"iou:{t:g}", conf=conf, bootstrap=0).metrics["ap"]
        for t in AP_IOU_THRESHOLDS
    ]
    if any(v is None for v in values):
        return None
    return float(np.mean(values))


def fitness(metrics: dict, rule: str, task: str) -> list[float]:
    """The comparable fitness of validation ``metrics`` (larger is better; compared as lists).

    - ``f1``: ``[F1, AP50]`` for detectors, ``[F1, IoU]`` for segmenters;
    - ``ap``: ``[0.1 AP50 + 0.9 AP50:95, F1]``;
    - ``iou``: ``[IoU, F1]``.

    Missing values count 0.
    """

    def value(key: str) -> float:
        return float(metrics.get(key) or 0.0)

    if rule == "ap":
        w50, w5095 = AP_FITNESS_WEIGHTS
        return [w50 * value("ap50") + w5095 * value("ap50_95"), value("f1")]
    if rule == "iou":
        return [value("iou"), value("f1")]
    return [value("f1"), value("ap50") if task == "detect" else value("iou")]
