"""``irstd-bench audit``: the pairing rule on crafted boxes, the command on crafted trees, and the
real NUDT-SIRST audited against convert's own labels (equal) and perturbed copies of them."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench.audit import compare_boxes
from irstd_bench.cli import cli
from irstd_bench.datasets import open_dataset
from irstd_bench.targets import hole_areas, mask_to_targets

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
NUDT = SHARED / "NUDT-SIRST"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def run_ok(*args):
    result = run(*args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def one_line_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "Traceback" not in result.output
    for needle in needles:
        assert str(needle) in line, (needle, line)


def _kinds(res):
    return [p.kind for p in res.pairs], res.nested, res.extra, res.missing


# ---------------------------------------------------------------------------------------------
# The rule, one kind at a time

TARGETS = np.array([[10, 10, 13, 13], [30, 5, 31, 6]])


def test_equal_boxes_pair_in_round_one():
    res = compare_boxes(TARGETS, TARGETS[::-1])
    assert _kinds(res) == (["equal", "equal"], [], [], []) and res.equal
    assert {(p.box, p.target) for p in res.pairs} == {(0, 1), (1, 0)}


def test_missing_target_and_extra_box():
    res = compare_boxes(TARGETS, np.array([[10, 10, 13, 13], [50, 50, 52, 52]]))
    assert _kinds(res) == (["equal"], [], [1], [1]) and not res.equal


@pytest.mark.parametrize(
    ("box", "deltas"),
    [
        ([10, 10, 14, 14], (0, 0, 1, 1)),  # x1 = last column + 2: another edge convention
        ([11, 10, 14, 13], (1, 0, 1, 0)),  # shifted right by one pixel
        ([9, 9, 13, 13], (-1, -1, 0, 0)),
    ],
)
def test_edge_mismatch_of_one_pixel(box, deltas):
    res = compare_boxes(TARGETS[:1], np.array([box]))
    assert _kinds(res) == (["edge"], [], [], []) and res.pairs[0].deltas == deltas


def test_one_pixel_target_shifted_by_one_is_an_edge_mismatch_though_iou_is_zero():
    res = compare_boxes(TARGETS[1:], np.array([[31, 5, 32, 6]]))
    assert _kinds(res) == (["edge"], [], [], []) and res.pairs[0].iou == 0.0


def test_other_overlaps_but_is_more_than_one_pixel_off():
    res = compare_boxes(TARGETS[:1], np.array([[10, 10, 16, 13]]))
    assert _kinds(res) == (["other"], [], [], []) and res.pairs[0].deltas == (0, 0, 3, 0)
    far = compare_boxes(TARGETS[1:], np.array([[33, 5, 34, 6]]))  # 2 px away, no overlap
    assert _kinds(far) == ([], [], [0], [0])


def test_nested_box_inside_a_paired_targets_box():
    boxes = np.array([[11, 11, 12, 12], [10, 10, 13, 13]])  # the hole's box listed first
    res = compare_boxes(TARGETS[:1], boxes)
    assert _kinds(res) == (["equal"], [(0, 0)], [], [])
    # A duplicate is not nested (same size as the target's box): an extra box.
    dup = compare_boxes(TARGETS[:1], np.array([[10, 10, 13, 13], [10, 10, 13, 13]]))
    assert _kinds(dup) == (["equal"], [], [1], [])


def test_exact_pairs_are_made_before_one_pixel_pairs():
    # Box 0 is one pixel off target 0 and equal to target 1; box 1 is one pixel off target 1.
    targets = np.array([[0, 0, 3, 3], [1, 0, 4, 3]])
    boxes = np.array([[1, 0, 4, 3], [0, 0, 4, 3]])
    res = compare_boxes(targets, boxes)
    assert [(p.box, p.target, p.kind) for p in res.pairs] == [(0, 1, "equal"), (1, 0, "edge")]


def test_hole_areas_of_targets():
    mask = np.zeros((12, 12), np.uint8)
    mask[1:6, 1:6] = 255
    mask[2:4, 2:4] = 0  # a 2x2 hole
    mask[8, 8:11] = 255  # a bar, no hole
    mask[7:10, 0:3] = 255
    mask[8, 1] = 0  # a one-pixel hole; its diagonal neighbours are target pixels
    targets = mask_to_targets(mask)
    assert hole_areas(targets).tolist() == [4, 1, 0]


# ---------------------------------------------------------------------------------------------
# The command on a crafted NUDT-SIRST tree


def _tree(root: Path) -> Path:
    """Four 32x32 images: 000001 two targets, 000002 a ring (hole), 000003 one, 000004 none."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    masks = {s: np.zeros((32, 32), np.uint8) for s in ("000001", "000002", "000003", "000004")}
    masks["000001"][4:7, 4:7] = 255
    masks["000001"][20, 25] = 255
    masks["000002"][10:15, 10:15] = 255
    masks["000002"][12, 12] = 0
    masks["000003"][28:30, 1:4] = 255
    for stem, mask in masks.items():
        Image.fromarray(np.full((32, 32, 3), 30, np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    (root / "split_EFLNet").mkdir()
    (root / "split_EFLNet" / "test.txt").write_text("0001\n0002\n0003\n0004\n")
    return root


def _yolo_line(box, size=32):
    x0, y0, x1, y1 = box
    return f"0 {(x0 + x1) / 2 / size:.6f} {(y0 + y1) / 2 / size:.6f} {(x1 - x0) / size:.6f} {(y1 - y0) / size:.6f}\n"


def _write_labels(folder: Path, boxes: dict[str, list]) -> Path:
    folder.mkdir(parents=True)
    for name, items in boxes.items():
        (folder / f"{name}.txt").write_text("".join(_yolo_line(b) for b in items))
    return folder


def test_audit_command_finds_every_kind_in_a_crafted_tree(tmp_path):
    root = _tree(tmp_path / "NUDT-SIRST")
    labels = _write_labels(tmp_path / "labels", {
        "0001": [[4, 4, 8, 8]],  # target 1 one pixel wider; the one-pixel target has no box
        "0002": [[10, 10, 15, 15], [11, 11, 14, 14]],  # the ring and its inner contour
        "0003": [[1, 28, 4, 30], [20, 20, 22, 22]],  # equal, and a box without a target
        "0004": [],
        "classes": [],  # not an image: listed, not read
    })
    out, table = tmp_path / "a" / "audit.json", tmp_path / "a" / "audit.csv"
    result = run_ok("audit", root, "--labels", labels, "--format", "yolo", "--split", "split_EFLNet/test",
                    "--out", out, "--csv", table)
    data = json.loads(out.read_text())
    assert data["schema"] == "irstd-bench/audit" and data["split"] == "split_EFLNet/test"
    assert {k: data["summary"][k] for k in ("images", "images_equal", "missing_targets", "extra_boxes",
                                            "nested_boxes", "edge_mismatches", "other")} == {
        "images": 4, "images_equal": 1, "missing_targets": 1, "extra_boxes": 1, "nested_boxes": 1,
        "edge_mismatches": 1, "other": 0,
    }
    assert data["summary"]["edge_mismatch_patterns"] == {"x1+1 y1+1": 1}
    assert data["summary"]["targets_with_holes"] == 1 and data["summary"]["nested_boxes_in_targets_with_holes"] == 1
    assert data["names_without_image"] == ["classes"]
    records = {r["image"]: r for r in data["records"]}
    assert set(records) == {"000001", "000002", "000003"} and records["000001"]["label_name"] == "0001"
    assert records["000001"]["differences"] == [
        {"kind": "edge_mismatch", "box": [4, 4, 8, 8], "target": [4, 4, 7, 7], "iou": 0.5625,
         "deltas": {"x1": 1, "y1": 1}},
        {"kind": "missing_target", "target": [25, 20, 26, 21]},
    ]
    assert records["000002"]["differences"] == [
        {"kind": "nested_box", "box": [11, 11, 14, 14], "target": [10, 10, 15, 15], "target_hole_px": 1}
    ]
    rows = list(csv.DictReader(table.open()))
    assert [(r["image"], r["kind"]) for r in rows] == [
        ("000001", "edge_mismatch"), ("000001", "missing_target"), ("000002", "nested_box"), ("000003", "extra_box")
    ]
    assert rows[0]["detail"] == "x1+1 y1+1" and data["csv"] == "audit.csv"
    assert "missing targets 1, extra boxes 1, nested boxes 1 (1 in targets with holes), edge mismatches 1" in (
        result.output
    )


def test_an_image_without_a_label_file_is_compared_as_no_boxes(tmp_path):
    root = _tree(tmp_path / "NUDT-SIRST")
    labels = _write_labels(tmp_path / "labels", {"000001": [[4, 4, 7, 7], [25, 20, 26, 21]]})
    out = tmp_path / "audit.json"
    result = run_ok("audit", root, "--labels", labels, "--format", "yolo", "--out", out)
    data = json.loads(out.read_text())
    assert data["images_without_labels"] == ["000002", "000003", "000004"]
    assert data["summary"]["missing_targets"] == 2 and data["summary"]["images_equal"] == 2  # 000001, 000004
    assert "warning: 3 split images have no boxes" in result.output


def test_two_names_of_one_image_are_an_error(tmp_path):
    root = _tree(tmp_path / "NUDT-SIRST")
    labels = _write_labels(tmp_path / "labels", {"0001": [], "000001": []})
    result = run("audit", root, "--labels", labels, "--format", "yolo", "--out", tmp_path / "a.json")
    one_line_error(result, "'000001' and '0001' both name image 000001")
    assert not (tmp_path / "a.json").exists()


def test_bad_label_line_is_one_line_naming_the_file(tmp_path):
    root = _tree(tmp_path / "NUDT-SIRST")
    labels = _write_labels(tmp_path / "labels", {"0001": []})
    (labels / "0001.txt").write_text("0 0.5 0.5 nan 0.1\n")
    result = run("audit", root, "--labels", labels, "--format", "yolo", "--out", tmp_path / "a.json")
    one_line_error(result, "0001.txt:1")


def test_coco_and_voc_from_convert_audit_equal_and_a_wrong_size_is_reported(tmp_path):
    root = _tree(tmp_path / "NUDT-SIRST")
    conv = tmp_path / "conv"
    run_ok("convert", root, "--out", conv, "--split", "all", "--format", "coco,voc")
    for fmt, labels in (("coco", conv / "coco" / "all.json"), ("voc", conv / "voc")):
        out = tmp_path / f"{fmt}.json"
        run_ok("audit", root, "--labels", labels, "--format", fmt, "--out", out)
        summary = json.loads(out.read_text())["summary"]
        assert summary["images_equal"] == summary["images"] == 4 and summary["pairs_equal"] == 4
        # The ring's inner contour is no target: convert writes one box per target.
        assert summary["targets_with_holes"] == 1 and summary["nested_boxes"] == 0
    coco = json.loads((conv / "coco" / "all.json").read_text())
    coco["images"][0]["width"] = 64
    for ann in coco["annotations"]:
        del ann["segmentation"]  # boxes only, as published box versions are
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(coco))
    result = run_ok("audit", root, "--labels", wrong, "--format", "coco", "--out", tmp_path / "w.json")
    data = json.loads((tmp_path / "w.json").read_text())
    assert data["summary"]["label_size_mismatches"] == 1 and data["summary"]["images_equal"] == 3
    assert data["records"][0]["label_image_size"] == [32, 64] and data["records"][0]["image_size"] == [32, 32]
    assert "1 images have another size in the version" in result.output


def test_outputs_are_ours_or_refused(tmp_path):
    root = _tree(tmp_path / "NUDT-SIRST")
    labels = _write_labels(tmp_path / "labels", {"0001": [[4, 4, 7, 7]]})
    args = ["audit", root, "--labels", labels, "--format", "yolo"]
    foreign = tmp_path / "mine.json"
    foreign.write_text('{"mine": true}')
    one_line_error(run(*args, "--out", foreign), "not written by irstd-bench")
    assert foreign.read_text() == '{"mine": true}'
    out, table = tmp_path / "audit.json", tmp_path / "t.csv"
    run_ok(*args, "--out", out, "--csv", table)
    one_line_error(run(*args, "--out", out, "--csv", table), "use --force")
    run_ok(*args, "--out", out, "--csv", table, "--force")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n")
    one_line_error(run(*args, "--out", out, "--csv", other, "--force"), "not written by irstd-bench")
    assert other.read_text() == "a,b\n"
    one_line_error(run(*args, "--out", labels / "audit.json"), "inside the labels")
    one_line_error(run(*args, "--out", out, "--csv", out, "--force"), "is the --out file")
    one_line_error(run("audit", root, "--labels", tmp_path / "none", "--format", "yolo", "--out", tmp_path / "n.json"),
                   "label folder not found")


# ---------------------------------------------------------------------------------------------
# The real NUDT-SIRST


def _targets(stem: str):
    return mask_to_targets(np.asarray(Image.open(NUDT / "masks" / f"{stem}.png")))


@pytest.fixture(scope="module")
def nudt_yolo(tmp_path_factory) -> Path:
    if not NUDT.is_dir():
        pytest.skip(f"real NUDT-SIRST not found at {NUDT} (../shared/datasets is absent)")
    out = tmp_path_factory.mktemp("nudt") / "conv"
    run_ok("convert", NUDT, "--out", out, "--split", "split_EFLNet/test", "--format", "yolo", "--workers", 1,
           "--no-progress")
    return out / "yolo" / "split_EFLNet" / "labels" / "test"


def test_real_nudt_convert_labels_audit_equal(nudt_yolo, tmp_path):
    out = tmp_path / "audit.json"
    run_ok("audit", NUDT, "--labels", nudt_yolo, "--format", "yolo", "--split", "split_EFLNet/test", "--out", out)
    data = json.loads(out.read_text())
    s = data["summary"]
    assert s["images"] == s["images_equal"] == 266 and data["records"] == []
    assert s["targets"] == s["boxes"] == s["pairs_equal"] > 266
    assert s["targets_with_holes"] > 0 and s["nested_boxes"] == 0


def test_real_nudt_perturbed_labels_show_exactly_the_perturbations(nudt_yolo, tmp_path):
    ds = open_dataset(NUDT)
    labels = tmp_path / "labels"
    labels.mkdir()
    for path in nudt_yolo.iterdir():  # renamed as the EFLNet authors name them: 000008 -> 0008
        shutil.copyfile(path, labels / f"{path.stem[2:]}.txt")
    stems = ds.stems("split_EFLNet/test")
    with_two = [s for s in stems if len((labels / f"{s[2:]}.txt").read_text().splitlines()) >= 2]
    holed = next(s for s in stems[4:] if hole_areas(_targets(s)).any())
    drop, shift, extra, other = with_two[0], stems[1], stems[2], stems[3]
    assert len({drop, shift, extra, other, holed}) == 5

    def edit(stem, change):
        path = labels / f"{stem[2:]}.txt"
        lines = path.read_text().splitlines()
        path.write_text("".join(f"{line}\n" for line in change(lines)))

    def move(line, dx0, dx1):  # move the left and right edges by whole pixels
        c, cx, cy, w, h = line.split()
        x0, x1 = float(cx) * 256 - float(w) * 128 + dx0, float(cx) * 256 + float(w) * 128 + dx1
        return f"{c} {(x0 + x1) / 512:.6f} {cy} {(x1 - x0) / 256:.6f} {h}"

    edit(drop, lambda lines: lines[1:])
    edit(shift, lambda lines: [move(lines[0], 0, 1), *lines[1:]])
    edit(extra, lambda lines: [*lines, "0 0.01 0.01 0.0078125 0.0078125"])  # 2x2 px in the corner
    edit(other, lambda lines: [move(lines[0], -3, 3), *lines[1:]])
    gt = _targets(holed)
    t = int(np.flatnonzero(hole_areas(gt))[0])
    x0, y0, x1, y1 = gt.boxes[t]
    inner = f"0 {(x0 + x1) / 512:.6f} {(y0 + y1) / 512:.6f} {(x1 - x0 - 2) / 256:.6f} {(y1 - y0 - 2) / 256:.6f}"
    edit(holed, lambda lines: [*lines, inner])

    out = tmp_path / "audit.json"
    run_ok("audit", NUDT, "--labels", labels, "--format", "yolo", "--split", "split_EFLNet/test", "--out", out)
    data = json.loads(out.read_text())
    s = data["summary"]
    assert (s["images"], s["images_equal"]) == (266, 261)
    assert {k: s[k] for k in ("missing_targets", "extra_boxes", "nested_boxes", "edge_mismatches", "other")} == {
        "missing_targets": 1, "extra_boxes": 1, "nested_boxes": 1, "edge_mismatches": 1, "other": 1,
    }
    kinds = {r["image"]: [d["kind"] for d in r["differences"]] for r in data["records"]}
    assert kinds == {drop: ["missing_target"], shift: ["edge_mismatch"], extra: ["extra_box"], other: ["other"],
                     holed: ["nested_box"]}
    assert {r["image"]: r["label_name"] for r in data["records"]}[drop] == drop[2:]
    assert s["edge_mismatch_patterns"] == {"x1+1": 1}


def test_audit_threshold_is_checked_before_any_work(tmp_path):
    from click.testing import CliRunner

    from irstd_bench.cli import cli

    result = CliRunner().invoke(cli, ["audit", str(tmp_path / "absent"), "--labels", str(tmp_path), "--format",
                                      "yolo", "--out", str(tmp_path / "a.json"), "--threshold", "-1"])
    assert result.exit_code == 2 and "--threshold" in result.output
    assert not (tmp_path / "a.json").exists()


# ---------------------------------------------------------------------------------------------
# Hostile battery over audit (issue 25, last part: bench/hostile_new_surfaces.py). Each test
# fails on the code before its fix.


def _audit(root, labels, fmt, out, *extra):
    return run("audit", root, "--labels", labels, "--format", fmt, "--out", out, "--no-progress", *extra)


def _voc_file(path: Path, body: str, head: str = "", size=(32, 32)) -> Path:
    path.write_text(f"{head}<annotation><filename>000001.png</filename><size><width>{size[1]}</width>"
                    f"<height>{size[0]}</height></size>{body}</annotation>")
    return path


def _voc_object(xmin, ymin, xmax, ymax, name="target") -> str:
    return (f"<object><name>{name}</name><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax>"
            f"<ymax>{ymax}</ymax></bndbox></object>")


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("0 1e300 0.5 0.1 0.1", "box [3.2e+301"),  # cast to int64 gave a garbage box, silently
        ("0 0.5 0.5 0.1 1e300", "lies outside the 32x32 image"),
        ("0 5 0.5 0.1 0.1", "box [158.4, 14.4, 161.6, 17.6] px lies outside the 32x32 image"),
        ("0 -0.5 0.5 0.1 0.1", "lies outside the 32x32 image"),
    ],
)
def test_yolo_boxes_outside_their_image_are_one_line_naming_the_line(tmp_path, line, needle):
    root = _tree(tmp_path / "NUDT-SIRST")
    labels = _write_labels(tmp_path / "labels", {"0001": []})
    (labels / "0001.txt").write_text(f"0 0.5 0.5 0.1 0.1\n{line}\n")
    out = tmp_path / "a.json"
    one_line_error(_audit(root, labels, "yolo", out), "0001.txt:2", needle)
    assert not out.exists()


def test_a_box_one_pixel_past_the_edge_is_still_an_edge_mismatch(tmp_path):
    # Another edge convention (x1 one past the image) is what audit reports, not a refusal.
    root = _tree(tmp_path / "NUDT-SIRST")
    labels = _write_labels(tmp_path / "labels", {"0003": [[1, 28, 4, 33]]})
    out = tmp_path / "a.json"
    run_ok("audit", root, "--labels", labels, "--format", "yolo", "--out", out)
    summary = json.loads(out.read_text())["summary"]
    assert summary["edge_mismatches"] + summary["other"] == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_voc_object("inf", 5, 7, 7), "numeric bndbox values"),  # OverflowError: a traceback
        (_voc_object("1e300", 5, 7, 7), "object 1: bndbox (xmin, ymin, xmax, ymax) [1e+300"),  # OverflowError
        (_voc_object(9, 5, 7, 7), "is no box of its 32x32 image"),  # inverted, read as a box
        (_voc_object(500, 500, 510, 510), "is no box of its 32x32 image"),
        (_voc_object(5, 5, 7, 7) + _voc_object(26, 21, 26, 21, name="person"), "classes ['person', 'target']"),
        (_voc_object(5, 5, 7, 7).replace("</bndbox>", "</bndbox><area_px>1e300</area_px>"), "area_px 1e+300"),
    ],
)
def test_voc_values_are_checked_in_one_line(tmp_path, body, needle):
    root = _tree(tmp_path / "NUDT-SIRST")
    (tmp_path / "voc").mkdir()
    _voc_file(tmp_path / "voc" / "000001.xml", body)
    out = tmp_path / "a.json"
    one_line_error(_audit(root, tmp_path / "voc", "voc", out), "000001.xml", needle)
    assert not out.exists()


@pytest.mark.parametrize("size", [(0, 32), (-32, 32)])
def test_voc_size_must_be_positive(tmp_path, size):
    root = _tree(tmp_path / "NUDT-SIRST")
    (tmp_path / "voc").mkdir()
    _voc_file(tmp_path / "voc" / "000001.xml", _voc_object(5, 5, 7, 7), size=size)
    one_line_error(_audit(root, tmp_path / "voc", "voc", tmp_path / "a.json"), "is not a positive width and height")


def test_voc_fractions_are_kept_not_truncated(tmp_path):
    # xmin 5.7 was read as 5: a box the file does not hold, audited equal.
    root = _tree(tmp_path / "NUDT-SIRST")
    (tmp_path / "voc").mkdir()
    _voc_file(tmp_path / "voc" / "000001.xml", _voc_object("5.7", 5, 7, 7) + _voc_object(26, 21, 26, 21))
    out = tmp_path / "a.json"
    run_ok("audit", root, "--labels", tmp_path / "voc", "--format", "voc", "--out", out)
    (record,) = [r for r in json.loads(out.read_text())["records"] if r["image"] == "000001"]
    assert record["differences"][0]["kind"] == "edge_mismatch" and record["differences"][0]["box"] == [4.7, 4, 7, 7]


@pytest.mark.parametrize(
    "head",
    [
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY % p SYSTEM "SECRET"> %p;]>',  # read as if absent, silently
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "5">]>',
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "SECRET">]>',
    ],
    ids=["external-parameter", "internal", "external-general"],
)
def test_voc_entity_declarations_are_refused_and_never_read(tmp_path, head):
    root = _tree(tmp_path / "NUDT-SIRST")
    secret = tmp_path / "secret.txt"
    secret.write_text("<!ENTITY y 'SECRET-42'>")
    (tmp_path / "voc").mkdir()
    _voc_file(tmp_path / "voc" / "000001.xml", _voc_object(5, 5, 7, 7), head=head.replace("SECRET", secret.as_uri()))
    out = tmp_path / "a.json"
    result = _audit(root, tmp_path / "voc", "voc", out)
    one_line_error(result, "000001.xml: declares the XML entity")
    assert "SECRET-42" not in result.output and not out.exists()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: (d["categories"].append({"id": 2, "name": "ignore"}), d["annotations"][0].update(category_id=2)),
         "annotations of categories [1, 2]"),
        (lambda d: d["annotations"][0].update(category_id=7), "category_id 7 is not in the file's categories [1]"),
        (lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]), "duplicate annotation id"),
    ],
    ids=["second-category", "unlisted-category", "duplicate-annotation-id"],
)
def test_coco_annotations_of_another_class_or_a_repeated_id_are_refused(tmp_path, change, needle):
    # An 'ignore' category was audited (and scored by eval --gt-coco) as targets.
    root = _tree(tmp_path / "NUDT-SIRST")
    conv = tmp_path / "conv"
    run_ok("convert", root, "--out", conv, "--split", "all", "--format", "coco")
    coco = json.loads((conv / "coco" / "all.json").read_text())
    change(coco)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(coco))
    out = tmp_path / "a.json"
    one_line_error(_audit(root, labels, "coco", out), "labels.json: annotations[", needle)
    assert not out.exists()


def test_an_audit_csv_the_user_edited_is_theirs_even_with_force(tmp_path):
    # The CSV was ours by name (our JSON named it): --force replaced the user's table.
    root = _tree(tmp_path / "NUDT-SIRST")
    labels = _write_labels(tmp_path / "labels", {"0001": [[4, 4, 7, 7]]})
    args = ["audit", root, "--labels", labels, "--format", "yolo", "--out", tmp_path / "a.json", "--csv",
            tmp_path / "t.csv"]
    run_ok(*args)
    run_ok(*args, "--force")  # unedited: ours, replaced
    (tmp_path / "t.csv").write_text("my own table\n")
    one_line_error(run(*args, "--force"), "t.csv", "not written by irstd-bench")
    assert (tmp_path / "t.csv").read_text() == "my own table\n"
