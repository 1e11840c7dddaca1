"""One COCO ground-truth reader: the same targets give the same numbers whether the ground truth
is given as masks (``--root``) or as ``convert``'s COCO (``--gt-coco``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench.cli import cli
from irstd_bench.convert import convert_dataset
from irstd_bench.convert import read_coco_ground_truth as convert_reader
from irstd_bench.datasets import load_ground_truth, open_dataset
from irstd_bench.evaluate import read_coco_ground_truth
from irstd_bench.targets import mask_to_targets

H, W = 40, 48
SHIFT_PX = 2.6  # from the pixel centroid: a hit under centroid:3


def _l_shape(mask: np.ndarray, r: int, c: int) -> None:
    """An L of 13 pixels: its pixel centroid lies 1.96 px from its box centre."""
    mask[r, c : c + 7] = 255
    mask[r : r + 7, c] = 255


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "nudt"
    for sub in ("images", "masks", "50_50"):
        (root / sub).mkdir(parents=True)
    stems = ["000001", "000002"]
    for i, stem in enumerate(stems):
        Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "images" / f"{stem}.png")
        mask = np.zeros((H, W), np.uint8)
        _l_shape(mask, 10, 10)
        if i == 1:
            mask[30:33, 35:38] = 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\n".join(stems) + "\n")
    (root / "50_50" / "train.txt").write_text(stems[0] + "\n")
    return root


def _shifted_predictions(targets_by_stem: dict, image_size_of) -> list[dict]:
    """A box of each target's size centred ``SHIFT_PX`` from its pixel centroid, away from the box
    centre (towards the image's inside at its borders)."""
    rows = []
    for stem, targets in targets_by_stem.items():
        h, w = image_size_of(stem)
        for box, (cx, cy) in zip(targets.boxes.tolist(), targets.centroids.tolist(), strict=True):
            bw, bh = box[2] - box[0], box[3] - box[1]
            direction = -1.0 if (box[0] + box[2]) / 2 > cx else 1.0
            px = cx + direction * SHIFT_PX
            if not (bw / 2 <= px <= w - bw / 2):
                px = cx - direction * SHIFT_PX
            rows.append({"file_name": f"{stem}.png", "bbox": [px - bw / 2, cy - bh / 2, bw, bh], "score": 0.9})
    return rows


def _eval(tmp_path: Path, preds: Path, *ground_truth: str) -> dict:
    out = tmp_path / f"res_{len(list(tmp_path.glob('res_*.json')))}.json"
    args = ["eval", str(preds), *ground_truth, "--match", "centroid:3", "--workers", "1", "--out", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_masks_and_converted_coco_give_the_same_numbers(data, tmp_path):
    convert_dataset(data, tmp_path / "conv", splits=["50_50/test"], formats=["coco"], workers=1)
    coco = tmp_path / "conv" / "coco" / "50_50__test.json"
    ds = open_dataset(data, "nudt")
    gt = {s.stem: load_ground_truth(s).targets for s in ds.samples("50_50/test")}
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps(_shifted_predictions(gt, lambda stem: (H, W))))
    by_masks = _eval(tmp_path, preds, "--root", str(data), "--dataset", "nudt", "--split", "50_50/test")
    by_coco = _eval(tmp_path, preds, "--gt-coco", str(coco))
    assert by_masks["metrics"]["tp"] == 3 and by_masks["metrics"]["fp"] == 0
    for key in ("tp", "fp", "fn", "precision", "recall", "f1", "ap", "ap50"):
        assert by_coco["metrics"][key] == by_masks["metrics"][key], key
    assert by_coco["size_bins"] == by_masks["size_bins"]
    mask_csv = (tmp_path / "res_0.per_target.csv").read_text()
    coco_csv = (tmp_path / "res_1.per_target.csv").read_text()
    assert coco_csv == mask_csv  # the same targets, centroids and areas row by row


def test_the_reader_keeps_convert_centroids_not_box_centres(data, tmp_path):
    convert_dataset(data, tmp_path / "conv", splits=["50_50/test"], formats=["coco"], workers=1)
    coco = tmp_path / "conv" / "coco" / "50_50__test.json"
    ds = open_dataset(data, "nudt")
    for sample in ds.samples("50_50/test"):
        from_mask = load_ground_truth(sample).targets
        from_coco = read_coco_ground_truth(coco)[sample.stem]
        np.testing.assert_array_equal(from_coco.boxes, from_mask.boxes)
        np.testing.assert_array_equal(from_coco.area_px, from_mask.area_px)
        np.testing.assert_array_equal(from_coco.centroids, from_mask.centroids)  # to the last bit
        np.testing.assert_array_equal(from_coco.pixels, from_mask.pixels)  # convert writes each target's RLE
    box_centre = (from_mask.boxes[0, :2] + from_mask.boxes[0, 2:]) / 2
    assert np.hypot(*(from_mask.centroids[0] - box_centre)) > 1.9  # the L's centroid is not its box centre
    assert convert_reader is read_coco_ground_truth  # one reader for convert and eval


def test_segmentation_gives_the_pixels_and_the_pixel_metrics(data, tmp_path):
    mask_utils = pytest.importorskip("pycocotools.mask")
    convert_dataset(data, tmp_path / "conv", splits=["50_50/test"], formats=["coco"], workers=1)
    doc = json.loads((tmp_path / "conv" / "coco" / "50_50__test.json").read_text())
    ds = open_dataset(data, "nudt")
    labels = {s.stem: load_ground_truth(s).targets.label_image for s in ds.samples("50_50/test")}
    names = {im["id"]: Path(im["file_name"]).stem for im in doc["images"]}
    seen: dict[str, int] = {}
    for ann in doc["annotations"]:
        stem = names[ann["image_id"]]
        seen[stem] = seen.get(stem, 0) + 1
        target = np.asfortranarray((labels[stem] == seen[stem]).astype(np.uint8))
        rle = mask_utils.encode(target)
        ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        del ann["centroid"]  # the centroid then comes from the pixels
    coco = tmp_path / "with_segmentation.json"
    coco.write_text(json.dumps(doc))
    for stem, targets in read_coco_ground_truth(coco).items():
        np.testing.assert_array_equal(targets.label_image, labels[stem])
    # A mask prediction: one target found shifted by a pixel, one false alarm.
    preds = tmp_path / "masks"
    preds.mkdir()
    for stem in labels:
        m = np.zeros((H, W), np.uint8)
        m[11:12, 10:17] = 255
        m[2:4, 40:42] = 255
        Image.fromarray(m).save(preds / f"{stem}.png")
    by_masks = _eval(tmp_path, preds, "--root", str(data), "--dataset", "nudt", "--split", "50_50/test")
    by_coco = _eval(tmp_path, preds, "--gt-coco", str(coco))
    assert by_masks["metrics"]["iou"] is not None
    assert by_coco["metrics"] == by_masks["metrics"]


def test_nuaa_idx427_test_masks_and_converted_coco_agree(nuaa_root, tmp_path):
    """Predictions 2.6 px from each target's pixel centroid: hits under centroid:3 against the
    masks; a reader that used box centres scored some of them as misses."""
    convert_dataset(
        nuaa_root, tmp_path / "conv", splits=["idx_427/test"], formats=["coco"], resize_masks=True, workers=1
    )
    coco = tmp_path / "conv" / "coco" / "idx_427__test.json"
    gt = read_coco_ground_truth(coco)
    preds = tmp_path / "preds.json"
    rows = _shifted_predictions(gt, lambda stem: gt[stem].image_size)
    preds.write_text(json.dumps(rows))
    box_centre_misses = 0
    for row in rows:
        x, y, w, h = row["bbox"]
        boxes = gt[row["file_name"][:-4]].boxes
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        box_centre_misses += int(np.hypot(*(centres - [x + w / 2, y + h / 2]).T).min() >= 3)
    assert box_centre_misses > 0  # the fixture tells the two readings apart
    common = ("--root", str(nuaa_root), "--dataset", "nuaa", "--split", "idx_427/test", "--resize-masks")
    by_masks = _eval(tmp_path, preds, *common)
    by_coco = _eval(tmp_path, preds, "--gt-coco", str(coco))
    assert by_masks["counts"]["images"] == by_coco["counts"]["images"] == 86
    assert by_masks["metrics"]["tp"] == by_coco["metrics"]["tp"] == by_masks["counts"]["gt_targets"]
    for key in ("fp", "fn", "precision", "recall", "f1", "ap"):
        assert by_coco["metrics"][key] == by_masks["metrics"][key], key


def test_polygon_segmentation_and_overlap_refusal(tmp_path):
    pytest.importorskip("pycocotools")
    from irstd_bench.errors import InputError

    def write(annotations):
        doc = {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}], "annotations": annotations}
        path = tmp_path / "gt.json"
        path.write_text(json.dumps(doc))
        return path

    square = {"id": 1, "image_id": 1, "bbox": [4, 5, 2, 2], "area": 4, "segmentation": [[4, 5, 6, 5, 6, 7, 4, 7]]}
    targets = read_coco_ground_truth(write([square]))["a"]
    assert np.argwhere(targets.foreground).tolist() == [[5, 4], [5, 5], [6, 4], [6, 5]]
    assert targets.centroids.tolist() == [[5.0, 6.0]]  # from the pixels: no centroid field
    with pytest.raises(InputError, match="share pixels"):
        read_coco_ground_truth(write([square, {**square, "id": 2}]))


def _shifted_masks(label_images: dict, shift: tuple[int, int], folder: Path) -> Path:
    """Mask predictions: every target's pixels moved by ``shift = (dx, dy)`` (its centroid too, by
    exactly that much), each image's prediction one PNG."""
    folder.mkdir()
    dx, dy = shift
    for stem, labels in label_images.items():
        rows, cols = np.nonzero(labels)
        moved = np.zeros(labels.shape, np.uint8)
        moved[rows + dy, cols + dx] = 255
        Image.fromarray(moved).save(folder / f"{stem}.png")
    return folder


def test_a_tie_at_the_centroid_threshold_is_one_verdict_by_both_routes(data, tmp_path):
    """A prediction exactly 3 px from a target: a miss under centroid:3 (distance < 3 px) against
    the masks and against convert's COCO alike. The L's centroid x is 10 + 21/13: rounded to 6
    decimals, as convert once wrote it, it moved 3.8e-7 px towards the prediction (a hit)."""
    convert_dataset(data, tmp_path / "conv", splits=["50_50/test"], formats=["coco"], workers=1)
    coco = tmp_path / "conv" / "coco" / "50_50__test.json"
    ds = open_dataset(data, "nudt")
    gt = {s.stem: load_ground_truth(s).targets for s in ds.samples("50_50/test")}
    preds = _shifted_masks({stem: t.label_image for stem, t in gt.items()}, (3, 0), tmp_path / "masks")
    # The fixture is a tie: exactly 3.0 px by the evaluator's own centroids; below 3 with 6 decimals.
    l_target = gt["000001"].centroids[0]
    moved = mask_to_targets(np.asarray(Image.open(preds / "000001.png"))).centroids[0]
    assert np.hypot(*(moved - l_target)) == 3.0 and np.hypot(*(moved - np.round(l_target, 6))) < 3.0
    by_masks = _eval(tmp_path, preds, "--root", str(data), "--dataset", "nudt", "--split", "50_50/test")
    by_coco = _eval(tmp_path, preds, "--gt-coco", str(coco))
    assert by_masks["metrics"]["tp"] == by_coco["metrics"]["tp"] == 0  # every target is a tie
    assert by_masks["metrics"] == by_coco["metrics"]
    stored = json.loads(coco.read_text())["annotations"][0]["centroid"]
    assert stored == l_target.tolist()  # written in full precision
    # A COCO file with the old 6-decimal centroids and the segmentation: the pixels decide, exactly.
    doc = json.loads(coco.read_text())
    for ann in doc["annotations"]:
        ann["centroid"] = [round(v, 6) for v in ann["centroid"]]
    rounded = tmp_path / "rounded.json"
    rounded.write_text(json.dumps(doc))
    assert _eval(tmp_path, preds, "--gt-coco", str(rounded))["metrics"] == by_masks["metrics"]
    # Without a segmentation the stored centroid is all there is: full precision keeps the verdict.
    full = json.loads(coco.read_text())["annotations"]
    for ann, written in zip(doc["annotations"], full, strict=True):
        del ann["segmentation"]
        ann["centroid"] = written["centroid"]
    boxes_only = tmp_path / "boxes_only.json"
    boxes_only.write_text(json.dumps(doc))
    assert _eval(tmp_path, preds, "--gt-coco", str(boxes_only))["metrics"]["tp"] == 0


def test_a_stored_centroid_that_is_not_its_segmentations_is_named(data, tmp_path):
    convert_dataset(data, tmp_path / "conv", splits=["50_50/test"], formats=["coco"], workers=1)
    doc = json.loads((tmp_path / "conv" / "coco" / "50_50__test.json").read_text())
    exact = doc["annotations"][0]["centroid"]
    doc["annotations"][0]["centroid"] = [exact[0] + 0.5, exact[1]]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    from irstd_bench.errors import DatasetDefectWarning

    with pytest.warns(DatasetDefectWarning, match=r"annotations\[0\]: centroid .* lies 0.5 px from its segmentation"):
        targets = read_coco_ground_truth(path)
    assert targets["000001"].centroids[0].tolist() == exact


def test_nuaa_exact_distance_ties_are_one_verdict_by_both_routes(nuaa_root, tmp_path):
    """NUAA-SIRST idx_427/test, every target's pixels moved 3 px left (right where the image ends):
    each prediction lies exactly 3 px from its target. With convert's old 6-decimal centroids the
    COCO route counted some as hits (Misc_263: 2.9999996 px); now both routes give the same TP."""
    convert_dataset(
        nuaa_root, tmp_path / "conv", splits=["idx_427/test"], formats=["coco"], resize_masks=True, workers=1
    )
    coco = tmp_path / "conv" / "coco" / "idx_427__test.json"
    ds = open_dataset(nuaa_root, "nuaa")
    folder = tmp_path / "masks"
    folder.mkdir()
    flips = []
    for sample in ds.samples("idx_427/test"):
        targets = load_ground_truth(sample, resize_masks=True).targets
        rows, cols = np.nonzero(targets.label_image)
        dx = -3 if cols.size == 0 or cols.min() >= 3 else 3
        moved = np.zeros(targets.image_size, np.uint8)
        moved[rows, cols + dx] = 255
        Image.fromarray(moved).save(folder / f"{sample.stem}.png")
        for label, centroid in enumerate(targets.centroids, start=1):
            one = np.zeros(targets.image_size, bool)
            r, c = np.nonzero(targets.label_image == label)
            one[r, c + dx] = True
            shifted = mask_to_targets(one).centroids[0]
            if np.hypot(*(shifted - np.round(centroid, 6))) < 3.0 == np.hypot(*(shifted - centroid)):
                flips.append(sample.stem)
    assert "Misc_263" in flips  # the fixture holds ties that 6 decimals turned into hits
    common = ("--root", str(nuaa_root), "--dataset", "nuaa", "--split", "idx_427/test", "--resize-masks")
    by_masks = _eval(tmp_path, folder, *common)
    by_coco = _eval(tmp_path, folder, "--gt-coco", str(coco))
    assert by_masks["counts"]["images"] == by_coco["counts"]["images"] == 86
    assert by_masks["metrics"]["tp"] == by_coco["metrics"]["tp"]
    assert by_masks["metrics"] == by_coco["metrics"]
