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


# --- model-based methods of issue 16 --------------------------------------------------------------

from reference_model.classical._contrast import rlcm, top_k_mean  # noqa: E402
from reference_model.classical._patches import thin_svd, window_starts  # noqa: E402
from reference_model.classical._tensor import _prox_pstnn, ript_decompose  # noqa: E402


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("ilcm", {"block": 7}, "even"),
        ("rlcm", {"scales": (3, 5), "k1": (2,), "k2": (4, 9)}, "one entry per scale"),
        ("rlcm", {"scales": (3,), "k1": (10,), "k2": (4,)}, r"k must be in \[1, 9\]"),
        ("tllcm", {"scales": (4,)}, "odd"),
        ("wslcm", {"xi": 0.0}, "xi must be > 0"),
        ("tdlms", {"support": 4}, "odd integer >= 3"),
        ("tdlms", {"mu": 1.5}, r"mu must be in \(0, 1\)"),
        ("nram", {"patch": 10, "step": 12}, "must not exceed patch"),
        ("nram", {"gamma": -1.0}, "gamma must be > 0"),
        ("ript", {"patch": 1}, "patch must be >= 2"),
        ("ript", {"h": -1.0}, "h must be finite"),
        ("pstnn", {"lambda_l": 0.0}, "lambda_l must be > 0"),
        ("pstnn", {"max_iter": 0}, "positive integer"),
    ],
)
def test_new_methods_reject_bad_parameters_in_one_line(name, params, message):
    with pytest.raises(InputError, match=message) as info:
        METHODS[name](synthetic_scene((40, 48)), **params)
    assert "\n" not in str(info.value)


def test_top_k_mean_matches_brute_force():
    img = np.random.default_rng(3).random((9, 11))
    got = top_k_mean(img, 3, 4)
    padded = np.pad(img, 1, mode="reflect")
    for r, c in [(0, 0), (4, 5), (8, 10), (3, 9)]:
        window = np.sort(padded[r : r + 3, c : c + 3].ravel())[::-1]
        assert got[r, c] == pytest.approx(window[:4].mean())


def test_rlcm_single_scale_matches_its_formula_at_one_pixel():
    img = np.random.default_rng(4).random((30, 30))
    score = rlcm(img, scales=(3,), k1=(2,), k2=(4,))
    r, c = 15, 14
    centre = np.sort(img[r - 1 : r + 2, c - 1 : c + 2].ravel())[-2:].mean()
    surround = [
        np.sort(img[r - 1 + 3 * dy : r + 2 + 3 * dy, c - 1 + 3 * dx : c + 2 + 3 * dx].ravel())[-4:].mean()
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dy, dx) != (0, 0)
    ]
    expected = max(min(centre / b * (centre - b) for b in surround), 0.0)
    assert score[r, c] == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_window_starts_cover_the_axis_like_the_authors_code():
    # MATLAB: [1 : step : (num - 1) * step, n - patch + 1], num = ceil((n - patch) / step) + 1
    np.testing.assert_array_equal(window_starts(100, 50, 10), [0, 10, 20, 30, 40, 50])
    np.testing.assert_array_equal(window_starts(105, 50, 10), [0, 10, 20, 30, 40, 50, 55])
    np.testing.assert_array_equal(window_starts(40, 40, 40), [0])
    np.testing.assert_array_equal(window_starts(95, 40, 40), [0, 40, 55])


@pytest.mark.parametrize("shape", [(50, 7), (7, 50)])
def test_thin_svd_reconstructs(shape):
    m = np.random.default_rng(5).normal(size=shape)
    u, s, vt = thin_svd(m)
    np.testing.assert_allclose((u * s) @ vt, m, atol=1e-9)
    np.testing.assert_allclose(s, np.linalg.svd(m, compute_uv=False), rtol=1e-9)


@pytest.mark.parametrize("shape", [(50, 7), (7, 50)])
def test_thin_svd_above_keeps_only_the_values_above(shape):
    m = np.random.default_rng(7).normal(size=shape)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    tau = float(s[3] + s[4]) / 2  # four values above
    got_u, got_s, got_vt = thin_svd(m, above=tau)
    assert got_s.shape == (4,) and got_u.shape == (shape[0], 4) and got_vt.shape == (4, shape[1])
    np.testing.assert_allclose(got_s, s[:4], rtol=1e-10)
    np.testing.assert_allclose((got_u * (got_s - tau)) @ got_vt, (u[:, :4] * (s[:4] - tau)) @ vt[:4], atol=1e-10)
    assert thin_svd(m, above=2 * float(s[0]))[1].size == 0


def _ript_by_full_svd(x, lam, local, tol=1e-7, max_iter=100):
    """RIPT as the authors' ript.m writes it (a full SVD per unfolding); the reference of the fast path."""
    def unfold(a, k):
        return np.moveaxis(a, k, 0).reshape(a.shape[k], -1)

    def fold(m, k):
        return np.moveaxis(m.reshape((x.shape[k],) + tuple(n for i, n in enumerate(x.shape) if i != k)), 0, k)

    mu = 5.0 * np.std(x, ddof=1)
    bs, ys, t, w, prev = [x.copy()] * 3, [np.zeros_like(x)] * 3, np.zeros_like(x), local, x.size
    for it in range(1, max_iter + 1):
        bs = []
        for k in range(3):
            u, s, vt = np.linalg.svd(unfold(x + mu * ys[k] - t, k), full_matrices=False)
            bs.append(fold((u * np.maximum(s - mu, 0.0)) @ vt, k))
        t = np.maximum(-sum(bk - x - mu * yk for bk, yk in zip(bs, ys, strict=True)) / 3 - w * mu * lam / 3, 0.0)
        w = local / (np.abs(t) + 0.01)
        ys = [yk - (bk + t - x) / mu for bk, yk in zip(bs, ys, strict=True)]
        mu = mu / 1.5
        b = sum(bs) / 3
        count = int(np.sum(t > 0))
        if np.linalg.norm(x - b - t) / np.linalg.norm(x) < tol or count == prev:
            return b, t, it
        prev = count
    return b, t, max_iter


def test_ript_fast_path_equals_the_full_svd_iteration_on_a_synthetic_scene():
    from reference_model.classical._patches import min_max, patches, structure_tensor_eigenvalues

    img = synthetic_scene() * 255
    x = patches(img, 30, 10)[0].reshape(30, 30, -1)  # (30, 30, 88)
    l1, l2 = structure_tensor_eigenvalues(img, 1.2, 2.0)
    local = patches(np.exp(min_max(l1 - l2)), 30, 10)[0].reshape(x.shape)
    lam = 1.0 / np.sqrt(min(x.shape))
    b, t, it = ript_decompose(x, lam, local)
    ref_b, ref_t, ref_it = _ript_by_full_svd(x, lam, local)
    assert it == ref_it and it >= 2
    assert np.count_nonzero(t) > 0 and np.array_equal(t > 0, ref_t > 0)
    np.testing.assert_allclose(t, ref_t, rtol=0, atol=1e-8 * float(np.abs(x).max()))
    np.testing.assert_allclose(b, ref_b, rtol=0, atol=1e-8 * float(np.abs(x).max()))
    # a fixed iteration count, past the stopping rule, still agrees
    b, t, _ = ript_decompose(x, lam, local, tol=0.0, max_iter=1)
    ref_b, ref_t, _ = _ript_by_full_svd(x, lam, local, tol=0.0, max_iter=1)
    np.testing.assert_allclose(t, ref_t, rtol=0, atol=1e-8 * float(np.abs(x).max()))


def test_ript_constant_tensor_is_all_background():
    x = np.full((4, 4, 5), 3.0)
    b, t, it = ript_decompose(x, 0.5, np.ones_like(x))
    assert it == 0 and np.array_equal(b, x) and not t.any()


def test_prox_pstnn_keeps_the_leading_values_and_shrinks_the_rest():
    rng = np.random.default_rng(6)
    y = rng.normal(size=(6, 5, 4))
    np.testing.assert_allclose(_prox_pstnn(y, keep=0, tau=0.0), y, atol=1e-10)
    np.testing.assert_allclose(_prox_pstnn(y, keep=5, tau=1e6), y, atol=1e-10)  # all kept
    shrunk = _prox_pstnn(y, keep=0, tau=1e6)
    np.testing.assert_allclose(shrunk, 0.0, atol=1e-10)
    # keep=1, huge tau: each Fourier slice becomes its best rank-1 approximation
    f = np.fft.fft(y, axis=2)
    rank1 = np.empty_like(f)
    for i in range(4):
        u, s, vt = np.linalg.svd(f[:, :, i], full_matrices=False)
        rank1[:, :, i] = s[0] * np.outer(u[:, 0], vt[0])
    np.testing.assert_allclose(_prox_pstnn(y, keep=1, tau=1e6), np.fft.ifft(rank1, axis=2).real, atol=1e-9)


def test_tdlms_predicts_a_ramp_and_flags_a_spike():
    yy, xx = np.mgrid[:40, :40].astype(float)
    ramp = 0.2 + 0.01 * xx + 0.005 * yy
    score = METHODS["tdlms"](ramp)
    spiked = ramp.copy()
    spiked[20, 20] += 0.5
    spike_score = METHODS["tdlms"](spiked)
    assert np.unravel_index(np.argmax(spike_score), spike_score.shape) == (20, 20)
    assert float(score.max()) < 0.1 * float(spike_score[20, 20])


@pytest.mark.parametrize(
    ("method", "param", "message"),
    [("pstnn", "lambda_l=0", "lambda_l"), ("rlcm", "k1=2,5", "one entry per scale"), ("nram", "step=60", "step")],
)
def test_cli_out_of_range_parameter_exits_2_without_output(tmp_path, method, param, message):
    from click.testing import CliRunner
    from PIL import Image

    from irstd_bench.cli import cli

    for sub in ("img", "msk"):
        (tmp_path / "ds" / sub).mkdir(parents=True)
    Image.fromarray((synthetic_scene((48, 64)) * 255).astype(np.uint8)).save(tmp_path / "ds" / "img" / "a.png")
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(tmp_path / "ds" / "msk" / "a.png")
    args = ["baseline", method, "--dataset", "custom", "--image-dir", "img", "--mask-dir", "msk"]
    args += ["--root", str(tmp_path / "ds"), "--split", "all", "--workers", "1", "--param", param]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.strip().count("\n") == 0
    assert not (tmp_path / "out").exists()
