"""Dataset registry: layout detection, split resolution, split files, ground truth of a sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irstd_bench.datasets import (
    MaskSizeMismatch,
    Sample,
    load_ground_truth,
    open_dataset,
    read_split_file,
)
from irstd_bench.errors import DatasetDefectWarning, InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def _shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"{path} not found (../shared/datasets is absent)")
    return path


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(path)


def _mask(h: int, w: int, *pixels: tuple[int, int], value: int = 255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    for r, c in pixels:
        m[r, c] = value
    return m


def _sirst_v2(root: Path) -> Path:
    """A small SIRST v2 tree: mixed/, annotations/masks/<stem>_pixels0.png, splits/*_full.txt."""
    for i, stem in enumerate(["Misc_1", "Misc_2", "Misc_3"]):
        _png(root / "mixed" / f"{stem}.png", np.full((8, 10), 40 + i, np.uint8))
        pixels = [] if stem == "Misc_3" else [(2, 3)]
        _png(root / "annotations" / "masks" / f"{stem}_pixels0.png", _mask(8, 10, *pixels))
    (root / "splits").mkdir()
    (root / "splits" / "train_full.txt").write_text("Misc_1\nMisc_2\n")
    (root / "splits" / "val_full.txt").write_text("Misc_3\n")
    (root / "splits" / "test_full.txt").write_text("Misc_3\n")
    return root


# ---------------------------------------------------------------------------------------------
# Layout detection


def test_nuaa_release_is_detected_with_every_split_family():
    ds = open_dataset(_shared("NUAA-SIRST"))
    assert ds.layout.name == "nuaa"
    names = ds.split_names()
    for name in ("train", "val", "test", "idx_427/test", "50_50/train", "idx_320/val", "split_EFLNet/test"):
        assert name in names
    assert len(ds.stems("all")) == 427


@pytest.mark.parametrize(
    ("family", "sizes"),
    [
        ("idx_427", {"train": 256, "val": 85, "test": 86, "trainval": 341, "trainvaltest": 427}),
        ("50_50", {"train": 213, "test": 214}),
        ("split_EFLNet", {"train": 256, "val": 85, "test": 86}),
        ("idx_320", {"train": 160, "val": 64, "test": 96, "trainval": 224, "trainvaltest": 320}),
    ],
)
def test_nuaa_split_sizes_and_members_exist(family, sizes):
    ds = open_dataset(_shared("NUAA-SIRST"))
    for part, size in sizes.items():
        stems = ds.stems(f"{family}/{part}")
        assert len(stems) == size
        assert all(s.startswith("Misc_") and "\r" not in s for s in stems)
        assert len(ds.samples(f"{family}/{part}")) == size  # every entry has an image and a mask


def test_nuaa_known_defect_misc_111():
    ds = open_dataset(_shared("NUAA-SIRST"))
    assert "release defect" in ds.known_defect("Misc_111")
    assert ds.known_defect("Misc_1") == ""
    sample = ds.sample("Misc_111")
    # The one defect policy: a known defect is resized to its image, with a warning naming it.
    expected = r"Misc_111_pixels0.png.*release defect.*\(mask 592x400, image 325x220\)"
    with pytest.warns(DatasetDefectWarning, match=expected):
        known = load_ground_truth(sample, known_defect=ds.known_defect("Misc_111"))
    assert known.mask_resized and known.targets.image_size == (220, 325)
    # Not named as a known defect: a size mismatch is an error naming both sizes.
    with pytest.raises(MaskSizeMismatch, match="Misc_111_pixels0.png: mask is 592x400") as info:
        load_ground_truth(sample)
    assert isinstance(info.value, InputError)
    gt = load_ground_truth(sample, resize_masks=True)
    assert gt.mask_resized and gt.targets.image_size == (220, 325)
    assert len(gt.targets) == 1


def test_nudt_layout_sample_and_crlf_splits():
    root = _shared("layouts", "NUDT-SIRST")
    assert b"\r\n" in (root / "50_50" / "train.txt").read_bytes()
    ds = open_dataset(root)
    assert ds.layout.name == "nudt"
    assert len(ds.stems("train")) == 663 and len(ds.stems("50_50/test")) == 664
    assert ds.resolve_split("train") == root / "50_50" / "train.txt"
    assert all("\r" not in s for s in ds.stems("train"))
    gt = load_ground_truth(ds.sample("000001"))
    assert gt.targets.image_size == (256, 256)
    assert gt.targets.boxes.tolist() == [[111, 178, 114, 181]]
    assert gt.nonbinary_values == ()
    with pytest.raises(InputError, match="000002.png"):
        ds.sample("000002")  # listed in the split, not shipped in this sample tree


def test_irstd1k_layout_and_nonbinary_label():
    root = _shared("layouts", "IRSTD-1k")
    ds = open_dataset(root)
    assert ds.layout.name == "irstd1k"
    assert {n: len(ds.stems(n)) for n in ("train", "trainval", "test", "trainvaltest")} == {
        "train": 800,
        "trainval": 800,
        "test": 201,
        "trainvaltest": 1001,
    }
    gt = load_ground_truth(ds.sample("XDU0"))
    assert gt.nonbinary_values == (64,)
    assert gt.targets.boxes.tolist() == [[262, 425, 271, 430]]
    # With a threshold below 64 the value-64 pixels join the foreground.
    low = load_ground_truth(ds.sample("XDU0"), threshold=10)
    assert low.targets.area_px.sum() > gt.targets.area_px.sum()


def test_sirst_v2_layout_and_split_names(tmp_path):
    ds = open_dataset(_sirst_v2(tmp_path / "sirst_v2"))
    assert ds.layout.name == "sirstv2"
    assert ds.resolve_split("train") == ds.root / "splits" / "train_full.txt"
    assert ds.resolve_split("train_full") == ds.resolve_split("splits/train_full")
    assert ds.stems("val") == ["Misc_3"]
    assert len(load_ground_truth(ds.sample("Misc_3")).targets) == 0  # background-only image


def test_custom_layout(tmp_path):
    _png(tmp_path / "img" / "a.png", np.zeros((6, 6), np.uint8))
    _png(tmp_path / "img" / "b.png", np.zeros((6, 6), np.uint8))
    _png(tmp_path / "gt" / "a_mask.png", _mask(6, 6, (1, 1)))
    _png(tmp_path / "gt" / "b_mask.png", _mask(6, 6))
    ds = open_dataset(tmp_path, "custom", image_dir="img", mask_dir="gt", mask_suffix="_mask")
    assert ds.stems("all") == ["a", "b"]
    assert [s.mask_path.name for s in ds.samples("all")] == ["a_mask.png", "b_mask.png"]
    with pytest.raises(InputError, match="--image-dir"):
        open_dataset(tmp_path, "custom")
    with pytest.raises(InputError, match="nope"):
        open_dataset(tmp_path, "custom", image_dir="nope", mask_dir="gt")


def test_unknown_layout_missing_root_and_unknown_name(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(InputError, match="unknown dataset layout"):
        open_dataset(tmp_path / "stuff")
    with pytest.raises(InputError, match="not found"):
        open_dataset(tmp_path / "absent")
    with pytest.raises(InputError, match="'foo'"):
        open_dataset(tmp_path / "stuff", "foo")
    with pytest.raises(InputError, match="IRSTD1k_Img"):
        open_dataset(tmp_path / "stuff", "irstd1k")


def test_layout_detection_needs_a_matching_pair(tmp_path):
    # Folders named like NUDT-SIRST but no mask named after an image: not a known layout.
    _png(tmp_path / "images" / "000001.png", np.zeros((4, 4), np.uint8))
    _png(tmp_path / "masks" / "other.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="unknown dataset layout"):
        open_dataset(tmp_path)


# ---------------------------------------------------------------------------------------------
# Splits


def test_split_resolution_errors(tmp_path):
    ds = open_dataset(_shared("NUAA-SIRST"))
    assert ds.resolve_split("all") is None
    assert ds.resolve_split("idx_427/test.txt") == ds.resolve_split("test")
    with pytest.raises(InputError, match="unknown split 'nope'"):
        ds.resolve_split("nope")
    with pytest.raises(InputError, match="trainvaltest"):
        ds.resolve_split("trainvaltest")  # in idx_427 and idx_320: ambiguous as a bare name


def test_image_without_mask_raises_unless_skipped(tmp_path):
    root = _sirst_v2(tmp_path / "v2")
    (root / "annotations" / "masks" / "Misc_2_pixels0.png").unlink()
    ds = open_dataset(root)
    with pytest.raises(InputError, match="Misc_2_pixels0.png"):
        ds.samples("train")
    assert [s.stem for s in ds.samples("train", skip_missing=True)] == ["Misc_1"]


def test_read_split_file_edge_cases(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\n\r\n  b.png  \r\nsub\\dir\\c\r\na\r\nd.bmp")
    with pytest.warns(DatasetDefectWarning, match=r"line 4: 'sub/dir/c'"):  # folders named, not cut silently
        assert read_split_file(path) == ["a", "b", "c", "d"]
    path.write_bytes(b"x\ny\n")
    assert read_split_file(path) == ["x", "y"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\r\n \n\t\n", "empty"), (b"\xff\xfe\x00a", "UTF-8")],
)
def test_read_split_file_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_split_file(path)


def test_read_split_file_missing(tmp_path):
    with pytest.raises(InputError, match="absent.txt"):
        read_split_file(tmp_path / "absent.txt")


# ---------------------------------------------------------------------------------------------
# Ground truth of a sample


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P"])
def test_ground_truth_in_native_pixels_for_every_image_mode(tmp_path, mode):
    _png(tmp_path / "i.png", np.full((7, 9), 100, np.uint8), mode)
    _png(tmp_path / "m.png", _mask(7, 9, (6, 8), (0, 0)))
    gt = load_ground_truth(Sample("i", tmp_path / "i.png", tmp_path / "m.png"))
    assert gt.targets.boxes.tolist() == [[0, 0, 1, 1], [8, 6, 9, 7]]
    assert gt.targets.image_size == (7, 9)


def test_ground_truth_without_mask_and_with_mismatch(tmp_path):
    _png(tmp_path / "i.png", np.zeros((4, 6), np.uint8))
    assert len(load_ground_truth(Sample("i", tmp_path / "i.png", None)).targets) == 0
    _png(tmp_path / "big.png", _mask(8, 12, (2, 2), (3, 3)))
    sample = Sample("i", tmp_path / "i.png", tmp_path / "big.png")
    with pytest.raises(MaskSizeMismatch, match="big.png: mask is 12x8 but image i.png is 6x4"):
        load_ground_truth(sample)
    gt = load_ground_truth(sample, resize_masks=True)
    assert gt.mask_resized and gt.targets.image_size == (4, 6)
    assert gt.targets.boxes.tolist() == [[1, 1, 2, 2]]


def test_ground_truth_reports_values_other_than_0_and_255(tmp_path):
    _png(tmp_path / "i.png", np.zeros((5, 5), np.uint8))
    m = _mask(5, 5, (0, 0))
    m[4, 4] = 64
    _png(tmp_path / "m.png", m)
    gt = load_ground_truth(Sample("i", tmp_path / "i.png", tmp_path / "m.png"))
    assert gt.nonbinary_values == (64,)
    assert gt.targets.boxes.tolist() == [[0, 0, 1, 1]]
    gt8 = load_ground_truth(Sample("i", tmp_path / "i.png", tmp_path / "m.png"), threshold=8, connectivity=4)
    assert gt8.targets.boxes.tolist() == [[0, 0, 1, 1], [4, 4, 5, 5]]
