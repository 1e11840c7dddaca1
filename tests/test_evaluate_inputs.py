"""Strict prediction and ground-truth files: every bad value is one ``Error:`` line naming the
file and the value, exit 2, and no results written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench.cli import cli

H, W = 32, 40
STEMS = ("000001", "000002")


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "nudt"
    for sub in ("images", "masks", "50_50"):
        (root / sub).mkdir(parents=True)
    for stem in STEMS:
        Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "images" / f"{stem}.png")
        mask = np.zeros((H, W), np.uint8)
        mask[5:7, 4:6] = 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\n".join(STEMS) + "\n")
    (root / "50_50" / "train.txt").write_text(STEMS[0] + "\n")
    return root


def _gt_coco(tmp_path: Path, images=None, annotations=None) -> Path:
    doc = {
        "images": images
        if images is not None
        else [{"id": i + 1, "file_name": f"{s}.png", "width": W, "height": H} for i, s in enumerate(STEMS)],
        "annotations": annotations
        if annotations is not None
        else [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 5, 2, 2], "area": 4}],
        "categories": [{"id": 1, "name": "target"}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    return path


def _refused(args: list, *expected: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def _dets(tmp_path: Path, entries: list[dict]) -> Path:
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(entries))
    return path


GOOD = {"file_name": "000001.png", "bbox": [4, 5, 2, 2], "score": 0.9}


@pytest.mark.parametrize(
    ("change", "value_text"),
    [
        ({"bbox": "2081"}, "'2081'"),  # a string is not four numbers (it was read as [2, 0, 8, 1])
        ({"bbox": [4, 5, 2]}, "[4, 5, 2]"),
        ({"bbox": [4, 5, "2", 2]}, "'2'"),
        ({"bbox": [4, 5, True, 2]}, "True"),
        ({"bbox": [4, 5, 1e999, 2]}, "inf"),
        ({"score": "0.9"}, "'0.9'"),
        ({"score": True}, "True"),
        ({"score": None}, "None"),
    ],
)
def test_coco_predictions_with_bad_values(data, tmp_path, change, value_text):
    preds = _dets(tmp_path, [GOOD, {**GOOD, **change}])
    out = tmp_path / "res.json"
    _refused(["eval", preds, "--root", data, "--dataset", "nudt", "--out", out], str(preds), "entry 1", value_text)
    assert not out.exists()


@pytest.mark.parametrize("image_id", [1.7, "1", True])
def test_coco_image_id_must_be_an_integer(data, tmp_path, image_id):
    gt = _gt_coco(tmp_path)
    preds = _dets(tmp_path, [{"image_id": image_id, "bbox": [4, 5, 2, 2], "score": 0.9}])
    _refused(["eval", preds, "--gt-coco", gt, "--out", tmp_path / "r.json"], str(preds), "image_id", repr(image_id))


def test_integral_float_image_id_is_that_image(data, tmp_path):
    gt = _gt_coco(tmp_path)
    preds = _dets(tmp_path, [{"image_id": 1.0, "bbox": [4, 5, 2, 2], "score": 0.9}])
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["eval", str(preds), "--gt-coco", str(gt), "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["metrics"]["tp"] == 1


def test_yolo_class_must_be_an_integer(data, tmp_path):
    folder = tmp_path / "yolo"
    folder.mkdir()
    (folder / "000001.txt").write_text("0 0.125 0.1875 0.05 0.0625 0.9\ncar 0.1 0.1 0.05 0.05 0.8\n")
    (folder / "000002.txt").write_text("")
    _refused(
        ["eval", folder, "--root", data, "--dataset", "nudt", "--workers", "1", "--out", tmp_path / "r.json"],
        "000001.txt",
        "line 2",
        "'car'",
    )


def test_non_utf8_csv_predictions(data, tmp_path):
    preds = tmp_path / "dets.csv"
    preds.write_bytes("image,x0,y0,x1,y1,score\n000001,4,5,6,7,0.9\ncaf\xe9,1,1,2,2,0.5\n".encode("latin-1"))
    _refused(
        ["eval", preds, "--root", data, "--dataset", "nudt", "--out", tmp_path / "r.json"], str(preds), "UTF-8", "0xe9"
    )


@pytest.mark.parametrize(
    ("images", "value_text"),
    [
        ([{"id": 1, "file_name": "000001.png", "width": -40, "height": H}], "-40"),
        ([{"id": 1, "file_name": "000001.png", "width": W, "height": 0}], "height"),
        ([{"id": 1, "file_name": "000001.png", "width": "40", "height": H}], "'40'"),
    ],
)
def test_ground_truth_coco_with_bad_image_sizes_blames_the_ground_truth(data, tmp_path, images, value_text):
    gt = _gt_coco(tmp_path, images=images)
    preds = _dets(tmp_path, [GOOD])
    message = _refused(["eval", preds, "--gt-coco", gt, "--out", tmp_path / "r.json"], str(gt), value_text)
    assert str(preds) not in message


@pytest.mark.parametrize(
    ("annotation", "value_text"),
    [
        ({"id": 1, "image_id": 1, "bbox": [4, 5, -2, 2]}, "negative"),
        ({"id": 1, "image_id": 1, "bbox": "4522"}, "'4522'"),
        ({"id": 1, "image_id": 1.5, "bbox": [4, 5, 2, 2]}, "1.5"),
        ({"id": 1, "image_id": 9, "bbox": [4, 5, 2, 2]}, "9"),
        ({"id": 1, "image_id": 1, "bbox": [4, 5, 2, 2], "area": "4"}, "'4'"),
        ({"id": 1, "image_id": 1, "bbox": [4, 5, 2, 2], "centroid": [5.0]}, "[5.0]"),
    ],
)
def test_ground_truth_coco_with_bad_annotations(data, tmp_path, annotation, value_text):
    gt = _gt_coco(tmp_path, annotations=[annotation])
    preds = _dets(tmp_path, [GOOD])
    message = _refused(
        ["eval", preds, "--gt-coco", gt, "--out", tmp_path / "r.json"], str(gt), "annotations[0]", value_text
    )
    assert str(preds) not in message


@pytest.mark.parametrize("images", [[1, 2], ["000001.png"], [{"file_name": "000001.png"}], {"1": "a"}])
def test_malformed_coco_images_table(data, tmp_path, images):
    gt = _gt_coco(tmp_path, images=images)
    _refused(["eval", _dets(tmp_path, [GOOD]), "--gt-coco", gt, "--out", tmp_path / "r.json"], str(gt), "images")


def test_malformed_images_table_in_a_coco_prediction_document(data, tmp_path):
    preds = tmp_path / "dets.json"
    preds.write_text(json.dumps({"images": [7], "annotations": [{"image_id": 7, "bbox": [4, 5, 2, 2], "score": 0.9}]}))
    _refused(
        ["eval", preds, "--root", data, "--dataset", "nudt", "--out", tmp_path / "r.json"], str(preds), "images[0]"
    )
