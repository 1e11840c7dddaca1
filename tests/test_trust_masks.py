"""Corrupt data is refused, not scored (issue 11, item 4).

Masks are integrity-checked like images (PNG chunk CRCs); a header declaring a huge size is a
one-line error naming the file and its size (``--max-pixels``); a {0, 1} mask is read as a
binary mask with a warning naming it, never scored as zero targets.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from irstd_bench._io import DEFAULT_MAX_PIXELS, _inspect, pixel_limit, read_mask, verify_image
from irstd_bench.cli import cli
from irstd_bench.datasets import Sample, load_ground_truth
from irstd_bench.errors import DatasetDefectWarning, InputError

H = W = 64
STEMS = ("000001", "000002")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "Traceback" not in result.output, result.output
    for needle in needles:
        assert str(needle) in last, (needle, last)


def _target_mask() -> np.ndarray:
    """One 53-px target (a filled 7x8 rectangle less 3 corner pixels), away from the border."""
    mask = np.zeros((H, W), np.uint8)
    mask[20:27, 30:38] = 255
    mask[20, 30] = mask[20, 37] = mask[26, 30] = 0
    return mask


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "nudt"
    for folder in ("images", "masks", "50_50"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem in STEMS:
        Image.fromarray((rng.random((H, W)) * 80).astype(np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(_target_mask()).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\n".join(STEMS) + "\n")
    (root / "50_50" / "train.txt").write_text(STEMS[0] + "\n")
    return root


def _flip_idat_bytes(path: Path) -> None:
    """Flip four bytes in the middle of the first IDAT chunk's data, leaving its CRC stale."""
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8 : start - 4])[0]
    middle = start + length // 2
    for i in range(middle, middle + 4):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _bomb(path: Path, side: int = 100_000) -> None:
    """A valid-looking PNG whose header declares side x side 8-bit gray pixels (a few bytes long)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def _predictions(data: Path, folder: Path) -> Path:
    folder.mkdir()
    for stem in STEMS:
        Image.fromarray(_target_mask()).save(folder / f"{stem}.png")
    return folder


def eval_args(preds, data, out, *extra):
    return ("eval", preds, "--dataset", "nudt", "--root", data, "--split", "test", "--workers", 1, "--out", out,
            *extra)


# ---------------------------------------------------------------------------------------------
# integrity


#: A real NUAA-SIRST mask whose IDAT, with four bytes flipped in its middle, still inflates:
#: Pillow then decodes wrong pixels without any error (985 of them), since it skips IDAT CRCs.
NUAA_STEM = "Misc_100"


@pytest.fixture()
def nuaa_corrupt(nuaa_root, tmp_path) -> Path:
    """A two-image copy of NUAA-SIRST whose Misc_100 mask has four flipped IDAT bytes."""
    root = tmp_path / "nuaa"
    for folder in ("images", "masks", "idx_427"):
        (root / folder).mkdir(parents=True)
    stems = (NUAA_STEM, "Misc_102")
    for stem in stems:
        (root / "images" / f"{stem}.png").write_bytes((nuaa_root / "images" / f"{stem}.png").read_bytes())
        mask = f"{stem}_pixels0.png"
        (root / "masks" / mask).write_bytes((nuaa_root / "masks" / mask).read_bytes())
    (root / "idx_427" / "test.txt").write_text("\n".join(stems) + "\n")
    (root / "idx_427" / "trainval.txt").write_text(stems[1] + "\n")
    _flip_idat_bytes(root / "masks" / f"{NUAA_STEM}_pixels0.png")
    return root


def test_flipped_idat_bytes_decode_silently_without_the_check(nuaa_corrupt, nuaa_root):
    """The premise: Pillow alone decodes this file to wrong pixels (so the check must be ours)."""
    mask = f"{NUAA_STEM}_pixels0.png"
    with Image.open(nuaa_corrupt / "masks" / mask) as broken, Image.open(nuaa_root / "masks" / mask) as good:
        assert np.count_nonzero(np.asarray(broken) != np.asarray(good)) > 100


def test_corrupt_mask_is_refused_by_read_mask(nuaa_corrupt):
    path = nuaa_corrupt / "masks" / f"{NUAA_STEM}_pixels0.png"
    with pytest.raises(InputError, match=str(path)):
        read_mask(path)


def test_corrupt_mask_stops_convert_and_eval_naming_the_file(nuaa_corrupt, nuaa_root, tmp_path):
    path = nuaa_corrupt / "masks" / f"{NUAA_STEM}_pixels0.png"
    one_line_error(run("convert", nuaa_corrupt, "--out", tmp_path / "boxes", "--workers", 1), path)
    assert not (tmp_path / "boxes").exists()
    preds = tmp_path / "preds"
    preds.mkdir()
    for stem in (NUAA_STEM, "Misc_102"):
        (preds / f"{stem}.png").write_bytes((nuaa_root / "masks" / f"{stem}_pixels0.png").read_bytes())
    # Intact predictions: the corrupt ground-truth mask is refused, by name.
    result = run("eval", preds, "--dataset", "nuaa", "--root", nuaa_corrupt, "--split", "idx_427/test",
                 "--workers", 1, "--out", tmp_path / "r.json")
    one_line_error(result, path)
    assert not (tmp_path / "r.json").exists()
    # The corrupt file as a prediction is refused by the same reader, by name.
    (preds / f"{NUAA_STEM}.png").write_bytes(path.read_bytes())
    result = run("eval", preds, "--dataset", "nuaa", "--root", nuaa_root, "--split", "idx_427/test",
                 "--workers", 1, "--out", tmp_path / "r.json")
    one_line_error(result, preds / f"{NUAA_STEM}.png", "bad checksum")
    assert not (tmp_path / "r.json").exists()


# ---------------------------------------------------------------------------------------------
# decompression bombs


def test_bomb_image_is_a_one_line_error_in_convert_eval_and_baseline(data, tmp_path):
    image = data / "images" / f"{STEMS[1]}.png"
    _bomb(image)
    one_line_error(run("convert", data, "--out", tmp_path / "boxes", "--workers", 1), image, "100000x100000")
    preds = _predictions(data, tmp_path / "preds")
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json")), image, "100000x100000")
    one_line_error(
        run("baseline", "tophat", "--root", data, "--dataset", "nudt", "--split", "test", "--out",
            tmp_path / "b", "--workers", 1),
        image,
        "100000x100000",
    )


def test_bomb_prediction_mask_is_a_one_line_error(data, tmp_path):
    preds = _predictions(data, tmp_path / "preds")
    _bomb(preds / f"{STEMS[0]}.png")
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json")), "100000x100000")


def test_bomb_image_is_a_one_line_error_in_predict(tmp_path):
    from reference_model.engine.checkpoint import BUNDLED_WEIGHTS_DIR

    if not (BUNDLED_WEIGHTS_DIR / "nuaa-eflnet-n.pt").is_file():
        pytest.skip("bundled weights nuaa-eflnet-n are not installed")
    images = tmp_path / "images"
    images.mkdir()
    _bomb(images / "big.png")
    one_line_error(
        run("predict", "--weights", "nuaa-eflnet-n", "--source", images, "--out", tmp_path / "p.json", "--device",
            "cpu"),
        images / "big.png",
        "100000x100000",
    )


def test_max_pixels_option_sets_the_limit(data, tmp_path):
    preds = _predictions(data, tmp_path / "preds")
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json", "--max-pixels", 1000)), "64x64",
                   "limit of 1000")
    assert run(*eval_args(preds, data, tmp_path / "r.json", "--max-pixels", 4096)).exit_code == 0
    one_line_error(run("convert", data, "--out", tmp_path / "b", "--max-pixels", 0), "--max-pixels 0")


def test_pixel_limit_is_restored_after_the_block(data):
    path = data / "masks" / f"{STEMS[0]}.png"
    with pixel_limit(10), pytest.raises(InputError, match="limit of 10"):
        read_mask(path)
    assert read_mask(path).shape == (H, W)
    assert DEFAULT_MAX_PIXELS >= 10_000_000


# ---------------------------------------------------------------------------------------------
# {0, 1} masks


def test_zero_one_mask_is_read_as_binary_with_a_warning_naming_it(data, tmp_path):
    path = data / "masks" / f"{STEMS[0]}.png"
    Image.fromarray((_target_mask() > 0).astype(np.uint8)).save(path)
    sample = Sample(STEMS[0], data / "images" / f"{STEMS[0]}.png", path)
    with pytest.warns(DatasetDefectWarning, match=str(path)):
        gt = load_ground_truth(sample)
    assert len(gt.targets) == 1 and int(gt.targets.area_px[0]) == 53
    result = run("convert", data, "--out", tmp_path / "boxes", "--workers", 1)
    assert result.exit_code == 0, result.output
    assert f"warning: {path}: mask values are all 0 or 1" in result.stderr  # one line, naming the file
    summary = json.loads((tmp_path / "boxes" / "summary.json").read_text())
    assert summary["total"]["targets"] == 2


def test_threshold_nan_is_refused(data, tmp_path):
    preds = _predictions(data, tmp_path / "preds")
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json", "--threshold", "nan")), "--threshold nan")
    one_line_error(run(*eval_args(preds, data, tmp_path / "r.json", "--conf", "nan")), "--conf nan")
    assert not (tmp_path / "r.json").exists()



def _pillow_accepts(data: bytes) -> bool:
    """Pillow's own check of a PNG (every chunk's CRC up to IEND), the reference for ours."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        return True
    except Exception:  # noqa: BLE001 - any refusal counts
        return False


def _our_check_accepts(data: bytes) -> bool:
    """The check ``verify_image`` and ``read_mask`` run on the bytes they read (in memory here:
    thousands of files would cost seconds on a slow file system)."""
    try:
        _inspect(Path("variant.png"), data, decode=False)
        return True
    except InputError as exc:
        assert "variant.png" in str(exc)
        return False


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P"])
def test_chunk_check_on_the_bytes_read_agrees_with_pillow_verify(tmp_path, mode):
    """``verify_image``/``read_mask`` check the CRCs on the bytes they read once: the same verdict
    as Pillow's ``verify()`` on every one-byte flip and every cut of a small PNG with an extra chunk."""
    rng = np.random.default_rng(1)
    image = Image.fromarray((rng.random((9, 11)) * 255).astype(np.uint8)).convert(mode)
    good = tmp_path / "good.png"
    info = PngInfo()
    info.add_text("Comment", "written by the test")
    image.save(good, pnginfo=info)
    data = good.read_bytes()
    assert verify_image(good) == {"L": 1, "RGB": 3, "RGBA": 4, "P": 1}[mode]
    assert _our_check_accepts(data) and _pillow_accepts(data)
    variants = [data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :] for i in range(16, len(data))]
    variants += [data[:cut] for cut in range(8, len(data))]
    verdicts = [(_our_check_accepts(v), _pillow_accepts(v)) for v in variants]
    assert all(ours == pillow for ours, pillow in verdicts), [k for k, (o, p) in enumerate(verdicts) if o != p]
    assert sum(not ours for ours, _ in verdicts) > len(variants) // 2
    # Through the file path: a flipped IDAT byte is refused by name, the intact file decodes as Pillow does.
    idat = data.index(b"IDAT") + 6
    bad = tmp_path / "bad.png"
    bad.write_bytes(data[:idat] + bytes([data[idat] ^ 0x10]) + data[idat + 1 :])
    with pytest.raises(InputError, match="bad.png: cannot decode image"):
        read_mask(bad)
    with Image.open(good) as decoded:
        gray = decoded.convert("RGBA" if mode == "P" else mode).convert("L")  # how masks are read
        np.testing.assert_array_equal(read_mask(good), np.asarray(gray))
