"""Training engine shared by detectors and segmenters: data, letterbox, augmentation, the loop,
checkpoints, EMA, schedule, recipes, distributed training and inference.

>>> from reference_model.engine import TrainConfig, train
>>> config = TrainConfig(root="NUAA-SIRST", split="idx_427", model="eflnet-n", epochs=2, out="runs/x")
>>> train(config)                                                  # doctest: +SKIP

The CLI commands ``irstd-bench train`` / ``irstd-bench predict`` live in :mod:`.cli`.
"""

from reference_model.engine.augment import AugmentConfig
from reference_model.engine.checkpoint import (
    build_named_model,
    load_checkpoint,
    model_from_checkpoint,
    resolve_weights,
    save_checkpoint,
)
from reference_model.engine.config import TrainConfig
from reference_model.engine.data import IRDataset, LetterboxedTensors, SplitPlan, collate, load_letterboxed, plan_splits
from reference_model.engine.ema import ModelEMA
from reference_model.engine.predict import (
    load_for_inference,
    predict_batch,
    predict_samples,
    write_predictions,
)
from reference_model.engine.schedule import WarmupSchedule
from reference_model.engine.trainer import Trainer, TrainResult, train
from reference_model.engine.transforms import Letterbox

__all__ = [
    "AugmentConfig",
    "IRDataset",
    "LetterboxedTensors",
    "Letterbox",
    "ModelEMA",
    "SplitPlan",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "WarmupSchedule",
    "build_named_model",
    "collate",
    "load_checkpoint",
    "load_for_inference",
    "load_letterboxed",
    "model_from_checkpoint",
    "plan_splits",
    "predict_batch",
    "predict_samples",
    "resolve_weights",
    "save_checkpoint",
    "train",
    "write_predictions",
]
