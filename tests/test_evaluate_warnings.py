"""``eval``'s warnings about the ground truth: one line per defect, naming its file, printed once.

A tiny NUAA-SIRST-like tree holds the release's known defect (``Misc_111``: a mask larger than
its image) and, for ``--resize-masks``, a mask of another size that is no known defect. Each
resized mask must reach the user as exactly one ``warning: <mask file>: ...`` line on stderr
(no separate count line repeating it), whether the masks are read here or in worker processes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench._warnings import WARNING_PREFIX
from irstd_bench.cli import cli

DEFECT, ODD, PLAIN = "Misc_111", "Misc_7", ("Misc_1", "Misc_2", "Misc_3")
HW = (8, 10)


def _nuaa_tree(root, *, odd_mask: bool):
    """NUAA-SIRST layout: ``images/``, ``masks/<stem>_pixels0.png``, ``idx_427/test.txt``.

    ``Misc_111`` has a mask twice its image's size (the release defect); with ``odd_mask``,
    ``Misc_7`` has a mask 2 px wider than its image (not a known defect)."""
    for folder in ("images", "masks", "idx_427"):
        (root / folder).mkdir(parents=True)
    stems = [DEFECT, *PLAIN, *([ODD] if odd_mask else [])]
    for stem in stems:
        image_hw = (11, 16) if stem == DEFECT else HW
        mask_hw = {DEFECT: (22, 32), ODD: (HW[0], HW[1] + 2)}.get(stem, image_hw)
        Image.fromarray(np.full(image_hw, 40, np.uint8)).save(root / "images" / f"{stem}.png")
        mask = np.zeros(mask_hw, np.uint8)
        mask[2:4, 3:5] = 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}_pixels0.png")
    (root / "idx_427" / "test.txt").write_text("".join(f"{s}\n" for s in stems))
    return root


def _eval(tmp_path, root, workers, *extra):
    preds = tmp_path / "preds.csv"
    preds.write_text("image,x0,y0,x1,y1,score\n" + "".join(f"{s},3,2,5,4,0.9\n" for s in PLAIN))
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        cli, ["eval", str(preds), "--root", str(root), "--split", "idx_427/test", "--workers", str(workers),
              "--no-progress", "--out", str(out), *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines, json.loads(out.read_text())


def _named(lines, stem):
    return [line for line in lines if f"{stem}_pixels0.png" in line]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_known_defect_resized_is_one_line_naming_its_file(tmp_path, capfd, workers):
    root = _nuaa_tree(tmp_path / "nuaa", odd_mask=False)
    lines, res = _eval(tmp_path, root, workers, "--resize-masks")
    assert all(line.startswith(WARNING_PREFIX) for line in lines), lines
    named = _named(lines, DEFECT)
    assert len(named) == 1 and "resized" in named[0], lines
    assert ".py:" not in named[0] and "DatasetDefectWarning" not in named[0]
    # No second statement of the same resize (the count line "1 ground-truth masks were resized").
    assert [line for line in lines if "resized" in line] == named, lines
    assert lines == named + [line for line in lines if "no prediction" in line], lines
    assert res["counts"]["gt_masks_resized"] == 1  # the results still count it
    assert DEFECT not in capfd.readouterr().err  # worker processes printed nothing themselves


@pytest.mark.parametrize("workers", [1, 2])
def test_another_mask_resized_by_resize_masks_is_named_once_too(tmp_path, workers):
    root = _nuaa_tree(tmp_path / "nuaa", odd_mask=True)
    lines, res = _eval(tmp_path, root, workers, "--resize-masks")
    assert len(_named(lines, DEFECT)) == 1, lines
    odd = _named(lines, ODD)
    assert len(odd) == 1 and "--resize-masks" in odd[0] and odd[0].startswith(WARNING_PREFIX), lines
    assert len([line for line in lines if "resized" in line]) == 2, lines
    assert res["counts"]["gt_masks_resized"] == 2


def test_without_resize_masks_another_size_is_refused_naming_the_file(tmp_path):
    root = _nuaa_tree(tmp_path / "nuaa", odd_mask=True)
    preds = tmp_path / "preds.csv"
    preds.write_text("image,x0,y0,x1,y1,score\n")
    result = CliRunner().invoke(
        cli, ["eval", str(preds), "--root", str(root), "--split", "idx_427/test", "--workers", "1",
              "--out", str(tmp_path / "r.json")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert ODD in result.stderr and not (tmp_path / "r.json").exists()
