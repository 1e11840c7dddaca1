"""Classical detectors: target ranking on synthetic clutter, output contract, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from irstd_bench.errors import InputError
from reference_model.classical import (
    METHODS,
    adaptive_threshold,
    get_method,
    image_to_unit,
    normalize_score_map,
    parse_params,
    patch_image,
    rpca_inexact_alm,
)

TARGET_RC = (41, 67)  # (row, col) of the synthetic target


def synthetic_scene(shape=(96, 128), seed=0) -> np.ndarray:
    """Smooth sinusoidal clutter + mild noise + one bright 3x3-ish Gaussian target, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    clutter = 0.35 + 0.12 * np.sin(xx / 11.0) * np.cos(yy / 17.0) + 0.08 * (yy / shape[0])
    noise = rng.normal(0.0, 0.01, shape)
    r, c = TARGET_RC
    target = 0.35 * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 1.0**2))
    return np.clip(clutter + noise + target, 0.0, 1.0)


@pytest.mark.parametrize("name", list(METHODS))
def test_target_pixel_ranks_highest(name):
    image = synthetic_scene()
    score = METHODS[name](image)
    assert score.shape == image.shape
    assert score.dtype == np.float32
    assert np.all(np.isfinite(score))
    r, c = np.unravel_index(np.argmax(score), score.shape)
    assert abs(r - TARGET_RC[0]) <= 2 and abs(c - TARGET_RC[1]) <= 2, (name, r, c)


@pytest.mark.parametrize("name", list(METHODS))
def test_flat_image_gives_flat_finite_map(name):
    score = METHODS[name](np.full((40, 50), 0.5))
    assert score.shape == (40, 50)
    assert np.all(np.isfinite(score))
    assert float(score.max() - score.min()) < 1e-6


@pytest.mark.parametrize("name", list(METHODS))
def test_odd_sizes_and_uint8_input(name):
    image = (synthetic_scene((37, 53)) * 255).astype(np.uint8)
    score = METHODS[name](image)
    assert score.shape == (37, 53) and np.all(np.isfinite(score))


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4, 3)), np.zeros((0, 5)), np.array([[np.nan, 0.0], [0.0, 0.0]])]
)
def test_bad_images_raise(bad):
    with pytest.raises(InputError):
        METHODS["tophat"](bad)


def test_bad_parameters_raise():
    with pytest.raises(InputError, match="unknown parameter"):
        METHODS["tophat"](synthetic_scene(), size=3)
    with pytest.raises(InputError, match="odd"):
        METHODS["maxmedian"](synthetic_scene(), size=4)
    with pytest.raises(InputError, match="stride"):
        METHODS["ipi"](synthetic_scene(), patch=10, stride=12)
    with pytest.raises(InputError, match="unknown classical method"):
        get_method("nope")


def test_parse_params_types_and_errors():
    assert parse_params(METHODS["mpcm"], ["scales=3,5", "smooth=1"]) == {"scales": (3, 5), "smooth": 1}
    assert parse_params(METHODS["ipi"], ["lambda_scale=1.5"]) == {"lambda_scale": 1.5}
    with pytest.raises(InputError, match="NAME=VALUE"):
        parse_params(METHODS["ipi"], ["patch"])
    with pytest.raises(InputError, match="not a valid int"):
        parse_params(METHODS["ipi"], ["patch=3.5"])


def test_normalize_and_threshold():
    score = np.array([[0.0, 2.0], [4.0, 8.0]])
    np.testing.assert_allclose(normalize_score_map(score), [[0, 0.25], [0.5, 1.0]])
    assert normalize_score_map(np.full((3, 3), 7.0)).max() == 0.0
    s = np.zeros((10, 10))
    s[3, 4] = 1.0
    mask = adaptive_threshold(s, k=3.0)
    assert mask.sum() == 1 and mask[3, 4]
    assert not adaptive_threshold(np.ones((4, 4)), k=0.0).any()
    assert image_to_unit(np.array([[0, 255]], dtype=np.uint8)).tolist() == [[0.0, 1.0]]
    assert image_to_unit(np.array([[0, 65535]], dtype=np.uint16)).tolist() == [[0.0, 1.0]]


def test_patch_image_layout():
    img = np.arange(36, dtype=float).reshape(6, 6)
    d, index = patch_image(img, 4, 2)
    assert d.shape == (16, 4)  # 2x2 windows of 4x4
    np.testing.assert_array_equal(d[:, 0], img[:4, :4].ravel())
    np.testing.assert_array_equal(d[:, 3], img[2:, 2:].ravel())
    np.testing.assert_array_equal(img.ravel()[index], d)


def test_rpca_separates_low_rank_and_sparse():
    rng = np.random.default_rng(1)
    low = rng.normal(size=(60, 2)) @ rng.normal(size=(2, 50))
    sparse = np.zeros((60, 50))
    idx = rng.choice(sparse.size, 30, replace=False)
    sparse.flat[idx] = rng.choice([-5.0, 5.0], 30)
    b, t, iterations = rpca_inexact_alm(low + sparse, 1 / np.sqrt(60), tol=1e-7, max_iter=300)
    assert iterations < 300
    assert np.linalg.norm(b - low) / np.linalg.norm(low) < 1e-3
    assert np.linalg.norm(t - sparse) / np.linalg.norm(sparse) < 1e-3
