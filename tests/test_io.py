"""Image header reading: the PNG fast path agrees with Pillow; other formats and bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from irstd_bench._io import image_size
from irstd_bench.errors import InputError


@pytest.mark.parametrize("mode", ["L", "RGB", "I;16", "P", "1"])
@pytest.mark.parametrize("hw", [(1, 1), (17, 300), (512, 640), (70000, 3)])
def test_png_size_from_header_equals_pillow(tmp_path, mode, hw):
    path = tmp_path / "a.png"
    Image.new(mode, (hw[1], hw[0])).save(path)
    with Image.open(path) as im:
        assert image_size(path) == hw == (im.size[1], im.size[0])


@pytest.mark.parametrize("suffix", [".bmp", ".jpg", ".tif"])
def test_other_formats_go_through_pillow(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    Image.fromarray(np.zeros((13, 21), np.uint8)).save(path)
    assert image_size(path) == (13, 21)


def test_missing_and_unreadable_files_name_the_path(tmp_path):
    with pytest.raises(InputError, match="missing.png: file not found"):
        image_size(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")  # a PNG signature and nothing usable
    with pytest.raises(InputError, match="bad.png: cannot decode image"):
        image_size(bad)
