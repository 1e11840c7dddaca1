"""A file never chooses code to run: checkpoints name models by registry key only.

A ``module:builder`` inside a checkpoint is honoured only when the user names the very same
builder on the command line (``--model``); the name is compared before anything is imported.
"""

from __future__ import annotations

import sys

import pytest
import torch
from click.testing import CliRunner
from test_engine_models import TINY_DETECTOR, make_nuaa_like

from irstd_bench.cli import cli
from irstd_bench.errors import InputError
from reference_model.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    build_named_model,
    checked_model_name,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from reference_model.engine.trainer import TrainConfig, train

#: A module that must never be imported by loading a checkpoint (it does not exist either way).
CANARY_MODULE = "irstd_trust_canary_module"


def _crafted(tmp_path, model_name: str, model_config: dict | None = None, **extra):
    path = tmp_path / "crafted.pt"
    data = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_name": model_name,
        "model_config": model_config if model_config is not None else {"command": "touch /tmp/pwned"},
        "task": "detect",
        "model": {},
        "ema": None,
        "input_size": 64,
    }
    data.update(extra)
    save_checkpoint(path, data)
    return path


def test_crafted_checkpoint_naming_os_system_is_refused_before_any_import(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("os.system", lambda *a, **k: calls.append(a))
    path = _crafted(tmp_path, "os:system")
    with pytest.raises(InputError, match=r"custom builder 'os:system'.*--model os:system"):
        model_from_checkpoint(load_checkpoint(path), path)
    assert calls == []


def test_unknown_custom_module_is_not_imported(tmp_path):
    path = _crafted(tmp_path, f"{CANARY_MODULE}:build", {})
    sys.modules.pop(CANARY_MODULE, None)
    with pytest.raises(InputError, match="custom builder"):
        model_from_checkpoint(load_checkpoint(path), path)
    # The message is about trust, not "cannot import": nothing was tried.
    assert CANARY_MODULE not in sys.modules


def test_unregistered_plain_name_is_refused(tmp_path):
    path = _crafted(tmp_path, "yolo-nas", {})
    with pytest.raises(InputError, match="not in the registry"):
        checked_model_name(load_checkpoint(path), path)


def test_custom_builder_given_again_on_the_command_line_is_honoured(tmp_path):
    model = build_named_model(TINY_DETECTOR, width=4)
    path = _crafted(tmp_path, TINY_DETECTOR, dict(model.config), model=model.state_dict())
    rebuilt = model_from_checkpoint(load_checkpoint(path), path, cli_model=TINY_DETECTOR)
    assert rebuilt.config == {"width": 4}
    with pytest.raises(InputError, match="checkpoint of another model"):
        model_from_checkpoint(load_checkpoint(path), path, cli_model="test_engine_models:other")


def test_predict_refuses_crafted_weights_with_exit_2(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("os.system", lambda *a, **k: calls.append(a))
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.new("L", (32, 32)).save(images / "a.png")
    path = _crafted(tmp_path, "os:system")
    result = CliRunner().invoke(
        cli, ["predict", "--weights", str(path), "--source", str(images), "--out", str(tmp_path / "o.json")]
    )
    assert result.exit_code == 2, result.output
    assert "os:system" in result.output and "Traceback" not in result.output
    assert calls == [] and not (tmp_path / "o.json").exists()


def test_resume_of_a_crafted_run_is_refused(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("os.system", lambda *a, **k: calls.append(a))
    run = tmp_path / "run"
    run.mkdir()
    _crafted(run, "os:system", optimizer={}, train_args={"epochs": 2}).rename(run / "last.pt")
    with pytest.raises(InputError, match="custom builder 'os:system'"):
        train(TrainConfig(resume=str(run), progress=False))
    assert calls == []


def test_resume_of_a_custom_builder_run_needs_the_same_model_option(tmp_path):
    root = make_nuaa_like(tmp_path / "data", [(64, 64)] * 4)
    out = tmp_path / "run"
    config = TrainConfig(
        root=str(root), dataset="nuaa", split="split_EFLNet", model=TINY_DETECTOR, epochs=1, imgsz=64,
        batch=2, device="cpu", out=str(out), workers=0, progress=False, augment=False, ema=False,
    )
    train(config)
    with pytest.raises(InputError, match="custom builder"):
        train(TrainConfig(resume=str(out), epochs=2, progress=False))
    result = train(TrainConfig(resume=str(out), epochs=2, model=TINY_DETECTOR, progress=False))
    assert result.epochs_done == 2


@pytest.mark.parametrize("version", ["1", "x", 1.5, None, True])
def test_checkpoint_version_that_is_not_an_integer_is_one_line_error(tmp_path, version):
    path = tmp_path / "v.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": version, "model_name": "eflnet-n",
                "model_config": {}, "model": {}}, path)
    with pytest.raises(InputError, match="version .* is not an integer"):
        load_checkpoint(path)
