"""Validation during training: score a model on the held validation split with the one evaluator.

The model runs through :func:`~.predict.predict_batch` (letterboxed inputs mapped back to native
pixels) and its predictions are scored by :func:`irstd_bench.evaluate.evaluate` at
``config.val_conf`` with ``config.matcher``, as ``irstd-bench eval`` would score the files
``predict`` writes. :func:`~.fitness.fitness` then turns the metrics into the comparable score
that selects ``best.pt``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from irstd_bench.evaluate import evaluate

from .config import TrainConfig
from .data import LetterboxedTensors
from .fitness import ap50_95
from .predict import predict_batch

#: Score threshold given to ``postprocess`` during validation (the evaluator applies ``val_conf``).
VALIDATION_POSTPROCESS_CONF = 0.001
#: Validation metrics kept per task (``None`` where undefined, e.g. precision without predictions).
VALIDATION_KEYS = {
    "detect": ("f1", "precision", "recall", "best_f1", "ap50"),
    "segment": ("f1", "precision", "recall", "best_f1", "iou", "niou", "pd", "fa_e6"),
}


@torch.no_grad()
def validation_metrics(
    model: nn.Module,
    data: LetterboxedTensors,
    truth: Sequence,
    config: TrainConfig,
    task: str,
    *,
    memory_format: torch.memory_format,
    amp_dtype: torch.dtype | None,
) -> dict:
    """Target-level metrics of ``model`` on the validation split ``data``, in native pixels.

    Parameters
    ----------
    model : nn.Module
        Put in eval mode for the pass, then back in the mode it was in.
    data : LetterboxedTensors
        The validation images ``(N, 1, S, S)`` (replicated to 3 channels here) and their letterboxes.
    truth : sequence
        Native-pixel ground truth of the same images (:func:`~.data.ground_truth`).
    config : TrainConfig
        ``batch``, ``max_det``, ``matcher``, ``val_conf`` and ``fitness`` (``"ap"`` adds AP50 and AP50:95).
    task : str
        ``"detect"`` or ``"segment"``: which metrics are kept (:data:`VALIDATION_KEYS`).
    memory_format, amp_dtype
        The inputs' memory format and the autocast dtype (``None``: full precision).

    Returns
    -------
    dict
        Metric name -> value (``None`` where undefined).
    """
    was_training = model.training
    model.eval()
    predictions = []
    b = config.batch
    for start in range(0, len(data), b):
        images = data.images[start : start + b].expand(-1, 3, -1, -1)
        predictions.extend(
            predict_batch(
                model,
                images.contiguous(memory_format=memory_format),
                data.meta[start : start + b],
                conf=VALIDATION_POSTPROCESS_CONF,
                max_det=config.max_det,
                amp_dtype=amp_dtype,
            )
        )
    model.train(was_training)
    result = evaluate(truth, predictions, matcher=config.matcher, conf=config.val_conf, bootstrap=0)
    metrics = {k: result.metrics.get(k) for k in VALIDATION_KEYS[task]}
    if config.fitness == "ap":
        metrics["ap50"] = result.metrics.get("ap50")
        metrics["ap50_95"] = ap50_95(truth, predictions, conf=config.val_conf)
    return metrics
