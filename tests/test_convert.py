"""``irstd-bench convert``: the real NUAA-SIRST, generated trees of every layout, round trips, bad input."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image
from pycocotools.coco import COCO
from skimage.measure import label as sk_label
from skimage.measure import regionprops

from irstd_bench.cli import cli
from irstd_bench.convert import (
    SUMMARY_SCHEMA,
    convert_dataset,
    read_coco_ground_truth,
    read_voc_ground_truth,
    read_yolo_ground_truth,
    split_file_name,
)
from irstd_bench.errors import InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
NUAA = SHARED / "NUAA-SIRST"


def _need(path: Path) -> Path:
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


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _split_len(path: Path) -> int:
    return len([line for line in path.read_text().splitlines() if line.strip()])


def _misc_111_targets() -> int:
    """Targets of Misc_111's mask resized to its image, computed here independently of convert."""
    image = Image.open(NUAA / "images" / "Misc_111.png")
    mask = Image.open(NUAA / "masks" / "Misc_111_pixels0.png").convert("L")
    resized = np.asarray(mask.resize(image.size, Image.Resampling.NEAREST))
    return int(sk_label(resized > 127, connectivity=2).max())


def _sirst_v2(root: Path) -> Path:
    """SIRST v2 layout: two images with targets, two background-only (all-zero masks)."""
    masks = {
        "Misc_1": _mask(12, 16, (2, 3), (2, 4), (9, 9)),  # two targets
        "Misc_2": _mask(12, 16, (5, 5)),
        "Misc_3": _mask(12, 16),
        "Misc_4": _mask(12, 16),
    }
    for i, (stem, mask) in enumerate(masks.items()):
        _png(root / "mixed" / f"{stem}.png", np.full((12, 16), 30 + i, np.uint8), ["L", "RGB", "RGBA", "P"][i])
        _png(root / "annotations" / "masks" / f"{stem}_pixels0.png", mask)
    (root / "splits").mkdir()
    (root / "splits" / "train_full.txt").write_text("Misc_1\nMisc_3\n")
    (root / "splits" / "val_full.txt").write_text("Misc_2\n")
    (root / "splits" / "test_full.txt").write_text("Misc_4\nMisc_2\n")
    (root / "splits" / "trainval_full.txt").write_text("Misc_1\nMisc_3\nMisc_2\n")
    return root


def _run(args: list[str]):
    return CliRunner().invoke(cli, ["convert", *args])


# ---------------------------------------------------------------------------------------------
# The real NUAA-SIRST


@pytest.fixture(scope="module")
def nuaa_skip(tmp_path_factory):
    _need(NUAA)
    warnings: list[str] = []
    out = tmp_path_factory.mktemp("nuaa") / "skip"
    result = convert_dataset(NUAA, out, workers=2, warn=warnings.append, skip_defects=True)
    return result, warnings


@pytest.fixture(scope="module")
def nuaa_resized(tmp_path_factory):
    _need(NUAA)
    warnings: list[str] = []
    out = tmp_path_factory.mktemp("nuaa") / "resized"
    result = convert_dataset(NUAA, out, formats=["coco"], resize_masks=True, workers=2, warn=warnings.append)
    return result, warnings


def test_nuaa_resized_counts_every_image(nuaa_resized):
    result, warnings = nuaa_resized
    total = result.summary["total"]
    assert total["images"] == 427 and total["targets"] == 533
    assert result.summary["defects"]["mask_resized"][0]["image"] == "Misc_111"
    assert result.summary["defects"]["mask_size_mismatch_skipped"] == []
    assert any("Misc_111" in w and "nearest neighbour" in w for w in warnings)
    sizes = {name: s["images"] for name, s in result.summary["splits"].items()}
    expected = {
        "idx_427/train": 256, "idx_427/val": 85, "idx_427/test": 86, "idx_427/trainvaltest": 427,
        "50_50/train": 213, "50_50/test": 214,
        "split_EFLNet/train": 256, "split_EFLNet/val": 85, "split_EFLNet/test": 86,
        "idx_320/train": 160, "idx_320/val": 64, "idx_320/test": 96, "idx_320/trainvaltest": 320,
        "all": 427,
    }  # fmt: skip
    assert {k: sizes[k] for k in expected} == expected
    assert not (result.out / "yolo").exists() and not (result.out / "voc").exists()


def test_nuaa_skips_misc_111_by_name(nuaa_skip):
    result, warnings = nuaa_skip
    summary = result.summary
    assert summary["total"]["images"] == 426
    assert summary["total"]["targets"] == 533 - _misc_111_targets()
    assert summary["defects"]["left_out_by_skip_defects"] == ["Misc_111"]
    assert summary["settings"]["skip_defects"] is True
    assert len(warnings) == 1 and "Misc_111" in warnings[0] and "--skip-defects" in warnings[0]
    assert "Misc_111" not in read_coco_ground_truth(result.out / "coco" / "all.json")
    assert not (result.out / "yolo" / "labels" / "Misc_111.txt").exists()


def test_nuaa_every_split_file_is_converted(nuaa_skip):
    result, _ = nuaa_skip
    splits = result.summary["splits"]
    files = sorted(p.relative_to(NUAA).with_suffix("").as_posix() for p in NUAA.glob("*/*.txt"))
    assert sorted(splits) == sorted([*files, "all"])
    for name in files:
        listed = (NUAA / f"{name}.txt").read_text().split()
        expect = len(listed) - ("Misc_111" in listed)
        assert splits[name]["images"] == expect, name
        coco = json.loads((result.out / "coco" / f"{split_file_name(name)}.json").read_text())
        assert [im["file_name"] for im in coco["images"]] == [f"{s}.png" for s in listed if s != "Misc_111"]
    assert splits["idx_427/train"]["images"] == 256 and splits["50_50/train"]["images"] == 213


def test_nuaa_coco_loads_in_pycocotools_and_matches_skimage(nuaa_skip):
    result, _ = nuaa_skip
    path = result.out / "coco" / "all.json"
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == 426
    assert len(coco.getAnnIds()) == result.summary["total"]["targets"]
    assert coco.loadCats(coco.getCatIds()) == [{"id": 1, "name": "target", "supercategory": "target"}]
    for image in coco.loadImgs(coco.getImgIds()):
        stem = Path(image["file_name"]).stem
        mask = np.asarray(Image.open(NUAA / "masks" / f"{stem}_pixels0.png").convert("L"))
        assert (image["height"], image["width"]) == mask.shape
        regions = regionprops(sk_label(mask > 127, connectivity=2))
        expected = sorted(
            ([r.bbox[1], r.bbox[0], r.bbox[3] - r.bbox[1], r.bbox[2] - r.bbox[0]], int(r.area)) for r in regions
        )
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert sorted((a["bbox"], a["area"]) for a in anns) == expected, stem
        assert all(a["iscrowd"] == 0 and a["category_id"] == 1 for a in anns)


def test_nuaa_round_trips_coco_yolo_voc(nuaa_skip):
    result, _ = nuaa_skip
    for split in ("all", "idx_427/test", "50_50/train"):
        coco = read_coco_ground_truth(result.out / "coco" / f"{split_file_name(split)}.json")
        yolo = read_yolo_ground_truth(result.out / "yolo", split)
        voc = read_voc_ground_truth(result.out / "voc", split)
        assert list(coco) == list(yolo) == list(voc) == result.splits[split]
        for stem, targets in coco.items():
            rec = result.records[stem]
            assert targets.boxes.tolist() == [list(b) for b in rec.boxes]
            assert yolo[stem].boxes.tolist() == targets.boxes.tolist()
            assert voc[stem].boxes.tolist() == targets.boxes.tolist()
            assert targets.area_px.tolist() == list(rec.area_px) == voc[stem].area_px.tolist()
            assert targets.image_size == yolo[stem].image_size == voc[stem].image_size
            # Centroids exact by every route (COCO from the RLE, VOC in full precision), never rounded.
            np.testing.assert_array_equal(targets.centroids, np.array(rec.centroids).reshape(-1, 2))
            np.testing.assert_array_equal(voc[stem].centroids, targets.centroids)


def test_nuaa_yolo_tree_is_usable(nuaa_skip):
    result, _ = nuaa_skip
    yolo = result.out / "yolo"
    assert sorted(p.name for p in yolo.iterdir()) == ["50_50", "all", "idx_320", "idx_427", "split_EFLNet"]
    data = yaml.safe_load((yolo / "idx_427" / "data.yaml").read_text())
    assert "path" not in data  # ultralytics takes the yaml's folder as the root: the tree can move
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    assert data["nc"] == 1 and data["names"] == ["target"]
    eflnet = yaml.safe_load((yolo / "split_EFLNet" / "data.yaml").read_text())
    assert (eflnet["train"], eflnet["val"], eflnet["test"]) == ("images/train", "images/val", "images/test")
    images = sorted((yolo / "idx_427" / data["train"]).iterdir())
    assert len(images) == 256
    order = (yolo / "idx_427" / "train.txt").read_text().splitlines()
    assert sorted(order) == sorted(f"./images/train/{p.name}" for p in images)
    for image in images:
        assert image.is_symlink() and image.resolve() == (NUAA / "images" / image.name).resolve()
        assert filecmp.cmp(image, NUAA / "images" / image.name, shallow=False)  # never re-encoded
        # ultralytics' rule: .../images/<part>/x.png -> .../labels/<part>/x.txt
        label = Path(str(image).replace("/images/", "/labels/")).with_suffix(".txt")
        assert label.is_file()
    first = (yolo / "idx_427" / "labels" / "test" / "Misc_1.txt")
    assert not first.exists() or all(line.startswith("0 ") for line in first.read_text().splitlines())
    assert not (yolo / "all" / "data.yaml").exists()  # no train split in that family


def test_nuaa_rerun_is_byte_identical_whatever_the_workers(nuaa_skip):
    result, _ = nuaa_skip
    before = _tree_bytes(result.out)
    convert_dataset(NUAA, result.out, workers=1, warn=lambda m: None, skip_defects=True, force=True)
    after = _tree_bytes(result.out)
    assert list(before) == list(after)
    assert before == after


# ---------------------------------------------------------------------------------------------
# NUDT-SIRST and IRSTD-1k: the real sample pairs plus generated files in their layouts


def test_nudt_real_pair_and_generated_crlf_splits(tmp_path):
    real = _need(SHARED / "layouts" / "NUDT-SIRST")
    root = tmp_path / "NUDT-SIRST"
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
        shutil.copyfile(real / folder / "000001.png", root / folder / "000001.png")
    _png(root / "images" / "000002.png", np.full((256, 256, 3), 20, np.uint8))
    _png(root / "masks" / "000002.png", _mask(256, 256, (0, 0), (1, 1), (255, 255)))
    _png(root / "images" / "000003.png", np.full((256, 256, 3), 20, np.uint8))
    _png(root / "masks" / "000003.png", _mask(256, 256))
    (root / "50_50").mkdir()
    (root / "50_50" / "train.txt").write_bytes(b"000001\r\n000002\r\n")
    (root / "50_50" / "test.txt").write_bytes(b"000003\r\n000001")
    result = convert_dataset(root, tmp_path / "out", workers=1)
    assert result.summary["dataset"] == "nudt"
    assert result.splits == {
        "50_50/train": ["000001", "000002"],
        "50_50/test": ["000003", "000001"],
        "all": ["000001", "000002", "000003"],
    }
    assert result.records["000001"].boxes == ((111, 178, 114, 181),)
    assert result.records["000002"].boxes == ((0, 0, 2, 2), (255, 255, 256, 256))
    assert result.summary["splits"]["50_50/test"]["background_images"] == 1
    text = (result.out / "yolo" / "50_50" / "data.yaml").read_text()
    data = yaml.safe_load(text)
    # NUDT-SIRST has no val split: the test split stands in for val.
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/test", "images/test")
    assert "no val split" in text
    assert (result.out / "yolo" / "50_50" / "labels" / "test" / "000003.txt").read_text() == ""


def test_nudt_real_layout_all_and_missing_split_images(tmp_path):
    real = _need(SHARED / "layouts" / "NUDT-SIRST")
    result = convert_dataset(real, tmp_path / "all", splits=["all"], workers=1)
    assert result.summary["total"]["images"] == 1 and result.summary["total"]["targets"] == 1
    first = (real / "50_50" / "train.txt").read_text().split()[0]
    with pytest.raises(InputError, match=rf"{first}\.png: split entry '{first}' has no image"):
        convert_dataset(real, tmp_path / "train", splits=["train"], workers=1)
    assert not (tmp_path / "train").exists()


def test_irstd1k_values_64_counted_and_reported_by_name(tmp_path):
    real = _need(SHARED / "layouts" / "IRSTD-1k")
    root = tmp_path / "IRSTD-1k"
    for folder in ("IRSTD1k_Img", "IRSTD1k_Label"):
        (root / folder).mkdir(parents=True)
        shutil.copyfile(real / folder / "XDU0.png", root / folder / "XDU0.png")
    label = _mask(32, 32, (3, 3), (20, 20))
    label[4, 4] = 64  # touches (3, 3) diagonally: joins it only when 64 is foreground
    label[10, 10] = 64
    _png(root / "IRSTD1k_Img" / "XDU1.png", np.full((32, 32, 3), 50, np.uint8))
    _png(root / "IRSTD1k_Label" / "XDU1.png", label)
    _png(root / "IRSTD1k_Img" / "XDU2.png", np.full((32, 32, 3), 50, np.uint8))
    _png(root / "IRSTD1k_Label" / "XDU2.png", _mask(32, 32, (1, 1)))
    (root / "trainval.txt").write_bytes(b"XDU0\r\nXDU1\r\n")
    (root / "test.txt").write_bytes(b"XDU2\r\n")
    warnings: list[str] = []
    result = convert_dataset(root, tmp_path / "out", dataset="irstd1k", workers=1, warn=warnings.append)
    nonbinary = result.summary["defects"]["nonbinary_masks"]
    assert nonbinary == {"count": 2, "values": [64], "foreground_values": [], "images": ["XDU0", "XDU1"]}
    assert any("2 mask(s)" in w and "XDU0, XDU1" in w for w in warnings)
    assert result.records["XDU1"].boxes == ((3, 3, 4, 4), (20, 20, 21, 21))
    assert list(result.splits) == ["test", "trainval", "all"]
    low = convert_dataset(root, tmp_path / "low", threshold=63, splits=["train"], workers=1, warn=lambda m: None)
    assert low.records["XDU1"].boxes == ((3, 3, 5, 5), (10, 10, 11, 11), (20, 20, 21, 21))
    assert low.summary["defects"]["nonbinary_masks"]["foreground_values"] == [64]
    assert list(low.splits) == ["trainval"]  # 'train' is the alias of trainval.txt


# ---------------------------------------------------------------------------------------------
# SIRST v2 and custom trees (generated)


def test_sirst_v2_background_images_have_no_targets(tmp_path):
    root = _sirst_v2(tmp_path / "sirst_v2")
    result = convert_dataset(root, tmp_path / "out", workers=1)
    assert result.summary["dataset"] == "sirstv2"
    total = result.summary["total"]
    assert (total["images"], total["targets"], total["background_images"]) == (4, 3, 2)
    assert total["targets_per_image"] == {"mean": 0.75, "max": 2, "histogram": [2, 1, 1]}
    assert total["size_bins"] == {"<=9": 3, "10-36": 0, "37-81": 0, ">81": 0}
    assert total["box_width_px"] == {"min": 1, "median": 1, "mean": 1.333333, "max": 2}
    coco = json.loads((result.out / "coco" / "splits__train_full.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == ["Misc_1.png", "Misc_3.png"]
    assert [a["image_id"] for a in coco["annotations"]] == [1, 1]
    assert [a["bbox"] for a in coco["annotations"]] == [[3, 2, 2, 1], [9, 9, 1, 1]]
    assert read_coco_ground_truth(result.out / "coco" / "splits__train_full.json")["Misc_3"].boxes.shape == (0, 4)
    assert (result.out / "yolo" / "splits" / "labels" / "test_full" / "Misc_4.txt").read_text() == ""
    # The one-pixel target of Misc_2 at row 5, column 5 of a 16x12 image.
    label = result.out / "yolo" / "all" / "labels" / "all" / "Misc_2.txt"
    assert label.read_text() == "0 0.343750 0.458333 0.062500 0.083333\n"
    xml = (result.out / "voc" / "Annotations" / "Misc_2.xml").read_text()
    assert "<xmin>6</xmin>" in xml and "<xmax>6</xmax>" in xml and "<ymin>6</ymin>" in xml  # 1-based, inclusive
    assert read_voc_ground_truth(result.out / "voc", "splits/test_full")["Misc_4"].boxes.shape == (0, 4)
    depths = [
        (result.out / "voc" / "Annotations" / f"Misc_{i}.xml").read_text().split("<depth>")[1][0] for i in (1, 2, 3, 4)
    ]
    assert depths == ["1", "3", "4", "1"]
    data = yaml.safe_load((result.out / "yolo" / "splits" / "data.yaml").read_text())
    assert (data["train"], data["val"], data["test"]) == ("images/train_full", "images/val_full", "images/test_full")


def test_custom_tree_with_suffix_connectivity_and_one_format(tmp_path):
    img, gt = tmp_path / "data" / "img", tmp_path / "data" / "gt"
    _png(img / "a.png", np.full((6, 6, 4), 90, np.uint8))
    _png(gt / "a_m.png", _mask(6, 6, (1, 1), (2, 2)))  # diagonal pair
    _png(img / "b.png", np.full((6, 6), 90, np.uint8), "P")
    _png(gt / "b_m.png", _mask(6, 6, (5, 5)))
    common = {"dataset": "custom", "image_dir": "img", "mask_dir": "gt", "mask_suffix": "_m", "workers": 1}
    eight = convert_dataset(tmp_path / "data", tmp_path / "o8", formats=["coco"], **common)
    four = convert_dataset(tmp_path / "data", tmp_path / "o4", formats="coco", connectivity=4, **common)
    assert eight.summary["total"]["targets"] == 2 and four.summary["total"]["targets"] == 3
    assert sorted(p.name for p in (tmp_path / "o8").iterdir()) == [".irstd-bench-output.json", "coco", "summary.json"]
    assert eight.records["a"].boxes == ((1, 1, 3, 3),)
    assert four.records["a"].boxes == ((1, 1, 2, 2), (2, 2, 3, 3))


def test_other_mask_size_mismatch_is_an_error_or_resized(tmp_path):
    root = _sirst_v2(tmp_path / "v2")
    _png(root / "annotations" / "masks" / "Misc_2_pixels0.png", _mask(24, 32, (10, 10), (11, 11)))
    with pytest.raises(InputError, match=r"Misc_2_pixels0\.png: mask is 32x24 but image Misc_2\.png is 16x12"):
        convert_dataset(root, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()
    resized = convert_dataset(root, tmp_path / "out2", resize_masks=True, workers=1, warn=lambda m: None)
    assert resized.records["Misc_2"].boxes == ((5, 5, 6, 6),)


def test_skip_missing_leaves_out_and_reports(tmp_path):
    root = _sirst_v2(tmp_path / "v2")
    (root / "annotations" / "masks" / "Misc_2_pixels0.png").unlink()
    warnings: list[str] = []
    result = convert_dataset(root, tmp_path / "out", skip_missing=True, workers=1, warn=warnings.append)
    assert result.summary["defects"]["missing_masks_skipped"] == ["Misc_2"]
    assert result.summary["splits"]["splits/test_full"]["missing_masks"] == ["Misc_2"]
    assert result.splits["splits/test_full"] == ["Misc_4"]
    assert any("Misc_2" in w for w in warnings)


def test_symlinks_and_copies_give_the_same_bytes_never_hard_links(tmp_path):
    root = _sirst_v2(tmp_path / "v2")
    linked = convert_dataset(root, tmp_path / "l", formats="yolo", workers=1, link_images=True)
    copied = convert_dataset(root, tmp_path / "c", formats="yolo", workers=1, link_images=False)
    a, b = (_tree_bytes(r.out / "yolo" / "all" / "images") for r in (linked, copied))
    assert a == b and len(a) == 4
    link = linked.out / "yolo" / "all" / "images" / "all" / "Misc_1.png"
    assert link.is_symlink() and link.resolve() == (root / "mixed" / "Misc_1.png").resolve()
    copy = copied.out / "yolo" / "all" / "images" / "all" / "Misc_1.png"
    assert not copy.is_symlink() and copy.stat().st_nlink == 1
    assert (root / "mixed" / "Misc_1.png").stat().st_nlink == 1  # the release file is never hard-linked
    assert copied.summary["settings"]["yolo_images"] == "copy"
    assert linked.summary["settings"]["yolo_images"] == "symlink"


def test_split_family_converts_every_split_file_in_it(tmp_path, nuaa_root):
    result = convert_dataset(nuaa_root, tmp_path / "o", splits="split_EFLNet", formats="coco,yolo", workers=2,
                             warn=lambda m: None)  # fmt: skip
    assert list(result.splits) == ["split_EFLNet/test", "split_EFLNet/train", "split_EFLNet/val"]
    assert [len(v) for v in result.splits.values()] == [86, 256, 85]  # Misc_111 (val): resized, a known defect
    assert (result.out / "yolo" / "split_EFLNet" / "data.yaml").is_file()


def test_split_file_names_are_safe():
    assert split_file_name("idx_427/test") == "idx_427__test"
    assert split_file_name("../x y") == "..__x_y"
    assert "/" not in split_file_name("a/b/c") and split_file_name("") == "_"


def test_replaces_previous_output_but_refuses_other_folders(tmp_path):
    root = _sirst_v2(tmp_path / "v2")
    out = tmp_path / "out"
    convert_dataset(root, out, formats="coco", workers=1)
    (out / "stale.txt").write_text("old")
    with pytest.raises(InputError, match="stale.txt: not written by irstd-bench"):
        convert_dataset(root, out, formats="voc", workers=1, force=True)
    (out / "stale.txt").unlink()
    with pytest.raises(InputError, match="use --force"):
        convert_dataset(root, out, formats="voc", workers=1)
    convert_dataset(root, out, formats="voc", workers=1, force=True)
    assert sorted(p.name for p in out.iterdir()) == [".irstd-bench-output.json", "summary.json", "voc"]
    assert json.loads((out / "summary.json").read_text())["schema"] == SUMMARY_SCHEMA
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not written by irstd-bench"):
        convert_dataset(root, precious, workers=1, force=True)
    assert (precious / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="dataset root"):
        convert_dataset(root, root.parent, workers=1)


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    from irstd_bench.convert import _yolo

    root = _sirst_v2(tmp_path / "v2")

    def refuse(source, dest, copy):
        raise InputError(f"{source}: refused")

    monkeypatch.setattr(_yolo, "place_image", refuse)
    with pytest.raises(InputError, match="refused"):
        convert_dataset(root, tmp_path / "new" / "deeper" / "out", workers=1)
    assert not (tmp_path / "new").exists()
    old = tmp_path / "old"
    convert_dataset(root, old, formats="coco", workers=1)
    before = _tree_bytes(old)
    with pytest.raises(InputError):
        convert_dataset(root, old, workers=1, force=True)
    assert _tree_bytes(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old", "v2"]  # no temporary siblings left


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_converts_and_prints_summary(tmp_path):
    root = _sirst_v2(tmp_path / "v2")
    out = tmp_path / "out"
    args = [str(root), "--out", str(out), "--split", "train,test", "--split", "all", "--format", "coco,yolo",
            "--workers", "1"]  # fmt: skip
    result = _run(args)
    assert result.exit_code == 0, result.output
    assert "splits/train_full" in result.stdout and "total: 4 images, 3 targets" in result.stdout
    assert sorted(p.name for p in (out / "coco").iterdir()) == [
        "all.json", "splits__test_full.json", "splits__train_full.json"
    ]  # fmt: skip
    first = _tree_bytes(out)
    again = _run([*args, "--copy-images", "--force"])
    assert again.exit_code == 0
    second = _tree_bytes(out)
    assert first.keys() == second.keys()
    assert {k: v for k, v in first.items() if k != "summary.json"} == {
        k: v for k, v in second.items() if k != "summary.json"
    }
    assert json.loads(second["summary.json"])["settings"]["yolo_images"] == "copy"


def test_cli_default_out_and_ruled_options(tmp_path, monkeypatch):
    root = _sirst_v2(tmp_path / "v2")
    monkeypatch.chdir(tmp_path)
    result = _run([str(root), "--workers", "1", "--format", "voc", "--threshold", "0", "--connectivity", "4"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "v2-converted" / "summary.json").read_text())
    assert summary["settings"]["threshold"] == 0 and summary["settings"]["connectivity"] == 4


def _bad_trees(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (extra CLI args, the file or value the message must name)."""
    cases = {}
    cases["missing root"] = ([str(tmp_path / "absent")], "absent")
    (tmp_path / "unknown").mkdir(parents=True)
    (tmp_path / "unknown" / "readme.txt").write_text("x")
    cases["unknown layout"] = ([str(tmp_path / "unknown")], "unknown")

    no_mask = _sirst_v2(tmp_path / "no_mask")
    (no_mask / "annotations" / "masks" / "Misc_3_pixels0.png").unlink()
    cases["image without mask"] = ([str(no_mask)], "Misc_3_pixels0.png")

    corrupt = _sirst_v2(tmp_path / "corrupt")
    (corrupt / "mixed" / "Misc_2.png").write_bytes(b"not a png at all")
    cases["corrupt image"] = ([str(corrupt)], "Misc_2.png")

    truncated = _sirst_v2(tmp_path / "truncated")
    data = (truncated / "mixed" / "Misc_1.png").read_bytes()
    (truncated / "mixed" / "Misc_1.png").write_bytes(data[: len(data) - 20])
    cases["truncated image"] = ([str(truncated)], "Misc_1.png")

    bad_mask = _sirst_v2(tmp_path / "bad_mask")
    (bad_mask / "annotations" / "masks" / "Misc_4_pixels0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    cases["corrupt mask"] = ([str(bad_mask)], "Misc_4_pixels0.png")

    empty_split = _sirst_v2(tmp_path / "empty_split")
    (empty_split / "splits" / "val_full.txt").write_bytes(b"\r\n")
    cases["empty split file"] = ([str(empty_split)], "val_full.txt")

    ghost = _sirst_v2(tmp_path / "ghost")
    (ghost / "splits" / "test_full.txt").write_text("Misc_4\nMisc_99\n")
    cases["split entry with no image"] = ([str(ghost)], "Misc_99")

    unknown_split = _sirst_v2(tmp_path / "unknown_split")
    cases["unknown split"] = ([str(unknown_split), "--split", "nope"], "'nope'")
    cases["unknown format"] = ([str(unknown_split), "--format", "coco,tfrecord"], "'tfrecord'")
    cases["custom without dirs"] = ([str(unknown_split), "--dataset", "custom"], "--image-dir")
    return cases


def test_cli_bad_input_exit_2_one_line_no_output(tmp_path):
    cases = _bad_trees(tmp_path / "in")
    for name, (args, named) in cases.items():
        out = tmp_path / "outs" / name.replace(" ", "_")
        result = _run([*args, "--out", str(out), "--workers", "1"])
        assert result.exit_code == 2, (name, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (name, result.stderr)
        assert named in lines[0], (name, lines[0])
        assert not out.exists(), name
    assert not (tmp_path / "outs").exists() or list((tmp_path / "outs").iterdir()) == []


def test_cli_skip_missing_flag(tmp_path):
    root = _sirst_v2(tmp_path / "v2")
    (root / "annotations" / "masks" / "Misc_3_pixels0.png").unlink()
    result = _run([str(root), "--out", str(tmp_path / "out"), "--skip-missing", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "warning: left out 1 image(s) without a mask: Misc_3" in result.stderr
    assert "images without mask skipped: 1: Misc_3" in result.stdout


@pytest.mark.skipif(not (NUAA / "images").is_dir(), reason="../shared/datasets/NUAA-SIRST is absent")
def test_cli_nuaa_misc_111_warning_and_resize(tmp_path):
    out = tmp_path / "out"
    base = [str(NUAA), "--out", str(out), "--split", "idx_427/test", "--format", "coco", "--workers", "1"]
    skipped = _run([*base, "--skip-defects"])
    assert skipped.exit_code == 0
    assert "warning: left out Misc_111" in skipped.stderr and "release defect" in skipped.stderr
    assert "idx_427/test" in skipped.stdout and "85" in skipped.stdout
    resized = _run([*base, "--force"])  # the default: the known defect is resized, with a warning
    assert resized.exit_code == 0, resized.output
    assert "Misc_111" in resized.stderr and "nearest neighbour" in resized.stderr
    gt = read_coco_ground_truth(out / "coco" / "idx_427__test.json")
    assert len(gt) == 86 and len(gt["Misc_111"]) == _misc_111_targets()
    assert gt["Misc_111"].image_size == (220, 325)


def test_worker_error_in_the_pool_names_the_file(tmp_path):
    root = tmp_path / "many"
    for i in range(80):
        stem = f"img_{i:03d}"
        _png(root / "images" / f"{stem}.png", np.full((8, 8), i, np.uint8))
        _png(root / "masks" / f"{stem}.png", _mask(8, 8, (i % 8, (i // 8) % 8)))
    (root / "images" / "img_057.png").write_bytes(b"broken")
    common = {"dataset": "custom", "image_dir": "images", "mask_dir": "masks", "formats": "coco", "workers": 2}
    with pytest.raises(InputError, match=r"img_057\.png: cannot decode image"):
        convert_dataset(root, tmp_path / "out", **common)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many"]
    _png(root / "images" / "img_057.png", np.full((8, 8), 57, np.uint8))
    pooled = convert_dataset(root, tmp_path / "out", **common)
    assert pooled.summary["total"]["targets"] == 80
    before = _tree_bytes(tmp_path / "out")
    convert_dataset(root, tmp_path / "out", **{**common, "workers": 1}, force=True)
    assert _tree_bytes(tmp_path / "out") == before
