"""``irstd-bench baseline`` end to end on real NUAA-SIRST test images, and its input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench._io import image_size, read_gray
from irstd_bench.cli import cli
from irstd_bench.datasets import load_ground_truth, open_dataset
from reference_model.classical import run_baseline

N_IMAGES = 4


def _run(*args):
    return CliRunner().invoke(cli, ["baseline", *map(str, args)])


def _first_stems(root, n=N_IMAGES):
    ds = open_dataset(root, "nuaa")
    return ds, [s for s in ds.stems("test") if not ds.known_defect(s)][:n]


def test_baseline_then_eval_end_to_end(nuaa_root, tmp_path):
    ds, stems = _first_stems(nuaa_root)
    out = tmp_path / "preds" / "tophat"
    args = ["--dataset", "nuaa", "--root", nuaa_root, "--split", "test", "--limit", N_IMAGES]
    result = _run("tophat", *args, "--out", out, "--workers", 1)
    assert result.exit_code == 0, result.output
    assert f"tophat: {N_IMAGES} images" in result.output and "images/s" in result.output
    assert sorted(p.name for p in (out / "scoremaps").iterdir()) == sorted(f"{s}.npy" for s in stems)
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(f"{s}.png" for s in stems)
    hits = 0
    for stem in stems:
        sample = ds.sample(stem)
        hw = image_size(sample.image_path)
        score = np.load(out / "scoremaps" / f"{stem}.npy")
        assert score.dtype == np.float32 and score.shape == hw
        assert score.min() == 0.0 and score.max() == 1.0
        with Image.open(out / "masks" / f"{stem}.png") as mask_file:
            assert mask_file.mode == "L"
        mask = read_gray(out / "masks" / f"{stem}.png")
        assert mask.shape == hw and set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, score > score.mean() + 3 * score.std())
        gt = load_ground_truth(sample).targets
        hits += bool(gt.foreground.flat[np.argmax(score)])
    assert hits >= N_IMAGES - 1  # the brightest top-hat response is on a target

    try:  # the evaluator is another part of the toolkit; score the run with it when it is there
        from irstd_bench.evaluate import Prediction, evaluate
    except ImportError:
        return
    gts = [load_ground_truth(ds.sample(s)) for s in stems]
    preds = [Prediction.from_score_map(s, np.load(out / "scoremaps" / f"{s}.npy")) for s in stems]
    metrics = evaluate(gts, preds).metrics
    assert 0.0 <= metrics["f1"] <= 1.0 and metrics["tp"] >= 1
    # and through the CLI: each sub-folder is one eval input (only the 4 images predicted)
    for kind in ("scoremaps", "masks"):
        json_path = tmp_path / f"{kind}.json"
        result = CliRunner().invoke(
            cli,
            [
                "eval",
                str(out / kind),
                *map(str, args[:6]),
                "--resize-masks",
                "--out",
                str(json_path),
                "--workers",
                "1",
            ],
        )
        assert result.exit_code == 0, result.output
        results = json.loads(json_path.read_text())
        assert results["kind"] == kind and results["counts"]["images"] == len(ds.stems("test"))
        assert results["counts"]["images_without_prediction"] == len(ds.stems("test")) - N_IMAGES
        assert results["metrics"]["tp"] >= 1


def test_parallel_workers_match_serial(nuaa_root, tmp_path):
    ds, stems = _first_stems(nuaa_root, 3)
    images = [(s, ds.sample(s).image_path) for s in stems]
    serial = run_baseline("mpcm", images, tmp_path / "a", workers=1)
    parallel = run_baseline("mpcm", images, tmp_path / "b", workers=2, save="scoremaps")
    assert serial.images == parallel.images == 3 and parallel.workers == 2
    for s in stems:
        a = np.load(tmp_path / "a" / "scoremaps" / f"{s}.npy")
        np.testing.assert_array_equal(a, np.load(tmp_path / "b" / "scoremaps" / f"{s}.npy"))
    assert not (tmp_path / "b" / "masks").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope"], "unknown classical method"),
        (["tophat", "--param", "radius=x"], "not a valid int"),
        (["tophat", "--param", "size=3"], "unknown parameter"),
        (["tophat", "--save", "boxes"], "--save"),
        (["tophat", "--split", "no_such_split"], "unknown split"),
        (["tophat", "--k", "nan"], "--k"),
        (["tophat", "--workers", "0"], "--workers"),
        (["tophat", "--limit", "0"], "--limit"),
    ],
)
def test_bad_inputs_exit_2(nuaa_root, tmp_path, args, message):
    # ``--limit 1`` first so that a case's own ``--limit`` (last one wins) is the one tested.
    result = _run(args[0], "--limit", 1, *args[1:], "--root", nuaa_root, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()  # nothing written on error


def test_missing_root_and_corrupt_image(tmp_path):
    result = _run("tophat", "--root", tmp_path / "absent", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "dataset root not found" in result.output
    (tmp_path / "ds" / "img").mkdir(parents=True)
    (tmp_path / "ds" / "msk").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "ds" / "img" / "a.png")
    (tmp_path / "ds" / "img" / "b.png").write_bytes(b"not a png")
    result = _run(
        "tophat",
        "--dataset",
        "custom",
        "--image-dir",
        "img",
        "--mask-dir",
        "msk",
        "--root",
        tmp_path / "ds",
        "--split",
        "all",
        "--out",
        tmp_path / "out",
    )
    assert result.exit_code == 2 and "b.png" in result.output and "cannot decode" in result.output
    assert not (tmp_path / "out").exists()  # a.png's outputs were not left behind


def test_refuses_to_replace_foreign_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(img)
    with pytest.raises(Exception, match="not written by irstd-bench"):
        run_baseline("tophat", [("x", img)], tmp_path / "out", force=True)
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"
