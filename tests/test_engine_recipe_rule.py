"""Which recipe a run uses, and what a recipe leaves off: photometric jitter and clipping (issue 22).

One rule for ``train`` and ``reproduce``: a model's ``DEFAULT_RECIPE`` applies unless ``--recipe none``
asks for the engine's generic defaults. Engine settings no authors' code has (photometric jitter,
gradient clipping, target-keeping crops) are off in every recipe that does not name them.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from test_engine_models import make_nuaa_like
from test_engine_train import SIZES, _config, run_cli

from reference_model.engine import TrainConfig, Trainer
from reference_model.engine.augment import draw, photometric
from reference_model.engine.config import RECIPE_UNNAMED_SETTINGS, apply_recipe
from reference_model.engine.distributed import init_distributed
from reference_model.recipe import default_recipe_name, recipes_for, resolve_recipe_name
from reference_model.registry import MODELS
from reference_model.reproduce._plan import registry_models

#: Models whose modules define recipes.
WITH_RECIPES = [name for name in MODELS if recipes_for(name)]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_nuaa_like(tmp_path_factory.mktemp("rule") / "nuaa_like", SIZES, seed=3, targets_per_image=2)


def test_models_with_recipes_include_the_segmenters_and_eflnet():
    assert {"acm", "alcnet", "dnanet", "agpcnet", "isnet", "mshnet", "mdvsfa", "eflnet-yolov7"} <= set(WITH_RECIPES)


@pytest.mark.parametrize("model", WITH_RECIPES)
def test_every_recipe_leaves_off_what_it_does_not_name(model):
    for name, recipe in recipes_for(model).items():
        config, record = apply_recipe(TrainConfig(model=model, root="r", recipe=name), set())
        assert record["name"] == name and config.recipe == name
        for setting, off in RECIPE_UNNAMED_SETTINGS.items():
            expected = recipe.train.get(setting, off)
            assert getattr(config, setting) == expected, (model, name, setting)


def test_photometric_jitter_changes_pixels_only_where_a_recipe_names_it():
    images = torch.linspace(0.1, 0.9, 2 * 32 * 32).reshape(2, 1, 32, 32)
    generic = TrainConfig(model="acm", root="r", recipe="none")
    authors, _ = apply_recipe(TrainConfig(model="acm", root="r"), set())
    for config, changes in ((apply_recipe(generic, set())[0], True), (authors, False)):
        draws = draw(np.random.default_rng(0), 2, 8, config.augment_config())
        out = photometric(images.clone(), draws)
        assert (not torch.equal(out, images)) is changes, config.recipe


def _gradient_step_size(data_root, tmp_path, **kw) -> float:
    """Norm of the parameter change of one optimizer step with every gradient set to 100."""
    given = {"root", "dataset", "split", "model", "imgsz", "batch", "device", "out", "workers", "progress"}
    config = _config(data_root, tmp_path, recipe="stand-in", mosaic=0.0, mixup=0.0, base_size=None, **kw)
    trainer = Trainer(config, init_distributed("cpu"), explicit=given | set(kw))
    trainer.setup()
    before = [p.detach().clone() for p in trainer.raw.parameters()]
    for p in trainer.raw.parameters():
        p.grad = torch.full_like(p, 100.0)
    trainer.optimizer_step()
    after = list(trainer.raw.parameters())
    return float(torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(after, before, strict=True))))


def test_a_recipe_does_not_clip_and_grad_clip_does(data_root, tmp_path):
    # SGD (the stand-in recipe's Adagrad takes the same first step whatever the gradient's scale)
    unclipped = _gradient_step_size(data_root, tmp_path / "a", optimizer="sgd")
    clipped = _gradient_step_size(data_root, tmp_path / "b", optimizer="sgd", grad_clip=10.0)
    # Every gradient is 100 over thousands of parameters: a norm of ~1e4, cut to 10 when clipped.
    assert unclipped > 100 * clipped > 0


def test_engine_defaults_still_clip_and_jitter():
    config = TrainConfig()
    assert config.grad_clip == 10.0 and (config.brightness, config.contrast, config.noise) == (0.1, 0.2, 0.02)


def test_one_rule_for_train_and_reproduce():
    plan_models = registry_models()
    for model in MODELS:
        assert plan_models[model].default_recipe == default_recipe_name(model) == resolve_recipe_name(model, None)
        assert resolve_recipe_name(model, "none") is None
    assert default_recipe_name("acm") == importlib.import_module("reference_model.segmentation.acm").DEFAULT_RECIPE
    assert default_recipe_name("eflnet-n") is None  # no recipe: the engine's defaults


def test_train_without_recipe_uses_the_default_recipe_and_says_so(data_root, tmp_path):
    common = ("train", "--root", data_root, "--split", "split_EFLNet", "--model", "acm", "--device", "cpu",
              "--imgsz", 32, "--base-size", 32, "--batch", 2, "--epochs", 1, "--workers", 0, "--no-progress")
    result = run_cli(*common, "--out", tmp_path / "default")
    args = json.loads((tmp_path / "default" / "args.json").read_text())
    assert args["recipe"] == "authors" and args["optimizer"] == "adagrad" and args["grad_clip"] is None
    assert args["noise"] == 0.0 and args["recipe_settings"]["name"] == "authors"
    line = next(x for x in result.stderr.splitlines() if x.startswith("recipe:"))
    assert "authors (default of acm" in line and "epochs=1 (recipe 300)" in line and "imgsz=32 (recipe 480)" in line

    result = run_cli(*common, "--recipe", "none", "--out", tmp_path / "none")
    args = json.loads((tmp_path / "none" / "args.json").read_text())
    assert args["recipe"] is None and args["optimizer"] == "sgd" and args["grad_clip"] == 10.0
    assert args["noise"] == 0.02 and args["crop"] == 0.5
    assert "recipe: none (the engine's defaults; --recipe none)" in result.stderr


def test_grad_clip_option_accepts_none_and_refuses_nonsense(data_root, tmp_path):
    bad = run_cli("train", "--root", data_root, "--model", "acm", "--grad-clip", "-1", "--device", "cpu",
                  "--out", tmp_path / "x", expect=2)
    assert "--grad-clip -1.0" in bad.stderr and not (tmp_path / "x").exists()
    bad = run_cli("train", "--root", data_root, "--model", "acm", "--grad-clip", "lots", "--out", tmp_path / "y",
                  expect=2)
    assert "lots" in bad.stderr
