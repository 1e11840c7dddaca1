"""The synthetic sample: determinism, layout, exact masks, SCR and the ``synth`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench.cli import cli
from irstd_bench.datasets import load_ground_truth, open_dataset
from irstd_bench.errors import InputError
from irstd_bench.synth import (
    MASK_FRACTION,
    RECORD_NAME,
    SCR_MARGIN_PX,
    _generate,
    generate_image,
    generate_sample,
    is_synth_output,
    parse_scr,
)
from irstd_bench.synth._targets import TargetShape, render_profile
from irstd_bench.targets import mask_to_targets

N_IMAGES, SIZE, SEED, MAX_AREA = 24, 128, 3, 60
SCR_RANGE = (3.0, 8.0)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _gray(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "sample"
    summary = generate_sample(
        out, n_images=N_IMAGES, size=SIZE, seed=SEED, max_targets=4, scr=SCR_RANGE, max_area_px=MAX_AREA
    )
    record = json.loads((out / RECORD_NAME).read_text())
    assert summary.n_images == N_IMAGES
    assert summary.n_targets == record["counts"]["targets"]
    assert summary.n_background_only == record["counts"]["background_only_images"]
    return out, record


def _all_targets(record: dict) -> list[dict]:
    return [t for image in record["images"].values() for t in image["targets"]]


# ---------------------------------------------------------------- determinism


def test_same_arguments_give_identical_bytes(sample, tmp_path):
    out, _ = sample
    again = generate_sample(
        tmp_path / "again",
        n_images=N_IMAGES,
        size=SIZE,
        seed=SEED,
        max_targets=4,
        scr=SCR_RANGE,
        max_area_px=MAX_AREA,
    )
    assert again.n_targets > 0
    assert _files(out) == _files(tmp_path / "again")


def test_other_seed_gives_other_images(sample, tmp_path):
    out, _ = sample
    generate_sample(
        tmp_path / "other",
        n_images=N_IMAGES,
        size=SIZE,
        seed=SEED + 1,
        max_targets=4,
        scr=SCR_RANGE,
        max_area_px=MAX_AREA,
    )
    ours, theirs = _files(out), _files(tmp_path / "other")
    assert ours.keys() == theirs.keys()
    images = [k for k in ours if k.startswith("images/")]
    assert all(ours[k] != theirs[k] for k in images)


def test_an_image_does_not_depend_on_how_many_are_generated():
    a = generate_image(7, 2, 3, size=48)
    b = generate_image(7, 2, 3, size=48)
    c = generate_image(7, 3, 3, size=48)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)


def test_image_prefix_is_shared_between_sizes_of_the_data_set(tmp_path):
    generate_sample(tmp_path / "three", n_images=3, size=40, seed=5, max_targets=0)
    generate_sample(tmp_path / "five", n_images=5, size=40, seed=5, max_targets=0)
    for stem in ("000001", "000002", "000003"):
        assert (tmp_path / "three/images" / f"{stem}.png").read_bytes() == (
            tmp_path / "five/images" / f"{stem}.png"
        ).read_bytes()


# ---------------------------------------------------------------- layout and splits


def test_layout_is_detected_as_synthetic_nudt_layout_with_readable_splits(sample):
    out, _ = sample
    ds = open_dataset(out)
    # The NUDT-SIRST folders, titled as what it is (reports must not call it NUDT-SIRST).
    assert ds.name == "synthetic" and ds.layout.title.startswith("Synthetic")
    assert open_dataset(out, "nudt").layout.name == "synthetic"
    stems = ds.stems("all")
    assert stems == [f"{i:06d}" for i in range(1, N_IMAGES + 1)]
    train, test = ds.stems("train"), ds.stems("test")
    assert len(train) == N_IMAGES // 2 and sorted(train + test) == stems
    parts = [ds.stems(f"split_synth/{p}") for p in ("train", "val", "test")]
    assert [len(p) for p in parts] == [14, 5, 5]
    assert sorted(sum(parts, [])) == stems
    assert ds.family_split("split_synth", "val") == "split_synth/val"
    assert len(ds.samples("split_synth/train")) == 14
    raw = (out / "50_50" / "train.txt").read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == N_IMAGES // 2 and raw.count(b"\n") == N_IMAGES // 2


def test_images_and_masks_are_single_channel_with_binary_masks(sample):
    out, _ = sample
    for stem in ("000001", f"{N_IMAGES:06d}"):
        image, mask = _gray(out / "images" / f"{stem}.png"), _gray(out / "masks" / f"{stem}.png")
        assert image.shape == mask.shape == (SIZE, SIZE)
        assert set(np.unique(mask).tolist()) <= {0, 255}
        assert image.std() > 3  # a textured background, not a flat field


def test_tiny_data_sets_never_write_an_empty_split_file(tmp_path):
    generate_sample(tmp_path / "one", n_images=1, size=32, seed=0)
    ds = open_dataset(tmp_path / "one")
    assert ds.name == "synthetic"
    assert set(ds.split_files()) == {"50_50/test", "split_synth/train"}
    for path in ds.split_files().values():
        assert path.read_bytes() == b"000001\r\n"


# ---------------------------------------------------------------- exact masks


def test_mask_to_targets_recovers_every_generated_target(sample):
    out, record = sample
    ds = open_dataset(out)
    assert record["counts"]["targets"] == len(_all_targets(record)) > 20
    for s in ds.samples("all"):
        expected = record["images"][s.stem]["targets"]
        found = load_ground_truth(s).targets
        assert len(found) == len(expected), s.stem
        if expected:
            assert found.boxes.tolist() == [t["box"] for t in expected]
            assert found.area_px.tolist() == [t["area_px"] for t in expected]
            np.testing.assert_allclose(found.centroids, [t["centroid"] for t in expected], atol=1e-5)


def test_target_areas_are_in_range_and_cover_small_and_large(sample):
    _, record = sample
    areas = np.array([t["area_px"] for t in _all_targets(record)])
    assert areas.min() >= 1 and areas.max() <= MAX_AREA
    assert (areas <= 4).any() and (areas >= 20).any()


def test_background_only_images_have_all_zero_masks(sample):
    out, record = sample
    empty = [stem for stem, image in record["images"].items() if not image["targets"]]
    assert len(empty) == record["counts"]["background_only_images"] >= round(0.2 * N_IMAGES)
    for stem in empty:
        assert not _gray(out / "masks" / f"{stem}.png").any()
    for stem in set(record["images"]) - set(empty):
        assert _gray(out / "masks" / f"{stem}.png").any()


def test_max_targets_zero_gives_only_background(tmp_path):
    summary = generate_sample(tmp_path / "bg", n_images=3, size=48, seed=1, max_targets=0)
    assert summary.n_targets == 0 and summary.n_background_only == 3


@pytest.mark.parametrize(
    ("sigma", "offset"), [(0.34, (0.0, 0.0)), (0.34, (0.45, -0.45)), (1.0, (0.2, 0.1)), (2.7, (-0.3, 0.4))]
)
def test_mask_rule_of_a_gaussian_point_is_a_disc_of_pixel_centres(sigma, offset):
    # exp(-r^2 / (2 sigma^2)) >= MASK_FRACTION  <=>  r <= sigma * sqrt(2 ln(1 / MASK_FRACTION)),
    # with r measured from the centre to each pixel centre, relative to the brightest pixel.
    shape = TargetShape("point", sigma, sigma, 0.0, 1, offset)
    profile = render_profile(shape)
    py, px = profile.peak
    assert profile.values[py, px] == 1.0
    rows, cols = np.indices(profile.values.shape)
    dy, dx = rows - py - offset[0], cols - px - offset[1]
    r2 = dx**2 + dy**2
    peak_r2 = r2[py, px]
    expected = (r2 - peak_r2) <= 2 * sigma**2 * np.log(1 / MASK_FRACTION) + 1e-9
    assert np.array_equal(profile.mask, expected)
    assert len(mask_to_targets(profile.mask)) == 1


# ---------------------------------------------------------------- signal-to-clutter ratio


def _local_background(image: np.ndarray, target: dict, supports: list[list[int]]) -> np.ndarray:
    h, w = image.shape
    x0, y0, x1, y1 = target["support_box"]
    m = SCR_MARGIN_PX
    keep = np.zeros((h, w), bool)
    keep[max(y0 - m, 0) : min(y1 + m, h), max(x0 - m, 0) : min(x1 + m, w)] = True
    for sx0, sy0, sx1, sy1 in supports:
        keep[sy0:sy1, sx0:sx1] = False
    return image[keep].astype(np.float64)


def test_targets_are_brighter_than_their_local_background_at_the_requested_scr(sample):
    out, record = sample
    checked = 0
    for stem, entry in record["images"].items():
        image = _gray(out / "images" / f"{stem}.png")
        supports = [t["support_box"] for t in entry["targets"]]
        for target in entry["targets"]:
            ring = _local_background(image, target, supports)
            assert ring.size >= 32
            x, y = target["peak"]
            x0, y0, x1, y1 = target["box"]
            assert x0 <= x < x1 and y0 <= y < y1
            scr = (image[y, x] - ring.mean()) / ring.std()
            assert scr == pytest.approx(target["scr"], abs=1e-5)
            # Rounding the peak to a gray level moves the SCR by at most 0.5 / sigma_B.
            assert abs(scr - target["scr_design"]) <= 0.5 / ring.std() + 1e-6
            assert SCR_RANGE[0] <= target["scr_design"] <= SCR_RANGE[1]
            assert image[y, x] > ring.mean()
            assert scr >= SCR_RANGE[0] - 0.5 / ring.std()
            checked += 1
    assert checked == record["counts"]["targets"]


def test_targets_keep_the_margin_between_support_boxes(sample):
    _, record = sample
    for entry in record["images"].values():
        boxes = [t["support_box"] for t in entry["targets"]]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                gap_x = max(b[0] - a[2], a[0] - b[2])
                gap_y = max(b[1] - a[3], a[1] - b[3])
                assert max(gap_x, gap_y) >= SCR_MARGIN_PX


# ---------------------------------------------------------------- arguments and the command


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_images": 0},
        {"size": 31},
        {"seed": -1},
        {"max_targets": -1},
        {"scr": (5, 2)},
        {"scr": (0, 2)},
        {"max_area_px": 0},
        {"empty_fraction": 1.5},
        {"n_images": 2.5},
    ],
)
def test_bad_arguments_raise_input_error_and_write_nothing(tmp_path, kwargs):
    with pytest.raises(InputError):
        generate_sample(tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("text", "expected"), [("2:9", (2.0, 9.0)), ("2,9", (2.0, 9.0)), ("4", (4.0, 4.0))])
def test_parse_scr(text, expected):
    assert parse_scr(text) == expected


@pytest.mark.parametrize("text", ["a:b", "1:2:3", "3:1", "-1:2"])
def test_parse_scr_rejects(text):
    with pytest.raises(InputError, match="scr"):
        parse_scr(text)


def test_cli_writes_the_sample_and_prints_one_line(tmp_path):
    out = tmp_path / "cli_sample"
    result = CliRunner().invoke(
        cli, ["synth", "--out", str(out), "--n-images", "5", "--size", "37", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "5 images (37x37)" in lines[0] and str(out.resolve()) in lines[0]
    assert is_synth_output(out) and len(list((out / "images").glob("*.png"))) == 5
    # An earlier synth output is replaced only with --force.
    refused = CliRunner().invoke(cli, ["synth", "--out", str(out), "--n-images", "2", "--size", "32"])
    assert refused.exit_code == 2 and "--force" in refused.output
    again = CliRunner().invoke(cli, ["synth", "--out", str(out), "--n-images", "2", "--size", "32", "--force"])
    assert again.exit_code == 0, again.output
    assert len(list((out / "images").glob("*.png"))) == 2


@pytest.mark.parametrize(
    "args",
    [["--n-images", "0"], ["--size", "31"], ["--scr", "5:1"], ["--max-targets", "-2"], ["--size", "x"]],
)
def test_cli_bad_arguments_exit_2_without_output(tmp_path, args):
    out = tmp_path / "bad"
    result = CliRunner().invoke(cli, ["synth", "--out", str(out), *args])
    assert result.exit_code == 2
    assert not out.exists()


def test_cli_refuses_a_foreign_folder_even_forced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for extra in ([], ["--force"]):
        result = CliRunner().invoke(cli, ["synth", "--out", str(out), "--n-images", "1", "--size", "32", *extra])
        assert result.exit_code == 2 and "not written by irstd-bench" in result.output
        assert (out / "notes.txt").read_text() == "keep me"


def test_a_failure_part_way_leaves_the_earlier_output_untouched(tmp_path, monkeypatch):
    out = tmp_path / "s"
    generate_sample(out, n_images=2, size=32, seed=0)
    before = _files(out)
    real = _generate.generate_image

    def failing(seed, index, *args, **kwargs):
        if index == 2:
            raise RuntimeError("disk full")
        return real(seed, index, *args, **kwargs)

    monkeypatch.setattr(_generate, "generate_image", failing)
    with pytest.raises(RuntimeError):
        generate_sample(out, n_images=4, size=32, seed=9, force=True)
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary folder left behind
    with pytest.raises(RuntimeError):
        generate_sample(tmp_path / "new", n_images=4, size=32, seed=9)
    assert not (tmp_path / "new").exists()
