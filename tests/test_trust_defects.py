"""One policy for release defects, the same in every command (issue 11, item 5).

A known release defect (NUAA-SIRST Misc_111: image 325x220, mask 592x400) has its mask resized to
its image with a warning naming it, so NUAA-SIRST idx_427/test keeps its 86 images everywhere;
``--skip-defects`` leaves it out everywhere (85); any other size mismatch is an error naming both
sizes unless ``--resize-masks``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench.cli import cli
from irstd_bench.datasets import MaskSizeMismatch, Sample, fit_mask_to_image, open_dataset
from irstd_bench.errors import DatasetDefectWarning

SPLIT = "idx_427/test"
DEFECT = "Misc_111"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize(("skip", "expected"), [(False, 86), (True, 85)])
def test_every_command_sees_the_same_images(nuaa_root, tmp_path, skip, expected):
    flag = ["--skip-defects"] if skip else []
    # convert
    result = run("convert", nuaa_root, "--split", SPLIT, "--format", "coco", "--out", tmp_path / "b", "--workers",
                 1, *flag)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["splits"][SPLIT]["images"] == expected
    assert (DEFECT in result.stderr) and ("--skip-defects" in result.stderr if skip else "resized" in result.stderr)
    # eval (no predictions at all: every split image is counted)
    preds = tmp_path / "empty.csv"
    preds.write_text("image,x0,y0,x1,y1,score\n")
    result = run("eval", preds, "--root", nuaa_root, "--split", SPLIT, "--workers", 1, "--out", tmp_path / "r.json",
                 *flag)
    assert result.exit_code == 0, result.output
    counts = json.loads((tmp_path / "r.json").read_text())["counts"]
    assert counts["images"] == expected
    # train, predict and baseline take their images from the same Dataset.stems
    ds = open_dataset(nuaa_root, skip_defects=skip)
    assert len(ds.samples(SPLIT)) == len(ds.stems(SPLIT)) == expected


def test_baseline_writes_one_map_per_split_image(nuaa_root, tmp_path):
    result = run("baseline", "tophat", "--root", nuaa_root, "--split", SPLIT, "--out", tmp_path / "b",
                 "--save", "masks", "--workers", 1, "--skip-defects")
    assert result.exit_code == 0, result.output
    masks = sorted(p.stem for p in (tmp_path / "b" / "masks").glob("*.png"))
    assert len(masks) == 85 and DEFECT not in masks


def test_training_reads_the_defect_resized_with_a_warning(nuaa_root):
    from reference_model.engine.data import read_binary_mask

    ds = open_dataset(nuaa_root)
    sample = ds.sample(DEFECT)
    with pytest.warns(DatasetDefectWarning, match=DEFECT):
        mask = read_binary_mask(sample, ds)
    assert mask.shape == (220, 325) and mask.any()


def _sample(tmp_path: Path, image_hw, mask_hw) -> Sample:
    image, mask = tmp_path / "a.png", tmp_path / "a_mask.png"
    Image.fromarray(np.zeros(image_hw, np.uint8)).save(image)
    Image.fromarray(np.zeros(mask_hw, np.uint8)).save(mask)
    return Sample("a", image, mask)


def test_policy_known_defect_resized_other_mismatch_refused(tmp_path):
    sample = _sample(tmp_path, (12, 16), (24, 32))
    mask = np.zeros((24, 32), np.uint8)
    mask[10:12, 10:12] = 255
    with pytest.raises(MaskSizeMismatch, match="mask is 32x24 but image a.png is 16x12"):
        fit_mask_to_image(mask, (12, 16), sample)
    warned: list[str] = []
    fitted, resized = fit_mask_to_image(mask, (12, 16), sample, known_defect="a known defect", warn=warned.append)
    assert resized and fitted.shape == (12, 16) and fitted[5, 5] == 255
    assert len(warned) == 1 and "a known defect" in warned[0] and str(sample.mask_path) in warned[0]
    fitted, resized = fit_mask_to_image(mask, (12, 16), sample, resize_masks=True, warn=warned.append)
    assert resized and len(warned) == 1  # asked for: no warning
    same, resized = fit_mask_to_image(mask, (24, 32), sample)
    assert same is mask and not resized


def test_other_mismatch_is_an_error_in_convert_eval_and_train(tmp_path):
    from reference_model.engine.data import read_binary_mask

    root = tmp_path / "nudt"
    for folder in ("images", "masks", "50_50"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(root / "images" / "000001.png")
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "masks" / "000001.png")
    (root / "50_50" / "test.txt").write_text("000001\n")
    (root / "50_50" / "train.txt").write_text("000001\n")
    for args in (("convert", root, "--out", tmp_path / "b", "--workers", 1),
                 ("eval", tmp_path / "none.csv", "--root", root, "--workers", 1, "--out", tmp_path / "r.json")):
        (tmp_path / "none.csv").write_text("image,x0,y0,x1,y1,score\n")
        result = run(*args)
        assert result.exit_code == 2 and "mask is 32x24 but image 000001.png is 16x12" in result.stderr, result.output
    ds = open_dataset(root)
    with pytest.raises(MaskSizeMismatch, match="32x24"):
        read_binary_mask(ds.sample("000001"), ds)
    assert read_binary_mask(ds.sample("000001"), ds, resize_masks=True).shape == (12, 16)
    assert run("convert", root, "--out", tmp_path / "b", "--workers", 1, "--resize-masks").exit_code == 0
