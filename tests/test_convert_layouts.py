"""The layouts users have: BasicIRSTD's tree, SIRST v2's official VOC boxes, the synthetic sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irstd_bench.convert import convert_dataset, read_voc_file
from irstd_bench.datasets import open_dataset
from irstd_bench.errors import InputError

# SIRST v2's official box files, written as the release writes them (Misc_1: a 2x2 and a 3x3
# target; 202105-Enhance-1: a background-only image, an object without a box).
SIRST_V2_TARGETS = """<annotation>
  <filename>Misc_1</filename>
  <size>
    <width>320</width>
    <height>240</height>
    <depth>1</depth>
  </size>
  <object>
    <name>Target</name>
    <bndbox>
      <xmin>71</xmin>
      <ymin>75</ymin>
      <xmax>73</xmax>
      <ymax>77</ymax>
    </bndbox>
  </object>
  <object>
    <name>Target</name>
    <bndbox>
      <xmin>220</xmin>
      <ymin>133</ymin>
      <xmax>223</xmax>
      <ymax>136</ymax>
    </bndbox>
  </object>
</annotation>
"""
SIRST_V2_BACKGROUND = """<annotation>
    <folder>backgrounds</folder>
    <filename>202105-Enhance-1.png</filename>
    <size>
        <width>640</width>
        <height>512</height>
        <depth>3</depth>
    </size>
    <object>
        <name>Target</name>
        <difficult>0</difficult>
        <pixels>
            <id>0</id>
        </pixels>
    </object>
</annotation>
"""


def test_sirst_v2_official_boxes_and_background_images(tmp_path, nuaa_root):
    targets = tmp_path / "Misc_1.xml"
    targets.write_text(SIRST_V2_TARGETS)
    stem, read = read_voc_file(targets)
    assert stem == "Misc_1" and read.image_size == (240, 320)
    # The same targets of Misc_1 from its NUAA-SIRST mask: official boxes are one pixel larger
    # at the far edges (datasets/sirst-v2.md).
    result = convert_dataset(nuaa_root, tmp_path / "o", splits="split_EFLNet/test", formats="voc", workers=1)
    ours = read_voc_file(result.out / "voc" / "Annotations" / "Misc_1.xml")[1].boxes
    assert ours.tolist() == [[70, 74, 72, 76], [219, 132, 222, 135]]
    np.testing.assert_array_equal(read.boxes, ours + np.array([0, 0, 1, 1]))
    background = tmp_path / "202105-Enhance-1.xml"
    background.write_text(SIRST_V2_BACKGROUND)
    stem, read = read_voc_file(background)
    assert stem == "202105-Enhance-1" and read.boxes.shape == (0, 4) and read.image_size == (512, 640)
    broken = tmp_path / "broken.xml"
    broken.write_text(SIRST_V2_TARGETS.replace("<xmax>73</xmax>", "<xmax>x</xmax>"))
    with pytest.raises(InputError, match="broken.xml"):
        read_voc_file(broken)


def _basicirstd(root: Path, name: str, real: Path) -> Path:
    """A BasicIRSTD tree from two real NUDT-SIRST-named pairs: masks named as their images."""
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    shutil.copyfile(real / "images" / "000001.png", root / "images" / "000001.png")
    shutil.copyfile(real / "masks" / "000001.png", root / "masks" / "000001.png")
    Image.fromarray(np.full((256, 256, 3), 20, np.uint8)).save(root / "images" / "000002.png")
    mask = np.zeros((256, 256), np.uint8)
    mask[3:5, 7:10] = 255
    Image.fromarray(mask).save(root / "masks" / "000002.png")
    (root / "img_idx").mkdir()
    (root / "img_idx" / f"train_{name}.txt").write_text("000001\n")
    (root / "img_idx" / f"test_{name}.txt").write_text("000002\n")
    return root


def test_basicirstd_layout_is_recognised(tmp_path, shared_datasets):
    root = _basicirstd(tmp_path / "NUDT-SIRST", "NUDT-SIRST", shared_datasets / "layouts" / "NUDT-SIRST")
    for forced in (None, "nudt", "basicirstd"):
        ds = open_dataset(root, forced)
        assert ds.name == "basicirstd" and ds.layout.title == "NUDT-SIRST (BasicIRSTD layout)"
        assert ds.stems("test") == ["000002"] and ds.stems("train") == ["000001"]
        assert ds.resolve_split("test") == root / "img_idx" / "test_NUDT-SIRST.txt"
    result = convert_dataset(root, tmp_path / "o", formats="coco,yolo", workers=1)
    assert list(result.splits) == ["img_idx/test_NUDT-SIRST", "img_idx/train_NUDT-SIRST", "all"]
    assert result.records["000002"].boxes == ((7, 3, 10, 5),)
    data = (result.out / "yolo" / "img_idx" / "data.yaml").read_text()
    assert "train: images/train_NUDT-SIRST" in data and "test: images/test_NUDT-SIRST" in data


def test_synthetic_sample_is_titled_synthetic(tmp_path):
    from irstd_bench.synth import RECORD_NAME, generate_sample

    generate_sample(tmp_path / "s", n_images=4, size=32, seed=1)
    ds = open_dataset(tmp_path / "s")
    assert ds.layout.marker == RECORD_NAME
    assert ds.name == "synthetic" and "NUDT" not in ds.layout.title
    assert open_dataset(tmp_path / "s", "synth").name == "synthetic"
