"""``irstd_bench.boxes``: the one module of box formats (xyxy, xywh, cxcywh, YOLO-normalised)."""

from __future__ import annotations

import numpy as np
import pytest

from irstd_bench.boxes import box_areas, box_centres, box_convert, from_yolo, to_yolo

XYXY = np.array([[4, 2, 5, 3], [0, 0, 40, 32], [10, 12, 17, 13]])
XYWH = np.array([[4, 2, 1, 1], [0, 0, 40, 32], [10, 12, 7, 1]])
CXCYWH = np.array([[4.5, 2.5, 1, 1], [20, 16, 40, 32], [13.5, 12.5, 7, 1]])
FORMS = {"xyxy": XYXY, "xywh": XYWH, "cxcywh": CXCYWH}


@pytest.mark.parametrize("in_fmt", FORMS)
@pytest.mark.parametrize("out_fmt", FORMS)
def test_box_convert_literal_values_and_round_trips(in_fmt, out_fmt):
    np.testing.assert_array_equal(box_convert(FORMS[in_fmt], in_fmt, out_fmt), FORMS[out_fmt])
    back = box_convert(box_convert(FORMS[in_fmt], in_fmt, out_fmt), out_fmt, in_fmt)
    np.testing.assert_array_equal(back, FORMS[in_fmt])


def test_integer_boxes_stay_integer_between_xyxy_and_xywh():
    assert box_convert(XYXY, "xyxy", "xywh").dtype == XYXY.dtype
    assert box_convert(XYXY, "xyxy", "xywh").tolist() == XYWH.tolist()


def test_empty_and_unknown_formats():
    assert box_convert(np.zeros((0, 4)), "xyxy", "cxcywh").shape == (0, 4)
    assert box_convert([], "xywh", "xyxy").shape == (0, 4)
    with pytest.raises(ValueError, match="xywhn"):
        box_convert(XYXY, "xyxy", "xywhn")


def test_yolo_normalises_by_width_then_height():
    image_size = (32, 40)  # (H, W)
    yolo = to_yolo(XYXY, image_size)
    np.testing.assert_allclose(yolo, CXCYWH / [40, 32, 40, 32])
    np.testing.assert_allclose(from_yolo(yolo, image_size), XYXY, atol=1e-12)
    # A whole-image box is (0.5, 0.5, 1, 1) whatever the aspect ratio.
    assert to_yolo([[0, 0, 40, 32]], image_size).tolist() == [[0.5, 0.5, 1.0, 1.0]]


def test_centres_and_areas():
    np.testing.assert_array_equal(box_centres(XYXY), CXCYWH[:, :2])
    assert box_areas(XYXY).tolist() == [1, 1280, 7]


def test_box_formats_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, irstd_bench.boxes as b; b.box_convert([[0, 0, 1, 1]], 'xyxy', 'xywh'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
