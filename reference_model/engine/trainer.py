"""The training loop shared by detectors and segmenters: set-up order, iterations, epochs, checkpoints.

What a run builds before its first epoch is :mod:`.run_setup`'s, the validation pass
:mod:`.validation`'s, the run folder's files :mod:`.run_files`'s; this module runs them in order.

>>> from reference_model.engine import TrainConfig, train                        # doctest: +SKIP
>>> result = train(TrainConfig(root="data/NUAA-SIRST", dataset="nuaa", split="idx_427",
...                            model="eflnet-n", epochs=400, imgsz=512, batch=16, out="runs/n"))  # doctest: +SKIP

A run folder ``out`` receives ``args.json`` (the settings), ``results.csv`` (one row per
epoch: learning rate, each named loss term, validation metrics), ``last.pt`` (every epoch) and
``best.pt`` (best validation fitness, :func:`~.fitness.fitness`: F1 at ``val_conf`` by default,
``0.1 AP50 + 0.9 AP50:95`` or IoU on request). Validation runs the EMA weights through
:func:`~.predict.predict_batch` and scores them with :func:`irstd_bench.evaluate.evaluate` in
native pixels, as ``irstd-bench eval`` would score the files ``predict`` writes.

The training split is decoded once and held on the training device
(:func:`~.data.load_letterboxed`); each batch is augmented there by :mod:`.augment` (the draws
are a function of ``(seed, epoch, iteration, rank)``), so the GPU is not left waiting for
loader processes. The validation split is held on the device too.

Everything a run depends on is checkpointed every epoch (model, optimizer, schedule, EMA,
AMP scaler, generator states, epoch, best fitness, the CSV rows), so ``resume`` continues a
killed run where its last completed epoch ended.

An adversarial model (MDvsFA, :mod:`.adversary`) gets a second optimizer for its discriminator,
stepped before the rest of the model each iteration and checkpointed as ``"adversary"``; such
runs take one process and no gradient accumulation.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np
import torch

from irstd_bench._progress import progress_bar
from irstd_bench.errors import InputError

from .augment import augment_batch, batch_generator, draw, split_targets
from .checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    build_named_model,
    load_model_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .config import LAST_NAME, TrainConfig, apply_recipe, changed_fields, recipe_summary, resume_config
from .distributed import DistContext, init_distributed, shutdown_distributed
from .fitness import fitness
from .predict import autocast_context
from .run_files import (
    ARGS_NAME,
    BEST_NAME,
    CSV_NAME,
    args_text,
    csv_text,
    jsonable,
    results_row,
    run_folder,
)
from .run_setup import build_optimization, load_run_data, restore_optimization, resumed_progress
from .runtime import finite_sum, torch_settings
from .validation import validation_metrics


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


class Trainer:
    """One training run; see :func:`train`.

    The parts of one iteration are methods (:meth:`prepare_batch`, :meth:`forward_backward`,
    :meth:`optimizer_step`, :meth:`ema_update`) so ``bench/bench_train.py`` can time them separately.
    """

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
        given = explicit if explicit is not None else changed_fields(config)
        if config.resume:
            config, self.checkpoint, self.resume_path = resume_config(config, given)
            self.recipe = self.checkpoint.get("recipe")
        else:
            asked = config.recipe
            config, self.recipe = apply_recipe(config, given)
            config = config.with_absolute_root()
        config.check()
        self.recipe_line = None
        if self.checkpoint is None:
            self.recipe_line = recipe_summary(config, self.recipe, given, asked=asked)
        self.config = config
        self.out = Path(config.out or Path("runs") / "train")
        # A new run never writes over a user's files, nor over an earlier run without --force; a
        # continued run replaces only the files its manifest lists.
        self.folder = run_folder(self.out, force=force, root=Path(config.root) if config.root else None,
                                 resume=self.resume_path if self.checkpoint is not None else None)
        self.device = ctx.device

    # ---------------------------------------------------------------- setup
    def _seed(self) -> None:
        seed = self.config.seed
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _data(self) -> None:
        """The dataset, split plan, augmentation settings, training tensors, sampler, validation data."""
        data = load_run_data(self.config, self.ctx, lambda message: _log(self.ctx, message))
        self.dataset, self.plan, self.augment = data.dataset, data.plan, data.augment
        self.train_data, self.sampler = data.train_data, data.sampler
        self.val_data, self.val_truth = data.val_data, data.val_truth

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
        # Channels-last inputs are enough for cuDNN/oneDNN to run the convolutions channels-last (a
        # convolution follows its input's format); the parameters keep their layout so model code
        # that reshapes its weights (``view``) works unchanged.
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.raw = model.to(self.device)

    def iterations_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.sampler) / self.config.batch))

    def _optimization(self) -> None:
        """DDP wrapper, EMA, optimizer, accumulation, schedule and AMP; restores their state when resuming."""
        cfg, ckpt = self.config, self.checkpoint
        per_epoch = self.iterations_per_epoch()
        opt = build_optimization(self.raw, cfg, self.ctx, per_epoch, self.model_name)
        self.ema, self.model, self.forward, self.accumulate = opt.ema, opt.model, opt.forward, opt.accumulate
        self.accumulation = opt.accumulation
        self.optimizer, self.scheduler, self.adversary = opt.optimizer, opt.scheduler, opt.adversary
        self.amp_dtype, self.scaler = opt.amp_dtype, opt.scaler
        self.start_epoch, self.best_fitness, self.best_metrics, self.history = 0, None, {}, []
        if ckpt is not None:
            restore_optimization(opt, ckpt, cfg.epochs * per_epoch, self.resume_path)
            progress = resumed_progress(ckpt, cfg.epochs, self.resume_path)
            self.start_epoch, self.best_fitness, self.best_metrics, self.history = progress

    def setup(self) -> None:
        """Seed, model, data, optimization (what :meth:`run` does before the first epoch)."""
        self._seed()
        self._model()
        self._data()
        self._optimization()

    # ---------------------------------------------------------------- one iteration
    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This process's training-set indices of every batch of ``epoch`` (shuffled by seed and epoch)."""
        self.sampler.set_epoch(epoch)
        order = np.fromiter(iter(self.sampler), dtype=np.int64)
        b = self.config.batch
        return [order[i : i + b] for i in range(0, len(order), b)]

    def prepare_batch(self, epoch: int, iteration: int, indices: np.ndarray) -> tuple[torch.Tensor, list[dict]]:
        """Augmented inputs ``(B, 3, S, S)`` (in the model's memory format) and per-image targets."""
        rng = batch_generator(self.config.seed, epoch, iteration, self.ctx.rank)
        draws = draw(rng, len(indices), len(self.train_data), self.augment)
        images, masks, boxes, valid = augment_batch(self.train_data, indices, draws, self.augment, self.config.imgsz)
        images = images.expand(-1, 3, -1, -1).contiguous(memory_format=self.memory_format)
        return images, split_targets(masks, boxes, valid)

    def forward_backward(
        self, images: torch.Tensor, targets: list[dict], where: str, accumulate: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Loss terms of one batch (detached) after adding its gradient (averaged or summed over accumulation).

        ``accumulate``: batches summed by the optimizer step this batch belongs to (default: the
        nominal :attr:`accumulate`). An adversarial model's discriminator is stepped first
        (:meth:`.Adversary.step`); its terms are returned too, but ``loss`` is the rest of the model's.
        """
        adversary_terms: dict[str, torch.Tensor] = {}
        with autocast_context(self.device, self.amp_dtype):
            outputs = self.forward(images)
            if self.adversary is None:
                terms = self.raw.compute_loss(outputs, targets)
        if self.adversary is not None:
            adversary_terms = self.adversary.step(
                outputs,
                targets,
                scaler=self.scaler,
                device=self.device,
                amp_dtype=self.amp_dtype,
                max_grad_norm=self.config.grad_clip,
                where=where,
            )
            with autocast_context(self.device, self.amp_dtype):
                terms = self.raw.compute_loss(outputs, targets)
        loss = finite_sum(terms, where)
        # A loss that is a mean over the batch is averaged over the accumulated batches, so that
        # nominal_batch behaves like one batch of that size; a loss that is a *sum* over images
        # (YOLO's ``loss * bs``, declared by ``model.loss_sums_over_images``) is summed, as the
        # YOLO code bases do: both give the gradient of one nominal batch.
        batches = self.accumulate if accumulate is None else accumulate
        scale = 1.0 if getattr(self.raw, "loss_sums_over_images", False) else 1.0 / batches
        self.scaler.scale(loss * scale).backward()
        if self.adversary is not None:
            self.adversary.drop_gradients()
        return {**{k: v.detach() for k, v in terms.items()}, "loss": loss.detach(), **adversary_terms}

    def optimizer_step(self) -> None:
        """Clip (``grad_clip``, if set), step, zero the gradients."""
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.raw.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def ema_update(self) -> None:
        if self.ema is not None:
            self.ema.update(self.raw)

    # ---------------------------------------------------------------- epochs
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        self.model.train()
        batches = self.epoch_batches(epoch)
        sums: dict[str, torch.Tensor] = {}
        count = 0
        bar = progress_bar(
            len(batches), f"epoch {epoch + 1}/{cfg.epochs}", enabled=self.ctx.is_main and cfg.progress, unit="batch"
        )
        self.optimizer.zero_grad(set_to_none=True)
        pending = 0  # batches summed since the last optimizer step
        for iteration, indices in enumerate(batches):
            step = epoch * len(batches) + iteration  # global iteration (the schedule's step)
            accumulate = self.accumulation.at(step)
            images, targets = self.prepare_batch(epoch, iteration, indices)
            where = f"epoch {epoch + 1}, iteration {iteration + 1}"
            terms = self.forward_backward(images, targets, where, accumulate=accumulate)
            pending += 1
            # The last partial accumulation of an epoch is stepped too: no gradient crosses a checkpoint.
            if self.accumulation.steps_now(pending, step, iteration + 1 == len(batches)):
                self.optimizer_step()
                self.ema_update()
                pending = 0
            self.scheduler.step()
            if self.adversary is not None:
                self.adversary.scheduler.step()
            n = len(indices)
            count += n
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value.float() * n
            bar.update(1)
        bar.close()
        keys = sorted(sums)
        totals = torch.tensor([float(sums[k]) for k in keys] + [count], dtype=torch.float64)
        if self.ctx.enabled:
            import torch.distributed as dist

            dist.all_reduce(totals)  # gloo/nccl: sums over ranks of the per-rank sums
        n_total = max(float(totals[-1]), 1.0)
        return {k: float(totals[i]) / n_total for i, k in enumerate(keys)}

    def validate(self) -> dict:
        """Target-level metrics of the EMA (or raw) model on the validation split, native pixels."""
        model = self.ema.module if self.ema is not None else self.raw
        return validation_metrics(
            model,
            self.val_data,
            self.val_truth,
            self.config,
            self.task,
            memory_format=self.memory_format,
            amp_dtype=self.amp_dtype,
        )

    def _checkpoint(self, epoch: int, metrics: dict) -> dict:
        cfg = self.config
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model_name": self.model_name,
            "model_config": dict(self.raw.config),
            "task": self.task,
            "input_size": cfg.eval_side,
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
            "train_args": jsonable(asdict(cfg)),
            "recipe": jsonable(self.recipe),
            "dataset": {"name": self.dataset.name, "train": self.plan.train, "val": self.plan.val},
        }
        if self.adversary is not None:
            checkpoint["adversary"] = self.adversary.state_dict()
        return checkpoint

    def _args(self) -> dict:
        return {
            **jsonable(asdict(self.config)),
            "model_name": self.model_name,
            "model_config": jsonable(dict(self.raw.config)),
            "recipe_settings": jsonable(self.recipe),
            "accumulate": self.accumulate,
            "task": self.task,
            "dataset_name": self.dataset.name,
            "train_split": self.plan.train,
            "val_split": self.plan.val,
            "val_is_test": self.plan.val_is_test,
            "world_size": self.ctx.world_size,
            "device": str(self.device),
            "amp_dtype": None if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", ""),
        }

    def run(self) -> TrainResult:
        self.setup()
        if self.recipe_line:
            _log(self.ctx, self.recipe_line)  # after set-up: a bad input's error stays the only line
        if self.ctx.is_main:
            self.folder.open()
        try:
            return self._epochs()
        except BaseException:
            # Before its first checkpoint a run has written nothing; the folder it created goes,
            # an earlier run it was replacing comes back.
            if self.ctx.is_main and not self.folder.written:
                self.folder.discard()
            raise

    def _write_checkpoint(self, checkpoint: dict, improved: bool) -> None:
        """``last.pt`` (and ``best.pt``), ``results.csv``, at the first one ``args.json``, then the manifest."""
        folder = self.folder
        if not folder.written:
            folder.write_text(ARGS_NAME, args_text(self._args()))
        folder.write(LAST_NAME, lambda tmp: save_checkpoint(tmp, checkpoint))
        if improved:
            folder.write(BEST_NAME, lambda tmp: save_checkpoint(tmp, checkpoint))
        folder.write_text(CSV_NAME, csv_text(self.history))
        folder.write_manifest()

    def _epochs(self) -> TrainResult:
        cfg = self.config
        if self.checkpoint is not None:
            set_rng_state(self.checkpoint["rng"])
            _log(self.ctx, f"resuming {self.resume_path} after epoch {self.start_epoch}")
            self.checkpoint = None  # free the loaded tensors
        for epoch in range(self.start_epoch, cfg.epochs):
            start, cpu_start = time.perf_counter(), time.process_time()
            losses = self._train_epoch(epoch)
            if hasattr(self.raw, "on_epoch_end"):
                self.raw.on_epoch_end()
            metrics: dict = {}
            if self.ctx.is_main:
                if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                    metrics = self.validate()
                    score = fitness(metrics, cfg.fitness, self.task)
                    improved = self.best_fitness is None or score > list(self.best_fitness)
                    if improved:
                        self.best_fitness, self.best_metrics = score, dict(metrics, epoch=epoch + 1)
                else:
                    improved = False
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
                self.history.append(
                    results_row(epoch + 1, self.scheduler.last_lr(), losses, metrics, seconds, cpu_seconds)
                )
                self._write_checkpoint(self._checkpoint(epoch, metrics), improved)
                summary = " ".join(f"{k}={v:.4g}" for k, v in losses.items())
                shown = {k: v for k, v in metrics.items() if k in ("f1", "ap50", "ap50_95", "iou") and v is not None}
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
        The settings the user gave on the command line. With ``config.recipe`` they win over
        the recipe's; with ``config.resume`` only :data:`~.config.RESUME_MAY_CHANGE` of them
        replace the saved ones, and a different ``model`` is an error. ``None``: the fields
        that differ from :class:`TrainConfig`'s defaults.
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
    config.check_values()  # before anything changes: threads, devices, folders
    with torch_settings(config):
        ctx = init_distributed(config.device)
        try:
            if config.memory_fraction is not None and ctx.device.type == "cuda":
                torch.cuda.set_per_process_memory_fraction(float(config.memory_fraction), ctx.device)
            trainer = Trainer(config, ctx, explicit=explicit, on_epoch_end=on_epoch_end, force=force)
            return trainer.run()
        except torch.OutOfMemoryError:
            raise InputError(
                f"out of memory on {ctx.device} with --batch {config.batch} --imgsz {config.imgsz}; "
                "try a smaller --batch or --imgsz (or --amp, or a larger --memory-fraction)"
            ) from None
        finally:
            shutdown_distributed(ctx)
