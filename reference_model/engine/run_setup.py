"""What a run builds before its first epoch: its data and the optimization of its model.

:func:`load_run_data` opens the dataset, resolves the split family and decodes the training
split (and, on rank 0, the validation split) onto the training device. :func:`build_optimization`
wraps the model (DDP, ``torch.compile``) and builds the EMA, the optimizer, gradient
accumulation, the learning-rate schedule, the adversary's optimizer and the AMP scaler;
:func:`restore_optimization` loads their state from a checkpoint when a run resumes, and
:func:`resumed_progress` the epochs done, best fitness and results rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from irstd_bench.datasets import Dataset, open_dataset
from irstd_bench.errors import InputError

from .adversary import Adversary, adversary_of
from .augment import AugmentConfig
from .config import TrainConfig
from .data import LetterboxedTensors, SplitPlan, ground_truth, load_letterboxed, plan_splits
from .distributed import DistContext
from .ema import ModelEMA
from .runtime import amp_dtype_for, build_optimizer
from .schedule import Accumulation, WarmupSchedule


@dataclass
class RunData:
    """The data of a run, held on the training device.

    Attributes
    ----------
    dataset : Dataset
    plan : SplitPlan
        The train and val splits used.
    augment : AugmentConfig
    train_data : LetterboxedTensors
        The training split at ``base_size`` (or ``imgsz``) px.
    sampler : DistributedSampler
        This rank's share of each epoch, shuffled by ``(seed, epoch)``.
    val_data : LetterboxedTensors or None
        The validation split at ``imgsz`` px (rank 0 only; ``None`` elsewhere).
    val_truth : list or None
        Its native-pixel ground truth (rank 0 only).
    """

    dataset: Dataset
    plan: SplitPlan
    augment: AugmentConfig
    train_data: LetterboxedTensors
    sampler: DistributedSampler
    val_data: LetterboxedTensors | None
    val_truth: Sequence | None


def load_run_data(cfg: TrainConfig, ctx: DistContext, log: Callable[[str], None]) -> RunData:
    """Open ``cfg``'s dataset and decode its train (and, on rank 0, val) split onto ``ctx.device``.

    ``log`` receives the run's data summary (and a warning when validation uses the test split).
    Raises :class:`InputError` when the training split has no targets.
    """
    ds = open_dataset(
        cfg.root,
        cfg.dataset,
        image_dir=cfg.image_dir,
        mask_dir=cfg.mask_dir,
        mask_suffix=cfg.mask_suffix,
        skip_defects=cfg.skip_defects,
    )
    plan = plan_splits(ds, cfg.split)
    if plan.val_is_test:
        log(
            f"warning: split family {plan.family!r} has no val split; validating on {plan.val} "
            "(best.pt is then selected on the test set)"
        )
    train_samples = ds.samples(plan.train)
    val_samples = ds.samples(plan.val)
    augment = cfg.augment_config()
    train_data = load_letterboxed(
        train_samples,
        cfg.base_size or cfg.imgsz,
        ctx.device,
        dataset=ds,
        resize_masks=cfg.resize_masks,
        workers=cfg.workers,
        pad_value=cfg.pad_value,
    )
    n_targets = train_data.n_targets
    if n_targets == 0:
        raise InputError(f"{ds.root}: training split {plan.train} has no targets in its masks")
    sampler = DistributedSampler(
        range(len(train_data)),
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=True,
        seed=cfg.seed,
        drop_last=False,
    )
    val_data = val_truth = None
    if ctx.is_main:
        val_data = load_letterboxed(
            val_samples, cfg.eval_side, ctx.device, dataset=ds, resize_masks=cfg.resize_masks, workers=cfg.workers,
            pad_value=cfg.pad_value,
        )
        val_truth = ground_truth(val_samples, ds, cfg.resize_masks)
    log(
        f"{ds.layout.title} at {ds.root}: train {plan.train} ({len(train_samples)} images, {n_targets} "
        f"targets), val {plan.val} ({len(val_samples)} images)"
    )
    return RunData(ds, plan, augment, train_data, sampler, val_data, val_truth)


@dataclass
class Optimization:
    """What steps a model during a run.

    Attributes
    ----------
    ema : ModelEMA or None
    model : nn.Module
        The model as trained: DDP-wrapped under torchrun, else the model itself.
    forward : callable
        ``model``, compiled when ``config.compile``.
    accumulate : int
        Batches whose gradients are summed before each optimizer step once warmed up (``nominal_batch``).
    accumulation : Accumulation
        The batches per step at each iteration (``accumulate_ramp``: rising over the warm-up).
    optimizer : torch.optim.Optimizer
    scheduler : WarmupSchedule
    adversary : Adversary or None
        An adversarial model's discriminator optimizer and schedule (:mod:`.adversary`).
    amp_dtype : torch.dtype or None
        Autocast dtype (``None``: full precision).
    scaler : torch.amp.GradScaler
        Enabled for float16 autocast only.
    """

    ema: ModelEMA | None
    model: nn.Module
    forward: Callable
    accumulate: int
    accumulation: Accumulation
    optimizer: torch.optim.Optimizer
    scheduler: WarmupSchedule
    adversary: Adversary | None
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler


def build_optimization(
    raw: nn.Module, cfg: TrainConfig, ctx: DistContext, per_epoch: int, model_name: str
) -> Optimization:
    """DDP wrapper, EMA, optimizer, accumulation, schedule, adversary and AMP of model ``raw``.

    ``per_epoch``: iterations per epoch (the schedule runs ``cfg.epochs x per_epoch`` steps).
    With ``nominal_batch`` the weight decay is scaled by ``images per nominal step / nominal_batch``
    (the nominal step's, also while ``accumulate_ramp`` ramps the steps up, as YOLOv7).
    Raises :class:`InputError` for an adversarial model under torchrun or with accumulation.
    """
    ema = ModelEMA(raw, decay=cfg.ema_decay) if cfg.ema else None
    if ctx.enabled:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = DistributedDataParallel(raw, device_ids=ids)
    else:
        model = raw
    forward = torch.compile(model) if cfg.compile else model
    images_per_batch = cfg.batch * ctx.world_size
    warmup = max(round(cfg.warmup_epochs * per_epoch), int(cfg.warmup_iters))
    ratio = cfg.nominal_batch / images_per_batch if cfg.nominal_batch else 1.0
    accumulation = Accumulation(ratio, warmup, ramp=cfg.accumulate_ramp)
    accumulate = accumulation.nominal
    weight_decay = cfg.base_weight_decay
    if cfg.nominal_batch:
        weight_decay *= images_per_batch * accumulate / cfg.nominal_batch
    optimizer = build_optimizer(raw, cfg, weight_decay, skip=adversary_of(raw))

    def schedule(optimizer: torch.optim.Optimizer) -> WarmupSchedule:
        return WarmupSchedule(
            optimizer,
            cfg.epochs * per_epoch,
            warmup,
            kind=cfg.schedule,
            final_factor=cfg.lr_final_ratio,
            poly_power=cfg.poly_power,
            start_factor=cfg.warmup_start_ratio,
            bias_start_lr=cfg.warmup_bias_lr,
            start_momentum=cfg.warmup_momentum,
            steps_per_epoch=per_epoch if cfg.schedule_step == "epoch" else None,
        )

    scheduler = schedule(optimizer)
    adversary = Adversary.build(raw, cfg, weight_decay, schedule)
    if adversary is not None:
        check_adversarial(model_name, ctx, accumulate, cfg.nominal_batch)
    amp_dtype = amp_dtype_for(ctx.device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return Optimization(
        ema, model, forward, accumulate, accumulation, optimizer, scheduler, adversary, amp_dtype, scaler
    )


def check_adversarial(model_name: str, ctx: DistContext, accumulate: int, nominal_batch: int | None) -> None:
    """An adversarial run steps the discriminator once per batch, in one process."""
    if ctx.enabled:
        raise InputError(f"model {model_name} trains adversarially: run it in one process (not torchrun)")
    if accumulate != 1:
        raise InputError(
            f"model {model_name} trains adversarially (one discriminator and one generator step per "
            f"batch): --nominal-batch {nominal_batch} would accumulate {accumulate} batches"
        )


def restore_optimization(opt: Optimization, ckpt: dict, total_steps: int, source: Path) -> None:
    """Load ``opt``'s state from checkpoint ``ckpt`` (read from ``source``).

    ``total_steps``: the schedules' new length (``--epochs`` may extend a run).
    """
    opt.optimizer.load_state_dict(ckpt["optimizer"])
    opt.scheduler.load_state_dict(ckpt["scheduler"])
    opt.scheduler.set_total_steps(total_steps)
    if opt.ema is not None and ckpt.get("ema"):
        opt.ema.load_state_dict(ckpt["ema"])
    if ckpt.get("scaler"):
        opt.scaler.load_state_dict(ckpt["scaler"])
    if opt.adversary is not None:
        opt.adversary.load_state_dict(ckpt.get("adversary"), source, total_steps)


def resumed_progress(ckpt: dict, epochs: int, source: str | Path) -> tuple[int, list[float] | None, dict, list[dict]]:
    """``(epochs done, best fitness, best metrics, results rows)`` saved in checkpoint ``ckpt``.

    Raises :class:`InputError` when the run already did ``epochs`` epochs (read from ``source``).
    """
    start_epoch = int(ckpt["epoch"])
    best_fitness = ckpt.get("best_fitness")
    best_metrics = dict(ckpt.get("best_metrics") or {})
    history = list(ckpt.get("history") or [])
    if start_epoch >= epochs:
        raise InputError(
            f"{source}: run already finished {start_epoch} of {epochs} epochs (give a larger --epochs to continue it)"
        )
    return start_epoch, best_fitness, best_metrics, history
