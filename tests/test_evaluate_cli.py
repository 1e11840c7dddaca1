"""The eval command: every prediction format and every kind of bad input, on a tiny dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench.cli import cli
from irstd_bench.evaluate import PIXEL_THRESHOLD

H, W = 32, 40
STEMS = ("000001", "000002", "000003")
# Ground truth: 000001 has a 2x2 and a 3x3 target, 000002 one pixel, 000003 nothing.
GT_BOXES = {"000001": [[5, 4, 7, 6], [30, 20, 33, 23]], "000002": [[10, 10, 11, 11]], "000003": []}
# Predictions: both targets of 000001, nothing in 000002, a false 2x2 in 000003 -> TP 2, FP 1, FN 1.
PRED_BOXES = {"000001": [[5, 4, 7, 6], [30, 20, 33, 23]], "000002": [], "000003": [[0, 0, 2, 2]]}


def _mask(boxes, value=255, dtype=np.uint8):
    m = np.zeros((H, W), dtype)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = value
    return m


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "nudt"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "50_50").mkdir()
    for stem in STEMS:
        Image.fromarray(np.full((H, W, 3), 40, np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(_mask(GT_BOXES[stem])).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\r\n".join(STEMS) + "\r\n")
    (root / "50_50" / "train.txt").write_text("000001\n")
    return root


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def evaluate_ok(data: Path, preds: Path, *extra) -> dict:
    out = preds.parent / "res.json"
    result = run(
        "eval", preds, "--dataset", "nudt", "--root", data, "--workers", "1", "--out", out, "--force", *extra
    )
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def assert_counts(res, tp=2, fp=1, fn=1):
    m = res["metrics"]
    assert (m["tp"], m["fp"], m["fn"]) == (tp, fp, fn)


def test_masks_folder_with_suffix_and_extra_file(data, tmp_path):
    folder = tmp_path / "masks_pred"
    folder.mkdir()
    for stem in STEMS:
        Image.fromarray(_mask(PRED_BOXES[stem])).save(folder / f"{stem}_pixels0.png")
    Image.fromarray(_mask([])).save(folder / "999999.png")
    res = evaluate_ok(data, folder)
    assert_counts(res)
    assert res["kind"] == "masks" and res["pred_format"] == "masks" and res["split"] == "50_50/test"
    assert res["counts"]["predictions_not_in_split"] == 1 and res["counts"]["images_without_prediction"] == 0
    assert res["metrics"]["pd"] == pytest.approx(2 / 3)
    assert res["metrics"]["fa_e6"] == pytest.approx(1e6 * 4 / (3 * H * W))
    # Split IoU: intersection 4 + 9, union 4 + 9 + 1 + 4.
    assert res["metrics"]["iou"] == pytest.approx(13 / 18)
    assert res["schema"] == "irstd-bench/results" and res["method"] == "masks_pred"
    assert res["settings"]["pixel_threshold"] == PIXEL_THRESHOLD
    image_csv = (tmp_path / "res.per_image.csv").read_text().splitlines()
    assert image_csv[0] == "image,gt,pred,tp,fp,fn,iou"
    assert image_csv[1:] == ["000001,2,2,2,0,0,1", "000002,1,0,0,0,1,0", "000003,0,1,0,1,0,0"]
    target_csv = (tmp_path / "res.per_target.csv").read_text().splitlines()
    assert target_csv[0] == "image,kind,x0,y0,x1,y1,cx,cy,area_px,score,matched_with"
    assert "000002,fn,10,10,11,11,10.5,10.5,1,," in target_csv
    assert "000003,fp,0,0,2,2,1,1,4,1," in target_csv


def test_float_npy_score_maps_with_curves(data, tmp_path):
    folder = tmp_path / "scores"
    folder.mkdir()
    for stem in STEMS:
        sm = _mask(PRED_BOXES[stem], 0.8, np.float32)
        if stem == "000002":
            sm[10, 10] = 0.3  # the target, below conf 0.5 but above the 0.28 level
        np.save(folder / f"{stem}.npy", sm)
    res = evaluate_ok(data, folder, "--match", "centroid:3")
    assert res["kind"] == "scoremaps"
    assert_counts(res)
    pr, pdfa = res["curves"]["pr"], res["curves"]["pd_fa"]
    low = pr["thresholds"].index(0.28)
    assert pr["recall"][low] == 1.0 and pr["precision"][low] == pytest.approx(3 / 4)
    assert pdfa["pd"][low] == 1.0 and pdfa["pd"][pr["thresholds"].index(0.5)] == pytest.approx(2 / 3)
    assert res["metrics"]["best_f1"] == pytest.approx(6 / 7) and res["metrics"]["best_f1_threshold"] <= 0.3
    # The pixel metrics stay at the recorded level whatever --conf is (here low enough to keep
    # the 0.3 pixel as a target, which the pixel metrics at 0.5 still leave out).
    low_conf = evaluate_ok(data, folder, "--match", "centroid:3", "--conf", "0.3")
    assert res["settings"]["pixel_threshold"] == low_conf["settings"]["pixel_threshold"] == PIXEL_THRESHOLD
    assert low_conf["conf"] == 0.3 and low_conf["metrics"]["tp"] == 3
    assert low_conf["metrics"]["pd"] == res["metrics"]["pd"] == pytest.approx(2 / 3)


def test_sixteen_bit_png_score_maps(data, tmp_path):
    folder = tmp_path / "png16"
    folder.mkdir()
    for stem in STEMS:
        Image.fromarray(_mask(PRED_BOXES[stem], 50000, np.uint16)).save(folder / f"{stem}.png")
        if stem == "000002":
            Image.fromarray(_mask([[0, 30, 1, 31]], 20000, np.uint16)).save(folder / f"{stem}.png")
    res = evaluate_ok(data, folder, "--format", "scoremaps")
    assert_counts(res)
    assert res["kind"] == "scoremaps"


def _coco_gt(tmp_path) -> Path:
    images = [{"id": 7 + i, "file_name": f"{s}.png", "width": W, "height": H} for i, s in enumerate(STEMS)]
    anns = []
    for i, stem in enumerate(STEMS):
        for x0, y0, x1, y1 in GT_BOXES[stem]:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": 7 + i,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    path = tmp_path / "gt_coco.json"
    path.write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "t"}]})
    )
    return path


def _coco_dets(by_id: bool):
    out = []
    for i, stem in enumerate(STEMS):
        for x0, y0, x1, y1 in PRED_BOXES[stem]:
            key = {"image_id": 7 + i} if by_id else {"file_name": f"{stem}.png"}
            out.append({**key, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": 0.9, "category_id": 1})
    return out


def test_coco_results_by_file_name_and_by_image_id(data, tmp_path):
    preds = tmp_path / "dets.json"
    preds.write_text(json.dumps(_coco_dets(by_id=False)))
    res = evaluate_ok(data, preds)
    assert_counts(res)
    assert res["kind"] == "boxes" and res["metrics"]["iou"] is None
    assert res["counts"]["images_without_prediction"] == 1
    by_id = tmp_path / "dets_id.json"
    by_id.write_text(json.dumps(_coco_dets(by_id=True)))
    assert_counts(evaluate_ok(data, by_id, "--gt-coco", _coco_gt(tmp_path)))
    # Without --gt-coco, ids are the dataset's stable ids (rank of the sorted stem, from 1): 7.. are unknown.
    result = run("eval", by_id, "--root", data, "--dataset", "nudt", "--out", tmp_path / "x.json")
    assert result.exit_code == 2 and "image_id 7" in result.output
    stable = [{**d, "image_id": d["image_id"] - 6} for d in json.loads(by_id.read_text())]
    by_stable_id = tmp_path / "dets_stable.json"
    by_stable_id.write_text(json.dumps(stable))
    assert_counts(evaluate_ok(data, by_stable_id))


def test_ground_truth_from_coco_file(tmp_path):
    preds = tmp_path / "dets.json"
    preds.write_text(json.dumps(_coco_dets(by_id=False)))
    out = tmp_path / "r.json"
    result = run("eval", preds, "--gt-coco", _coco_gt(tmp_path), "--out", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    assert_counts(res)
    assert res["split"] == "coco:gt_coco.json" and res["size_bins"][0]["gt"] == 3


def test_yolo_folder(data, tmp_path):
    folder = tmp_path / "yolo"
    folder.mkdir()
    for stem in STEMS:
        lines = [
            f"0 {(x0 + x1) / 2 / W} {(y0 + y1) / 2 / H} {(x1 - x0) / W} {(y1 - y0) / H} 0.7"
            for x0, y0, x1, y1 in PRED_BOXES[stem]
        ]
        (folder / f"{stem}.txt").write_text("\n".join(lines))
    res = evaluate_ok(data, folder, "--strict")
    assert_counts(res)
    assert res["pred_format"] == "yolo" and res["counts"]["images_without_prediction"] == 0


def test_csv_file_and_conf(data, tmp_path):
    preds = tmp_path / "dets.csv"
    rows = ["image,x0,y0,x1,y1,score"]
    for stem in STEMS:
        rows += [f"{stem}.png,{x0},{y0},{x1},{y1},0.6" for x0, y0, x1, y1 in PRED_BOXES[stem]]
    rows.append("000002,10,10,11,11,0.2")  # the missed target, found at low confidence
    preds.write_text("\n".join(rows) + "\n")
    res = evaluate_ok(data, preds)
    assert_counts(res)
    assert res["metrics"]["best_f1"] == pytest.approx(6 / 7) and res["metrics"]["best_f1_threshold"] == 0.2
    assert "pixel_threshold" in res["settings"] and res["settings"]["pixel_threshold"] is None  # boxes
    assert_counts(evaluate_ok(data, preds, "--conf", "0.1"), tp=3, fp=1, fn=0)
    assert_counts(evaluate_ok(data, preds, "--conf", "0.7"), tp=0, fp=0, fn=3)


def test_parallel_workers_give_the_same_result(data, tmp_path):
    preds = tmp_path / "dets.csv"
    preds.write_text("image,x0,y0,x1,y1,score\n000001,5,4,7,6,0.9\n000003,0,0,2,2,0.8\n")
    out = tmp_path / "p.json"
    result = run("eval", preds, "--dataset", "nudt", "--root", data, "--workers", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["metrics"] == evaluate_ok(data, preds)["metrics"] | {}


def _write_masks(folder: Path, shape=(H, W), skip=(), value=255):
    folder.mkdir(exist_ok=True)
    for stem in STEMS:
        if stem not in skip:
            m = np.zeros(shape, np.uint8)
            m[0, 0] = value
            Image.fromarray(m).save(folder / f"{stem}.png")
    return folder


BAD_CASES = {
    "missing-strict": (lambda d: _write_masks(d / "p", skip=("000002",)), ["--strict"], "no prediction"),
    "size-mismatch": (lambda d: _write_masks(d / "p", shape=(16, 16)), [], "16x16 but image"),
    "empty-folder": (lambda d: (d / "p").mkdir() or d / "p", [], "no .txt, image or .npy"),
    "unknown-format": (lambda d: _text(d, "p.txt", "x"), [], "unknown prediction format"),
    "not-found": (lambda d: d / "nothing", [], "not found"),
    "nan-scores": (lambda d: _npy(d, np.nan), [], "NaN"),
    "out-of-range": (lambda d: _npy(d, 1.5), [], "must be in [0, 1]"),
    "csv-score": (
        lambda d: _text(d, "p.csv", "image,x0,y0,x1,y1,score\n000001,1,1,2,2,1.2\n"),
        [],
        "row 2: score 1.2",
    ),
    "csv-x1-lt-x0": (
        lambda d: _text(d, "p.csv", "image,x0,y0,x1,y1,score\n000001,5,1,2,2,0.5\n"),
        [],
        "x1 < x0",
    ),
    "csv-outside": (
        lambda d: _text(d, "p.csv", "image,x0,y0,x1,y1,score\n000001,5,1,90,2,0.5\n"),
        [],
        "outside the 40x32 image",
    ),
    "csv-header": (lambda d: _text(d, "p.csv", "a,b\n1,2\n"), [], "header"),
    "bad-json": (lambda d: _text(d, "p.json", "{"), [], "not valid JSON"),
    "yolo-fields": (lambda d: _yolo(d, "0 0.5 0.5 0.1 0.1\n"), [], "expected 'cls cx cy w h conf'"),
    "masks-forced-nonbinary": (
        lambda d: _write_masks(d / "p", value=100),
        ["--format", "masks"],
        "binary mask",
    ),
    "bad-matcher": (lambda d: _write_masks(d / "p"), ["--match", "giou:0.5"], "unknown matcher"),
    "bad-conf": (lambda d: _write_masks(d / "p"), ["--conf", "1.5"], "--conf 1.5: must be in (0, 1]"),
}


def _npy(d: Path, value) -> Path:
    folder = d / "p"
    folder.mkdir()
    for stem in STEMS:
        np.save(folder / f"{stem}.npy", np.full((H, W), value, np.float32))
    return folder


def _text(d: Path, name: str, text: str) -> Path:
    (d / name).write_text(text)
    return d / name


def _yolo(d: Path, text: str) -> Path:
    folder = d / "p"
    folder.mkdir()
    for stem in STEMS:
        (folder / f"{stem}.txt").write_text(text)
    return folder


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(data, tmp_path, case):
    make, extra, message = BAD_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    preds = make(work)
    out = tmp_path / "out" / "res.json"
    result = run("eval", preds, "--dataset", "nudt", "--root", data, "--workers", "1", "--out", out, *extra)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not out.exists() and not (tmp_path / "out" / "res.per_image.csv").exists()


def test_missing_prediction_without_strict_is_counted_and_resize_works(data, tmp_path):
    res = evaluate_ok(data, _write_masks(tmp_path / "p", skip=("000002",)))
    assert res["counts"]["images_without_prediction"] == 1
    res = evaluate_ok(data, _write_masks(tmp_path / "q", shape=(16, 20)), "--resize")
    assert res["counts"]["predictions_resized"] == 3


def test_box_slightly_outside_is_clipped_and_reported(data, tmp_path):
    preds = _text(
        tmp_path, "p.csv", "image,x0,y0,x1,y1,score\n000001,30,20,33,23,0.9\n000003,38,30,40.5,32.5,0.9\n"
    )
    out = tmp_path / "r.json"
    result = run("eval", preds, "--dataset", "nudt", "--root", data, "--workers", "1", "--out", out)
    assert result.exit_code == 0 and "warning: 1 boxes" in result.output
    assert json.loads(out.read_text())["counts"]["boxes_clipped"] == 1


def test_bootstrap_options_write_ci95_per_image_and_print_intervals(data, tmp_path):
    folder = tmp_path / "masks_pred"
    folder.mkdir()
    for stem in STEMS:
        Image.fromarray(_mask(PRED_BOXES[stem])).save(folder / f"{stem}.png")
    out = tmp_path / "res.json"
    done = run("eval", folder, "--dataset", "nudt", "--root", data, "--workers", "1", "--out", out,
               "--bootstrap", "300", "--bootstrap-seed", "4")
    assert done.exit_code == 0, done.output
    res = json.loads(out.read_text())
    assert res["settings"]["bootstrap"] == {"resamples": 300, "seed": 4, "unit": "image", "method": "percentile",
                                            "level": 0.95}
    ci = res["metrics"]["ci95"]
    assert set(ci) == {"precision", "recall", "f1", "ap50", "iou", "niou", "pd", "fa_e6"}
    assert all(ci[m][0] <= res["metrics"][m] <= ci[m][1] for m in ci)
    assert res["per_image"]["image"] == list(STEMS) and res["per_image"]["tp"] == [2, 0, 0]
    assert "\"tp\": [2, 0, 0]" in out.read_text()  # a column on one line: compact
    assert res["per_image"]["pixels"]["intersection"] == [13, 0, 0]
    f1_line = next(line for line in done.output.splitlines() if line.startswith("F1 "))
    lo, hi = ci["f1"]
    assert f1_line.endswith(f"95% [{lo:.3f}, {hi:.3f}]")
    assert "bootstrap over images, 300 resamples, seed 4" in done.output
    off = evaluate_ok(data, folder, "--bootstrap", "0")
    assert "ci95" not in off["metrics"] and off["settings"]["bootstrap"]["resamples"] == 0
    assert off["per_image"]["tp"] == [2, 0, 0]  # compare still works without intervals
    assert run("eval", folder, "--dataset", "nudt", "--root", data, "--bootstrap", "-1").exit_code == 2
