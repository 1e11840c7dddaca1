"""Split entries that name images by another rule: the EFLNet authors' four-digit NUDT-SIRST ids.

The release names its images ``000001.png``; the authors' ``split_EFLNet`` lists say ``0001``.
``Dataset.image_stem`` maps them, and every command reads splits through it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_engine_models import TINY_DETECTOR

from irstd_bench.cli import cli
from irstd_bench.datasets import open_dataset, padded_image_id
from irstd_bench.errors import InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
SIDE = 64
#: Crafted NUDT-SIRST tree: six images, two targets each; the authors' ids in split_EFLNet.
STEMS = [f"{i:06d}" for i in range(1, 7)]
EFLNET = {"train": ["0001", "0002", "0003"], "val": ["0004"], "test": ["0005", "0006"]}


def _shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"{path} not found (../shared/datasets is absent)")
    return path


def _nudt_tree(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, stem in enumerate(STEMS):
        image = (rng.random((SIDE, SIDE)) * 50).astype(np.uint8)
        mask = np.zeros((SIDE, SIDE), np.uint8)
        for y, x in ((10 + i, 12), (40, 30 + i)):
            mask[y : y + 3, x : x + 3] = 255
            image[y : y + 3, x : x + 3] = 250
        Image.fromarray(np.stack([image] * 3, -1)).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    (root / "50_50").mkdir()
    (root / "50_50" / "train.txt").write_bytes(b"000001\r\n000002\r\n000003\r\n")
    (root / "50_50" / "test.txt").write_bytes(b"000004\r\n000005\r\n000006\r\n")
    (root / "split_EFLNet").mkdir()
    for part, ids in EFLNET.items():
        (root / "split_EFLNet" / f"{part}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


@pytest.fixture(scope="module")
def nudt(tmp_path_factory) -> Path:
    return _nudt_tree(tmp_path_factory.mktemp("ids") / "NUDT-SIRST")


def run_cli(*args, expect: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == expect, f"{result.output}\n{result.exception!r}"
    return result


# ---------------------------------------------------------------------------------------------
# The rule


def test_padded_image_id_rule():
    assert padded_image_id("0001", 6) == "000001"
    assert padded_image_id("7", 6) == "000007"
    assert padded_image_id("12345", 6) == "012345"
    for entry in ("000001", "0000001", "Misc_1", "XDU12", "", "0x01", "١٢"):  # last: Arabic-Indic digits
        assert padded_image_id(entry, 6) is None, entry
    assert padded_image_id("0001", 0) is None


def test_four_digit_ids_name_the_six_digit_images(nudt):
    ds = open_dataset(nudt)
    assert ds.layout.name == "nudt" and "split_EFLNet/test" in ds.split_names()
    for part, ids in EFLNET.items():
        assert ds.stems(f"split_EFLNet/{part}") == [i.zfill(6) for i in ids]
        assert [s.image_path.name for s in ds.samples(f"split_EFLNet/{part}")] == [f"{i.zfill(6)}.png" for i in ids]
    assert ds.stems("50_50/test") == ["000004", "000005", "000006"]
    assert ds.image_stem("0003") == "000003" and ds.image_stem("000003") == "000003"


def test_an_id_naming_no_image_is_an_error_naming_it(tmp_path):
    root = _nudt_tree(tmp_path / "NUDT-SIRST")
    (root / "split_EFLNet" / "test.txt").write_text("0005\n0099\n")
    ds = open_dataset(root)
    assert ds.stems("split_EFLNet/test") == ["000005", "0099"]
    with pytest.raises(InputError, match=r"0099\.png: split entry '0099' has no image \(nor 000099\.png"):
        ds.samples("split_EFLNet/test")
    result = run_cli("convert", root, "--out", tmp_path / "o", "--split", "split_EFLNet/test", expect=2)
    assert "'0099'" in result.output and "000099.png" in result.output
    assert not (tmp_path / "o").exists()


def test_an_entry_naming_an_image_is_taken_as_it_is(tmp_path):
    # A tree renamed as the EFLNet authors did (0001.png): their ids name these files directly.
    root = _nudt_tree(tmp_path / "renamed")
    for folder in ("images", "masks"):
        for path in (root / folder).iterdir():
            path.rename(path.with_name(path.name[2:]))
    ds = open_dataset(root, "nudt")
    assert ds.stems("split_EFLNet/train") == ["0001", "0002", "0003"]
    # Here "4" names no image: the six-digit 000004 does not exist either.
    (root / "split_EFLNet" / "val.txt").write_text("0004\n4\n")
    assert ds.stems("split_EFLNet/val") == ["0004", "4"]


def test_both_spellings_of_one_image_are_one_image(tmp_path):
    root = _nudt_tree(tmp_path / "NUDT-SIRST")
    (root / "split_EFLNet" / "val.txt").write_text("0004\n000004\n4\n")
    assert open_dataset(root).stems("split_EFLNet/val") == ["000004"]


def test_layouts_without_numbered_images_do_not_pad(tmp_path):
    root = _nudt_tree(tmp_path / "custom")
    ds = open_dataset(root, "custom", image_dir="images", mask_dir="masks", split_dir="split_EFLNet")
    assert ds.stems("test") == ["0005", "0006"]
    with pytest.raises(InputError, match=r"0005\.png: split entry '0005' has no image$"):
        ds.samples("test")


# ---------------------------------------------------------------------------------------------
# Every command reads the authors' lists


def test_convert_writes_release_names(nudt, tmp_path):
    run_cli("convert", nudt, "--out", tmp_path / "c", "--split", "split_EFLNet", "--format", "yolo,coco")
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["splits"]["split_EFLNet/test"]["images"] == 2
    labels = tmp_path / "c" / "yolo" / "split_EFLNet" / "labels" / "test"
    assert sorted(p.name for p in labels.iterdir()) == ["000005.txt", "000006.txt"]
    coco = json.loads((tmp_path / "c" / "coco" / "split_EFLNet__val.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == ["000004.png"]


def test_baseline_and_eval_on_the_authors_split(nudt, tmp_path):
    preds = tmp_path / "tophat"
    run_cli(
        "baseline", "tophat", "--root", nudt, "--split", "split_EFLNet/test", "--out", preds, "--workers", 1,
        "--no-progress",
    )
    assert sorted(p.name for p in (preds / "scoremaps").iterdir()) == ["000005.npy", "000006.npy"]
    out = tmp_path / "res.json"
    run_cli("eval", preds / "masks", "--root", nudt, "--split", "split_EFLNet/test", "--out", out, "--workers", 1)
    res = json.loads(out.read_text())
    assert res["split"] == "split_EFLNet/test" and res["counts"]["images"] == 2
    assert res["counts"]["gt_targets"] == 4 and res["counts"]["images_without_prediction"] == 0
    rows = list(csv.DictReader((tmp_path / "res.per_image.csv").open()))
    assert [row["image"] for row in rows] == ["000005", "000006"]


@pytest.fixture(scope="module")
def tiny_run(nudt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "run"
    run_cli(
        "train", "--root", nudt, "--split", "split_EFLNet", "--model", TINY_DETECTOR, "--epochs", 1,
        "--imgsz", SIDE, "--batch", 2, "--device", "cpu", "--workers", 0, "--out", out, "--no-progress",
    )
    return out


def test_train_reads_the_authors_split(tiny_run):
    args = json.loads((tiny_run / "args.json").read_text())
    assert args["train_split"] == "split_EFLNet/train" and args["val_split"] == "split_EFLNet/val"
    assert args["val_is_test"] is False


def test_predict_writes_release_names(nudt, tiny_run, tmp_path):
    out = tmp_path / "p.csv"
    run_cli(
        "predict", "--model", TINY_DETECTOR, "--weights", tiny_run / "best.pt", "--root", nudt,
        "--split", "split_EFLNet/val", "--out", out, "--format", "csv", "--conf", 0.0, "--device", "cpu",
        "--no-progress",
    )
    assert {row["image"] for row in csv.DictReader(out.open())} == {"000004"}


def test_reproduce_accepts_the_family(nudt):
    from reference_model.reproduce import ReproduceConfig
    from reference_model.reproduce._run import _open

    config = ReproduceConfig(out=Path("unused"), root=nudt, dataset=None, family="split_EFLNet", budget_s=600)
    assert _open(config) == (nudt, "nudt", "split_EFLNet")


# ---------------------------------------------------------------------------------------------
# The real releases


def test_real_nudt_split_eflnet_covers_the_release():
    ds = open_dataset(_shared("NUDT-SIRST"))
    parts = {part: ds.stems(f"split_EFLNet/{part}") for part in ("train", "val", "test")}
    assert {part: len(stems) for part, stems in parts.items()} == {"train": 796, "val": 265, "test": 266}
    members = [stem for stems in parts.values() for stem in stems]
    assert len(set(members)) == 1327 and set(members) == set(ds.stems("all"))
    assert parts["train"][:3] == ["000001", "000002", "000003"]
    assert all(len(s.image_path.stem) == 6 for s in ds.samples("split_EFLNet/test"))
    assert (len(ds.stems("50_50/train")), len(ds.stems("50_50/test"))) == (663, 664)


def test_real_irstd1k_split_eflnet_is_a_family():
    root = _shared("layouts", "IRSTD-1k")
    ds = open_dataset(root)
    assert {p: len(ds.stems(f"split_EFLNet/{p}")) for p in ("train", "val", "test")} == {
        "train": 600, "val": 200, "test": 201,
    }
    assert ds.family_split("split_EFLNet", "val") == "split_EFLNet/val"
    members = {s for p in ("train", "val", "test") for s in ds.stems(f"split_EFLNet/{p}")}
    assert "XDU0" in members and members == set(ds.stems("trainvaltest"))
