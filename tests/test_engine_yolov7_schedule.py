"""YOLOv7's optimization as engine settings (issue 22): warm-up, accumulation ramp, per-epoch cosine,
weight decay groups, and no clipping under the authors' recipe.

Pinned by the values the optimizer holds at given iterations and by what one step does to the
parameters, not only by the recipe's table.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
from test_engine_models import TINY_DETECTOR, make_nuaa_like
from test_engine_train import SIZES, _config, run_cli

from reference_model.eflnet.dyhead import DyHead
from reference_model.engine import TrainConfig, Trainer, load_checkpoint, train
from reference_model.engine.config import apply_recipe
from reference_model.engine.distributed import init_distributed
from reference_model.engine.runtime import build_optimizer, param_groups
from reference_model.engine.schedule import Accumulation, WarmupSchedule, decay_factor


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_nuaa_like(tmp_path_factory.mktemp("yolov7_schedule") / "nuaa_like", SIZES, seed=4)


class _Net(nn.Module):
    """A conv + BatchNorm + GroupNorm + linear net with a YOLO implicit ``(1, C, 1, 1)`` offset."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.fc = nn.Linear(4, 2)
        self.implicit = nn.Parameter(torch.zeros(1, 4, 1, 1))


def _names(model: nn.Module, groups: list[dict]) -> dict[str, set[str]]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: {by_id[id(p)] for p in g["params"]} for g in groups}


def test_yolov7_weight_decay_rule_decays_groupnorm_weights_and_not_implicit_offsets():
    net = _Net()
    ndim = _names(net, param_groups(net, 5e-4))
    yolo = _names(net, param_groups(net, 5e-4, rule="yolov7", split_biases=True))
    assert ndim == {"decay": {"conv.weight", "fc.weight", "implicit"},
                    "no_decay": {"conv.bias", "bn.weight", "bn.bias", "gn.weight", "gn.bias", "fc.bias"}}  # fmt: skip
    assert yolo == {"decay": {"conv.weight", "fc.weight", "gn.weight"}, "no_decay": {"bn.weight", "implicit"},
                    "bias": {"conv.bias", "bn.bias", "gn.bias", "fc.bias"}}  # fmt: skip
    # the dynamic head's GroupNorm scales, through the optimizer a run builds
    head = DyHead(16, 1)
    optimizer = build_optimizer(head, TrainConfig(weight_decay_rule="yolov7", warmup_bias_lr=0.1), 5e-4)
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    norms = [m.weight for m in head.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(id(w) in decayed for w in norms)
    assert optimizer.param_groups[0]["weight_decay"] == 5e-4 and optimizer.param_groups[2]["name"] == "bias"
    plain = build_optimizer(head, TrainConfig(), 5e-4)
    assert not any(id(w) in {id(p) for p in plain.param_groups[0]["params"]} for w in norms)
    assert len(plain.param_groups) == 2  # no bias group without warmup_bias_lr: checkpoints keep their layout


def _yolov7_schedule(per_epoch: int = 32, epochs: int = 300, warmup: int = 1000):
    net = _Net()
    config = TrainConfig(lr=0.01, momentum=0.937, warmup_bias_lr=0.1, warmup_momentum=0.8, weight_decay_rule="yolov7")
    optimizer = build_optimizer(net, config, 5e-4)
    schedule = WarmupSchedule(optimizer, epochs * per_epoch, warmup, kind="cosine", final_factor=0.1, start_factor=0.0,
                              bias_start_lr=0.1, start_momentum=0.8, steps_per_epoch=per_epoch)  # fmt: skip
    return optimizer, schedule


def _at(schedule: WarmupSchedule, step: int) -> dict[str, tuple[float, float]]:
    schedule.step_count = step - 1
    schedule.step()
    return {g["name"]: (g["lr"], g["momentum"]) for g in schedule.optimizer.param_groups}


def test_yolov7_warmup_lr_bias_lr_and_momentum_at_given_iterations():
    _, schedule = _yolov7_schedule()

    def lf(epoch: int) -> float:  # YOLOv7's one_cycle(1, 0.1, 300)
        return ((1 - math.cos(epoch * math.pi / 300)) / 2) * (0.1 - 1) + 1

    start = _at(schedule, 0)
    assert start["decay"] == (0.0, 0.8) and start["no_decay"] == (0.0, 0.8) and start["bias"] == (0.1, 0.8)
    mid = _at(schedule, 500)  # epoch 15, half way through the 1000 warm-up iterations
    assert mid["decay"][0] == pytest.approx(0.5 * 0.01 * lf(15))
    assert mid["bias"][0] == pytest.approx(0.1 + (0.01 * lf(15) - 0.1) * 0.5)
    assert mid["decay"][1] == pytest.approx(0.8 + (0.937 - 0.8) * 0.5) == mid["bias"][1]
    end = _at(schedule, 1000)  # epoch 31: warm-up over, every group at the epoch's cosine value
    assert all(v == pytest.approx((0.01 * lf(31), 0.937)) for v in end.values())
    late = _at(schedule, 200 * 32 + 17)  # constant within epoch 200
    assert late["decay"][0] == pytest.approx(0.01 * lf(200)) and late["decay"][1] == pytest.approx(0.937)


def test_per_epoch_cosine_from_epoch_zero():
    param = nn.Parameter(torch.zeros(1))
    schedule = WarmupSchedule(torch.optim.SGD([param], lr=0.1), total_steps=50, warmup_steps=0, kind="cosine",
                              final_factor=0.1, steps_per_epoch=10)  # fmt: skip
    lrs = []
    for _ in range(50):
        lrs.append(schedule.last_lr())
        schedule.step()
    for epoch in range(5):
        expected = 0.1 * (0.1 + 0.9 * (1 + math.cos(math.pi * epoch / 5)) / 2)
        assert lrs[10 * epoch : 10 * epoch + 10] == pytest.approx([expected] * 10)
    assert lrs[0] == pytest.approx(0.1) and lrs[49] > 0.1 * 0.1  # the last epoch is 4/5 of the way
    # with a warm-up of 15 iterations (1.5 epochs) from 0, the rate rises to the current epoch's value
    warm = WarmupSchedule(torch.optim.SGD([param], lr=0.1), total_steps=50, warmup_steps=15, kind="cosine",
                          final_factor=0.1, start_factor=0.0, steps_per_epoch=10)  # fmt: skip
    assert warm.factor(5) == pytest.approx(5 / 15) and warm.factor(12) == pytest.approx(12 / 15 * decay_factor(
        "cosine", 1 / 5, 0.1, 1.0))  # fmt: skip
    per_iteration = WarmupSchedule(torch.optim.SGD([param], lr=0.1), total_steps=50, warmup_steps=0, kind="cosine",
                                   final_factor=0.1)  # fmt: skip
    assert per_iteration.factor(5) < 1.0  # the engine's default decays every iteration


def test_accumulation_ramps_from_one_to_nominal_over_the_warm_up():
    ramp = Accumulation(ratio=8.0, warmup_steps=10, ramp=True)
    # round(1 + 7 k / 10), halves to even as numpy rounds (4.5 -> 4)
    assert [ramp.at(k) for k in range(12)] == [1, 2, 2, 3, 4, 4, 5, 6, 7, 7, 8, 8]
    assert [Accumulation(8.0, 10).at(k) for k in (0, 5, 11)] == [8, 8, 8]
    # YOLOv7's warm-up of 1000 iterations at batch 8 / nominal 64: about 308 optimizer steps, not 125
    ramp = Accumulation(ratio=64 / 8, warmup_steps=1000, ramp=True)
    steps, pending = 0, 0
    for k in range(1000):
        pending += 1
        if ramp.steps_now(pending, k, last_of_epoch=False):
            steps, pending = steps + 1, 0
    assert steps == 308


def test_accumulate_ramp_changes_the_optimizer_steps_of_a_run(data_root, tmp_path):
    # 4 training images, batch 1: 4 iterations per epoch; nominal 4; warm-up 4 iterations
    def updates(**kw) -> int:
        out = tmp_path / "_".join(f"{k}{v}" for k, v in kw.items())
        train(_config(data_root, out, epochs=1, batch=1, nominal_batch=4, warmup_epochs=0.0, warmup_iters=4,
                      augment=False, **kw))  # fmt: skip
        return load_checkpoint(out / "last.pt")["ema"]["updates"]

    # accumulate at(k) = 1, 2, 2, 3: steps after iterations 0, 2 and 3 (the epoch's last)
    assert updates(accumulate_ramp=True) == 3 and updates(accumulate_ramp=False) == 1


def test_authors_recipe_steps_without_clipping_biases_at_0_1_and_weights_at_0(data_root, tmp_path):
    authors, _ = apply_recipe(TrainConfig(model="eflnet-yolov7", root="r", recipe="authors"), set())
    assert authors.grad_clip is None
    # the authors' training settings on the tiny detector (the network's own options aside)
    config = replace(authors, root=str(data_root), dataset="nuaa", split="split_EFLNet", model=TINY_DETECTOR,
                     model_overrides={}, imgsz=64, batch=2, device="cpu", out=str(tmp_path / "a"), workers=0,
                     progress=False, recipe=None)  # fmt: skip
    trainer = Trainer(config, init_distributed("cpu"), explicit=set(TrainConfig.__dataclass_fields__))
    trainer.setup()
    assert trainer.config.grad_clip is None and trainer.accumulation.at(0) == 1
    before = {n: p.detach().clone() for n, p in trainer.raw.named_parameters()}
    for p in trainer.raw.parameters():
        p.grad = torch.full_like(p, 100.0)
    trainer.optimizer_step()
    for name, p in trainer.raw.named_parameters():
        moved = (before[name] - p.detach()).flatten()
        if name.endswith(".bias"):
            # first Nesterov SGD step: lr x g x (1 + momentum), at the warm-up's bias lr 0.1 and momentum 0.8
            torch.testing.assert_close(moved, torch.full_like(moved, 0.1 * 100 * 1.8))
        else:
            assert torch.equal(moved, torch.zeros_like(moved)), name  # weights start at lr 0


def test_new_settings_are_recorded_by_name_in_args_and_checkpoints(data_root, tmp_path):
    out = tmp_path / "cli"
    run_cli("train", "--root", data_root, "--split", "split_EFLNet", "--model", TINY_DETECTOR, "--device", "cpu",
            "--epochs", 1, "--imgsz", 64, "--batch", 2, "--workers", 0, "--no-progress", "--out", out,
            "--mosaic", 1, "--mosaic9", 0.2, "--mosaic-style", "yolov7", "--window-style", "yolov7",
            "--min-box-side", 2, "--mixup", 0.5, "--mixup-beta", 8, "--mixup-partner", "fresh",
            "--pad-value", 0.447, "--warmup-start-ratio", 0, "--warmup-bias-lr", 0.1, "--warmup-momentum", 0.8,
            "--nominal-batch", 4, "--accumulate-ramp", "--schedule-step", "epoch", "--weight-decay-rule", "yolov7",
            "--max-det", 300, "--grad-clip", "none")  # fmt: skip
    expected = {"mosaic9": 0.2, "mosaic_style": "yolov7", "window_style": "yolov7", "min_box_side": 2.0,
                "mixup_beta": 8.0, "mixup_partner": "fresh", "pad_value": 0.447, "warmup_start_ratio": 0.0,
                "warmup_bias_lr": 0.1, "warmup_momentum": 0.8, "accumulate_ramp": True, "schedule_step": "epoch",
                "weight_decay_rule": "yolov7", "max_det": 300, "grad_clip": None}  # fmt: skip
    args = json.loads((out / "args.json").read_text())
    assert {k: args[k] for k in expected} == expected
    saved = load_checkpoint(out / "last.pt")["train_args"]
    assert {k: saved[k] for k in expected} == expected
    for option, value, message in (("--mosaic-style", "ring", "is not one of"), ("--mixup-beta", 0, "mixup-beta"),
                                   ("--pad-value", 2, "pad-value 2.0: must be in [0, 1]"),
                                   ("--warmup-momentum", 1.5, "warmup-momentum")):  # fmt: skip
        bad = run_cli("train", "--root", data_root, "--model", TINY_DETECTOR, "--device", "cpu", option, value,
                      "--out", tmp_path / "bad", expect=2)  # fmt: skip
        assert message in bad.stderr and not (tmp_path / "bad").exists()
    with pytest.raises(Exception, match="applies to SGD"):
        TrainConfig(root="r", model="m", optimizer="adamw", warmup_momentum=0.8).check()


def test_a_run_with_the_yolov7_settings_resumes_exactly(data_root, tmp_path):
    settings = dict(mosaic=1.0, mosaic9=0.5, mosaic_style="yolov7", window_style="yolov7", scale=0.5,
                    translate=0.2, min_box_side=1.0, mixup=0.5, mixup_beta=8.0, mixup_partner="fresh",
                    pad_value=114 / 255, warmup_start_ratio=0.0, warmup_bias_lr=0.1, warmup_momentum=0.8,
                    warmup_iters=3, nominal_batch=4, accumulate_ramp=True, schedule_step="epoch",
                    weight_decay_rule="yolov7", max_det=300, grad_clip=None, epochs=2)  # fmt: skip
    train(_config(data_root, tmp_path / "whole", **settings))

    def kill_after_first_epoch(epoch: int, metrics: dict) -> None:
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(data_root, tmp_path / "cut", **settings), on_epoch_end=kill_after_first_epoch)
    train(TrainConfig(resume=str(tmp_path / "cut"), model=TINY_DETECTOR, progress=False))
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2 and a["scheduler"] == b["scheduler"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["ema"]["updates"] == b["ema"]["updates"] and a["train_args"] == {**b["train_args"], "resume": None,
                                                                             "out": a["train_args"]["out"]}
