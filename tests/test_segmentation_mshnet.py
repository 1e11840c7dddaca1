"""MSHNet: parameter count, shapes, warm-up switch, the SLS loss by hand, a tiny overfit."""

from __future__ import annotations

import math

import pytest
import torch
from test_segmentation import overfit_f1

from reference_model.registry import build_model
from reference_model.segmentation import PUBLISHED_PARAMS
from reference_model.segmentation.mshnet import RECIPES, build_mshnet, sls_loss

#: Parameters of the official ``MSHNet(3)`` (model/MSHNet.py of Lliu666/MSHNet): our layers
#: are the same, so the count must match exactly; the paper's Table 1 rounds it to 4.07 M.
OFFICIAL_PARAMS = 4_065_513


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count():
    model = build_model("mshnet")
    assert n_params(model) == OFFICIAL_PARAMS
    assert abs(n_params(model) - PUBLISHED_PARAMS["mshnet"]) / PUBLISHED_PARAMS["mshnet"] < 0.005
    assert model.task == "segment" and model.config["loss"] == "sls"


def test_forward_shapes_and_warm_up_switch():
    model = build_mshnet(channels=(8, 16, 32, 64, 128), blocks=(1, 1, 1, 1), warm_epochs=1)
    images = torch.rand(2, 3, 32, 48)
    targets = [{"masks": torch.zeros(32, 48)} for _ in range(2)]
    targets[0]["masks"][5:8, 9:12] = 1
    model.train()
    out = model(images)  # warm-up: the /1 head alone
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1, 32, 48)
    warm = model.compute_loss(out, targets)["sls"]
    torch.testing.assert_close(warm, sls_loss(out, torch.stack([t["masks"] for t in targets])[:, None], warm=True))
    model.on_epoch_end()
    assert model.warming_up  # epochs_seen 1 <= warm_epochs 1
    model.on_epoch_end()
    assert not model.warming_up
    outs = model(images)
    assert [tuple(o.shape[-2:]) for o in outs] == [(32, 48), (16, 24), (8, 12), (4, 6), (32, 48)]
    loss = model.compute_loss(outs, targets)["sls"]
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        fused = model(images)
    assert fused.shape == (2, 1, 32, 48)
    assert model.postprocess(fused)[0]["score_map"].shape == (32, 48)
    state = model.state_dict()
    rebuilt = type(model)(**model.config)
    rebuilt.load_state_dict(state)
    assert not rebuilt.warming_up  # the finished-epoch count is saved with the weights


@pytest.mark.parametrize(
    "target_yx, location",
    [((1, 1), 0.0), ((0, 1), 1 - math.sqrt(0.5) + 0.25)],  # same direction and length / angle pi/4, length ratio
)
def test_sls_loss_by_hand(target_yx, location):
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere: P = 2
    masks = torch.zeros(1, 1, 2, 2)
    masks[0, 0, target_yx[0], target_yx[1]] = 1  # T = 1, intersection 0.5, IoU 0.5 / 2.5
    weight = (1 + 0.25) / (2 + 0.25)  # (min + ((P - T) / 2)^2) / (max + ...)
    expected = 1 - weight * 0.2 + location
    torch.testing.assert_close(sls_loss(logits, masks, warm=False), torch.tensor(expected), atol=1e-5, rtol=0)
    torch.testing.assert_close(sls_loss(logits, masks, warm=True), torch.tensor(0.8), atol=1e-6, rtol=0)


def test_recipe():
    recipe = RECIPES["authors"]
    assert recipe.model_options["loss"] == "sls"
    assert (recipe.train["optimizer"], recipe.train["lr"], recipe.train["batch"]) == ("adagrad", 0.05, 4)
    assert (recipe.train["imgsz"], recipe.train["epochs"]) == (256, 400)


def outcome_small_mshnet_overfit(seed: int, work=None) -> dict[str, float]:
    """Target F1 of a small MSHNet after 150 steps on 4 synthetic 32 px images, warm-up over at step 50."""
    torch.manual_seed(seed)
    model = build_mshnet(channels=(8, 16, 16, 16, 16), blocks=(1, 1, 1, 1), warm_epochs=0)

    def end_warm_up(step: int) -> None:
        if step == 50:
            model.on_epoch_end()  # warm-up over: multi-scale head and SLS loss

    return {"f1": overfit_f1(model, 150, size=32, on_step=end_warm_up)}


@pytest.mark.train
def test_small_mshnet_overfits_synthetic_targets():
    # Measured F1 over seeds 0-9 x {1, 2} threads: MARGIN_MSHNET
    # bench/test_margins.py \
    #     tests/test_segmentation_mshnet.py::outcome_small_mshnet_overfit
    assert outcome_small_mshnet_overfit(0)["f1"] >= 0.9
