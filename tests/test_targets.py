"""mask_to_targets: literal fixtures, invalid arguments, and property tests against scipy and skimage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.measure import regionprops

from irstd_bench.errors import InputError
from irstd_bench.targets import (
    CONNECTIVITY_STRUCTURES,
    Targets,
    binarize,
    boxes_to_targets,
    component_max,
    mask_to_targets,
    targets_from_label_image,
)

# Two diagonal pixels (one target with 8-connectivity, two with 4), and a 3x2 block with a
# pixel touching its corner (one target with 8-connectivity, two with 4).
SAMPLE = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0],
        [0, 255, 0, 0, 0, 0, 255],
        [0, 0, 255, 0, 255, 255, 0],
        [0, 0, 0, 0, 255, 255, 0],
        [0, 0, 0, 0, 255, 255, 0],
    ],
    dtype=np.uint8,
)

masks = arrays(
    dtype=bool,
    shape=st.tuples(st.integers(1, 18), st.integers(1, 18)),
    elements=st.booleans(),
)


def test_sample_with_8_connectivity():
    t = mask_to_targets(SAMPLE, connectivity=8)
    assert t.boxes.dtype == np.int64
    assert t.boxes.tolist() == [[1, 1, 3, 3], [4, 1, 7, 5]]
    assert t.area_px.tolist() == [2, 7]
    np.testing.assert_allclose(t.centroids[0], [2.0, 2.0])  # mean of column centres 1.5 and 2.5
    assert t.image_size == (5, 7)
    assert t.box_sizes.tolist() == [[2, 2], [3, 4]]


def test_sample_with_4_connectivity_splits_diagonals():
    t = mask_to_targets(SAMPLE, connectivity=4)
    # Raster order of each component's first pixel: (1, 1), (1, 6), (2, 2), (2, 4).
    assert t.boxes.tolist() == [[1, 1, 2, 2], [6, 1, 7, 2], [2, 2, 3, 3], [4, 2, 6, 5]]
    assert t.area_px.tolist() == [1, 1, 1, 6]
    np.testing.assert_allclose(t.centroids[1], [6.5, 1.5])
    np.testing.assert_allclose(t.centroids[3], [5.0, 3.5])


def test_one_pixel_target_box_is_one_pixel_wide():
    mask = np.zeros((3, 6), np.uint8)
    mask[2, 4] = 255
    t = mask_to_targets(mask)
    assert t.boxes.tolist() == [[4, 2, 5, 3]]
    np.testing.assert_allclose(t.centroids, [[4.5, 2.5]])
    assert t.label_image[2, 4] == 1 and t.label_image.sum() == 1


def test_threshold_decides_irstd1k_value_64():
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 64
    mask[3, 3] = 255
    assert len(mask_to_targets(mask)) == 1  # 64 <= 127: background
    assert len(mask_to_targets(mask, threshold=63)) == 2
    assert len(mask_to_targets(mask, threshold=64)) == 1  # strictly greater than: 64 is background
    with pytest.raises(InputError, match="--threshold 255: no value of 8-bit masks exceeds it"):
        mask_to_targets(mask, threshold=255)  # every 8-bit mask would be empty (issue 25, item 15)


def test_empty_mask_has_no_targets():
    t = mask_to_targets(np.zeros((5, 3), np.uint8))
    assert len(t) == 0
    assert t.boxes.shape == (0, 4) and t.area_px.shape == (0,) and t.centroids.shape == (0, 2)
    assert t.image_size == (5, 3)
    empty = Targets.empty((5, 3))
    assert len(empty) == 0 and empty.label_image.shape == (5, 3)


@pytest.mark.parametrize(
    ("mask", "kwargs"),
    [
        (np.zeros((2, 2, 3), np.uint8), {}),
        (np.zeros(4, np.uint8), {}),
        (np.zeros((2, 2), np.uint8), {"connectivity": 6}),
    ],
)
def test_invalid_arguments_raise_input_error(mask, kwargs):
    with pytest.raises(InputError):
        mask_to_targets(mask, **kwargs)


def test_boolean_masks_pass_through_binarize():
    mask = np.array([[True, False]])
    assert binarize(mask, threshold=200) is mask
    assert binarize(np.array([[128, 127]], np.uint8)).tolist() == [[True, False]]


def test_boxes_to_targets_uses_box_area_and_centre():
    t = boxes_to_targets(np.array([[1, 2, 5, 4]]), (10, 20))
    assert t.area_px.tolist() == [8.0]
    assert t.centroids.tolist() == [[3.0, 3.0]]
    assert t.label_image is None and t.foreground is None
    assert boxes_to_targets(np.zeros((0, 4)), (3, 3)).boxes.shape == (0, 4)


def test_targets_from_label_image_counts_labels():
    labels = np.array([[0, 2, 2], [1, 0, 0]], np.int32)
    t = targets_from_label_image(labels)
    assert t.boxes.tolist() == [[0, 1, 1, 2], [1, 0, 3, 1]]
    assert t.area_px.tolist() == [1, 2]


@settings(max_examples=150, deadline=None)
@given(mask=masks, connectivity=st.sampled_from([4, 8]))
def test_every_foreground_pixel_is_in_exactly_its_component_box(mask, connectivity):
    t = mask_to_targets(mask, connectivity=connectivity)
    labels = t.label_image
    assert ((labels > 0) == mask).all()
    rows, cols = np.nonzero(mask)
    for r, c in zip(rows, cols, strict=True):
        own = labels[r, c] - 1
        x0, y0, x1, y1 = t.boxes[own]
        assert x0 <= c < x1 and y0 <= r < y1
    for i, (x0, y0, x1, y1) in enumerate(t.boxes):
        pr, pc = np.nonzero(labels == i + 1)
        # Tight: each box edge is touched by a pixel of its component.
        assert (pc.min(), pr.min(), pc.max() + 1, pr.max() + 1) == (x0, y0, x1, y1)
        assert t.area_px[i] == pr.size


@settings(max_examples=150, deadline=None)
@given(mask=masks, connectivity=st.sampled_from([4, 8]))
def test_component_count_matches_scipy(mask, connectivity):
    _, expected = ndimage.label(mask, structure=CONNECTIVITY_STRUCTURES[connectivity])
    assert len(mask_to_targets(mask, connectivity=connectivity)) == expected


@settings(max_examples=150, deadline=None)
@given(mask=masks, connectivity=st.sampled_from([4, 8]))
def test_matches_skimage_regionprops(mask, connectivity):
    t = mask_to_targets(mask.astype(np.uint8) * 255, connectivity=connectivity)
    regions = regionprops(sk_label(mask, connectivity=1 if connectivity == 4 else 2))
    ours = sorted(
        (tuple(b), int(a), round(float(c[0]), 9), round(float(c[1]), 9))
        for b, a, c in zip(t.boxes.tolist(), t.area_px, t.centroids, strict=True)
    )
    theirs = sorted(
        (
            (r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]),
            int(r.area),
            round(float(r.centroid[1]) + 0.5, 9),
            round(float(r.centroid[0]) + 0.5, 9),
        )
        for r in regions
    )
    assert ours == theirs


sparse_masks = arrays(
    dtype=bool,
    shape=st.tuples(st.integers(1, 70), st.integers(1, 70)),
    elements=st.sampled_from([False] * 12 + [True]),
)


@settings(max_examples=200, deadline=None)
@given(mask=st.one_of(masks, sparse_masks), connectivity=st.sampled_from([4, 8]))
def test_labels_equal_scipy_on_the_whole_image(mask, connectivity):
    """Labelling on the packed grid (empty rows/columns shrunk) gives scipy's labels of the full
    image: same components, same numbering."""
    expected, count = ndimage.label(mask, structure=CONNECTIVITY_STRUCTURES[connectivity])
    t = mask_to_targets(mask, connectivity=connectivity)
    np.testing.assert_array_equal(t.label_image, expected)
    ref = targets_from_label_image(expected, count)
    assert t.boxes.tolist() == ref.boxes.tolist() and t.area_px.tolist() == ref.area_px.tolist()
    np.testing.assert_array_equal(t.centroids, ref.centroids)
    np.testing.assert_array_equal(t.pixels, np.flatnonzero(mask))


def test_far_apart_pixels_stay_apart_and_adjacent_ones_join():
    mask = np.zeros((300, 300), bool)
    mask[0, 0] = mask[2, 2] = True  # one empty row and column between: not connected
    mask[100, 200] = mask[101, 201] = True  # diagonal neighbours: one target with 8-connectivity
    mask[299, 299] = True
    t = mask_to_targets(mask)
    assert t.boxes.tolist() == [[0, 0, 1, 1], [2, 2, 3, 3], [200, 100, 202, 102], [299, 299, 300, 300]]
    assert len(mask_to_targets(mask, connectivity=4)) == 5


def test_component_max_is_the_highest_value_of_each_target():
    scores = np.zeros((5, 6), np.float32)
    scores[1, 1:3] = [0.6, 0.9]
    scores[3, 4] = 0.7
    t = mask_to_targets(scores > 0.5)
    assert component_max(t, scores).tolist() == pytest.approx([0.9, 0.7])
    assert component_max(mask_to_targets(np.zeros((2, 2), bool)), scores).shape == (0,)
