"""YOLOv7's augmentation as engine settings (issue 22): mosaics, fill value, window, box filter, mixup.

Each setting is pinned by what it does to tensors: where a 9-image mosaic puts its tiles and what
fills the rest, where a random-centre mosaic's tiles meet, the pad value of the window and of the
letterbox (training and ``predict``), the tiny-box rule, and the mixup ratio's distribution.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_engine_models import TINY_DETECTOR, make_nuaa_like
from test_engine_train import SIZES, _config, run_cli

from reference_model.engine import train
from reference_model.engine.augment import (
    AugmentConfig,
    augment_batch,
    batch_generator,
    draw,
    split_targets,
)
from reference_model.engine.checkpoint import load_checkpoint
from reference_model.engine.crop import jitter_windows
from reference_model.engine.data import IRDataset, LetterboxedTensors, load_letterboxed
from reference_model.engine.predict import inference_settings, predict_samples
from reference_model.engine.transforms import Letterbox

#: Side of the tiles' squares.
SIDE = 8
#: YOLOv7's grey fill.
GREY = 114 / 255
#: Value of a tile square's letterbox padding in these tests (never expected in a yolov7 mosaic).
SQUARE_PAD = 0.9


def _still(**kw) -> AugmentConfig:
    """No photometric change, no flips, no crop, no jitter: a window shows the canvas as it is."""
    settings = dict(brightness=0.0, contrast=0.0, noise=0.0, fliplr=0.0, flipud=0.0, crop=0.0, scale=0.0,
                    translate=0.0)  # fmt: skip
    return AugmentConfig(**{**settings, **kw})


def _tiles(sizes: list[tuple[int, int]], side: int = SIDE) -> LetterboxedTensors:
    """Squares whose content ``(w, h)`` (centred, value ``(k + 1) / 16``) holds one 1-px target at its
    top-left pixel; the rest of each square is :data:`SQUARE_PAD`."""
    n = len(sizes)
    images = torch.full((n, 1, side, side), SQUARE_PAD)
    masks = torch.zeros((n, 1, side, side))
    boxes = torch.zeros((n, 1, 4))
    content = np.zeros((n, 4), np.int64)
    for k, (w, h) in enumerate(sizes):
        x0, y0 = (side - w) // 2, (side - h) // 2
        content[k] = (x0, y0, x0 + w, y0 + h)
        images[k, 0, y0 : y0 + h, x0 : x0 + w] = (k + 1) / 16
        masks[k, 0, y0, x0] = 1.0
        boxes[k, 0] = torch.tensor([x0, y0, x0 + 1, y0 + 1], dtype=torch.float32)
    valid = torch.ones((n, 1), dtype=torch.bool)
    return LetterboxedTensors(images, masks, boxes, valid, [{} for _ in sizes], content=content)


def _mosaic_draws(config: AugmentConfig, nine: bool, centre_u) -> object:
    draws = draw(batch_generator(0, 0, 0), 1, 9, config)
    return dataclasses.replace(
        draws, mosaic=np.array([True]), mosaic9=np.array([nine]), mosaic_others=np.arange(1, 9)[None],
        mosaic_centre=np.array([centre_u], np.float64), scale=np.array([1.0]), centre=np.zeros((1, 2)),
        fliplr=np.array([False]), flipud=np.array([False]), crop=np.array([False]), mixup=np.array([False]),
    )  # fmt: skip


def _value_boxes(image: torch.Tensor, n: int) -> dict[int, tuple[int, int, int, int]]:
    """Bounding rectangle ``(x0, y0, x1, y1)`` of the pixels of each tile value ``(k + 1) / 16``."""
    out = {}
    for k in range(n):
        ys, xs = torch.nonzero((image - (k + 1) / 16).abs() < 1e-6, as_tuple=True)
        if len(xs):
            out[k] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return out


def test_nine_image_mosaic_lays_its_tiles_clockwise_around_the_drawn_image_and_fills_the_rest():
    sizes = [(3, 3), (2, 3), (3, 2), (2, 2), (3, 3), (3, 2), (2, 3), (2, 2), (3, 2)]  # (w, h) of tiles 0-8
    data = _tiles(sizes)
    config = _still(mosaic=1.0, mosaic9=1.0, mosaic_style="yolov7", pad_value=GREY)
    # window offset floor(u * SIDE) = (3, 3) on the 3 x SIDE canvas
    draws = _mosaic_draws(config, True, [3.5 / SIDE, 3.5 / SIDE])
    images, masks, boxes, valid = augment_batch(data, np.array([0]), draws, config, 2 * SIDE)
    canvas = images[0, 0]
    rect = _value_boxes(canvas, 9)
    s, o = SIDE, 3
    w = {k: sz[0] for k, sz in enumerate(sizes)}
    h = {k: sz[1] for k, sz in enumerate(sizes)}
    assert rect[0] == (s - o, s - o, s - o + w[0], s - o + h[0])  # the drawn image at (Sb, Sb) of the 3 Sb canvas
    x0, y0, x1, y1 = rect[0]
    assert rect[1][0] == x0 and rect[1][3] == y0  # top: on tile 0, left-aligned
    assert rect[2][0] == rect[1][2] and rect[2][3] == y0  # top-right: right of tile 1
    assert rect[3][0] == x1 and rect[3][1] == y0  # right: beside tile 0, top-aligned
    assert rect[4][0] == x1 and rect[4][1] == rect[3][3]  # bottom-right: under tile 3
    assert rect[5][2] == x1 and rect[5][1] == y1  # bottom: under tile 0, right-aligned
    assert rect[6][2] == rect[5][0] and rect[6][1] == y1  # bottom-left: left of tile 5
    assert rect[7][2] == x0 and rect[7][3] == y1  # left: beside tile 0, bottom-aligned
    assert rect[8][2] == x0 and rect[8][3] == rect[7][1]  # top-left: above tile 7
    for k, (a, b, c, d) in rect.items():  # whole contents, nothing of the squares' padding
        assert (c - a, d - b) == sizes[k]
    assert not ((canvas - SQUARE_PAD).abs() < 1e-6).any()
    covered = sum(a * b for a, b in sizes)
    grey = (canvas - GREY).abs() < 1e-6
    assert int(grey.sum()) == (2 * s) ** 2 - covered  # every other pixel is the fill value
    # each tile's target moved with it: its box at its content's top-left pixel, its mask pixel there
    kept = boxes[0][valid[0]].tolist()
    assert sorted(kept) == sorted([[a, b, a + 1, b + 1] for a, b, _, _ in rect.values()])
    assert int(masks.sum()) == 9 and all(masks[0, 0, b, a] == 1 for a, b, _, _ in rect.values())


def test_nine_image_grid_mosaic_is_a_centred_three_by_three_of_whole_squares():
    data = _tiles([(SIDE, SIDE)] * 9)
    config = _still(mosaic=1.0, mosaic9=1.0)  # mosaic_style grid
    draws = _mosaic_draws(config, True, [0.9, 0.1])  # the centre draw does not move a grid
    canvas = augment_batch(data, np.array([0]), draws, config, 2 * SIDE)[0][0, 0]
    half = SIDE // 2
    expected = {0: (half, half), 1: (half, -half), 3: (half + SIDE, half), 5: (half, half + SIDE),
                7: (-half, half), 8: (-half, -half), 2: (half + SIDE, -half), 4: (half + SIDE, half + SIDE),
                6: (-half, half + SIDE)}  # fmt: skip
    for k, (x, y) in expected.items():
        x0, y0 = max(x, 0), max(y, 0)
        assert torch.all((canvas[y0 : y + SIDE, x0 : x + SIDE] - (k + 1) / 16).abs() < 1e-6), k


def test_random_centre_mosaic_meets_at_the_drawn_centre_with_unletterboxed_tiles():
    sizes = [(5, 3), (4, 6), (7, 2), (3, 3)]
    data = _tiles(sizes + [(1, 1)] * 5)
    config = _still(mosaic=1.0, mosaic_style="yolov7", pad_value=GREY)
    # centre floor(SIDE // 2 + u * SIDE) = (6, 8)
    draws = _mosaic_draws(config, False, [0.3, 0.6])
    images, masks, boxes, valid = augment_batch(data, np.array([0]), draws, config, 2 * SIDE)
    expected = torch.full((2 * SIDE, 2 * SIDE), GREY)
    # tile 0 ends at the centre, 1 starts there to the right, 2 below (cut by the left edge), 3 both
    for k, (x0, y0, x1, y1) in enumerate([(1, 5, 6, 8), (6, 2, 10, 8), (0, 8, 6, 10), (6, 8, 9, 11)]):
        expected[y0:y1, x0:x1] = (k + 1) / 16
    torch.testing.assert_close(images[0, 0], expected)
    boxes_kept = sorted(boxes[0][valid[0]].tolist())
    # tile 2's target pixel (its content's top-left, at x = -1) is outside the canvas: dropped
    assert boxes_kept == sorted([[1, 5, 2, 6], [6, 2, 7, 3], [6, 8, 7, 9]])


def test_grid_four_mosaic_places_the_whole_letterboxed_squares_as_before():
    data = _tiles([(5, 3), (4, 6), (7, 2), (3, 3)])  # contents smaller than their squares
    config = _still(mosaic=1.0, pad_value=GREY)  # mosaic_style grid
    draws = _mosaic_draws(config, False, [0.9, 0.1])  # the centre draw does not move a grid
    canvas = augment_batch(data, np.array([0]), draws, config, 2 * SIDE)[0][0, 0]
    for k, (x, y) in enumerate([(0, 0), (SIDE, 0), (0, SIDE), (SIDE, SIDE)]):
        assert torch.equal(canvas[y : y + SIDE, x : x + SIDE], data.images[k, 0])  # padding and all
    # the general placement gives the same canvas as the 2 x 2 reshape
    from reference_model.engine.mosaic import GRID_FOUR, place_tiles

    whole = np.tile(np.array([0, 0, SIDE, SIDE]), (1, 4, 1))
    placed = place_tiles(data.images[None], GRID_FOUR[None] * SIDE, whole, 2 * SIDE, (GREY,))
    assert torch.equal(placed[0, 0], canvas)


def test_pixels_outside_the_canvas_read_the_pad_value():
    data = _tiles([(SIDE, SIDE)] * 2, side=16)
    for pad in (0.0, GREY):
        config = _still(pad_value=pad)
        draws = draw(batch_generator(0, 0, 0), 2, 2, config)
        draws = dataclasses.replace(
            draws, mosaic=np.zeros(2, bool), mixup=np.zeros(2, bool), scale=np.array([0.5, 1.0]),
            centre=np.zeros((2, 2)), fliplr=np.zeros(2, bool), flipud=np.zeros(2, bool),
        )  # fmt: skip
        images = augment_batch(data, np.array([0, 1]), draws, config, 16)[0]
        # zoomed out 2x: the 16-px canvas covers the centre 8 x 8, the ring around it is outside
        assert torch.allclose(images[0, 0, :4], torch.full((4, 16), pad)) and images[0, 0, :4].std() < 1e-6
        assert torch.allclose(images[0, 0, 7:9, 7:9], torch.full((2, 2), 1 / 16), atol=1e-6)
        assert not torch.isclose(images[1, 0], torch.tensor(pad)).any() or pad == 0.0


def test_pad_value_fills_the_letterbox_of_training_and_validation_tensors(tmp_path):
    root = make_nuaa_like(tmp_path / "data", SIZES[:4], seed=5, targets_per_image=1)
    from irstd_bench.datasets import open_dataset

    ds = open_dataset(root, "nuaa")
    samples = ds.samples("split_EFLNet/train")
    data = load_letterboxed(samples, 64, torch.device("cpu"), dataset=ds, pad_value=GREY)
    for image, (x0, y0, x1, y1) in zip(data.images, data.content, strict=True):
        outside = torch.ones(64, 64, dtype=torch.bool)
        outside[y0:y1, x0:x1] = False
        assert outside.any() and torch.allclose(image[0][outside], torch.tensor(GREY))
    letterbox = Letterbox.fit((40, 70), 64)
    assert letterbox.content == (0, 13, 64, 50)  # 40 x 70 -> 37 x 64, 13 px above
    assert letterbox.image_to_input(np.ones((40, 70), np.float32), fill=0.25)[0, 0] == 0.25


class _Recorder(torch.nn.Module):
    """A detector that records its inputs and finds nothing."""

    task = "detect"

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.max_det: list[int] = []

    def forward(self, images):
        self.seen.append(images.clone())
        return images

    def postprocess(self, outputs, *, conf_threshold, iou_threshold, max_det):
        self.max_det.append(max_det)
        return [{"boxes": torch.zeros((0, 4)), "scores": torch.zeros(0)} for _ in outputs]


def test_predict_letterboxes_with_the_runs_pad_value_and_keeps_its_max_det(tmp_path, monkeypatch):
    root = make_nuaa_like(tmp_path / "data", SIZES, seed=6, targets_per_image=2)
    out = tmp_path / "run"
    train(_config(root, out, epochs=1, augment=False, pad_value=0.25, max_det=7))
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["train_args"]["pad_value"] == 0.25 and checkpoint["train_args"]["max_det"] == 7
    assert inference_settings(checkpoint, out / "last.pt") == (0.25, 7)
    assert inference_settings({"train_args": {}}, out / "x.pt") == (0.0, 100)  # released weights: defaults
    with pytest.raises(Exception, match="pad_value"):
        inference_settings({"train_args": {"pad_value": "grey"}}, out / "x.pt")

    from irstd_bench.datasets import open_dataset

    samples = open_dataset(root, "nuaa").samples("split_EFLNet/test")
    model = _Recorder()
    predict_samples(model, samples, 64, torch.device("cpu"), pad_value=0.25, max_det=7)
    first = samples[0]
    letterbox = IRDataset([first], 64).__getitem__(0)["letterbox"]
    x0, y0, x1, y1 = letterbox.content
    image = model.seen[0][0, 0]
    outside = torch.ones_like(image, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    assert outside.any() and torch.allclose(image[outside], torch.tensor(0.25)) and set(model.max_det) == {7}

    # the predict command reads both from the checkpoint (--max-det overrides)
    calls = []
    import reference_model.engine.predict as predict_module

    real = predict_module.predict_samples
    monkeypatch.setattr(predict_module, "predict_samples", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    common = ("predict", "--model", TINY_DETECTOR, "--weights", out / "last.pt", "--root", root, "--dataset",
              "nuaa", "--split", "split_EFLNet/test", "--device", "cpu", "--no-progress")  # fmt: skip
    run_cli(*common, "--out", tmp_path / "p1")
    run_cli(*common, "--max-det", 3, "--out", tmp_path / "p2")
    assert [(c["pad_value"], c["max_det"]) for c in calls] == [(0.25, 7), (0.25, 3)]


def test_min_box_side_drops_boxes_not_wider_and_higher_than_it():
    mask = np.zeros((16, 16), bool)
    mask[2:4, 2:4] = True  # 2 x 2 px
    mask[8:11, 8:11] = True  # 3 x 3 px
    images = torch.from_numpy(mask.astype(np.float32))[None, None]
    boxes = torch.tensor([[[2.0, 2, 4, 4], [8, 8, 11, 11]]])
    data = LetterboxedTensors(images, images.clone(), boxes, torch.ones(1, 2, dtype=torch.bool), [{}])
    kept = {}
    for side in (0.0, 2.0, 3.0):
        config = _still(min_box_side=side)
        draws = dataclasses.replace(draw(batch_generator(0, 0, 0), 1, 1, config), scale=np.array([1.0]),
                                    centre=np.zeros((1, 2)))  # fmt: skip
        _, _, out_boxes, valid = augment_batch(data, np.array([0]), draws, config, 16)
        kept[side] = out_boxes[0][valid[0]].tolist()
    assert kept == {0.0: [[2, 2, 4, 4], [8, 8, 11, 11]], 2.0: [[8, 8, 11, 11]], 3.0: []}


def test_yolov7_window_scales_to_1_1_plus_scale_and_moves_around_the_canvas_centre_only():
    config = AugmentConfig(scale=0.9, window_style="yolov7")
    scales = draw(batch_generator(3, 0, 0), 20_000, 10, config).scale
    assert scales.min() >= 0.1 and scales.max() <= 2.0 and scales.max() > 1.99 and scales.min() < 0.11
    assert np.mean(scales) == pytest.approx(1.05, abs=0.01)  # U(0.1, 2.0); U(0.1, 1.9) has mean 1.0
    canvas_scales = draw(batch_generator(3, 0, 0), 20_000, 10, AugmentConfig(scale=0.9)).scale
    assert canvas_scales.max() <= 1.9 and np.mean(canvas_scales) == pytest.approx(1.0, abs=0.01)
    # a 2x zoom into a 128-px canvas, input 64, translate 0.2, centre draws at the extremes
    extremes = np.array([[1.0, -1.0]])
    yolov7 = jitter_windows(np.array([2.0]), extremes, 128, 64, 0.2, style="yolov7")
    canvas = jitter_windows(np.array([2.0]), extremes, 128, 64, 0.2, style="canvas")
    assert yolov7[0] == pytest.approx([64 + 0.2 * 32, 64 - 0.2 * 32])  # +- translate x window side (32 px)
    assert canvas[0] == pytest.approx([64 + 48 + 6.4, 64 - 48 - 6.4])  # and over the rest of the canvas


@pytest.mark.parametrize(("beta", "variance"), [(8.0, 1 / 68), (32.0, 1 / 260)])
def test_mixup_ratio_follows_beta_of_the_setting(beta, variance):
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    config = AugmentConfig(mixup=1.0, mixup_beta=beta)
    ratios = np.concatenate([draw(batch_generator(11, 0, i), 2000, 10, config).mixup_ratio for i in range(10)])
    assert ratios.mean() == pytest.approx(0.5, abs=0.005)
    assert ratios.var() == pytest.approx(variance, rel=0.06)
    assert ((ratios - 0.5) ** 4).mean() / ratios.var() ** 2 == pytest.approx(3 - 6 / (2 * beta + 3), rel=0.1)


def test_fresh_mixup_partner_is_another_training_sample_flipped_with_the_image():
    data = _tiles([(SIDE, SIDE)] * 3)
    config = _still(mixup=1.0, mixup_partner="fresh")
    draws = draw(batch_generator(0, 0, 0), 1, 3, config)
    assert draws.partner is not None and draws.mixup.all()  # a batch of one can mix with a fresh sample
    still = dict(mosaic=np.zeros(1, bool), mosaic9=np.zeros(1, bool), scale=np.ones(1), centre=np.zeros((1, 2)),
                 crop=np.zeros(1, bool))  # fmt: skip
    flips = dict(fliplr=np.array([True]), flipud=np.array([False]))
    partner = dataclasses.replace(draws.partner, **still, **flips)
    draws = dataclasses.replace(draws, **still, **flips, partner=partner, partner_index=np.array([2]),
                                mixup_ratio=np.array([0.75]))  # fmt: skip
    images, masks, boxes, valid = augment_batch(data, np.array([0]), draws, config, SIDE)
    expected = 0.75 * data.images[0] + 0.25 * data.images[2]  # uniform tiles: the flip leaves the values
    torch.testing.assert_close(images[0], expected)
    # both targets, mirrored: each at its content's top-left pixel, flipped left-right
    assert sorted(boxes[0][valid[0]].tolist()) == [[SIDE - 1, 0, SIDE, 1], [SIDE - 1, 0, SIDE, 1]]
    batch = draw(batch_generator(0, 0, 0), 4, 3, _still(mixup=1.0))
    assert batch.partner is None  # the default partner is a batch neighbour


def test_draws_of_the_engine_defaults_are_unchanged_by_the_new_settings():
    # the first settings' draws come first from the batch generator, the new ones from spawned children
    rng = batch_generator(4, 1, 2)
    uniform = rng.random((13, 6))
    default = draw(batch_generator(4, 1, 2), 6, 10, AugmentConfig(mosaic=0.5, scale=0.3))
    yolo = draw(batch_generator(4, 1, 2), 6, 10, AugmentConfig(mosaic=0.5, scale=0.3, mosaic9=0.5,
                                                              mosaic_style="yolov7", mixup_partner="fresh"))
    assert np.array_equal(default.mosaic, uniform[0] < 0.5)
    assert np.allclose(default.scale, 1 + 0.3 * (2 * uniform[1] - 1))
    for name in ("mosaic", "scale", "centre", "fliplr", "flipud", "crop", "crop_side"):
        assert np.array_equal(getattr(default, name), getattr(yolo, name)), name
    assert np.array_equal(default.mosaic_others[:, :3], yolo.mosaic_others[:, :3])


def test_split_targets_still_pairs_boxes_and_masks_after_a_yolov7_mosaic_and_mixup():
    data = _tiles([(5, 4), (6, 6), (3, 7), (8, 2), (4, 4), (7, 7), (2, 3), (5, 5), (6, 3)])
    config = AugmentConfig(mosaic=1.0, mosaic9=0.5, mosaic_style="yolov7", window_style="yolov7", scale=0.5,
                           translate=0.2, mixup=0.5, mixup_partner="fresh", mixup_beta=8.0, pad_value=GREY,
                           brightness=0.0, contrast=0.0, noise=0.0, crop=0.0)  # fmt: skip
    for seed in range(6):
        rng = batch_generator(seed, 0, 0)
        draws = draw(rng, 4, 9, config)
        images, masks, boxes, valid = augment_batch(data, np.arange(4), draws, config, 16)
        assert images.shape == (4, 1, 16, 16) and torch.isfinite(images).all()
        for target in split_targets(masks, boxes, valid):
            for x0, y0, x1, y1 in target["boxes"].tolist():
                assert 0 <= x0 < x1 <= 16 and 0 <= y0 < y1 <= 16


def test_place_tiles_copies_every_pixel_from_its_tile_or_the_fill():
    # Reference: each canvas pixel looked up one by one (the rule the slice copies implement), over
    # random layouts that cross every canvas edge, lie wholly outside, or hold empty contents.
    from reference_model.engine.mosaic import place_tiles

    rng = np.random.default_rng(0)
    m, k, c, side, canvas = 3, 9, 2, 6, 12
    tiles = torch.from_numpy(rng.random((m, k, c, side, side), dtype=np.float32))
    for _ in range(20):
        origins = rng.integers(-side, canvas, (m, k, 2))
        x0, y0 = rng.integers(0, side, (2, m, k))
        content = np.stack([x0, y0, rng.integers(x0, side + 1), rng.integers(y0, side + 1)], axis=-1)
        placed = place_tiles(tiles, origins, content, canvas, (0.25, -1.0)).numpy()
        expected = np.empty((m, c, canvas, canvas), np.float32)
        expected[:, 0], expected[:, 1] = 0.25, -1.0
        for i in range(m):
            for j in range(k):
                for yy in range(canvas):
                    for xx in range(canvas):
                        tx, ty = xx - origins[i, j, 0], yy - origins[i, j, 1]
                        if content[i, j, 0] <= tx < content[i, j, 2] and content[i, j, 1] <= ty < content[i, j, 3]:
                            expected[i, :, yy, xx] = tiles[i, j, :, ty, tx].numpy()
        np.testing.assert_array_equal(placed, expected)
