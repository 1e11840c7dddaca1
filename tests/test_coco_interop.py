"""COCO outputs read by the field's tools: pycocotools (loadRes, COCOeval, RLE) and torchvision.

Stable image ids (one per image for a whole dataset), ``predict --format coco`` as real COCO
results, instance masks as RLE.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from irstd_bench.cli import cli
from irstd_bench.convert import convert_dataset
from irstd_bench.datasets import dataset_image_ids, load_ground_truth, open_dataset, stable_image_ids
from irstd_bench.synth import generate_sample


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_stable_ids_sort_stems_as_strings():
    assert stable_image_ids(["b", "a10", "a2", "a10"]) == {"a10": 1, "a2": 2, "b": 3}


def test_nuaa_split_files_share_image_ids(nuaa_root, tmp_path):
    splits = ["idx_427/trainvaltest", "idx_427/test", "split_EFLNet/test", "all"]
    result = convert_dataset(nuaa_root, tmp_path / "o", splits=splits, formats="coco", workers=2, warn=lambda m: None)
    expected = {f"{stem}.png": i for stem, i in dataset_image_ids(open_dataset(nuaa_root)).items()}
    assert expected["Misc_1.png"] == 1 and len(expected) == 427
    ann_ids: dict[tuple, int] = {}
    for name in splits:
        doc = json.loads((result.out / "coco" / f"{name.replace('/', '__')}.json").read_text())
        for image in doc["images"]:
            assert image["id"] == expected[image["file_name"]], (name, image)
        for ann in doc["annotations"]:
            key = (ann["image_id"], tuple(ann["bbox"]))
            assert ann_ids.setdefault(key, ann["id"]) == ann["id"]
    trainvaltest = json.loads((result.out / "coco" / "idx_427__trainvaltest.json").read_text())["images"]
    everything = json.loads((result.out / "coco" / "all.json").read_text())["images"]
    assert {(im["file_name"], im["id"]) for im in trainvaltest} == {(im["file_name"], im["id"]) for im in everything}


def test_nuaa_segmentation_rle_decodes_to_the_target_pixels(nuaa_root, tmp_path):
    result = convert_dataset(
        nuaa_root, tmp_path / "o", splits="idx_427/test", formats="coco", workers=1, warn=lambda m: None
    )
    path = result.out / "coco" / "idx_427__test.json"
    coco = COCO(str(path))
    ds = open_dataset(nuaa_root)
    checked = 0
    for image in coco.loadImgs(coco.getImgIds()):
        stem = Path(image["file_name"]).stem
        labels = load_ground_truth(ds.sample(stem), known_defect=ds.known_defect(stem)).targets.label_image
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert len(anns) == labels.max()
        for k, ann in enumerate(anns, start=1):
            assert ann["iscrowd"] == 0
            decoded = mask_utils.decode(ann["segmentation"]).astype(bool)
            np.testing.assert_array_equal(decoded, labels == k)
            assert ann["area"] == int(decoded.sum()) == int(mask_utils.area(ann["segmentation"]))
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), decoded)
            checked += 1
    assert checked == result.summary["splits"]["idx_427/test"]["targets"]


def test_torchvision_reads_boxes_masks_and_labels(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2

    root = tmp_path / "data"
    generate_sample(root, n_images=6, size=64, seed=3)
    result = convert_dataset(root, tmp_path / "o", splits="all", formats="coco", workers=1)
    annotations = result.out / "coco" / "all.json"
    dataset = wrap_dataset_for_transforms_v2(
        CocoDetection(str(root / "images"), str(annotations)), target_keys={"boxes", "masks", "labels"}
    )
    doc = json.loads(annotations.read_text())
    seen = 0
    for index, image in enumerate(doc["images"]):
        _, target = dataset[index]
        anns = [a for a in doc["annotations"] if a["image_id"] == image["id"]]
        if not anns:
            continue
        assert target["masks"].shape == (len(anns), image["height"], image["width"])
        assert target["labels"].tolist() == [1] * len(anns)
        for mask, ann in zip(target["masks"], anns, strict=True):
            assert int(mask.sum()) == ann["area"]
            x, y, w, h = ann["bbox"]
            assert target["boxes"].tolist()[anns.index(ann)] == [x, y, x + w, y + h]
        seen += 1
    assert seen > 0 and torchvision.__version__


def test_predict_coco_results_match_pycocotools_ap50(tmp_path):
    root = tmp_path / "data"
    generate_sample(root, n_images=16, size=96, seed=5)
    convert_dataset(root, tmp_path / "boxes", splits="50_50/test", formats="coco", workers=1)
    gt_path = tmp_path / "boxes" / "coco" / "50_50__test.json"
    preds = tmp_path / "preds.json"
    run("predict", "--weights", "nuaa-eflnet-n", "--root", root, "--split", "50_50/test", "--out", preds,
        "--imgsz", "96", "--device", "cpu", "--conf", "0.001")
    rows = json.loads(preds.read_text())
    assert rows and set(rows[0]) == {"image_id", "category_id", "bbox", "score", "file_name"}
    gt = COCO(str(gt_path))
    ids = {im["file_name"]: im["id"] for im in gt.loadImgs(gt.getImgIds())}
    assert all(ids[r["file_name"]] == r["image_id"] for r in rows)
    dt = gt.loadRes(str(preds))
    evaluator = COCOeval(gt, dt, "bbox")
    evaluator.params.maxDets = [1, 10, 10**6]  # no per-image cap, as irstd-bench eval
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    out = tmp_path / "res.json"
    # image_id only (no file_name): eval maps the ids through the dataset's stable ids.
    by_id = tmp_path / "by_id.json"
    by_id.write_text(json.dumps([{k: v for k, v in r.items() if k != "file_name"} for r in rows]))
    run("eval", by_id, "--root", root, "--split", "50_50/test", "--out", out, "--workers", "1")
    ours = json.loads(out.read_text())["metrics"]["ap50"]
    assert ours == pytest.approx(evaluator.stats[1], abs=1e-9)
    assert ours > 0
