"""Letterbox geometry, target-safe mask resizing, the letterboxed data set (augmentation: test_engine_augment)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_engine_models import make_nuaa_like

from irstd_bench.datasets import open_dataset
from irstd_bench.targets import mask_to_targets
from reference_model.engine.data import IRDataset, collate, plan_splits
from reference_model.engine.transforms import Letterbox, check_input_size, resize_mask


@pytest.mark.parametrize(
    ("native", "size", "resized", "pad"),
    [
        ((256, 256), 512, (512, 512), (0, 0)),
        ((135, 456), 512, (152, 512), (0, 180)),  # NUAA's widest: pad top/bottom
        ((456, 135), 512, (512, 152), (180, 0)),
        ((300, 200), 128, (128, 85), (21, 0)),  # shrink, odd padding
    ],
)
def test_letterbox_fit_sizes_and_padding(native, size, resized, pad):
    box = Letterbox.fit(native, size)
    assert box.resized == resized and box.pad == pad


@pytest.mark.parametrize("native", [(135, 456), (456, 135), (256, 256), (300, 200), (97, 61)])
@pytest.mark.parametrize("size", [128, 512])
def test_letterbox_box_round_trip_is_exact(native, size):
    h, w = native
    boxes = np.array(
        [[0, 0, 1, 1], [w - 1, h - 1, w, h], [3, 5, 10, 7], [w // 2, h // 3, w // 2 + 1, h // 3 + 1]]
    )
    box = Letterbox.fit(native, size)
    to_input = box.boxes_to_input(boxes)
    assert to_input.min() >= 0 and to_input.max() <= size
    # The scaled image spans exactly the scaled native frame inside the padding.
    np.testing.assert_allclose(
        box.boxes_to_input([[0, 0, w, h]]),
        [[*box.pad, box.pad[0] + box.resized[1], box.pad[1] + box.resized[0]]],
    )
    np.testing.assert_allclose(box.boxes_to_native(to_input), boxes, rtol=0, atol=1e-9)


def test_letterbox_clips_boxes_in_the_padding():
    box = Letterbox.fit((135, 456), 512)  # pad_y = 180
    native = box.boxes_to_native([[-5, 100, 20, 200]])
    assert native[0, 0] == 0 and native[0, 1] == 0  # above the image -> clipped to row 0


def test_letterbox_mask_keeps_one_pixel_targets_when_shrinking_and_enlarging():
    mask = np.zeros((300, 200), bool)
    mask[0, 0] = mask[150, 101] = mask[299, 199] = True
    for size in (64, 512):
        out = Letterbox.fit(mask.shape, size).mask_to_input(mask)
        assert len(mask_to_targets(out)) == 3


def test_resize_mask_enlarging_is_nearest_and_exact():
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    out = resize_mask(mask, (6, 8))
    assert out.sum() == 4 and out[2:4, 4:6].all()


def test_score_map_back_to_native_has_native_size_and_range():
    box = Letterbox.fit((40, 70), 64)
    score = np.zeros((64, 64), np.float32)
    score[box.pad[1] : box.pad[1] + box.resized[0], box.pad[0] : box.pad[0] + box.resized[1]] = 0.75
    native = box.score_map_to_native(score)
    assert native.shape == (40, 70) and native.dtype == np.float32
    np.testing.assert_allclose(native, 0.75, atol=1e-6)  # the padding never leaks in


def test_check_input_size():
    assert check_input_size(64) == 64
    for bad in (0, 48, 100):
        with pytest.raises(ValueError, match="multiple of 32"):
            check_input_size(bad)


@pytest.fixture(scope="module")
def nonsquare_root(tmp_path_factory):
    sizes = [(40, 70), (90, 50), (64, 64), (33, 100), (50, 41), (70, 70)]
    return make_nuaa_like(tmp_path_factory.mktemp("nuaa_like") / "data", sizes, seed=1, targets_per_image=3)


def test_validation_items_are_plain_letterbox_and_collate(nonsquare_root):
    samples = open_dataset(nonsquare_root, "nuaa").samples("all")
    data = IRDataset(samples, 64)
    assert torch.equal(data[1]["image"], data[1]["image"]) and not hasattr(data, "epoch")  # no hidden state
    images, targets, meta = collate([data[0], data[1]])
    assert images.shape == (2, 3, 64, 64)
    assert meta[0]["letterbox"] == Letterbox.fit((40, 70), 64) and meta[1]["stem"] == "Misc_2"
    assert len(targets[0]["boxes"]) == 3 and targets[0]["masks"].shape == (64, 64)


def test_split_plan_falls_back_to_test_only_without_val(nonsquare_root):
    ds = open_dataset(nonsquare_root, "nuaa")
    plan = plan_splits(ds, "idx_427")
    assert (plan.train, plan.val, plan.val_is_test) == ("idx_427/trainval", "idx_427/test", True)
    plan = plan_splits(ds, "split_EFLNet")
    assert (plan.train, plan.val, plan.val_is_test) == ("split_EFLNet/train", "split_EFLNet/val", False)
    from irstd_bench.errors import InputError

    with pytest.raises(InputError, match="no train or trainval"):
        plan_splits(ds, "50_50")
