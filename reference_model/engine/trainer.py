"""The training loop shared by detectors and segmenters.

>>> from reference_model.engine import TrainConfig, train                        # doctest: +SKIP
>>> result = train(TrainConfig(root="data/NUAA-SIRST", dataset="nuaa", split="idx_427",
...                            model="eflnet-n", epochs=400, imgsz=512, batch=16, out="runs/n"))  # doctest: +SKIP

A run folder ``out`` receives ``args.json`` (the settings), ``results.csv`` (one row per
epoch: learning rate, each named loss term, validation metrics), ``last.pt`` (every epoch) and
``best.pt`` (best validation fitness: target-level F1 at ``val_conf``, ties broken by AP50 for
detectors and IoU for segmenters). Validation runs the EMA weights through
:func:`~.predict.predict_batch` and scores them with :func:`irstd_bench.evaluate.evaluate` in
native pixels, as ``irstd-bench eval`` would score the files ``predict`` writes.

Everything a run depends on is checkpointed every epoch (model, optimizer, schedule, EMA,
AMP scaler, generator states, epoch, best fitness, the CSV rows), so ``resume`` continues a
killed run where its last completed epoch ended.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from irstd_bench._io import write_text_atomic
from irstd_bench._outputs import (
    MANIFEST_NAME,
    check_folder_replaceable,
    missing_ancestors,
    remove_empty,
    write_manifest,
)
from irstd_bench.datasets import open_dataset
from irstd_bench.errors import InputError
from irstd_bench.evaluate import evaluate
from irstd_bench.targets import mask_to_targets

from .checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    build_named_model,
    checked_model_name,
    load_checkpoint,
    load_model_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .data import EpochTaggedSampler, IRDataset, collate, ground_truth, plan_splits
from .distributed import DistContext, init_distributed, shutdown_distributed
from .ema import ModelEMA
from .predict import autocast_context, predict_batch
from .schedule import WarmupCosine
from .transforms import AugmentConfig, check_input_size

#: Default base learning rate and weight decay per optimizer.
DEFAULT_LR = {"sgd": 0.01, "adamw": 0.001}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}
#: Gradients are clipped to this global L2 norm.
MAX_GRAD_NORM = 10.0
#: Score threshold given to ``postprocess`` during validation (the evaluator applies ``val_conf``).
VALIDATION_POSTPROCESS_CONF = 0.001
#: Validation metrics kept per task (``None`` where undefined, e.g. precision without predictions).
VALIDATION_KEYS = {
    "detect": ("f1", "precision", "recall", "best_f1", "ap50"),
    "segment": ("f1", "precision", "recall", "best_f1", "iou", "niou", "pd", "fa_e6"),
}
#: Settings of a resumed run that may differ from the saved ones.
RESUME_MAY_CHANGE = ("epochs", "device", "workers", "resume", "out", "progress")

LAST_NAME, BEST_NAME, CSV_NAME, ARGS_NAME = "last.pt", "best.pt", "results.csv", "args.json"


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
    lr, weight_decay : float or None
        ``None``: :data:`DEFAULT_LR` / :data:`DEFAULT_WEIGHT_DECAY` of the optimizer.
    momentum : float
        SGD momentum (Nesterov), or AdamW's beta1.
    warmup_epochs : float
        Linear warm-up length in epochs (fractions allowed), then cosine decay.
    val_every : int
        Validate every N epochs (and always after the last).
    val_conf : float
        Confidence threshold of the validation F1; ``matcher`` the evaluator's matching rule.
    amp : bool
        Mixed precision on CUDA (bf16 where supported, else fp16 with loss scaling); ignored on the CPU.
    augment, mosaic : bool, float
        Training augmentation on/off; mosaic probability.
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
    warmup_epochs: float = 3.0
    ema: bool = True
    ema_decay: float = 0.9999
    amp: bool = True
    seed: int = 0
    workers: int = 2
    resume: str | None = None
    augment: bool = True
    mosaic: float = 0.0
    val_conf: float = 0.5
    matcher: str = "iou:0.5"
    resize_masks: bool = False
    skip_defects: bool = False
    image_dir: str | None = None
    mask_dir: str | None = None
    mask_suffix: str = ""
    progress: bool = True
    deterministic: bool = True

    def check(self) -> None:
        """Raise :class:`InputError` for a value out of range."""
        if self.epochs < 1:
            raise InputError(f"--epochs {self.epochs}: must be >= 1")
        if self.batch < 1:
            raise InputError(f"--batch {self.batch}: must be >= 1")
        try:
            check_input_size(self.imgsz)
        except ValueError as exc:
            raise InputError(f"--imgsz {self.imgsz}: {exc}") from None
        if self.val_every < 1:
            raise InputError(f"--val-every {self.val_every}: must be >= 1")
        if self.optimizer not in DEFAULT_LR:
            raise InputError(f"--optimizer {self.optimizer!r}: expected sgd or adamw")
        if self.lr is not None and not self.lr > 0:
            raise InputError(f"--lr {self.lr}: must be > 0")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise InputError(f"--weight-decay {self.weight_decay}: must be >= 0")
        if not 0.0 <= self.momentum < 1.0:
            raise InputError(f"--momentum {self.momentum}: must be in [0, 1)")
        if not self.warmup_epochs >= 0:
            raise InputError(f"--warmup-epochs {self.warmup_epochs}: must be >= 0")
        if not 0.0 <= self.mosaic <= 1.0:
            raise InputError(f"--mosaic {self.mosaic}: must be in [0, 1]")
        if not 0.0 < self.val_conf <= 1.0:
            raise InputError(f"--val-conf {self.val_conf}: must be in (0, 1]")
        if self.workers < 0:
            raise InputError(f"--workers {self.workers}: must be >= 0")
        if not self.model:
            raise InputError("--model is required (or --resume a run)")
        if not self.root:
            raise InputError("--root is required (or --resume a run)")

    @property
    def base_lr(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)

    @property
    def base_weight_decay(self) -> float:
        return DEFAULT_WEIGHT_DECAY[self.optimizer] if self.weight_decay is None else float(self.weight_decay)


@dataclass
class TrainResult:
    """What a run ended with: its folder, epochs done, best fitness and metrics, CSV rows."""

    out: Path
    epochs_done: int
    best_fitness: list[float] | None
    best_metrics: dict
    history: list[dict]


def _log(ctx: DistContext, message: str) -> None:
    if ctx.is_main:
        click.echo(message, err=True)


def _fitness(metrics: dict, task: str) -> list[float]:
    """``[F1, tie-breaker]`` (AP50 for detectors, IoU for segmenters); missing values count 0."""
    second = metrics.get("ap50") if task == "detect" else metrics.get("iou")
    return [float(metrics.get("f1") or 0.0), float(second or 0.0)]


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and kernels only, not on biases and norm scales."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _resume_config(config: TrainConfig, explicit: set[str]) -> tuple[TrainConfig, dict, Path]:
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
    known = {f.name for f in fields(TrainConfig)}
    merged = {k: v for k, v in saved.items() if k in known}
    for name in RESUME_MAY_CHANGE:
        if name in explicit or name not in merged:
            merged[name] = getattr(config, name)
    merged["resume"] = str(config.resume)
    merged["out"] = str(config.out) if "out" in explicit and config.out else str(path.parent)
    return TrainConfig(**merged), checkpoint, path


class Trainer:
    """One training run; see :func:`train`."""

    def __init__(
        self,
        config: TrainConfig,
        ctx: DistContext,
        *,
        explicit: set[str] | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None,
        force: bool = False,
    ) -> None:
        self.ctx = ctx
        self.on_epoch_end = on_epoch_end
        self.checkpoint = None
        if config.resume:
            given = explicit if explicit is not None else changed_fields(config)
            config, self.checkpoint, self.resume_path = _resume_config(config, given)
        config.check()
        self.config = config
        self.out = Path(config.out or Path("runs") / "train")
        if self.checkpoint is None and (self.out / LAST_NAME).exists() and not force:
            raise InputError(
                f"--out {self.out}: already holds a run ({LAST_NAME}); use --resume {self.out}, --force "
                "or another --out"
            )
        self.replace_earlier = False
        if self.checkpoint is None:
            # A new run writes args.json, results.csv, last.pt and best.pt: never over a user's
            # files; an earlier run (its manifest lists every file) is replaced only with --force.
            check_folder_replaceable(self.out, force=force)
            self.replace_earlier = self.out.is_dir() and any(self.out.iterdir())
        self.device = ctx.device

    # ---------------------------------------------------------------- setup
    def _seed(self) -> None:
        seed = self.config.seed
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True

    def _data(self) -> None:
        cfg = self.config
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
            _log(
                self.ctx,
                f"warning: split family {plan.family!r} has no val split; validating on {plan.val} "
                "(best.pt is then selected on the test set)",
            )
        train_samples = ds.samples(plan.train)
        val_samples = ds.samples(plan.val)
        self.dataset, self.plan = ds, plan
        augment = AugmentConfig(mosaic=cfg.mosaic) if cfg.augment else None
        self.train_set = IRDataset(
            train_samples,
            cfg.imgsz,
            augment=augment,
            seed=cfg.seed,
            dataset=ds,
            resize_masks=cfg.resize_masks,
        )
        n_targets = sum(len(mask_to_targets(mask)) for mask in self.train_set.preload())
        if n_targets == 0:
            raise InputError(f"{ds.root}: training split {plan.train} has no targets in its masks")
        self.sampler = EpochTaggedSampler(
            DistributedSampler(
                self.train_set,
                num_replicas=self.ctx.world_size,
                rank=self.ctx.rank,
                shuffle=True,
                seed=cfg.seed,
                drop_last=False,
            )
        )
        pin = self.device.type == "cuda"
        self.train_loader = DataLoader(
            self.train_set,
            batch_size=cfg.batch,
            sampler=self.sampler,
            num_workers=cfg.workers,
            collate_fn=collate,
            pin_memory=pin,
            persistent_workers=cfg.workers > 0,  # no worker start-up cost at every epoch
        )
        if self.ctx.is_main:
            self.val_set = IRDataset(
                val_samples, cfg.imgsz, augment=None, dataset=ds, resize_masks=cfg.resize_masks
            )
            self.val_set.preload()
            self.val_loader = DataLoader(
                self.val_set,
                batch_size=cfg.batch,
                shuffle=False,
                num_workers=cfg.workers,
                collate_fn=collate,
                persistent_workers=cfg.workers > 0,
            )
            self.val_truth = ground_truth(val_samples, ds, cfg.resize_masks)
        _log(
            self.ctx,
            f"{ds.layout.title} at {ds.root}: train {plan.train} ({len(train_samples)} images, {n_targets} "
            f"targets), val {plan.val} ({len(val_samples)} images)",
        )

    def _model(self) -> None:
        """Build the model (first, so a bad name or keyword fails before any data is read)."""
        cfg, ckpt = self.config, self.checkpoint
        if ckpt is not None:
            model = build_named_model(ckpt["model_name"], **dict(ckpt["model_config"]))
            load_model_state(model, ckpt["model"], self.resume_path)
        else:
            model = build_named_model(cfg.model, **cfg.model_overrides)
        self.model_name = model.model_name
        self.task = model.task
        self.raw = model.to(self.device)

    def _optimization(self) -> None:
        """DDP wrapper, EMA, optimizer, schedule and AMP; restores their state when resuming."""
        cfg, ckpt = self.config, self.checkpoint
        self.ema = ModelEMA(self.raw, decay=cfg.ema_decay) if cfg.ema else None
        if self.ctx.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.raw, device_ids=ids)
        else:
            self.model = self.raw
        groups = _param_groups(self.raw, cfg.base_weight_decay)
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=cfg.base_lr, momentum=cfg.momentum, nesterov=True)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=cfg.base_lr, betas=(cfg.momentum, 0.999))
        per_epoch = max(1, len(self.train_loader))
        self.scheduler = WarmupCosine(
            self.optimizer, cfg.epochs * per_epoch, round(cfg.warmup_epochs * per_epoch)
        )
        self.amp_dtype = None
        if cfg.amp and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.start_epoch, self.best_fitness, self.best_metrics, self.history = 0, None, {}, []
        if ckpt is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scheduler.set_total_steps(cfg.epochs * per_epoch)  # --epochs may extend a run
            if self.ema is not None and ckpt.get("ema"):
                self.ema.load_state_dict(ckpt["ema"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            self.start_epoch = int(ckpt["epoch"])
            self.best_fitness = ckpt.get("best_fitness")
            self.best_metrics = dict(ckpt.get("best_metrics") or {})
            self.history = list(ckpt.get("history") or [])
            if self.start_epoch >= cfg.epochs:
                raise InputError(
                    f"{self.resume_path}: run already finished {self.start_epoch} of {cfg.epochs} epochs "
                    "(give a larger --epochs to continue it)"
                )

    # ---------------------------------------------------------------- epochs
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        self.model.train()
        self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(
            self.train_loader,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            file=sys.stderr,
            disable=not (self.ctx.is_main and cfg.progress),
            dynamic_ncols=True,
            leave=False,
        )
        for iteration, (images, targets, _) in enumerate(bar):
            images = images.to(self.device, non_blocking=True)
            targets = [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets]
            with autocast_context(self.device, self.amp_dtype):
                outputs = self.model(images)
                terms = self.raw.compute_loss(outputs, targets)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise InputError(
                    f"loss is not finite at epoch {epoch + 1}, iteration {iteration + 1} "
                    f"({', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())}); try a lower --lr"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.raw.parameters(), MAX_GRAD_NORM)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.raw)
            n = images.shape[0]
            count += n
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach()) * n
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * n
            bar.set_postfix({k: f"{v / count:.4g}" for k, v in sums.items()}, refresh=False)
        bar.close()
        keys = sorted(sums)
        totals = torch.tensor([sums[k] for k in keys] + [count], dtype=torch.float64)
        if self.ctx.enabled:
            import torch.distributed as dist

            dist.all_reduce(totals)  # gloo/nccl: sums over ranks of the per-rank sums
        n_total = max(float(totals[-1]), 1.0)
        return {k: float(totals[i]) / n_total for i, k in enumerate(keys)}

    @torch.no_grad()
    def validate(self) -> dict:
        """Target-level metrics of the EMA (or raw) model on the validation split, native pixels."""
        model = self.ema.module if self.ema is not None else self.raw
        was_training = model.training
        model.eval()
        predictions = []
        for images, _, meta in self.val_loader:
            predictions.extend(
                predict_batch(
                    model,
                    images.to(self.device),
                    meta,
                    conf=VALIDATION_POSTPROCESS_CONF,
                    amp_dtype=self.amp_dtype,
                )
            )
        model.train(was_training)
        result = evaluate(self.val_truth, predictions, matcher=self.config.matcher, conf=self.config.val_conf)
        keys = VALIDATION_KEYS[self.task]
        return {k: result.metrics.get(k) for k in keys}

    def _checkpoint(self, epoch: int, metrics: dict) -> dict:
        cfg = self.config
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model_name": self.model_name,
            "model_config": dict(self.raw.config),
            "task": self.task,
            "input_size": cfg.imgsz,
            "model": self.raw.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": epoch + 1,
            "best_fitness": self.best_fitness,
            "best_metrics": dict(self.best_metrics),
            "metrics": dict(metrics),
            "history": [dict(r) for r in self.history],
            "rng": rng_state(),
            "train_args": _jsonable(asdict(cfg)),
            "dataset": {"name": self.dataset.name, "train": self.plan.train, "val": self.plan.val},
        }

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.history:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.history:
            writer.writerow({k: _csv_value(row.get(k)) for k in columns})
        write_text_atomic(self.out / CSV_NAME, buffer.getvalue())

    def _write_args(self) -> None:
        info = {
            **_jsonable(asdict(self.config)),
            "model_name": self.model_name,
            "model_config": _jsonable(dict(self.raw.config)),
            "task": self.task,
            "dataset_name": self.dataset.name,
            "train_split": self.plan.train,
            "val_split": self.plan.val,
            "val_is_test": self.plan.val_is_test,
            "world_size": self.ctx.world_size,
            "device": str(self.device),
            "amp_dtype": None if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", ""),
        }
        write_text_atomic(self.out / ARGS_NAME, json.dumps(info, indent=2) + "\n")

    def run(self) -> TrainResult:
        new_run = self.checkpoint is None
        self._seed()
        self._model()
        self._data()
        self._optimization()
        created: list[Path] = []
        if self.ctx.is_main:
            if self.replace_earlier:  # checked in __init__: every file is listed in our manifest
                shutil.rmtree(self.out)
            created = _make_run_folder(self.out)
            self._write_args()
            write_manifest(self.out, "train")
        try:
            return self._epochs()
        except BaseException:
            # A run that failed before its first checkpoint leaves nothing (no lone args.json).
            if self.ctx.is_main and new_run and not (self.out / LAST_NAME).exists():
                for name in (ARGS_NAME, CSV_NAME, MANIFEST_NAME):
                    (self.out / name).unlink(missing_ok=True)
                remove_empty(created)
            raise

    def _epochs(self) -> TrainResult:
        cfg = self.config
        if self.checkpoint is not None:
            set_rng_state(self.checkpoint["rng"])
            _log(self.ctx, f"resuming {self.resume_path} after epoch {self.start_epoch}")
            self.checkpoint = None  # free the loaded tensors
        for epoch in range(self.start_epoch, cfg.epochs):
            start = time.perf_counter()
            losses = self._train_epoch(epoch)
            if hasattr(self.raw, "on_epoch_end"):
                self.raw.on_epoch_end()
            metrics: dict = {}
            if self.ctx.is_main:
                if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                    metrics = self.validate()
                    fitness = _fitness(metrics, self.task)
                    improved = self.best_fitness is None or fitness > list(self.best_fitness)
                    if improved:
                        self.best_fitness, self.best_metrics = fitness, dict(metrics, epoch=epoch + 1)
                else:
                    improved = False
                row = {"epoch": epoch + 1, "lr": self.scheduler.last_lr()}
                row.update({f"train/{k}": v for k, v in losses.items()})
                row.update({f"val/{k}": v for k, v in metrics.items()})
                row["time_s"] = time.perf_counter() - start
                self.history.append(row)
                checkpoint = self._checkpoint(epoch, metrics)
                save_checkpoint(self.out / LAST_NAME, checkpoint)
                if improved:
                    save_checkpoint(self.out / BEST_NAME, checkpoint)
                self._write_csv()
                write_manifest(self.out, "train")
                summary = " ".join(f"{k}={v:.4g}" for k, v in losses.items())
                shown = {k: v for k, v in metrics.items() if k in ("f1", "ap50", "iou") and v is not None}
                if metrics:
                    summary += " | " + " ".join(f"{k}={v:.4g}" for k, v in shown.items())
                _log(self.ctx, f"epoch {epoch + 1}/{cfg.epochs} {summary}{' *' if improved else ''}")
            self.ctx.barrier()
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch, metrics)
        return TrainResult(
            out=self.out,
            epochs_done=cfg.epochs,
            best_fitness=self.best_fitness,
            best_metrics=dict(self.best_metrics),
            history=list(self.history),
        )


def _make_run_folder(out: Path) -> list[Path]:
    """Create the run folder (and parents); return the folders created, deepest first."""
    created = ([out.absolute()] if not out.exists() else []) + missing_ancestors(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the run folder ({exc.strerror or exc})") from None
    return created


def changed_fields(config: TrainConfig) -> set[str]:
    """Settings of ``config`` that differ from the defaults (what a library caller set)."""
    default = TrainConfig()
    return {f.name for f in fields(TrainConfig) if getattr(config, f.name) != getattr(default, f.name)}


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def train(
    config: TrainConfig,
    *,
    explicit: set[str] | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    force: bool = False,
) -> TrainResult:
    """Train a model as ``config`` says (single process, or one rank under torchrun).

    Parameters
    ----------
    config : TrainConfig
    explicit : set of str, optional
        With ``config.resume``: the settings the user gave on the command line; only
        :data:`RESUME_MAY_CHANGE` of them replace the saved ones, and a different ``model``
        is an error. ``None``: the fields that differ from :class:`TrainConfig`'s defaults.
    on_epoch_end : callable, optional
        ``f(epoch_index, metrics)`` after each epoch's checkpoint is written (tests, hooks).
    force : bool
        A new run may replace an earlier run in ``config.out`` (only when every file there is
        listed in the run's manifest, :data:`irstd_bench._outputs.MANIFEST_NAME`).

    Raises
    ------
    InputError
        Bad settings or data, a checkpoint that does not fit, CUDA asked for but absent, or
        running out of GPU memory (with advice).
    """
    # cuBLAS needs a fixed workspace for reproducible results; set before CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    ctx = init_distributed(config.device)
    previous_det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(bool(config.deterministic), warn_only=True)
    try:
        trainer = Trainer(config, ctx, explicit=explicit, on_epoch_end=on_epoch_end, force=force)
        return trainer.run()
    except torch.OutOfMemoryError:
        raise InputError(
            f"out of memory on {ctx.device} with --batch {config.batch} --imgsz {config.imgsz}; "
            "try a smaller --batch or --imgsz (or --amp)"
        ) from None
    finally:
        torch.use_deterministic_algorithms(previous_det)
        shutdown_distributed(ctx)
