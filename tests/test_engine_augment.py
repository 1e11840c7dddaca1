"""Batched tensor augmentation: exact geometry, targets kept consistent, settings reach the draws."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from irstd_bench.targets import mask_to_targets
from reference_model.engine.augment import (
    AugmentConfig,
    augment_batch,
    batch_generator,
    draw,
    mosaic_canvas,
    photometric,
    split_targets,
)
from reference_model.engine.data import LetterboxedTensors

SIDE = 64


def _tensors(masks: list[np.ndarray]) -> LetterboxedTensors:
    """Training tensors whose image equals its mask (so image and mask moves can be compared)."""
    boxes = [mask_to_targets(m).boxes.astype(np.float32) for m in masks]
    most = max(1, *(len(b) for b in boxes))
    box_t = torch.zeros(len(masks), most, 4)
    valid = torch.zeros(len(masks), most, dtype=torch.bool)
    for i, b in enumerate(boxes):
        box_t[i, : len(b)] = torch.from_numpy(b)
        valid[i, : len(b)] = True
    m = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
    return LetterboxedTensors(m.clone(), m.clone(), box_t, valid, [{} for _ in masks])


def _sparse_masks(seed: int, n_images: int = 4, side: int = SIDE) -> list[np.ndarray]:
    """1-pixel and 3x3 targets at least 4 px apart and 2 px from the border."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        mask = np.zeros((side, side), bool)
        for _ in range(int(rng.integers(1, 5))):
            y, x = (int(v) for v in rng.integers(2, side - 5, size=2))
            if not mask[max(0, y - 4) : y + 7, max(0, x - 4) : x + 7].any():
                size = 1 if rng.random() < 0.5 else 3
                mask[y : y + size, x : x + size] = True
        out.append(mask)
    return out


def _no_photometric(**kw) -> AugmentConfig:
    return AugmentConfig(**{"brightness": 0.0, "contrast": 0.0, "noise": 0.0, **kw})


def _fixed_draws(config: AugmentConfig, batch: int, **values):
    draws = draw(batch_generator(0, 0, 0), batch, 4, config)
    return dataclasses.replace(draws, **{k: np.asarray(v) for k, v in values.items()})


def test_flips_and_identity_move_a_one_pixel_target_exactly():
    mask = np.zeros((32, 32), bool)
    mask[1, 2] = True
    data = _tensors([mask, mask])
    config = _no_photometric(scale=0.0, translate=0.0)
    draws = _fixed_draws(
        config, 2, scale=[1.0, 1.0], centre=[[0, 0], [0, 0]], fliplr=[False, True], flipud=[False, True],
        mosaic=[False, False], mixup=[False, False],
    )
    images, masks, boxes, valid = augment_batch(data, np.array([0, 1]), draws, config, 32)
    targets = split_targets(masks, boxes, valid)
    assert targets[0]["boxes"].tolist() == [[2, 1, 3, 2]]
    assert targets[1]["boxes"].tolist() == [[29, 30, 30, 31]]  # col 31-2, row 31-1
    assert torch.allclose(images[0, 0], torch.from_numpy(mask.astype(np.float32)), atol=1e-6)
    assert masks[1, 0, 30, 29] == 1 and masks[1].sum() == 1
    assert images[1, 0, 30, 29] == pytest.approx(1.0, abs=1e-6)


def test_mosaic_canvas_places_the_four_tiles_and_their_boxes():
    masks = _sparse_masks(3)
    data = _tensors(masks)
    m = len(masks)
    images, canvas_masks, boxes, valid = mosaic_canvas(
        data.images[None].expand(1, m, 1, SIDE, SIDE),
        data.masks[None].expand(1, m, 1, SIDE, SIDE),
        data.boxes[None],
        data.valid[None],
    )
    assert images.shape == (1, 1, 2 * SIDE, 2 * SIDE)
    expected = mask_to_targets(canvas_masks[0, 0].numpy() > 0).boxes.tolist()
    got = boxes[0][valid[0]].tolist()
    assert sorted(got) == sorted(expected) and len(got) == sum(len(mask_to_targets(x)) for x in masks)
    assert canvas_masks[0, 0, SIDE:, :SIDE].numpy().astype(bool).tolist() == masks[2].tolist()  # bottom-left


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_every_kept_box_has_its_mask_and_every_mask_pixel_its_box(seed):
    """Under mosaic, scale (shrink and zoom), translation, flips and mixup, boxes and masks agree."""
    data = _tensors(_sparse_masks(seed))
    config = _no_photometric(scale=0.7, translate=0.3, mosaic=0.5, mixup=0.5, fliplr=0.5, flipud=0.5)
    rng = batch_generator(seed, 1, 2)
    indices = rng.integers(0, 4, size=4)
    draws = draw(rng, 4, 4, config)
    images, masks, boxes, valid = augment_batch(data, indices, draws, config, 32)
    assert images.shape == masks.shape == (4, 1, 32, 32)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[1:-1, 1:-1] = False  # targets cut by the border may keep a sliver in one of the two
    for target, mask in zip(split_targets(masks, boxes, valid), masks[:, 0], strict=True):
        covered = torch.zeros_like(mask, dtype=torch.bool)
        for x0, y0, x1, y1 in target["boxes"].tolist():
            assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32
            # the box's pixels (grown by one pixel: sampling rounds) hold foreground
            r0, r1 = max(0, int(np.floor(y0)) - 1), min(32, int(np.ceil(y1)) + 1)
            c0, c1 = max(0, int(np.floor(x0)) - 1), min(32, int(np.ceil(x1)) + 1)
            assert mask[r0:r1, c0:c1].any() or border[r0:r1, c0:c1].any()
            covered[r0:r1, c0:c1] = True
        stray = mask.bool() & ~covered
        assert not stray[1:-1, 1:-1].any()  # no foreground without a box (away from the border)


def test_shrinking_keeps_one_pixel_targets_in_image_and_mask():
    masks = _sparse_masks(5)
    data = _tensors(masks)
    config = _no_photometric()
    draws = _fixed_draws(
        config, 4, scale=[0.3] * 4, centre=np.zeros((4, 2)), fliplr=[False] * 4, flipud=[False] * 4,
        mosaic=[False] * 4, mixup=[False] * 4,
    )
    images, out_masks, boxes, valid = augment_batch(data, np.arange(4), draws, config, 32)
    for i, mask in enumerate(masks):
        n = len(mask_to_targets(mask))
        assert int(valid[i].sum()) == n
        assert len(mask_to_targets(out_masks[i, 0].numpy() > 0)) >= 1
        assert float(images[i].max()) > 0.05  # energy kept (box pre-filter), not skipped by the samples


def test_settings_reach_the_draws():
    rng = batch_generator(7, 0, 0)
    on = draw(rng, 64, 10, AugmentConfig(fliplr=1.0, flipud=0.0, mosaic=1.0, mixup=1.0, scale=0.0, hsv_v=0.5))
    assert on.fliplr.all() and not on.flipud.any() and on.mosaic.all() and on.mixup.all()
    assert (on.scale == 1.0).all() and on.value_gain.min() >= 0.5 and on.value_gain.max() <= 1.5
    assert on.value_gain.std() > 0.1 and (on.mixup_partner != np.arange(64)).all()
    off = draw(batch_generator(7, 0, 0), 64, 10, AugmentConfig.off())
    assert not (off.fliplr.any() or off.flipud.any() or off.mosaic.any() or off.mixup.any())
    assert (off.scale == 1.0).all() and (off.value_gain == 1.0).all() and (off.noise_sigma == 0).all()
    images = torch.rand(64, 1, 8, 8)
    assert torch.equal(photometric(images, off), images)  # no augmentation: the letterboxed pixels, exactly
    wide = draw(batch_generator(7, 0, 0), 4096, 10, AugmentConfig(scale=0.9))
    assert wide.scale.min() < 0.2 and wide.scale.max() > 1.8


def test_draws_are_a_function_of_seed_epoch_iteration_and_rank():
    config = AugmentConfig(mosaic=0.5, mixup=0.5)
    a = draw(batch_generator(1, 2, 3, 0), 8, 20, config)
    b = draw(batch_generator(1, 2, 3, 0), 8, 20, config)
    assert all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    for other in (batch_generator(1, 3, 3, 0), batch_generator(1, 2, 4, 0), batch_generator(1, 2, 3, 1)):
        assert not np.array_equal(draw(other, 8, 20, config).centre, a.centre)


def test_value_gain_mixup_and_noise_reach_the_image():
    images = torch.full((2, 1, 8, 8), 0.4)
    config = _no_photometric(hsv_v=0.5)
    draws = _fixed_draws(config, 2, value_gain=[0.5, 1.5], contrast=[1.0, 1.0], brightness=[0.0, 0.0],
                         noise_sigma=[0.0, 0.0])
    out = photometric(images, draws)
    assert torch.allclose(out[0], torch.full((1, 8, 8), 0.2)) and torch.allclose(out[1], torch.full((1, 8, 8), 0.6))
    noisy = photometric(images, dataclasses.replace(draws, noise_sigma=np.array([0.0, 0.1])))
    assert noisy[1].std() > 0.05 and torch.allclose(noisy[0], out[0])

    masks = _sparse_masks(11, n_images=2)
    data = _tensors(masks)
    config = _no_photometric(mixup=1.0)
    draws = _fixed_draws(
        config, 2, scale=[1.0, 1.0], centre=np.zeros((2, 2)), fliplr=[False] * 2, flipud=[False] * 2,
        mosaic=[False] * 2, mixup=[True, False], mixup_partner=[1, 0], mixup_ratio=[0.25, 0.5],
    )
    images, out_masks, boxes, valid = augment_batch(data, np.arange(2), draws, config, SIDE)
    expected = 0.25 * data.images[0] + 0.75 * data.images[1]
    assert torch.allclose(images[0], expected, atol=1e-5)
    assert torch.equal(out_masks[0], torch.maximum(data.masks[0], data.masks[1]))
    n0, n1 = len(mask_to_targets(masks[0])), len(mask_to_targets(masks[1]))
    assert int(valid[0].sum()) == n0 + n1 and int(valid[1].sum()) == n1  # only the drawn image mixes
