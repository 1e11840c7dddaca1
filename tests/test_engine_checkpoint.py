"""Checkpoints (atomic, checked), weight lookup, RNG states, the schedule and EMA."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from test_engine_models import TINY_DETECTOR, TINY_SEGMENTER

from irstd_bench.errors import InputError
from reference_model.engine import checkpoint as ckpt_module
from reference_model.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    build_named_model,
    load_checkpoint,
    load_model_state,
    model_from_checkpoint,
    resolve_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from reference_model.engine.ema import ModelEMA
from reference_model.engine.schedule import FINAL_LR_FACTOR, WARMUP_START_FACTOR, WarmupSchedule


def _checkpoint(model_name=TINY_DETECTOR, **config) -> dict:
    model = build_named_model(model_name, **config)
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_name": model_name,
        "model_config": dict(model.config),
        "task": model.task,
        "model": model.state_dict(),
        "ema": None,
    }


def test_save_then_load_rebuilds_the_same_model(tmp_path):
    torch.manual_seed(0)
    data = _checkpoint(width=6)
    save_checkpoint(tmp_path / "a.pt", data)
    loaded = load_checkpoint(tmp_path / "a.pt")
    model = model_from_checkpoint(loaded, tmp_path / "a.pt", cli_model=TINY_DETECTOR)
    assert model.config == {"width": 6, "size_gain": 1.0} and model.task == "detect"
    for key, value in data["model"].items():
        assert torch.equal(model.state_dict()[key], value)


def test_failure_during_save_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _checkpoint())
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _checkpoint())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind
    monkeypatch.undo()
    assert load_checkpoint(path)["model_name"] == TINY_DETECTOR


def test_corrupt_missing_and_foreign_checkpoints_raise_input_error(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, _checkpoint())
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(InputError, match=r"corrupt\.pt: corrupt or unreadable checkpoint"):
        load_checkpoint(corrupt)
    with pytest.raises(InputError, match="nothere.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nothere.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError, match="not an irstd-bench checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(InputError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_weights_of_another_model_are_refused_with_the_keys(tmp_path):
    segmenter_state = build_named_model(TINY_SEGMENTER).state_dict()
    detector = build_named_model(TINY_DETECTOR)
    with pytest.raises(InputError, match=r"x\.pt: weights do not fit model .*missing: epochs_seen"):
        load_model_state(detector, segmenter_state, "x.pt")
    wider = build_named_model(TINY_DETECTOR, width=5).state_dict()
    with pytest.raises(InputError, match="shape differs: trunk.conv1.weight"):
        load_model_state(detector, wider, "y.pt")


def test_unknown_model_names_and_bad_builder_keywords(tmp_path):
    with pytest.raises(InputError, match="unknown model 'yolo'"):
        build_named_model("yolo")
    with pytest.raises(InputError, match="cannot import module"):
        build_named_model("no_such_module_xyz:build")
    with pytest.raises(InputError, match="test_engine_models.*width2"):
        build_named_model(TINY_DETECTOR, width2=3)


def test_resolve_weights_file_run_folder_and_bundled_name(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"x")
    assert resolve_weights(run) == run / "last.pt"
    (run / "best.pt").write_bytes(b"x")
    assert resolve_weights(run) == run / "best.pt"
    assert resolve_weights(run / "last.pt") == run / "last.pt"
    bundled = tmp_path / "weights"
    bundled.mkdir()
    (bundled / "nuaa-eflnet-n.pt").write_bytes(b"x")
    monkeypatch.setattr(ckpt_module, "BUNDLED_WEIGHTS_DIR", bundled)
    assert resolve_weights("nuaa-eflnet-n") == bundled / "nuaa-eflnet-n.pt"
    with pytest.raises(InputError, match=r"--weights nudt-eflnet-s: .*bundled: nuaa-eflnet-n"):
        resolve_weights("nudt-eflnet-s")


def test_rng_state_round_trip_survives_weights_only_loading(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # a cached gaussian in numpy's state
    state = rng_state()
    torch.save({"rng": state}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.random(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    got = (random.random(), np.random.random(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_warmup_cosine_values_and_resume():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = WarmupSchedule(opt, total_steps=10, warmup_steps=4)
    lrs = [sched.last_lr()]
    for _ in range(10):
        sched.step()
        lrs.append(sched.last_lr())
    assert lrs[0] == pytest.approx(0.1 * WARMUP_START_FACTOR)
    assert lrs[2] == pytest.approx(0.1 * (WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * 0.5))
    assert lrs[4] == pytest.approx(0.1)
    assert lrs[7] == pytest.approx(0.1 * (FINAL_LR_FACTOR + (1 - FINAL_LR_FACTOR) * 0.5))
    assert lrs[10] == pytest.approx(0.1 * FINAL_LR_FACTOR)
    other = WarmupSchedule(torch.optim.SGD([param], lr=0.1), total_steps=10, warmup_steps=4)
    other.load_state_dict({"step_count": 7, "total_steps": 10, "warmup_steps": 4})
    assert other.last_lr() == pytest.approx(lrs[7])


def test_ema_tracks_the_model_with_a_ramped_decay():
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = ModelEMA(model, decay=0.5, tau=1.0)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    d1 = 0.5 * (1 - np.exp(-1.0))
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 1 - d1))
    assert not ema.module.weight.requires_grad
    restored = ModelEMA(model)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 1 and torch.equal(restored.module.weight, ema.module.weight)


def test_released_half_weights_load_and_predict_like_the_training_checkpoint(tmp_path):
    from reference_model.engine.checkpoint import release_checkpoint

    source = tmp_path / "best.pt"
    save_checkpoint(source, {**_checkpoint(), "optimizer": {"state": {}}, "rng": rng_state()})
    released = release_checkpoint(source, tmp_path / "released.pt", half=True)
    assert released["optimizer"] is None and released["rng"] is None and released["released"] is True
    assert (tmp_path / "released.pt").stat().st_size < source.stat().st_size
    full = model_from_checkpoint(load_checkpoint(source), source, cli_model=TINY_DETECTOR).eval()
    small = model_from_checkpoint(load_checkpoint(tmp_path / "released.pt"), source, cli_model=TINY_DETECTOR).eval()
    assert all(p.dtype == torch.float32 for p in small.parameters())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a, b = full(x), small(x)
    for u, v in zip(a.values() if isinstance(a, dict) else a, b.values() if isinstance(b, dict) else b, strict=True):
        torch.testing.assert_close(u, v, atol=1e-2, rtol=1e-2)
