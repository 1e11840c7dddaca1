"""Input validation, second audit (issue 25, items 6-10, 12, 14-20, 22, 24, 25).

One reader of images, masks and arrays with the same checks for every command
(:mod:`irstd_bench._io`: PNG CRCs, a full decode, the pixel limit, one value per mask pixel,
``.npy`` headers), one JSON reader whose every failure is one line, one check of option values
while the command line is parsed (:mod:`irstd_bench._cli_options`), and COCO tables and
geometry checked where they are read. Each test fails on the code before these changes.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from irstd_bench.cli import cli
from irstd_bench.errors import InputError

H = W = 32
STEMS = ("000001", "000002")
#: Two targets per mask: 2x2 at (5, 5) and 3x3 at (20, 20) (box xywh).
TARGETS = ((5, 5, 2, 2), (20, 20, 3, 3))


def run(*args, cwd: Path | None = None):
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, [a if isinstance(a, str) else str(a) for a in args])
    finally:
        os.chdir(old)


def one_line_error(result, *needles, code: int = 2):
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "Traceback" not in result.output, result.output
    for needle in needles:
        assert str(needle) in last, (needle, last)


def _mask() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    for x, y, w, h in TARGETS:
        mask[y : y + h, x : x + w] = 255
    return mask


def make_dataset(root: Path) -> Path:
    """A NUDT-SIRST-like root: 2 images of 32x32 px with 2 targets each, split 50_50."""
    for folder in ("images", "masks", "50_50"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem in STEMS:
        Image.fromarray((rng.random((H, W)) * 80).astype(np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(_mask()).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\n".join(STEMS) + "\n")
    (root / "50_50" / "train.txt").write_text("\n".join(STEMS) + "\n")
    return root


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "nudt")


def eval_args(preds, data, out, *extra):
    return ("eval", preds, "--root", data, "--split", "50_50/test", "--workers", 1, "--out", out, *extra)


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value))
    return path


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def silently_corrupt(path: Path) -> None:
    """Flip bytes inside the IDAT data of a PNG (its CRC left stale) at the first place where
    Pillow still decodes the file, to other pixels, without any error: only a CRC check sees it."""
    good = path.read_bytes()
    with Image.open(io.BytesIO(good)) as image:
        pixels = np.asarray(image)
    start = good.index(b"IDAT") + 4
    length = struct.unpack(">I", good[start - 8 : start - 4])[0]
    for offset in range(length // 4, length - 8):
        bad = bytearray(good)
        bad[start + offset] ^= 0xFF
        try:
            with Image.open(io.BytesIO(bytes(bad))) as image:
                image.load()
                decoded = np.asarray(image)
        except Exception:  # noqa: BLE001 - Pillow noticed: try the next byte
            continue
        if decoded.shape == pixels.shape and np.any(decoded != pixels):
            path.write_bytes(bytes(bad))
            return
    pytest.fail(f"no silent corruption found in {path}")


#: Adam7 interlacing passes (x offset, y offset, x step, y step), from the PNG specification.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def raw_rows(pixels: np.ndarray, interlaced: bool) -> bytes:
    """The uncompressed IDAT bytes of 8-bit gray pixels: rows with filter 0, by Adam7 pass when ``interlaced``."""
    passes = ADAM7 if interlaced else ((0, 0, 1, 1),)
    return b"".join(b"\x00" + row.tobytes() for x0, y0, dx, dy in passes for row in pixels[y0::dy, x0::dx] if row.size)


def gray_png(pixels: np.ndarray, *, idat: bytes | None = None, interlaced: bool = False) -> bytes:
    """An 8-bit gray PNG written by hand, every chunk with a valid CRC; ``idat`` replaces the compressed data."""
    h, w = pixels.shape
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, int(interlaced))
    idat = zlib.compress(raw_rows(pixels, interlaced)) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_with_bad_idat(path: Path) -> None:
    """A PNG whose chunks all carry valid CRCs but whose IDAT data is no zlib stream."""
    path.write_bytes(gray_png(np.zeros((H, W), np.uint8), idat=b"\x78\x9c" + b"\xff" * 40))


def _noise_mask_image(path: Path) -> None:
    """A 96x96 two-valued image with many small blocks: its deflate stream survives flipped bytes."""
    mask = np.zeros((96, 96), np.uint8)
    for k in range(0, 96, 12):
        mask[k : k + 5, (k * 7) % 80 : (k * 7) % 80 + 9] = 255
    Image.fromarray(mask).save(path)


# ---------------------------------------------------------------------------------------------
# 16: one reader, the same integrity in every command


def test_a_silently_corrupt_image_is_refused_by_convert_baseline_and_predict(data, tmp_path):
    image = data / "images" / f"{STEMS[0]}.png"
    _noise_mask_image(image)
    mask = np.zeros((96, 96), np.uint8)
    mask[40:43, 40:43] = 255
    Image.fromarray(mask).save(data / "masks" / f"{STEMS[0]}.png")
    silently_corrupt(image)
    one_line_error(run("convert", data, "--out", tmp_path / "c", "--workers", 1), image, "bad checksum")
    one_line_error(run("baseline", "tophat", "--root", data, "--split", "50_50/test", "--out", tmp_path / "b",
                       "--workers", 1), image, "bad checksum")
    from reference_model.engine.checkpoint import BUNDLED_WEIGHTS_DIR

    if (BUNDLED_WEIGHTS_DIR / "nuaa-eflnet-n.pt").is_file():
        one_line_error(run("predict", "--weights", "nuaa-eflnet-n", "--root", data, "--split", "50_50/test",
                           "--device", "cpu", "--out", tmp_path / "p.json"), image, "bad checksum")
    assert not any((tmp_path / name).exists() for name in ("c", "b", "p.json"))


def test_an_idat_that_does_not_inflate_is_refused_by_convert_and_baseline(data, tmp_path):
    image = data / "images" / f"{STEMS[1]}.png"
    png_with_bad_idat(image)
    one_line_error(run("convert", data, "--out", tmp_path / "c", "--workers", 1), image, "does not inflate")
    one_line_error(run("baseline", "tophat", "--root", data, "--split", "50_50/test", "--out", tmp_path / "b",
                       "--workers", 1), image, "does not inflate")
    assert not (tmp_path / "c").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("interlaced", [False, True])
def test_compressed_data_must_hold_exactly_the_declared_pixels(tmp_path, interlaced):
    from irstd_bench._io import read_mask, verify_image

    pixels = (np.random.default_rng(3).random((17, 33)) * 255).astype(np.uint8)
    path = tmp_path / "m.png"
    path.write_bytes(gray_png(pixels, interlaced=interlaced))
    assert verify_image(path) == 1 and np.array_equal(read_mask(path), pixels)
    raw = raw_rows(pixels, interlaced)
    for idat, needle in ((zlib.compress(raw[:-5]), "inflates to"), (zlib.compress(raw + b"\x00" * 40), "inflates to"),
                         (zlib.compress(raw)[:-4], "does not end"), (b"\x78\x9c" + b"\xff" * 40, "does not inflate")):
        path.write_bytes(gray_png(pixels, idat=idat, interlaced=interlaced))
        for reader in (verify_image, read_mask):
            with pytest.raises(InputError, match=needle):
                reader(path)


# ---------------------------------------------------------------------------------------------
# 7: masks and maps with one value per pixel


def _rgba(mask: np.ndarray, *, colour: tuple[int, int, int, int]) -> Image.Image:
    out = np.zeros((*mask.shape, 4), np.uint8)
    out[..., 3] = 255
    out[mask > 0] = colour
    return Image.fromarray(out, "RGBA")


def test_a_ground_truth_mask_with_its_target_only_in_alpha_is_refused(data, tmp_path):
    path = data / "masks" / f"{STEMS[0]}.png"
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = _mask()[..., None]  # one target in gray ...
    rgba[..., 3] = 255
    rgba[12:14, 12:14] = (0, 0, 0, 0)  # ... and one only in the alpha channel (was: 8 targets, not 9)
    Image.fromarray(rgba, "RGBA").save(path)
    one_line_error(run("convert", data, "--out", tmp_path / "c", "--workers", 1), path, "alpha")
    preds = write_json(tmp_path / "p.json", [])
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json")), path, "alpha")
    assert not (tmp_path / "c").exists() and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("colour", [(255, 0, 0, 255), (0, 0, 0, 255)], ids=["red", "alpha-only"])
def test_red_or_alpha_only_prediction_masks_are_refused(data, tmp_path, colour):
    preds = tmp_path / "preds"
    preds.mkdir()
    for stem in STEMS:
        image = _rgba(_mask(), colour=colour)
        if colour[:3] == (0, 0, 0):  # the target drawn by transparency: background transparent
            arr = np.asarray(image).copy()
            arr[..., 3] = np.where(_mask() > 0, 255, 0)
            image = Image.fromarray(arr, "RGBA")
        image.save(preds / f"{stem}.png")
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json")), preds / f"{STEMS[0]}.png",
                   "colour" if colour[0] else "alpha")
    assert not (tmp_path / "r.json").exists()


def test_gray_stored_as_rgb_or_opaque_rgba_is_still_a_mask(data, tmp_path):
    preds = tmp_path / "preds"
    preds.mkdir()
    Image.fromarray(np.repeat(_mask()[..., None], 3, axis=2)).save(preds / f"{STEMS[0]}.png")
    _rgba(_mask(), colour=(255, 255, 255, 255)).save(preds / f"{STEMS[1]}.png")
    result = run(*eval_args(preds, data, tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["tp"] == 4


# ---------------------------------------------------------------------------------------------
# 14: the pixel limit on .npy headers


def test_npy_score_maps_are_held_to_max_pixels_before_loading(data, tmp_path, monkeypatch):
    preds = tmp_path / "maps"
    preds.mkdir()
    np.save(preds / f"{STEMS[0]}.npy", np.zeros((H, W), np.float32))
    big = preds / f"{STEMS[1]}.npy"
    np.save(big, np.zeros((400, 500), np.float32))
    loaded = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: loaded.append(a) or real(*a, **k))
    result = run(*eval_args(preds, data, tmp_path / "r.json", "--format", "scoremaps", "--max-pixels", 10_000))
    one_line_error(result, big, "(400, 500)", "limit of 10000")
    assert len(loaded) <= 1  # the small map at most: the big one is refused from its header
    assert run(*eval_args(preds, data, tmp_path / "r.json", "--format", "scoremaps", "--resize")).exit_code == 0


@pytest.mark.parametrize("shape", [(0, 0), (2, H, W), (H,)])
def test_npy_maps_of_no_image_shape_are_one_line(data, tmp_path, shape):
    preds = tmp_path / "maps"
    preds.mkdir()
    for stem in STEMS:
        np.save(preds / f"{stem}.npy", np.zeros(shape, np.float32))
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json", "--format", "scoremaps")), "must be 2-D")


# ---------------------------------------------------------------------------------------------
# 6, 17, 25: COCO image tables and file names


def test_a_coco_documents_own_images_table_wins_over_the_dataset_ids(data, tmp_path):
    """The file says image_id 1 is 000002; the dataset numbers 000001 as 1. The file is right."""
    from irstd_bench.datasets import dataset_image_ids, open_dataset

    ids = dataset_image_ids(open_dataset(data))
    own = {"images": [{"id": ids[STEMS[0]], "file_name": f"{STEMS[1]}.png"},
                      {"id": ids[STEMS[1]], "file_name": f"{STEMS[0]}.png"}],
           "annotations": [{"image_id": ids[STEMS[0]], "bbox": list(box), "score": 0.9} for box in TARGETS]}
    preds = write_json(tmp_path / "doc.json", own)
    result = run(*eval_args(preds, data, tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "r.per_image.csv").read_text().splitlines()
    assert f"{STEMS[1]},2,2,2,0,0," in rows and f"{STEMS[0]},2,0,0,0,2," in rows
    # An entry whose file_name contradicts its image_id in the file's own table: which image?
    own["annotations"][1]["file_name"] = f"{STEMS[0]}.png"
    preds = write_json(tmp_path / "doc.json", own)
    one_line_error(run(*eval_args(preds, data, tmp_path / "r2.json")), preds, "entry 1: file_name")


@pytest.mark.parametrize("where", ["results", "gt-coco with --root", "gt-coco alone"])
def test_duplicate_ids_in_a_coco_images_table_are_refused(data, tmp_path, where):
    images = [{"id": 1, "file_name": f"{STEMS[0]}.png", "width": W, "height": H},
              {"id": 1, "file_name": f"{STEMS[1]}.png", "width": W, "height": H}]
    dets = [{"image_id": 1, "bbox": list(TARGETS[0]), "score": 0.9}]
    if where == "results":
        preds = write_json(tmp_path / "doc.json", {"images": images, "annotations": dets})
        args = eval_args(preds, data, tmp_path / "r.json")
        named = preds
    else:
        annotations = [{"image_id": 1, "bbox": [5, 5, 2, 2]}]
        gt = write_json(tmp_path / "gt.json", {"images": images, "annotations": annotations})
        preds = write_json(tmp_path / "p.json", dets)
        args = (eval_args(preds, data, tmp_path / "r.json", "--gt-coco", gt) if "root" in where
                else ("eval", preds, "--gt-coco", gt, "--workers", 1, "--out", tmp_path / "r.json"))
        named = gt
    one_line_error(run(*args), named, "images[1]: duplicate image id 1")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("name", [None, 7, "", ["a.png"]])
def test_coco_results_file_name_must_be_a_string(data, tmp_path, name):
    preds = write_json(tmp_path / "p.json", [{"file_name": name, "bbox": [5, 5, 2, 2], "score": 0.9}])
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json")), preds, "entry 0: file_name must be")


# ---------------------------------------------------------------------------------------------
# 8: --gt-coco geometry


def _gt_doc(**changes) -> dict:
    image = {"id": 1, "file_name": "a.png", "width": 297, "height": 232}
    annotation = {"id": 1, "image_id": 1, "bbox": [5, 5, 2, 2], "area": 4, "centroid": [6.0, 6.0]}
    image.update(changes.pop("image", {}))
    annotation.update(changes)
    return {"images": [image], "annotations": [annotation]}


@pytest.mark.parametrize(
    ("doc", "needle"),
    [(_gt_doc(bbox=[5000, 5000, 2, 2]), "lies outside its 297x232 image"),
     (_gt_doc(bbox=[290, 5, 20, 2]), "lies outside its 297x232 image"),
     (_gt_doc(centroid=[1e300, 6.0]), "centroid [1e+300, 6.0] lies outside its bbox"),
     (_gt_doc(area=1e9), "exceeds its bbox"),
     (_gt_doc(image={"width": 10**12, "height": 10**12}), "over the limit of"),
     (_gt_doc(segmentation=[[100, 100, 110, 100, 110, 110, 100, 110]]), "segmentation reaches outside its bbox"),
     (_gt_doc(segmentation=[[1e9, 1e9, 2e9, 1e9, 2e9, 2e9]]), "segmentation covers no pixel")],
    ids=["box-far", "box-across-edge", "centroid", "area", "image-size", "segmentation-elsewhere",
         "segmentation-empty"],
)
def test_gt_coco_geometry_is_range_checked(tmp_path, doc, needle):
    gt = write_json(tmp_path / "gt.json", doc)
    preds = write_json(tmp_path / "p.json", [{"file_name": "a.png", "bbox": [5, 5, 2, 2], "score": 0.9}])
    result = run("eval", preds, "--gt-coco", gt, "--match", "centroid:3", "--workers", 1, "--out", tmp_path / "r.json")
    one_line_error(result, gt, needle)
    assert not (tmp_path / "r.json").exists()
    assert run("eval", preds, "--gt-coco", write_json(tmp_path / "ok.json", _gt_doc()), "--workers", 1,
               "--out", tmp_path / "r.json").exit_code == 0


# ---------------------------------------------------------------------------------------------
# 12: one line, never a traceback


@pytest.mark.parametrize(
    ("text", "needle"),
    [('[{"file_name": "000001.png", "bbox": [5, 5, 2, 2], "score": ' + "1" * 5000 + "}]", "5000 digits"),
     ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
     ('[{"file_name": "000001.png", "bbox": [5, 5, 2, 2], "score": 0.1, "score": 0.9}]', "'score' appears twice"),
     ('\xff\xfe["binary"]', "not UTF-8")],
    ids=["5000-digit-int", "deep-nesting", "repeated-key", "not-utf8"],
)
@pytest.mark.parametrize("reader", ["eval predictions", "eval --gt-coco", "report"])
def test_any_json_failure_is_one_line_naming_the_file(data, tmp_path, text, needle, reader):
    bad = tmp_path / "bad.json"
    bad.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    if reader == "eval predictions":
        result = run(*eval_args(bad, data, tmp_path / "r.json"))
    elif reader == "eval --gt-coco":
        result = run("eval", write_json(tmp_path / "p.json", []), "--gt-coco", bad, "--workers", 1,
                     "--out", tmp_path / "r.json")
    else:
        result = run("report", bad, "--out", tmp_path / "rep", "--qualitative", 0)
    one_line_error(result, bad, needle)


def _eval_run(data: Path, tmp_path: Path) -> Path:
    preds = write_json(tmp_path / "p.json", [{"file_name": f"{STEMS[0]}.png", "bbox": [5, 5, 2, 2], "score": 0.9}])
    out = tmp_path / "res" / "r.json"
    assert run(*eval_args(preds, data, out)).exit_code == 0
    return out


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"image,kind,x0,y0,x1,y1\n\x00\x01\x02", "NUL bytes"),
     (b"image,kind,x0,y0,x1,y1\n\xff\xfe,tp,1,1,2,2\n", "not UTF-8"),
     (b'image,kind,x0,y0,x1,y1\n"' + b"x" * 140_000 + b'",tp,1,1,2,2\n', "field larger than field limit"),
     (b"image,kind,x0,y0,x1,y1,cx,cy\n000001,tp,nan,5,7,7,6,6\n", "not finite"),
     (b"image,kind,x0,y0,x1,y1,cx,cy\n000001,fn,5,5,7,7,inf,6\n", "not finite"),
     (b"image,kind,x0,y0,x1,y1\n000001,fp,7,5,5,7\n", "x1 < x0")],
    ids=["binary", "not-utf8", "huge-field", "nan-box", "inf-centre", "reversed-box"],
)
def test_report_per_target_csv_is_checked_in_one_line(data, tmp_path, content, needle):
    results = _eval_run(data, tmp_path)
    csv_path = results.parent / "r.per_target.csv"
    csv_path.write_bytes(content)
    one_line_error(run("report", results, "--out", tmp_path / "rep"), csv_path, needle)
    assert not (tmp_path / "rep").exists()


def _non_utf8(folder: Path, name: bytes) -> Path:
    path = Path(os.fsdecode(os.fsencode(folder) + b"/" + name))
    return path


def test_non_utf8_file_names_and_arguments_are_one_line(data, tmp_path):
    try:
        odd = _non_utf8(data / "images", b"\xff\xfe.png")
        odd.write_bytes((data / "images" / f"{STEMS[0]}.png").read_bytes())
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system does not store non-UTF-8 names")
    one_line_error(run("convert", data, "--split", "all", "--out", tmp_path / "c", "--workers", 1, "--skip-missing"),
                   "is not UTF-8 text")
    preds = write_json(tmp_path / "p.json", [])
    one_line_error(run("eval", preds, "--root", data, "--split", "all", "--workers", 1, "--out", tmp_path / "r.json",
                       "--skip-missing"), "is not UTF-8 text")
    odd.unlink()
    out = _non_utf8(tmp_path, b"r\xff.json")
    one_line_error(run(*eval_args(preds, data, out)), "is not UTF-8 text")
    assert not out.exists() and not (tmp_path / "c").exists()


def _checkpoint(tmp_path: Path, **changes) -> Path:
    from reference_model.engine.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
    from reference_model.registry import build_model

    model = build_model("acm")
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model_name": "acm",
            "model_config": dict(model.config), "task": "segment", "input_size": 64,
            "model": model.state_dict(), "ema": None}
    data.update(changes)
    path = tmp_path / "w.pt"
    torch.save(data, path)
    return path


@pytest.mark.parametrize(
    ("changes", "needle"),
    [({"ema": "x"}, "'ema'"), ({"ema": {"module": [1]}}, "'ema'"), ({"model": "x"}, "'model'"),
     ({"model": {"a": 1}}, "'model'"), ({"input_size": "512"}, "input_size"), ({"input_size": 10**9}, "input_size"),
     ({"task": 3}, "task"), ({"model_config": {"channels": [-1, 8, 16, 32]}}, "model 'acm'")],
    ids=["ema-str", "ema-module-list", "model-str", "model-values", "input-size-str", "input-size-huge", "task",
         "channels-negative"],
)
def test_wrongly_typed_checkpoint_fields_are_one_line(tmp_path, changes, needle):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(images / "a.png")
    weights = _checkpoint(tmp_path, **changes)
    result = run("predict", "--weights", weights, "--source", images, "--device", "cpu", "--out", tmp_path / "p")
    one_line_error(result, needle)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [(("predict", "--weights", "x", "--source", ".", "--imgsz", 1_000_000, "--out", "p"), "--imgsz 1000000"),
     (("predict", "--weights", "x", "--source", ".", "--imgsz", 100, "--out", "p"), "--imgsz 100"),
     (("train", "--root", ".", "--model", "acm", "--threads", 0, "--device", "cpu", "--out", "t"), "--threads 0"),
     (("reproduce", "--smoke", "--budget-s", "inf", "--out", "r"), "--budget-s inf"),
     (("reproduce", "--smoke", "--budget-s", "nan", "--out", "r"), "--budget-s nan"),
     (("eval", "p.json", "--root", ".", "--conf", "0", "--out", "r.json"), "--conf 0: must be in (0, 1]"),
     (("convert", ".", "--workers", "100000", "--out", "c"), "--workers 100000: must be in [1, 256]"),
     (("train", "--root", ".", "--model", "acm", "--workers", "100000", "--out", "t"), "--workers 100000")],
    ids=["predict-imgsz-huge", "predict-imgsz-not-32", "train-threads-0", "reproduce-budget-inf",
         "reproduce-budget-nan", "eval-conf-0", "convert-workers-huge", "train-workers-huge"],
)
def test_option_values_are_refused_in_one_line_before_any_work(tmp_path, args, needle):
    before = torch.get_num_threads()
    one_line_error(run(*args, cwd=tmp_path), needle)
    assert list(tmp_path.iterdir()) == [] and torch.get_num_threads() == before


# ---------------------------------------------------------------------------------------------
# 9: reproduce does nothing useless


@pytest.mark.parametrize(
    ("args", "needle"),
    [(("--match", "bogus"), "unknown matcher 'bogus'"), (("--only", "bogus"), "--only bogus: not a model of the plan"),
     (("--device", "cuda:99"), "--device cuda:99")],
    ids=["match", "only", "device"],
)
def test_reproduce_refuses_a_bad_setting_before_any_work(tmp_path, args, needle):
    one_line_error(run("reproduce", "--smoke", "--out", tmp_path / "r", *args), needle)
    assert not (tmp_path / "r").exists()


def test_reproduce_that_scores_nothing_fails_after_writing_runs_md(tmp_path, monkeypatch):
    from reference_model.reproduce import ReproduceConfig, _run, reproduce

    monkeypatch.setattr(_run, "start_server", lambda: 0.0)
    for phase in ("_probe", "_train", "_predict", "_score"):
        monkeypatch.setattr(_run, phase, lambda *a, **k: None)
    config = ReproduceConfig(out=tmp_path / "out", smoke=True, device="cpu", budget_s=300.0, command="test",
                             only=("acm",))
    with pytest.raises(_run.NothingScored, match="no run was scored"):
        reproduce(config)
    assert (tmp_path / "out" / "report" / "RUNS.md").is_file()


# ---------------------------------------------------------------------------------------------
# 10: a resumed run trains on the dataset it recorded


def test_resume_from_another_folder_trains_on_the_recorded_dataset(tmp_path, monkeypatch):
    from test_engine_models import TINY_DETECTOR, make_nuaa_like

    from reference_model.engine.checkpoint import load_checkpoint, save_checkpoint
    from reference_model.engine.trainer import TrainConfig, train

    first, second = tmp_path / "a", tmp_path / "b"
    make_nuaa_like(first / "data", [(64, 64)] * 4)
    make_nuaa_like(second / "data", [(64, 64)] * 4)
    monkeypatch.chdir(first)
    settings = dict(dataset="nuaa", split="split_EFLNet", model=TINY_DETECTOR, imgsz=64, batch=2, device="cpu",
                    workers=0, progress=False, augment=False, ema=False)
    train(TrainConfig(root="data", epochs=1, out=str(tmp_path / "run"), **settings))
    assert json.loads((tmp_path / "run" / "args.json").read_text())["root"] == str((first / "data").resolve())
    monkeypatch.chdir(second)  # ./data is another dataset here
    result = train(TrainConfig(resume=str(tmp_path / "run"), epochs=2, model=TINY_DETECTOR, progress=False))
    assert result.epochs_done == 2
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["train_args"]["root"] == str((first / "data").resolve())
    # A run recorded with a relative root (before this change): refused, unless --root says where it is.
    last["train_args"]["root"] = "data"
    save_checkpoint(tmp_path / "run" / "last.pt", last)
    with pytest.raises(InputError, match="relative to a working folder it did not record"):
        train(TrainConfig(resume=str(tmp_path / "run"), epochs=3, model=TINY_DETECTOR, progress=False))
    result = run("train", "--resume", tmp_path / "run", "--model", TINY_DETECTOR, "--epochs", 3,
                 "--root", first / "data", "--no-progress")
    assert result.exit_code == 0, result.output
    # A recorded root that exists may not be switched to other data.
    result = run("train", "--resume", tmp_path / "run", "--model", TINY_DETECTOR, "--epochs", 4,
                 "--root", second / "data", "--no-progress")
    one_line_error(result, "a resumed run keeps its dataset")


# ---------------------------------------------------------------------------------------------
# 15, 24: option ranges


@pytest.mark.parametrize(("value", "needle"), [("-1", "--threshold -1"), ("1e9", "--threshold 1e9"),
                                               ("nan", "--threshold nan"), ("300", "8-bit mask")])
def test_convert_threshold_out_of_range_is_refused(data, tmp_path, value, needle):
    one_line_error(run("convert", data, "--threshold", value, "--out", tmp_path / "c", "--workers", 1), needle)
    assert not (tmp_path / "c").exists()
    assert run("convert", data, "--threshold", "254", "--out", tmp_path / "c", "--workers", 1).exit_code == 0


def test_train_base_size_below_imgsz_is_refused(data, tmp_path):
    result = run("train", "--root", data, "--model", "acm", "--base-size", 16, "--imgsz", 64, "--epochs", 1,
                 "--device", "cpu", "--out", tmp_path / "t")
    one_line_error(result, "--base-size 16")
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------------------------------------
# 18-20: split entries, YOLO classes, two-valued maps


def test_split_entries_with_folders_are_named_in_a_warning(data, tmp_path):
    split = data / "50_50" / "test.txt"
    split.write_text(f"other/{STEMS[0]}\n{STEMS[1]}\n")
    result = run("convert", data, "--split", "50_50/test", "--out", tmp_path / "c", "--workers", 1)
    assert result.exit_code == 0, result.output
    assert f"warning: {split}: 1 entry names folders (line 1: 'other/{STEMS[0]}')" in result.stderr
    split.write_text(f"a/{STEMS[0]}\nb/{STEMS[0]}\n")
    one_line_error(run("convert", data, "--split", "50_50/test", "--out", tmp_path / "d", "--workers", 1),
                   split, "from different folders")


def test_yolo_class_other_than_the_target_is_refused(data, tmp_path):
    preds = tmp_path / "yolo"
    preds.mkdir()
    (preds / f"{STEMS[0]}.txt").write_text("0 0.1875 0.1875 0.0625 0.0625 0.9\n7 0.6719 0.6719 0.0938 0.0938 0.9\n")
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json")), preds / f"{STEMS[0]}.txt", "line 2: class 7")


def test_masks_of_0_and_100_are_scored_as_score_maps_with_a_hint(data, tmp_path):
    preds = tmp_path / "maps"
    preds.mkdir()
    for stem in STEMS:
        Image.fromarray((_mask() > 0).astype(np.uint8) * 100).save(preds / f"{stem}.png")
    result = run(*eval_args(preds, data, tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    assert f"warning: {preds}: prediction images hold only the values 0 and 100" in result.stderr
    assert "score maps of 0.392" in result.stderr


# ---------------------------------------------------------------------------------------------
# 25: messages name what the user typed


def test_config_from_error_names_config_from(data, tmp_path):
    preds = write_json(tmp_path / "p.json", [])
    result = run(*eval_args(preds, data, tmp_path / "r.json", "--config-from", tmp_path / "nope.pt"))
    one_line_error(result, "--config-from")
    assert "--weights" not in result.stderr


def test_eval_out_inside_the_root_names_the_out_typed(data, tmp_path):
    preds = write_json(tmp_path / "p.json", [])
    one_line_error(run(*eval_args(preds, data, data / "r.json")), f"--out {data / 'r.json'}:")
