"""Warnings on the command line: one line each, naming the file, printed once.

A tiny NUAA-SIRST-like tree holds the release's known defect (``Misc_111``: its mask is larger
than its image) and a mask saved with values {0, 1}. Each must reach the user as exactly one
``warning: <file>: ...`` line on stderr: no Python ``file.py:123: DatasetDefectWarning:`` prefix,
no source line, not repeated by convert's own report, not printed by worker processes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench._warnings import WARNING_PREFIX, one_line_warnings, warning_line
from irstd_bench.cli import cli
from irstd_bench.errors import DatasetDefectWarning

DEFECT, UNIT = "Misc_111", "Misc_2"
#: Images of the tiny tree (64: enough for convert to use its worker pool with --workers 2).
N_IMAGES = 64
HW = (8, 10)


def _nuaa_tree(root):
    """NUAA-SIRST layout: ``images/``, ``masks/<stem>_pixels0.png``, ``idx_427/test.txt``."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "idx_427").mkdir()
    stems = [DEFECT, *(f"Misc_{i}" for i in range(1, N_IMAGES))]
    for stem in stems:
        image_hw = (11, 16) if stem == DEFECT else HW
        mask_hw = (22, 32) if stem == DEFECT else image_hw  # the defect: a mask twice the image size
        Image.fromarray(np.full(image_hw, 40, np.uint8)).save(root / "images" / f"{stem}.png")
        mask = np.zeros(mask_hw, np.uint8)
        mask[2:4, 3:5] = 1 if stem == UNIT else 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}_pixels0.png")
    (root / "idx_427" / "test.txt").write_text("".join(f"{s}\n" for s in stems))
    return root


def _warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def _assert_one_clean_line(lines: list[str], needle: str) -> None:
    named = [line for line in lines if needle in line]
    assert len(named) == 1, lines
    line = named[0]
    assert line.startswith(WARNING_PREFIX), line
    assert ".py:" not in line and "DatasetDefectWarning" not in line and "UserWarning" not in line, line


@pytest.mark.parametrize("workers", [1, 2])
def test_convert_names_each_defect_once_in_one_clean_line(tmp_path, capfd, workers):
    root = _nuaa_tree(tmp_path / "nuaa")
    result = CliRunner().invoke(
        cli, ["convert", str(root), "--split", "idx_427/test", "--format", "coco", "--out", str(tmp_path / "out"),
              "--workers", str(workers), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = _warning_lines(result.stderr)
    assert len(lines) == 2, lines  # the defect and the {0, 1} mask, nothing else
    _assert_one_clean_line(lines, DEFECT)
    _assert_one_clean_line(lines, UNIT)
    assert f"{DEFECT}_pixels0.png" in "".join(lines) and "resized" in "".join(lines)
    assert f"{UNIT}_pixels0.png: mask values are all 0 or 1" in "".join(lines)
    # Worker processes write to the real stderr: they must have printed nothing.
    assert DEFECT not in capfd.readouterr().err


def test_skip_defects_names_the_defect_once(tmp_path):
    root = _nuaa_tree(tmp_path / "nuaa")
    result = CliRunner().invoke(
        cli, ["convert", str(root), "--split", "idx_427/test", "--format", "coco", "--out", str(tmp_path / "out"),
              "--workers", "1", "--skip-defects"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = _warning_lines(result.stderr)
    _assert_one_clean_line(lines, DEFECT)
    assert "left out" in "".join(lines) and "--skip-defects" in "".join(lines)


def test_eval_prints_the_dataset_warning_as_one_line(tmp_path):
    root = _nuaa_tree(tmp_path / "nuaa")
    preds = tmp_path / "preds.csv"
    preds.write_text("image,x0,y0,x1,y1,score\n")
    result = CliRunner().invoke(
        cli, ["eval", str(preds), "--root", str(root), "--split", "idx_427/test", "--workers", "1",
              "--out", str(tmp_path / "r.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = _warning_lines(result.stderr)
    assert all(line.startswith(WARNING_PREFIX) for line in lines), lines
    assert len([line for line in lines if f"{DEFECT}_pixels0.png" in line]) == 1, lines
    assert len([line for line in lines if f"{UNIT}_pixels0.png" in line]) == 1, lines


def test_formatter_is_scoped_and_leaves_other_warnings_alone(capsys):
    before = warnings.showwarning
    # Another library's warning goes on to the handler in place before (here pytest's recorder).
    with pytest.warns(RuntimeWarning, match="not ours") as recorded, one_line_warnings():
        message = "/data/masks/a.png: mask values are all 0 or 1;\n read as binary"
        warnings.warn(message, DatasetDefectWarning, stacklevel=1)
        warnings.warn("not ours", RuntimeWarning, stacklevel=1)
    assert [w.category for w in recorded] == [RuntimeWarning]
    assert warnings.showwarning is before
    err = capsys.readouterr().err
    assert err == "warning: /data/masks/a.png: mask values are all 0 or 1; read as binary\n"
    assert warning_line("a\n  b") == "warning: a b"
