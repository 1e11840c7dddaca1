"""Settings of a training run (:class:`TrainConfig`) and how a named recipe fills them.

A recipe (:mod:`reference_model.recipe`) sets ``TrainConfig`` fields and model builder
keywords together; :func:`apply_recipe` applies the model's ``RECIPES[name]`` under the
settings the user gave explicitly (an explicit option always wins).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from irstd_bench._cli_options import MAX_WORKERS
from irstd_bench.errors import InputError

from .checkpoint import checked_model_name, load_checkpoint
from .draws import AugmentConfig, check_augment
from .schedule import SCHEDULE_STEPS, SCHEDULES
from .transforms import MAX_INPUT_SIZE, check_input_size

#: Default base learning rate and weight decay per optimizer.
DEFAULT_LR = {"sgd": 0.01, "adamw": 0.001, "adagrad": 0.05}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05, "adagrad": 1e-4}
#: Validation fitness rules (see :func:`.fitness.fitness`).
FITNESS_RULES = ("f1", "ap", "iou")
#: Which parameters get weight decay (``weight_decay_rule``; :func:`.runtime.param_groups`).
WEIGHT_DECAY_RULES = ("ndim", "yolov7")
#: Default number of detections kept per image after NMS (validation and ``predict``).
DEFAULT_MAX_DET = 100
#: Settings of a resumed run that may differ from the saved ones.
RESUME_MAY_CHANGE = ("epochs", "device", "workers", "resume", "out", "progress", "memory_fraction", "threads",
                     "compile")
#: ``--threads`` at most this many per CPU: more only multiplies OpenMP threads that wait.
MAX_THREADS_PER_CPU = 4
#: Name of a run's last checkpoint in its folder.
LAST_NAME = "last.pt"
#: Engine settings that no authors' code base of our recipes has: a recipe that does not name one
#: gets this value instead of the engine default, so it trains as its authors do. The target-keeping
#: crop; the photometric jitter (brightness, contrast, Gaussian noise: sigma 0.02 is about 5 grey
#: levels, the contrast of a faint target); gradient clipping (EFLNet's and MDvsFA's code do not
#: clip, docs/models/; no segmenter recipe's source names clipping).
RECIPE_UNNAMED_SETTINGS = {"crop": 0.0, "brightness": 0.0, "contrast": 0.0, "noise": 0.0, "grad_clip": None}
#: ``TrainConfig`` fields a recipe may not set (where and how a run executes, not what it trains).
NOT_RECIPE_FIELDS = ("root", "dataset", "split", "model", "model_overrides", "device", "out", "resume",
                     "recipe", "protocol", "progress", "image_dir", "mask_dir", "mask_suffix", "workers",
                     "skip_defects")


@dataclass
class TrainConfig:
    """Settings of a training run (the ``irstd-bench train`` options).

    Attributes
    ----------
    root : str
        Dataset root; ``dataset`` its layout (``None``: detect), ``split`` the split family.
    model : str or None
        Registry name (``eflnet-n``, ``acm``...) or ``module:builder``; ``None`` only with ``resume``.
    model_overrides : dict
        Builder keywords (``{"use_atfl": False, "strides": [4, 8, 16]}``).
    epochs, imgsz, batch : int
        Epochs, square input side in px (multiple of 32), images per batch per process.
    optimizer : {"sgd", "adamw", "adagrad"}
    lr, weight_decay : float or None
        ``None``: :data:`DEFAULT_LR` / :data:`DEFAULT_WEIGHT_DECAY` of the optimizer.
    momentum : float
        SGD momentum (Nesterov), or AdamW's beta1 (Adagrad ignores it).
    schedule : {"cosine", "poly", "linear"}
        Decay to ``lr_final_ratio x lr``; ``poly_power`` its exponent.
    schedule_step : {"iteration", "epoch"}
        ``iteration``: the decay starts after warm-up and advances every iteration; ``epoch``: the
        factor of epoch ``e`` is the decay at ``e / epochs`` from epoch 0, and the warm-up rises to
        it (YOLOv5/v7's ``LambdaLR``, :mod:`.schedule`).
    warmup_epochs, warmup_iters : float, int
        Linear warm-up over ``max(warmup_epochs x iterations per epoch, warmup_iters)`` iterations.
    warmup_start_ratio : float
        Learning rate at the start of warm-up over the base rate (YOLOv7: 0).
    warmup_bias_lr : float or None
        Learning rate of the biases at the start of warm-up, falling to the base rate (YOLOv7:
        0.1); ``None``: biases warm up as the other parameters.
    warmup_momentum : float or None
        SGD momentum at the start of warm-up, rising to ``momentum`` (YOLOv7: 0.8); ``None``: constant.
    nominal_batch : int or None
        Gradient accumulation: one optimizer step per ``round(nominal_batch / (batch x processes))``
        batches (at least 1), weight decay scaled by ``batch x processes x steps / nominal_batch``
        (as the YOLO code bases do); ``None``: one step per batch.
    accumulate_ramp : bool
        The batches per step rise from 1 to the nominal number over the warm-up (YOLOv7;
        :class:`.schedule.Accumulation`).
    weight_decay_rule : {"ndim", "yolov7"}
        What decays: parameters of more than one dimension, or every module's ``weight`` but
        BatchNorm's (GroupNorm scales included; YOLOv7) (:func:`.runtime.param_groups`).
    mosaic, mixup, scale, translate, hsv_h, hsv_s, hsv_v, brightness, contrast, noise, fliplr, flipud, crop, \
crop_min_side, mosaic9, mosaic_style, window_style, min_box_side, mixup_beta, mixup_partner : float or str
        Augmentation (:class:`~.augment.AugmentConfig`); ignored with ``augment=False``. ``mosaic9``:
        probability of a 9-image mosaic among mosaics; ``mosaic_style`` ``grid`` (letterboxed tiles on
        a fixed grid) or ``yolov7`` (tiles' contents around a random centre, :mod:`.mosaic`);
        ``window_style`` ``canvas`` or ``yolov7`` (scale in ``[1 - scale, 1.1 + scale]``, centre
        around the canvas centre only); ``min_box_side``: boxes not wider and higher than this (px)
        are dropped; ``mixup_beta``: ``a`` of the ratio ``Beta(a, a)``; ``mixup_partner`` ``batch``
        or ``fresh``. ``brightness``
        (additive, in [0, 1] image units), ``contrast`` (factor ``1 +- contrast``), ``noise`` (largest
        Gaussian sigma): the engine's photometric jitter, off in every recipe that does not name it. ``crop``:
        probability of a target-keeping crop (every target kept whole, zoomed in by up to
        ``1 / crop_min_side``) instead of the scale/translate jitter.
    eval_size : int or None
        Side of the letterboxed validation input and the default of ``predict --imgsz`` (``None``:
        ``imgsz``). Set by a protocol that trains on windows of the authors' canvas.
    grad_clip : float or None
        Largest gradient norm of an optimizer step (``None``: no clipping, as in every recipe that does
        not name it).
    pad_value : float
        Image value of the letterbox padding (training, validation and ``predict``, which reads it
        from the checkpoint) and of mosaic gaps and pixels outside the canvas, in [0, 1] (YOLOv7:
        114 / 255).
    max_det : int
        Detections kept per image after NMS, in validation and (read from the checkpoint) ``predict``.
    base_size : int or None
        Images are letterboxed onto a ``base_size`` canvas and random ``imgsz`` windows are cut
        from it (``None``: letterboxed to ``imgsz``).
    fitness : {"f1", "ap", "iou"}
        What selects ``best.pt``: ``f1`` (validation F1 at ``val_conf``, ties by AP50 or IoU),
        ``ap`` (``0.1 AP50 + 0.9 AP50:95``), ``iou`` (segmenters' pixel IoU, ties by F1).
    recipe : str or None
        Recipe asked for: a name of the model's ``RECIPES``, ``"none"`` (the engine's defaults) or
        ``None`` (the model's ``DEFAULT_RECIPE`` where it has one;
        :func:`reference_model.recipe.resolve_recipe_name`). After :func:`apply_recipe`: the recipe
        applied, or ``None`` (recorded in ``args.json`` and checkpoints).
    protocol : str or None
        Name of a :data:`reference_model.protocol.PROTOCOLS` entry whose settings are applied over
        the recipe's (explicit options still win); recorded in ``args.json`` and checkpoints.
    workers : int
        Processes decoding the images once at the start (training batches are made on the device).
    val_every : int
        Validate every N epochs (and always after the last).
    val_conf : float
        Confidence threshold of the validation F1; ``matcher`` the evaluator's matching rule.
    amp : bool
        Mixed precision on CUDA (bf16 where supported, else fp16 with loss scaling); ignored on the CPU.
    augment : bool
        Training augmentation on/off.
    channels_last, compile : bool
        Channels-last memory format; ``torch.compile`` of the forward pass.
    memory_fraction : float or None
        CUDA: this process may use at most this fraction of the GPU's memory (runs sharing a GPU).
    threads : int or None
        CPU threads of this process's torch ops during the run (restored afterwards).
    deterministic : bool
        Ask torch for deterministic kernels (warn-only where none exists); slower on some CUDA ops.
    """

    root: str = ""
    dataset: str | None = None
    split: str = "default"
    model: str | None = None
    model_overrides: dict = field(default_factory=dict)
    epochs: int = 100
    imgsz: int = 512
    batch: int = 16
    device: str = "auto"
    out: str | None = None
    val_every: int = 1
    optimizer: str = "sgd"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.937
    schedule: str = "cosine"
    lr_final_ratio: float = 0.01
    poly_power: float = 0.9
    warmup_epochs: float = 3.0
    warmup_iters: int = 0
    warmup_start_ratio: float = 0.01
    warmup_bias_lr: float | None = None
    warmup_momentum: float | None = None
    schedule_step: str = "iteration"
    nominal_batch: int | None = None
    accumulate_ramp: bool = False
    weight_decay_rule: str = "ndim"
    ema: bool = True
    ema_decay: float = 0.9999
    amp: bool = True
    seed: int = 0
    workers: int = 2
    resume: str | None = None
    augment: bool = True
    mosaic: float = 0.0
    mixup: float = 0.0
    scale: float = 0.3
    translate: float = 0.1
    hsv_h: float = 0.0
    hsv_s: float = 0.0
    hsv_v: float = 0.0
    brightness: float = 0.1
    contrast: float = 0.2
    noise: float = 0.02
    fliplr: float = 0.5
    flipud: float = 0.5
    crop: float = 0.5
    crop_min_side: float = 0.6
    mosaic9: float = 0.0
    mosaic_style: str = "grid"
    window_style: str = "canvas"
    min_box_side: float = 0.0
    mixup_beta: float = 32.0
    mixup_partner: str = "batch"
    pad_value: float = 0.0
    max_det: int = DEFAULT_MAX_DET
    grad_clip: float | None = 10.0
    base_size: int | None = None
    eval_size: int | None = None
    fitness: str = "f1"
    recipe: str | None = None
    protocol: str | None = None
    val_conf: float = 0.5
    matcher: str = "iou:0.5"
    resize_masks: bool = False
    skip_defects: bool = False
    image_dir: str | None = None
    mask_dir: str | None = None
    mask_suffix: str = ""
    progress: bool = True
    deterministic: bool = True
    channels_last: bool = True
    compile: bool = False
    memory_fraction: float | None = None
    threads: int | None = None

    def check(self) -> None:
        """Raise :class:`InputError` for a value out of range or a missing ``model``/``root``."""
        self.check_values()
        if not self.model:
            raise InputError("--model is required (or --resume a run)")
        if not self.root:
            raise InputError("--root is required (or --resume a run)")

    def check_values(self) -> None:
        """Raise :class:`InputError` for a value out of range: the one check of ``train``'s options,
        run before anything else (a resumed run's saved settings are checked again by :meth:`check`)."""
        if self.epochs < 1:
            raise InputError(f"--epochs {self.epochs}: must be >= 1")
        if self.batch < 1:
            raise InputError(f"--batch {self.batch}: must be >= 1")
        try:
            check_input_size(self.imgsz)
        except ValueError as exc:
            raise InputError(f"--imgsz {self.imgsz}: {exc}") from None
        if self.base_size is not None and not self.imgsz <= self.base_size <= MAX_INPUT_SIZE:
            raise InputError(
                f"--base-size {self.base_size}: must be in [--imgsz {self.imgsz}, {MAX_INPUT_SIZE}] "
                "(--imgsz windows are cut from the --base-size canvas)"
            )
        if self.eval_size is not None:
            try:
                check_input_size(self.eval_size)
            except ValueError as exc:
                raise InputError(f"--eval-size {self.eval_size}: {exc}") from None
        if self.val_every < 1:
            raise InputError(f"--val-every {self.val_every}: must be >= 1")
        if self.optimizer not in DEFAULT_LR:
            raise InputError(f"--optimizer {self.optimizer!r}: expected {', '.join(DEFAULT_LR)}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"--schedule {self.schedule!r}: expected {', '.join(SCHEDULES)}")
        if self.schedule_step not in SCHEDULE_STEPS:
            raise InputError(f"--schedule-step {self.schedule_step!r}: expected {', '.join(SCHEDULE_STEPS)}")
        if self.weight_decay_rule not in WEIGHT_DECAY_RULES:
            raise InputError(
                f"--weight-decay-rule {self.weight_decay_rule!r}: expected {', '.join(WEIGHT_DECAY_RULES)}"
            )
        if self.fitness not in FITNESS_RULES:
            raise InputError(f"--fitness {self.fitness!r}: expected {', '.join(FITNESS_RULES)}")
        if self.lr is not None and not self.lr > 0:
            raise InputError(f"--lr {self.lr}: must be > 0")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise InputError(f"--weight-decay {self.weight_decay}: must be >= 0")
        if not 0.0 <= self.momentum < 1.0:
            raise InputError(f"--momentum {self.momentum}: must be in [0, 1)")
        if not 0.0 <= self.lr_final_ratio <= 1.0:
            raise InputError(f"--lr-final-ratio {self.lr_final_ratio}: must be in [0, 1]")
        if not self.poly_power > 0:
            raise InputError(f"--poly-power {self.poly_power}: must be > 0")
        if not (self.warmup_epochs >= 0 and self.warmup_iters >= 0):
            raise InputError(f"warm-up {self.warmup_epochs} epochs / {self.warmup_iters} iterations: must be >= 0")
        if not 0.0 <= self.warmup_start_ratio <= 1.0:
            raise InputError(f"--warmup-start-ratio {self.warmup_start_ratio}: must be in [0, 1]")
        if self.warmup_bias_lr is not None and not (self.warmup_bias_lr >= 0 and math.isfinite(self.warmup_bias_lr)):
            raise InputError(f"--warmup-bias-lr {self.warmup_bias_lr}: must be a finite number >= 0 (or none)")
        if self.warmup_momentum is not None:
            if not 0.0 <= self.warmup_momentum < 1.0:
                raise InputError(f"--warmup-momentum {self.warmup_momentum}: must be in [0, 1) (or none)")
            if self.optimizer != "sgd":
                raise InputError(f"--warmup-momentum applies to SGD's momentum, not --optimizer {self.optimizer}")
        if self.max_det < 1:
            raise InputError(f"--max-det {self.max_det}: must be >= 1")
        if self.grad_clip is not None and not (self.grad_clip > 0 and math.isfinite(self.grad_clip)):
            raise InputError(f"--grad-clip {self.grad_clip}: must be a finite number > 0 (or none)")
        if self.nominal_batch is not None and self.nominal_batch < 1:
            raise InputError(f"--nominal-batch {self.nominal_batch}: must be >= 1")
        try:
            check_augment(self.augment_config())
        except ValueError as exc:
            name, _, rest = str(exc).partition(" ")
            raise InputError(f"--{name.replace('_', '-')} {rest}") from None
        if not 0.0 < self.val_conf <= 1.0:
            raise InputError(f"--val-conf {self.val_conf}: must be in (0, 1]")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise InputError(f"--workers {self.workers}: must be in [0, {MAX_WORKERS}]")
        if self.memory_fraction is not None and not 0.0 < self.memory_fraction <= 1.0:
            raise InputError(f"--memory-fraction {self.memory_fraction}: must be in (0, 1]")
        most_threads = MAX_THREADS_PER_CPU * (os.cpu_count() or 1)
        if self.threads is not None and not 1 <= self.threads <= most_threads:
            raise InputError(f"--threads {self.threads}: must be in [1, {most_threads}] "
                             f"({MAX_THREADS_PER_CPU} per CPU of this machine)")

    def with_absolute_root(self) -> TrainConfig:
        """This config with ``root`` made absolute (what a run records: its resume must find the
        same dataset from any working folder)."""
        return replace(self, root=str(Path(self.root).resolve())) if self.root else self

    @property
    def eval_side(self) -> int:
        """Side of the validation input and of the checkpoint's ``input_size`` (predict's default)."""
        return int(self.eval_size or self.imgsz)

    @property
    def base_lr(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)

    @property
    def base_weight_decay(self) -> float:
        return DEFAULT_WEIGHT_DECAY[self.optimizer] if self.weight_decay is None else float(self.weight_decay)

    def augment_config(self) -> AugmentConfig:
        """The augmentation of this run (:meth:`AugmentConfig.off` with ``augment=False``)."""
        if not self.augment:
            return AugmentConfig.off(pad_value=float(self.pad_value))
        names = ("fliplr", "flipud", "scale", "translate", "mosaic", "mixup", "hsv_h", "hsv_s", "hsv_v", "brightness",
                 "contrast", "noise", "crop", "crop_min_side", "mosaic9", "min_box_side", "mixup_beta")
        styles = ("mosaic_style", "window_style", "mixup_partner")
        return AugmentConfig(
            **{name: float(getattr(self, name)) for name in names},
            **{name: getattr(self, name) for name in styles},
            pad_value=float(self.pad_value),
        )


def config_fields() -> set[str]:
    return {f.name for f in fields(TrainConfig)}


def changed_fields(config: TrainConfig) -> set[str]:
    """Settings of ``config`` that differ from the defaults (what a library caller set)."""
    default = TrainConfig()
    return {f.name for f in fields(TrainConfig) if getattr(config, f.name) != getattr(default, f.name)}


def apply_recipe(config: TrainConfig, explicit: set[str]) -> tuple[TrainConfig, dict | None]:
    """``config`` with its model's recipe applied, and the recipe's record.

    Which recipe: :func:`reference_model.recipe.resolve_recipe_name` (the one rule of ``train`` and
    ``reproduce``): ``config.recipe`` if named, the model's ``DEFAULT_RECIPE`` if ``None``, no recipe
    for ``"none"``. Recipe training settings fill every field not in ``explicit``; a setting of
    :data:`RECIPE_UNNAMED_SETTINGS` the recipe does not name gets that value (unless explicit);
    recipe model options are builder keywords under ``config.model_overrides`` (explicit switches
    win). The returned config's ``recipe`` is the recipe applied (``None``: the engine's defaults),
    and its record is ``None`` then.

    Raises
    ------
    InputError
        Unknown recipe, or a recipe naming a field ``TrainConfig`` does not have (or one a recipe
        may not set, :data:`NOT_RECIPE_FIELDS`).
    """
    from reference_model.recipe import NO_RECIPE, find_recipe, resolve_recipe_name

    if not config.model:
        if config.recipe and config.recipe != NO_RECIPE:
            raise InputError("--recipe needs --model")
        return replace(config, recipe=None), None
    name = resolve_recipe_name(config.model, config.recipe)
    if name is None:
        protocol = _protocol_settings(config.protocol, {"imgsz": config.imgsz, "base_size": config.base_size})
        updates = {k: v for k, v in protocol.items() if k not in explicit}
        return replace(config, **updates, recipe=None), None
    recipe = find_recipe(config.model, name)
    known = config_fields()
    unknown = sorted(set(recipe.train) - known)
    if unknown:
        raise InputError(
            f"recipe {recipe.name!r} of {config.model}: {', '.join(unknown)} is not a training setting "
            "(TrainConfig field)"
        )
    forbidden = sorted(set(recipe.train) & set(NOT_RECIPE_FIELDS))
    if forbidden:
        raise InputError(f"recipe {recipe.name!r} of {config.model}: may not set {', '.join(forbidden)}")
    settings = {**RECIPE_UNNAMED_SETTINGS, **recipe.train}
    sizes = {k: v for k, v in settings.items() if k in ("imgsz", "base_size") and k not in explicit}
    sizes = {"imgsz": config.imgsz, "base_size": config.base_size, **sizes}
    settings.update(_protocol_settings(config.protocol, sizes))
    updates = {k: v for k, v in settings.items() if k not in explicit}
    overrides = {**dict(recipe.model_options), **dict(config.model_overrides)}
    return replace(config, **updates, recipe=name, model_overrides=overrides), recipe.to_dict()


def _protocol_settings(name: str | None, sizes: dict) -> dict:
    """The ``TrainConfig`` settings of protocol ``name`` for a run of these ``imgsz``/``base_size``."""
    if not name:
        return {}
    from reference_model.protocol import find_protocol

    return find_protocol(name).settings(sizes)


def recipe_summary(config: TrainConfig, record: dict | None, explicit: set[str], *, asked: str | None) -> str:
    """One line saying which recipe a run uses and which of its values the command line overrode.

    ``config`` is the applied config, ``record`` :func:`apply_recipe`'s, ``asked`` the ``--recipe`` given.
    """
    protocol = {k: getattr(config, k) for k in ("imgsz", "base_size", "eval_size")} if config.protocol else {}
    by_protocol = [f"{k}={v!r}" for k, v in sorted(protocol.items()) if k not in explicit]
    under = f" under protocol {config.protocol} ({', '.join(by_protocol) or 'no change'})" if config.protocol else ""
    if record is None:
        why = "--recipe none" if asked else f"{config.model} has no default recipe"
        return f"recipe: none (the engine's defaults; {why}){under}"
    how = "asked with --recipe" if asked else f"default of {config.model}; --recipe none for the engine's defaults"
    settings = {**RECIPE_UNNAMED_SETTINGS, **record["train"]}
    overridden = [
        f"{k}={getattr(config, k)!r} (recipe {v!r})"
        for k, v in sorted(settings.items())
        if k in explicit and getattr(config, k) != v
    ]
    overridden += [
        f"{k}={config.model_overrides[k]!r} (recipe {v!r})"
        for k, v in sorted(record["model_options"].items())
        if k in config.model_overrides and config.model_overrides[k] != v
    ]
    tail = f"; overridden on the command line: {', '.join(overridden)}" if overridden else ""
    return f"recipe: {record['name']} ({how}){under}{tail}"


def resume_config(config: TrainConfig, explicit: set[str]) -> tuple[TrainConfig, dict, Path]:
    """The saved run's settings with the allowed changes, its last checkpoint, and the run folder."""
    resume = Path(config.resume)
    path = resume / LAST_NAME if resume.is_dir() else resume
    checkpoint = load_checkpoint(path)
    saved = dict(checkpoint.get("train_args") or {})
    if not saved:
        raise InputError(f"{path}: checkpoint has no training state to resume (released weights?)")
    # The checkpoint's model is rebuilt only if it is a registry model, or the custom builder the
    # user named again with --model (a file never chooses code to run).
    checked_model_name(checkpoint, path, config.model if "model" in explicit and config.model else None)
    if checkpoint.get("optimizer") is None:
        raise InputError(f"{path}: checkpoint has no optimizer state to resume")
    known = config_fields()
    merged = {k: v for k, v in saved.items() if k in known}
    for name in RESUME_MAY_CHANGE:
        if name in explicit or name not in merged:
            merged[name] = getattr(config, name)
    merged["resume"] = str(config.resume)
    merged["out"] = str(config.out) if "out" in explicit and config.out else str(path.parent)
    merged["root"] = resumed_root(saved.get("root"), config.root if "root" in explicit else None, path)
    return TrainConfig(**merged), checkpoint, path


def resumed_root(recorded: str | None, given: str | None, checkpoint: Path) -> str:
    """The dataset root a resumed run trains on, absolute.

    New runs record their root absolute (:meth:`TrainConfig.with_absolute_root`), so resuming
    from another working folder trains on the same data. The recorded root is used when it is
    found; ``given`` (``--root``) only locates a root that is not (a dataset moved, or a run that
    recorded a relative root without saying relative to what), and may not switch a run to
    other data. Otherwise :class:`InputError`.
    """
    saved = Path(str(recorded or ""))
    if recorded and saved.is_absolute() and saved.is_dir():
        if given and Path(given).resolve() != saved.resolve():
            raise InputError(f"--root {given}: {checkpoint} was trained on {saved}; a resumed run keeps its dataset")
        return str(saved)
    if given:
        if not Path(given).is_dir():
            raise InputError(f"--root {given}: dataset root not found")
        return str(Path(given).resolve())
    if recorded and not saved.is_absolute():
        raise InputError(
            f"{checkpoint}: the run recorded its dataset root as {recorded!r}, relative to a working folder it did "
            "not record; give the dataset again with --root"
        )
    raise InputError(f"{checkpoint}: the run's dataset root {recorded!r} is not found (moved?); give it with --root")
