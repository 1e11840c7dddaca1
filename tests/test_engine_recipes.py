"""Named recipes and the settings they carry: optimizer, schedule, accumulation, augmentation, loss, fitness."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from test_engine_models import TINY_DETECTOR, make_nuaa_like
from test_engine_train import SIZES, _config, run_cli

from irstd_bench.errors import InputError
from reference_model.engine import TrainConfig, Trainer, load_checkpoint, train
from reference_model.engine.distributed import init_distributed
from reference_model.engine.fitness import AP_IOU_THRESHOLDS, ap50_95, fitness
from reference_model.engine.runtime import torch_settings
from reference_model.engine.schedule import WARMUP_START_FACTOR, WarmupSchedule, decay_factor


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_nuaa_like(tmp_path_factory.mktemp("recipes") / "nuaa_like", SIZES, seed=2, targets_per_image=2)


#: What ``_config`` sets that a user would give on the command line (the recipe fills the rest).
GIVEN = {"root", "dataset", "split", "model", "imgsz", "batch", "device", "out", "workers", "progress"}


def _trainer(config: TrainConfig, explicit=()) -> Trainer:
    trainer = Trainer(config, init_distributed("cpu"), explicit=GIVEN | set(explicit))
    trainer.setup()
    return trainer


def test_recipe_settings_reach_optimizer_schedule_augmentation_and_loss(data_root, tmp_path):
    trainer = _trainer(_config(data_root, tmp_path / "r", recipe="stand-in", epochs=3), explicit={"epochs"})
    cfg = trainer.config
    assert (cfg.optimizer, cfg.schedule, cfg.epochs, cfg.base_size, cfg.fitness) == ("adagrad", "poly", 3, 96, "ap")
    # optimizer: Adagrad at the recipe's rate; weight decay scaled by batch x steps / nominal batch (2 x 2 / 4)
    assert isinstance(trainer.optimizer, torch.optim.Adagrad)
    assert trainer.accumulate == 2
    groups = trainer.optimizer.param_groups
    assert groups[0]["initial_lr"] == pytest.approx(0.02) and groups[0]["weight_decay"] == pytest.approx(2e-4)
    # schedule: 2 iterations per epoch (4 train images / 2), warm-up max(0.5 x 2, 2) = 2 iterations, poly^2
    sched = trainer.scheduler
    assert (sched.kind, sched.warmup_steps, sched.total_steps) == ("poly", 2, 6)
    assert sched.final_factor == pytest.approx(0.1) and sched.poly_power == pytest.approx(2.0)
    assert sched.factor(0) == pytest.approx(WARMUP_START_FACTOR)
    assert sched.factor(4) == pytest.approx(0.1 + 0.9 * 0.25) and sched.factor(6) == pytest.approx(0.1)
    # augmentation: the drawn settings, and the base canvas of the random windows
    aug = trainer.augment
    assert (aug.mosaic, aug.mixup, aug.scale, aug.translate, aug.hsv_v, aug.fliplr, aug.flipud) == (
        1.0, 0.5, 0.2, 0.05, 0.3, 0.0, 1.0
    )
    assert trainer.train_data.images.shape[-1] == 96
    images, targets = trainer.prepare_batch(0, 0, trainer.epoch_batches(0)[0])
    assert images.shape == (2, 3, 64, 64) and len(targets) == 2
    # loss: the recipe's model option reaches the model and its loss
    assert trainer.raw.config == {"width": 8, "size_gain": 3.0} and trainer.raw.size_gain == 3.0


def test_explicit_settings_win_over_the_recipe(data_root, tmp_path):
    config = _config(data_root, tmp_path / "r", recipe="stand-in", optimizer="sgd", epochs=2)
    trainer = _trainer(config, explicit={"optimizer", "epochs"})
    assert trainer.config.optimizer == "sgd" and trainer.config.epochs == 2
    assert trainer.config.schedule == "poly"  # not given: the recipe's
    given = _config(data_root, tmp_path / "s", recipe="stand-in", model_overrides={"size_gain": 0.5})
    assert _trainer(given).raw.size_gain == 0.5
    library = Trainer(_config(data_root, tmp_path / "t", recipe="stand-in"), init_distributed("cpu"))
    assert library.config.warmup_epochs == 1.0  # a library caller's non-default value counts as given


def test_recipe_is_recorded_and_restored_on_resume(data_root, tmp_path):
    out = tmp_path / "run"
    train(_config(data_root, out, recipe="stand-in", mosaic=0.0, mixup=0.0, base_size=None, epochs=1),
          explicit=GIVEN | {"mosaic", "mixup", "base_size", "epochs"})
    args = json.loads((out / "args.json").read_text())
    assert args["recipe"] == "stand-in" and args["optimizer"] == "adagrad" and args["mosaic"] == 0.0
    assert args["recipe_settings"]["train"]["schedule"] == "poly" and args["accumulate"] == 2
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["recipe"]["name"] == "stand-in" and checkpoint["train_args"]["recipe"] == "stand-in"
    assert checkpoint["model_config"]["size_gain"] == 3.0
    assert checkpoint["best_metrics"]["ap50_95"] is not None  # fitness "ap" computed AP50:95
    resumed = train(TrainConfig(resume=str(out), model=TINY_DETECTOR, epochs=2, progress=False),
                    explicit={"resume", "model", "epochs"})
    args = json.loads((out / "args.json").read_text())
    assert resumed.epochs_done == 2 and args["recipe"] == "stand-in" and args["schedule"] == "poly"
    assert load_checkpoint(out / "last.pt")["recipe"]["name"] == "stand-in"


def test_unknown_recipe_and_unknown_setting_are_one_line_input_errors(data_root, tmp_path):
    with pytest.raises(InputError, match=r"--recipe 'nope'.*known: stand-in, typo"):
        train(_config(data_root, tmp_path / "a", recipe="nope"))
    with pytest.raises(InputError, match="epochz is not a training setting"):
        train(_config(data_root, tmp_path / "b", recipe="typo"))
    result = run_cli("train", "--root", data_root, "--split", "split_EFLNet", "--model", TINY_DETECTOR,
                     "--recipe", "nope", "--device", "cpu", "--out", tmp_path / "c", expect=2)
    assert "known: stand-in, typo" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_gradient_accumulation_steps_once_per_nominal_batch(data_root, tmp_path):
    # 4 train images, batch 2: 2 iterations per epoch; nominal 4 -> one optimizer (and EMA) step per epoch
    train(_config(data_root, tmp_path / "acc", nominal_batch=4, epochs=2, augment=False))
    assert load_checkpoint(tmp_path / "acc" / "last.pt")["ema"]["updates"] == 2
    train(_config(data_root, tmp_path / "plain", epochs=2, augment=False))
    assert load_checkpoint(tmp_path / "plain" / "last.pt")["ema"]["updates"] == 4


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("cosine", [1.0, 0.55, 0.1]), ("poly", [1.0, 0.1 + 0.9 * 0.25, 0.1]), ("linear", [1.0, 0.55, 0.1])],
)
def test_decay_shapes(kind, expected):
    values = [decay_factor(kind, p, final_factor=0.1, poly_power=2.0) for p in (0.0, 0.5, 1.0)]
    assert values == pytest.approx(expected)
    assert decay_factor("cosine", 0.25, 0.0, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_schedule_warms_up_then_decays_to_the_final_ratio():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = WarmupSchedule(opt, total_steps=12, warmup_steps=2, kind="linear", final_factor=0.2)
    lrs = []
    for _ in range(12):
        lrs.append(sched.last_lr())
        sched.step()
    assert lrs[0] == pytest.approx(0.1 * WARMUP_START_FACTOR) and lrs[2] == pytest.approx(0.1)
    assert sched.last_lr() == pytest.approx(0.02) and lrs[7] == pytest.approx(0.1 * (0.2 + 0.8 * 0.5))


def test_ap50_95_through_the_evaluator_and_the_fitness_rules():
    import numpy as np

    from irstd_bench.evaluate import Prediction
    from irstd_bench.targets import boxes_to_targets

    gt = [("a", boxes_to_targets(np.array([[0, 0, 10, 10]]), (32, 32)))]
    exact = [Prediction.from_boxes("a", [[0, 0, 10, 10]], [0.9], (32, 32))]
    assert ap50_95(gt, exact) == pytest.approx(1.0)
    # IoU 0.72: a hit at 0.50 ... 0.70 (5 of the 10 thresholds)
    partial = [Prediction.from_boxes("a", [[0, 0, 10, 7.2]], [0.9], (32, 32))]
    assert len(AP_IOU_THRESHOLDS) == 10 and ap50_95(gt, partial) == pytest.approx(0.5)
    metrics = {"f1": 0.8, "ap50": 0.6, "ap50_95": 0.3, "iou": 0.4}
    assert fitness(metrics, "ap", "detect") == pytest.approx([0.1 * 0.6 + 0.9 * 0.3, 0.8])
    assert fitness(metrics, "f1", "detect") == [0.8, 0.6] and fitness(metrics, "f1", "segment") == [0.8, 0.4]
    assert fitness(metrics, "iou", "segment") == [0.4, 0.8]


def test_training_leaves_torch_settings_and_environment_as_it_found_them(data_root, tmp_path):
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    env = os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    threads = torch.get_num_threads()
    try:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
        with torch_settings(TrainConfig(threads=2)):
            assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] and torch.get_num_threads() == 2
            assert torch.are_deterministic_algorithms_enabled()
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == (True, False)
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ and torch.get_num_threads() == threads
        assert not torch.are_deterministic_algorithms_enabled()
        with pytest.raises(InputError):
            train(_config(data_root, tmp_path / "bad", recipe="typo"))
        train(_config(data_root, tmp_path / "ok", epochs=1, augment=False))
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == (True, False)
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ and not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved
        if env is not None:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = env


def test_cli_training_options_reach_the_run(data_root, tmp_path):
    out = tmp_path / "cli"
    run_cli("train", "--root", data_root, "--split", "split_EFLNet", "--model", TINY_DETECTOR, "--device", "cpu",
            "--epochs", 1, "--imgsz", 64, "--batch", 2, "--workers", 0, "--no-progress", "--out", out,
            "--optimizer", "adagrad", "--schedule", "linear", "--lr-final-ratio", 0.2, "--warmup-iters", 3,
            "--nominal-batch", 4, "--mosaic", 1, "--mixup", 0.5, "--scale", 0.5, "--translate", 0.2,
            "--hsv-v", 0.4, "--fliplr", 0, "--flipud", 1, "--base-size", 80, "--fitness", "ap", "--threads", 1)
    args = json.loads((out / "args.json").read_text())
    expected = {"optimizer": "adagrad", "schedule": "linear", "lr_final_ratio": 0.2, "warmup_iters": 3,
                "nominal_batch": 4, "mosaic": 1.0, "mixup": 0.5, "scale": 0.5, "translate": 0.2, "hsv_v": 0.4,
                "fliplr": 0.0, "flipud": 1.0, "base_size": 80, "fitness": "ap", "recipe": None, "accumulate": 2}
    assert {k: args[k] for k in expected} == expected
    bad = run_cli("train", "--root", data_root, "--split", "split_EFLNet", "--model", TINY_DETECTOR, "--device",
                  "cpu", "--scale", 1.5, "--out", tmp_path / "bad", expect=2)
    assert "--scale 1.5: must be in [0, 1)" in bad.stderr and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("sums", [False, True])
def test_summed_losses_are_not_averaged_over_accumulation(data_root, tmp_path, sums):
    # nominal 4 over batch 2: two accumulated batches. A mean loss adds 1/2 of its gradient per
    # batch; a loss declared as a sum over images (YOLO's loss * bs) adds all of it.
    trainer = _trainer(_config(data_root, tmp_path / f"s{sums}", nominal_batch=4, augment=False))
    assert trainer.accumulate == 2
    trainer.raw.loss_sums_over_images = sums
    images, targets = trainer.prepare_batch(0, 0, trainer.epoch_batches(0)[0])
    trainer.raw.eval()  # BatchNorm statistics frozen: the same batch gives the same loss twice
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.forward_backward(images, targets, "test")
    accumulated = [p.grad.clone() for p in trainer.raw.parameters() if p.grad is not None]
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.accumulate = 1
    trainer.forward_backward(images, targets, "test")
    single = [p.grad.clone() for p in trainer.raw.parameters() if p.grad is not None]
    factor = 1.0 if sums else 0.5
    for a, s in zip(accumulated, single, strict=True):
        torch.testing.assert_close(a, s * factor)
