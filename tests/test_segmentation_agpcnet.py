"""AGPCNet: parameter count, shapes, patch split, size checks, a tiny overfit."""

from __future__ import annotations

import pytest
import torch
from test_segmentation import overfit_f1

from irstd_bench.errors import InputError
from reference_model.registry import build_model
from reference_model.segmentation import PUBLISHED_PARAMS
from reference_model.segmentation.agpcnet import RECIPES, build_agpcnet, patch_bounds

#: Parameters of the official ``agpcnet_1`` (ResNet-18 without its classifier, CPM, two AFMs,
#: FCN head): our layers are the same, so the count must match exactly (12.36 M in the tables).
OFFICIAL_PARAMS = 12_360_461
#: A narrow configuration for CPU tests.
SMALL = {"channels": (8, 8, 16, 32, 64), "scales": (3, 2)}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count():
    model = build_model("agpcnet")
    assert n_params(model) == OFFICIAL_PARAMS
    assert abs(n_params(model) - PUBLISHED_PARAMS["agpcnet"]) / PUBLISHED_PARAMS["agpcnet"] < 0.001
    assert model.task == "segment"


def test_forward_shape_loss_and_rebuild():
    model = build_model("agpcnet", **SMALL)
    images = torch.rand(2, 3, 32, 48)
    masks = torch.zeros(2, 32, 48)
    masks[1, 4:7, 30:33] = 1
    model.train()
    out = model(images)
    assert out.shape == (2, 1, 32, 48)
    loss = model.compute_loss(out, [{"masks": m} for m in masks])["soft_iou"]
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model.postprocess(model(images))[0]["score_map"].shape == (32, 48)
    assert n_params(type(model)(**model.config)) == n_params(model)


def test_default_needs_80_px():
    model = build_model("agpcnet").eval()
    with pytest.raises(InputError):
        model(torch.rand(1, 3, 72, 72))  # 72 / 8 = 9 < 10 patches
    with torch.no_grad():
        assert model(torch.rand(1, 3, 80, 88)).shape == (1, 1, 80, 88)


def test_patch_bounds_cover_the_map():
    assert patch_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert patch_bounds(6, 6) == [(i, i + 1) for i in range(6)]


def test_recipe():
    recipe = RECIPES["authors"]
    train = recipe.train
    assert (train["optimizer"], train["lr"], train["momentum"], train["weight_decay"]) == ("sgd", 0.05, 0.9, 1e-4)
    assert (train["schedule"], train["poly_power"], train["imgsz"], train["batch"]) == ("poly", 0.9, 256, 8)
    assert recipe.model_options["loss"] == "soft_iou_image"


def outcome_small_agpcnet_overfit(seed: int, work=None) -> dict[str, float]:
    """Target F1 of a small agpcnet after 150 steps on 4 synthetic 32 px images (``seed``: its init)."""
    torch.manual_seed(seed)
    return {"f1": overfit_f1(build_agpcnet(**SMALL, dropout=0.0), 150, size=32)}


@pytest.mark.train
def test_small_agpcnet_overfits_synthetic_targets():
    # Measured F1 over seeds 0-9 x {1, 2} threads (20 runs, 2026-12-07, AMD EPYC): 1.0 in every run.
    # bench/test_margins.py \
    #     tests/test_segmentation_agpcnet.py::outcome_small_agpcnet_overfit
    assert outcome_small_agpcnet_overfit(0)["f1"] >= 0.9
