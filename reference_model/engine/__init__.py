"""Training engine shared by detectors and segmenters: data, letterbox, augmentation, the loop,
checkpoints, EMA, schedule, distributed training and inference.

>>> from reference_model.engine import TrainConfig, train
>>> config = TrainConfig(root="NUAA-SIRST", split="idx_427", model="eflnet-n", epochs=2, out="runs/x")
>>> train(config)                                                  # doctest: +SKIP

The CLI commands ``irstd-bench train`` / ``irstd-bench predict`` live in :mod:`.cli`.
"""

from reference_model.engine.checkpoint import (
    build_named_model,
    load_checkpoint,
    model_from_checkpoint,
    resolve_weights,
    save_checkpoint,
)
from reference_model.engine.data import IRDataset, SplitPlan, collate, plan_splits
from reference_model.engine.ema import ModelEMA
from reference_model.engine.predict import (
    load_for_inference,
    predict_batch,
    predict_samples,
    write_predictions,
)
from reference_model.engine.schedule import WarmupCosine
from reference_model.engine.trainer import TrainConfig, TrainResult, train
from reference_model.engine.transforms import AugmentConfig, Letterbox

__all__ = [
    "AugmentConfig",
    "IRDataset",
    "Letterbox",
    "ModelEMA",
    "SplitPlan",
    "TrainConfig",
    "TrainResult",
    "WarmupCosine",
    "build_named_model",
    "collate",
    "load_checkpoint",
    "load_for_inference",
    "model_from_checkpoint",
    "plan_splits",
    "predict_batch",
    "predict_samples",
    "resolve_weights",
    "save_checkpoint",
    "train",
    "write_predictions",
]
