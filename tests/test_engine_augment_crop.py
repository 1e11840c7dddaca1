"""Target-keeping crop and window geometry: every target kept, boxes drawn exactly on the targets."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_augment import _no_photometric, _tensors
from test_engine_models import TINY_DETECTOR, make_nuaa_like
from test_engine_train import SIZES, run_cli

from irstd_bench.targets import mask_to_targets
from reference_model.engine import TrainConfig, Trainer, load_checkpoint
from reference_model.engine.augment import (
    AugmentConfig,
    affine_window,
    augment_batch,
    batch_generator,
    draw,
    split_targets,
)
from reference_model.engine.crop import crop_windows, jitter_windows, target_union
from reference_model.engine.distributed import init_distributed
from reference_model.engine.resample import box_weights


def _cluster_masks(seed: int, n_images: int, side: int, region: int) -> list[np.ndarray]:
    """Square targets of 1-3 px, 5 px apart, all inside one ``region`` px square of each image."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        mask = np.zeros((side, side), bool)
        oy, ox = (int(v) for v in rng.integers(0, side - region + 1, size=2))
        for _ in range(int(rng.integers(1, 5))):
            y, x = (int(v) for v in rng.integers(0, region - 3, size=2))
            y, x = oy + y, ox + x
            if not mask[max(0, y - 5) : y + 8, max(0, x - 5) : x + 8].any():
                size = int(rng.integers(1, 4))
                mask[y : y + size, x : x + size] = True
        out.append(mask)
    return out


def _crop_config(**kw) -> AugmentConfig:
    return _no_photometric(crop=1.0, **kw)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), min_side=st.sampled_from([0.3, 0.6, 1.0]), mosaic=st.sampled_from([0.0, 0.5]))
def test_crop_keeps_every_target_whole(seed, min_side, mosaic):
    """Every target of the drawn image is kept: its box inside the input, its pixels in mask and image."""
    masks = _cluster_masks(seed, 4, 48, region=40)
    data = _tensors(masks)
    config = _crop_config(crop_min_side=min_side, mosaic=mosaic, scale=0.5, translate=0.5)
    rng = batch_generator(seed, 0, 0)
    indices = rng.integers(0, 4, size=6)
    draws = draw(rng, 6, 4, config)
    assert draws.crop.all()
    images, out_masks, boxes, valid = augment_batch(data, indices, draws, config, 32)
    for i, (index, target) in enumerate(zip(indices, split_targets(out_masks, boxes, valid), strict=True)):
        n = len(mask_to_targets(masks[index]))
        drawn = target["boxes"][:n] if draws.mosaic[i] else target["boxes"]  # a mosaic's first tile: the image
        assert len(drawn) == n and int(valid[i, :n].sum()) == n
        assert (drawn[:, :2] >= 0).all() and (drawn[:, 2:] <= 32).all()
        # the zoom is at least 1 (up to the targets' extent, 40 > 32 px here): never shrunk below a pixel
        scale = (drawn[:, 2] - drawn[:, 0]) / (data.boxes[index, :n, 2] - data.boxes[index, :n, 0])
        assert torch.allclose(scale, scale[0]) and float(scale[0]) >= 32 / 40 - 1e-6
        for x0, y0, x1, y1 in drawn.tolist():
            r0, r1, c0, c1 = int(np.floor(y0)), int(np.ceil(y1)), int(np.floor(x0)), int(np.ceil(x1))
            assert out_masks[i, 0, r0:r1, c0:c1].any()
            assert float(images[i, 0, r0:r1, c0:c1].max()) > 0.1  # the target's pixels are in the image


def test_crop_at_scale_one_copies_the_window_and_its_targets_exactly():
    """Side fraction 1 on a larger canvas: a pure whole-pixel shift, pixels and boxes exact."""
    masks = _cluster_masks(4, 4, 64, region=28)
    data = _tensors(masks)
    config = _crop_config(crop_min_side=1.0)
    for seed in range(5):
        draws = draw(batch_generator(seed, 0, 0), 4, 4, config)
        draws = dataclasses.replace(draws, fliplr=np.array([False, True, False, True]), flipud=np.zeros(4, bool))
        images, out_masks, boxes, valid = augment_batch(data, np.arange(4), draws, config, 32)
        for i, target in enumerate(split_targets(out_masks, boxes, valid)):
            expected = mask_to_targets(out_masks[i, 0].numpy() > 0).boxes.tolist()
            assert sorted(target["boxes"].tolist()) == sorted(expected)
            assert len(expected) == len(mask_to_targets(masks[i]))  # no target cut or lost
            assert torch.equal(images[i], out_masks[i])  # image == mask went through the same exact copy
            assert set(images[i].unique().tolist()) <= {0.0, 1.0}  # copied, not interpolated


def test_crop_without_targets_and_with_wide_targets():
    union = np.array([[np.nan] * 4, [2.0, 3.0, 60.0, 10.0]])
    scale, centre = crop_windows(union, 64, 32, np.array([0.5, 0.5]), np.array([[1.0, 1.0], [0.5, 0.5]]))
    assert scale[0] == 2.0 and centre[0].tolist() == [56.0, 56.0]  # 16 px window in the far corner
    assert scale[1] == pytest.approx(32 / 58)  # grown to the 58 px extent: zoomed out to hold it
    origin = centre[1] - 29.0
    assert origin[0] <= 2.0 and origin[0] + 58 >= 60.0 and origin[1] <= 3.0 and origin[1] + 58 >= 10.0
    assert np.isnan(target_union(torch.zeros(2, 1, 4), torch.zeros(2, 1, dtype=torch.bool))).all()


def test_jitter_at_scale_one_shifts_by_whole_pixels():
    centre = jitter_windows(np.array([1.0, 1.0, 1.2]), np.array([[0.37, -0.81], [1.0, 1.0], [0.37, 0.0]]), 32, 32, 0.1)
    origin = centre[:2] - 16.0
    assert np.array_equal(origin, np.round(origin)) and np.abs(origin).max() <= 3.2
    assert centre[2, 0] == pytest.approx(16.0 + 0.37 * ((32 - 32 / 1.2) / 2 + 0.1 * 32 / 1.2))  # as drawn


def test_box_weights_are_the_area_footprint():
    w = box_weights(np.array([1.0, 1.5, 3.0]))
    assert w.shape == (3, 3) and np.allclose(w.sum(1), 1.0)
    assert np.allclose(w[0], [0, 1, 0]) and np.allclose(w[1], [0.25 / 1.5, 1 / 1.5, 0.25 / 1.5])
    assert np.allclose(w[2], [1 / 3] * 3)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_augmented_boxes_sit_on_the_augmented_targets(seed):
    """The engine's default augmentation: each kept box is centred on its target's pixels (0.35 px)."""
    masks = _cluster_masks(seed, 4, 64, region=56)
    data = _tensors(masks)
    config = _no_photometric(**{f.name: getattr(AugmentConfig(), f.name) for f in dataclasses.fields(AugmentConfig)
                                if f.name not in ("brightness", "contrast", "noise")})
    rng = batch_generator(seed, 3, 1)
    indices = rng.integers(0, 4, size=8)
    draws = draw(rng, 8, 4, config)
    images, out_masks, boxes, valid = augment_batch(data, indices, draws, config, 64)
    checked = 0
    for i, target in enumerate(split_targets(out_masks, boxes, valid)):
        for x0, y0, x1, y1 in target["boxes"].tolist():
            if min(x0, y0) < 3 or max(x1, y1) > 61:
                continue  # cut by the border: the box is clipped, the pixels too
            r0, r1, c0, c1 = int(np.floor(y0)) - 2, int(np.ceil(y1)) + 2, int(np.floor(x0)) - 2, int(np.ceil(x1)) + 2
            patch = images[i, 0, r0:r1, c0:c1].double()
            rows = torch.arange(r0, r1, dtype=torch.float64) + 0.5
            cols = torch.arange(c0, c1, dtype=torch.float64) + 0.5
            mass = patch.sum()
            assert mass > 0
            cy, cx = float((patch.sum(1) * rows).sum() / mass), float((patch.sum(0) * cols).sum() / mass)
            assert abs(cx - (x0 + x1) / 2) < 0.35 and abs(cy - (y0 + y1) / 2) < 0.35
            # the mask's target lies on the box (to the nearest-sampling pixel)
            component = mask_to_targets(out_masks[i, 0, r0:r1, c0:c1].numpy() > 0).boxes
            assert len(component) >= 1
            got = component[np.argmin(np.abs(component[:, :2] + [c0, r0] - [x0, y0]).sum(1))] + [c0, r0, c0, r0]
            assert np.abs(got - [x0, y0, x1, y1]).max() <= 1.0 + 1e-6
            checked += 1
    assert checked >= 4


# --------------------------------------------------------------------------------------------
# The settings: recorded, restored on resume, off in recipes that do not name them


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_nuaa_like(tmp_path_factory.mktemp("crop") / "nuaa_like", SIZES, seed=3, targets_per_image=2)


def test_crop_settings_are_recorded_and_restored_on_resume(data_root, tmp_path):
    out = tmp_path / "run"
    run_cli("train", "--root", data_root, "--split", "split_EFLNet", "--model", TINY_DETECTOR, "--device", "cpu",
            "--epochs", 1, "--imgsz", 64, "--batch", 2, "--workers", 0, "--no-progress", "--out", out,
            "--crop", 0.25, "--crop-min-side", 0.8)
    args = json.loads((out / "args.json").read_text())
    assert (args["crop"], args["crop_min_side"]) == (0.25, 0.8)
    assert load_checkpoint(out / "last.pt")["train_args"]["crop"] == 0.25
    run_cli("train", "--resume", out, "--model", TINY_DETECTOR, "--epochs", 2, "--device", "cpu", "--no-progress")
    args = json.loads((out / "args.json").read_text())
    assert (args["crop"], args["crop_min_side"]) == (0.25, 0.8) and load_checkpoint(out / "last.pt")["epoch"] == 2
    resumed = Trainer(TrainConfig(resume=str(out), model=TINY_DETECTOR, epochs=3, progress=False),
                      init_distributed("cpu"), explicit={"resume", "model", "epochs"})
    assert (resumed.config.crop, resumed.config.crop_min_side) == (0.25, 0.8)
    assert (resumed.config.augment_config().crop, resumed.config.augment_config().crop_min_side) == (0.25, 0.8)
    bad = run_cli("train", "--root", data_root, "--split", "split_EFLNet", "--model", TINY_DETECTOR, "--device",
                  "cpu", "--crop-min-side", 0, "--out", tmp_path / "bad", expect=2)
    assert "--crop-min-side 0.0: must be in (0, 1]" in bad.stderr and not (tmp_path / "bad").exists()


def test_recipes_keep_their_authors_augmentation_unless_crop_is_given(data_root, tmp_path):
    base = dict(root=str(data_root), dataset="nuaa", split="split_EFLNet", model=TINY_DETECTOR, imgsz=64,
                device="cpu", workers=0, progress=False, recipe="stand-in")
    given = {"root", "dataset", "split", "model", "imgsz", "device", "workers", "progress", "recipe"}
    plain = Trainer(TrainConfig(**base, out=str(tmp_path / "a")), init_distributed("cpu"), explicit=given)
    assert plain.config.crop == 0.0 and plain.config.mosaic == 1.0  # the recipe's, no crop added
    named = Trainer(TrainConfig(**base, out=str(tmp_path / "b"), crop=0.5), init_distributed("cpu"),
                    explicit=given | {"crop"})
    assert named.config.crop == 0.5
    assert TrainConfig().augment_config().crop == AugmentConfig().crop == 0.5  # no recipe: the engine default


@pytest.mark.parametrize("scale", [0.3, 0.55, 0.7, 0.99])
def test_shrunk_mask_pixel_is_foreground_iff_its_footprint_holds_a_target_pixel(scale):
    """The mask rule against a direct count of each output pixel's footprint (any overlap)."""
    rng = np.random.default_rng(int(scale * 100))
    canvas, out = 40, 16
    masks = torch.from_numpy((rng.random((2, 1, canvas, canvas)) > 0.97).astype(np.float32))
    centre = np.array([[20.013, 21.327], [17.71, 23.117]])  # footprint edges off the pixel edges
    a = np.full(2, scale)
    data = (masks, masks.clone(), torch.zeros(2, 1, 4), torch.zeros(2, 1, dtype=torch.bool))
    _, got, _, _ = affine_window(*data, scale=a, centre_px=centre, fliplr=np.array([False, True]),
                                 flipud=np.zeros(2, bool), out_size=out)
    for i in range(2):
        expected = np.zeros((out, out), bool)
        for r in range(out):
            for c in range(out):
                cc = out - 1 - c if i == 1 else c  # flipped left-right
                x, y = centre[i, 0] + (cc + 0.5 - out / 2) / scale, centre[i, 1] + (r + 0.5 - out / 2) / scale
                h = 0.5 / scale
                x0, x1 = max(int(np.floor(x - h)), 0), min(int(np.ceil(x + h)), canvas)
                y0, y1 = max(int(np.floor(y - h)), 0), min(int(np.ceil(y + h)), canvas)
                expected[r, c] = bool(masks[i, 0, y0:y1, x0:x1].any()) if x0 < x1 and y0 < y1 else False
        assert np.array_equal(got[i, 0].numpy() > 0, expected)
