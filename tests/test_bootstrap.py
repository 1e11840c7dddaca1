"""The bootstrap over images: every resample's metrics against the evaluator run on the resampled
split itself, intervals against a reference loop, the paired test's p-value, determinism."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irstd_bench.errors import InputError
from irstd_bench.evaluate import (
    BootstrapSettings,
    PerImageData,
    Prediction,
    align_images,
    bootstrap_intervals,
    evaluate,
    metric_samples,
    paired_difference,
    parse_per_image,
    resample_counts,
)
from irstd_bench.evaluate._bootstrap import CHUNK_RESAMPLES, INTERVAL_METRICS
from irstd_bench.targets import boxes_to_targets, mask_to_targets

REPO = Path(__file__).resolve().parents[1]
SIZE = 48


def box_split(n_images: int, seed: int):
    """``[(stem, Targets)]`` and box predictions: jittered copies of the targets (some below IoU
    0.5), false alarms, every score distinct."""
    rng = np.random.default_rng(seed)
    scores = iter(rng.permutation(np.linspace(0.02, 0.98, 40 * n_images)))
    gt, preds = [], []
    for i in range(n_images):
        stem = f"img{i}"
        n = int(rng.integers(0, 4))
        corners = rng.integers(0, SIZE - 8, size=(n, 2))
        boxes = np.concatenate([corners, corners + rng.integers(2, 7, size=(n, 2))], axis=1)
        gt.append((stem, boxes_to_targets(boxes, (SIZE, SIZE))))
        pred = [b + rng.integers(-2, 3, size=4) * (rng.random() < 0.5) for b in boxes if rng.random() < 0.8]
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.integers(0, SIZE - 6, size=2)
            pred.append(np.array([x, y, x + 4, y + 4]))
        pred = np.clip(np.array(pred, np.int64).reshape(-1, 4), 0, SIZE)
        pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
        preds.append((boxes, pred, np.array([next(scores) for _ in range(len(pred))])))
    return gt, [(s, p, sc) for (s, _), (_, p, sc) in zip(gt, preds, strict=True)]


def box_predictions(items, names=None):
    return [
        Prediction.from_boxes(name, boxes, scores, (SIZE, SIZE))
        for (stem, boxes, scores), name in zip(items, names or [i[0] for i in items], strict=True)
    ]


def map_split(n_images: int, seed: int):
    """Masks with square targets and score maps with a blob near most targets and a false one,
    each blob a distinct peak score (pixel metrics and AP50 of components)."""
    rng = np.random.default_rng(seed)
    peaks = iter(rng.permutation(np.linspace(0.3, 0.99, 30 * n_images)))
    gt, maps = [], []
    for i in range(n_images):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        score = np.zeros((SIZE, SIZE), np.float32)
        for k in range(int(rng.integers(0, 3))):
            y, x = 4 + 20 * k, int(rng.integers(2, SIZE - 10))
            side = int(rng.integers(1, 5))
            mask[y : y + side, x : x + side] = 255
            if rng.random() < 0.8:
                dy, dx = rng.integers(-1, 2, size=2)
                score[y + dy : y + dy + side + 1, x + dx : x + dx + side] = next(peaks)
        if rng.random() < 0.7:
            y, x = 40, int(rng.integers(0, SIZE - 4))
            score[y : y + 2, x : x + 3] = next(peaks)
        gt.append((f"img{i}", mask_to_targets(mask)))
        maps.append(score)
    return gt, maps


def expanded(gt, weights):
    """The images of one resample, copies renamed (``img3#0``, ``img3#1``, ...)."""
    picks = [(i, k) for i, w in enumerate(weights) for k in range(int(w))]
    return picks, [(f"{gt[i][0]}#{k}", gt[i][1]) for i, k in picks]


def reference_metrics(kind, gt, preds, weights, conf):
    """The evaluator run on the resampled split itself (a different code path: real matching)."""
    picks, gt_resampled = expanded(gt, weights)
    if kind == "boxes":
        p = box_predictions([preds[i] for i, _ in picks], [name for name, _ in gt_resampled])
    else:
        p = [Prediction.from_score_map(name, preds[i]) for (i, _), (name, _) in zip(picks, gt_resampled, strict=True)]
    return evaluate(gt_resampled, p, matcher="iou:0.5", conf=conf, bootstrap=0).metrics


def scored(kind, n_images, seed, conf=0.35):
    if kind == "boxes":
        gt, preds = box_split(n_images, seed)
        result = evaluate(gt, box_predictions(preds), conf=conf, bootstrap=0)
    else:
        gt, preds = map_split(n_images, seed)
        predictions = [Prediction.from_score_map(s, m) for (s, _), m in zip(gt, preds, strict=True)]
        result = evaluate(gt, predictions, conf=conf, bootstrap=0)
    return gt, preds, result


def multisets(n):
    """Every bootstrap resample of ``n`` images, as multiplicities (compositions of n into n parts)."""
    for cut in itertools.combinations(range(2 * n - 1), n - 1):
        bounds = (-1, *cut, 2 * n - 1)
        yield [bounds[k + 1] - bounds[k] - 1 for k in range(n)]


def assert_metrics_equal(samples, row, reference, metrics):
    for m in metrics:
        want = reference[m]
        got = samples[m][row]
        if want is None:
            assert np.isnan(got), m
        elif m == "niou":  # a mean of fractions: summed in another order
            assert got == pytest.approx(want, rel=1e-12, abs=1e-15), m
        else:
            assert got == want, (m, got, want)


@pytest.mark.parametrize("kind", ["boxes", "scoremaps"])
def test_every_resample_of_a_tiny_split_equals_the_evaluator_on_those_images(kind):
    # Exact enumeration: every multiset of 4 images (35 resamples), each weighted metric against
    # evaluate() on the resampled split (copies of images matched again, AP50 ranked again).
    gt, preds, result = scored(kind, 4, seed=3 if kind == "boxes" else 5)
    data = result.per_image
    weights = np.array(list(multisets(4)))
    assert len(weights) == 35
    metrics = ["precision", "recall", "f1", "ap50"] + (["iou", "niou", "pd", "fa_e6"] if kind != "boxes" else [])
    samples = metric_samples(data, weights)
    assert set(metrics) <= set(samples)
    for row, w in enumerate(weights):
        assert_metrics_equal(samples, row, reference_metrics(kind, gt, preds, w, 0.35), metrics)


@pytest.mark.parametrize("kind", ["boxes", "scoremaps"])
def test_a_row_of_ones_gives_the_split_metrics(kind):
    _, _, result = scored(kind, 12, seed=7)
    samples = metric_samples(result.per_image, np.ones((1, 12), np.int64))
    metrics = [m for m in INTERVAL_METRICS if m in samples]
    assert_metrics_equal(samples, 0, result.metrics, metrics)
    assert ("iou" in samples) == (kind != "boxes")


def test_intervals_equal_a_fixed_seed_reference_loop():
    # The documented stream: Generator(PCG64(seed)), chunks of CHUNK_RESAMPLES rows; each resample
    # re-evaluated from scratch, then numpy's percentiles of the defined values.
    gt, preds, result = scored("scoremaps", 7, seed=11)
    resamples, seed = 300, 42
    rng = np.random.Generator(np.random.PCG64(seed))
    chunks = [min(CHUNK_RESAMPLES, resamples - start) for start in range(0, resamples, CHUNK_RESAMPLES)]
    draws = np.concatenate([rng.integers(0, 7, size=(rows, 7)) for rows in chunks])
    values = {m: [] for m in INTERVAL_METRICS}
    for row in draws:
        reference = reference_metrics("scoremaps", gt, preds, np.bincount(row, minlength=7), 0.35)
        for m in INTERVAL_METRICS:
            values[m].append(np.nan if reference[m] is None else reference[m])
    got = bootstrap_intervals(result.per_image, result.metrics, BootstrapSettings(resamples, seed))
    for m in INTERVAL_METRICS:
        v = np.array(values[m])
        want = np.percentile(v[np.isfinite(v)], [2.5, 97.5])
        assert got[m] == pytest.approx(want, rel=1e-12), m


def test_resample_counts_rows_draw_n_images_and_depend_only_on_the_seed():
    a = resample_counts(50, 600, seed=1)
    assert a.shape == (600, 50) and np.all(a.sum(axis=1) == 50) and a.min() >= 0
    assert np.array_equal(a, resample_counts(50, 600, seed=1))
    assert not np.array_equal(a, resample_counts(50, 600, seed=2))
    assert np.array_equal(a[:250], resample_counts(50, 250, seed=1))  # a prefix of the stream


def test_eval_results_carry_ci95_settings_and_per_image():
    gt, preds = box_split(10, seed=2)
    result = evaluate(gt, box_predictions(preds), conf=0.3, bootstrap=500, bootstrap_seed=9)
    ci = result.metrics["ci95"]
    assert set(ci) == set(INTERVAL_METRICS)
    for m in ("precision", "recall", "f1", "ap50"):
        lo, hi = ci[m]
        assert lo <= result.metrics[m] <= hi
    assert ci["iou"] is None and ci["pd"] is None  # boxes: no pixel metrics
    assert result.settings["bootstrap"] == {
        "resamples": 500, "seed": 9, "unit": "image", "method": "percentile", "level": 0.95
    }
    data = result.to_dict()
    assert parse_per_image(json.loads(json.dumps(data["per_image"])), "x").stems == result.per_image.stems
    again = evaluate(gt, box_predictions(preds), conf=0.3, bootstrap=500, bootstrap_seed=9)
    assert again.metrics["ci95"] == ci
    other = evaluate(gt, box_predictions(preds), conf=0.3, bootstrap=500, bootstrap_seed=10)
    assert other.metrics["ci95"] != ci
    off = evaluate(gt, box_predictions(preds), conf=0.3, bootstrap=0)
    assert "ci95" not in off.metrics and off.settings["bootstrap"]["resamples"] == 0


def test_per_image_json_round_trip_and_refusals():
    _, _, result = scored("scoremaps", 6, seed=4)
    text = json.loads(json.dumps(result.per_image.to_json()))
    back = parse_per_image(text, "r.json")
    for key in ("gt", "pred", "tp", "ap_candidates", "ap_scores", "ap50_hits"):
        assert np.array_equal(getattr(back, key), getattr(result.per_image, key)), key
    assert all(np.array_equal(back.pixels[k], result.per_image.pixels[k]) for k in back.pixels)
    for change, message in [
        (lambda d: d.update(gt=d["gt"][:-1]), "per_image.gt has 5 entries"),
        (lambda d: d.update(tp=[9] * 6), "tp exceeds"),
        (lambda d: d["ap50"].update(scores=d["ap50"]["scores"][:-1]), "one score per candidate"),
        (lambda d: d.update(image=["a"] * 6), "names an image twice"),
        (lambda d: d["pixels"].update(union=[-1] * 6), "per_image.pixels.union"),
    ]:
        broken = json.loads(json.dumps(text))
        change(broken)
        with pytest.raises(InputError, match=message):
            parse_per_image(broken, "r.json")


def test_reordered_data_gives_the_same_resampled_metrics_for_the_same_images():
    _, _, result = scored("boxes", 8, seed=6)
    data = result.per_image
    order = list(reversed(data.stems))
    flipped = data.reordered(order)
    w = resample_counts(8, 40, seed=0)
    a, b = metric_samples(data, w), metric_samples(flipped, w[:, ::-1])
    for m in a:
        np.testing.assert_array_equal(a[m], b[m])


def test_align_images_refuses_other_image_sets_and_other_ground_truth():
    base = PerImageData(("a", "b"), np.array([1, 2]), np.array([1, 1]), np.array([1, 1]))
    other = PerImageData(("b", "a"), np.array([2, 1]), np.array([0, 3]), np.array([0, 1]))
    aligned = align_images([("A", base), ("B", other)])
    assert aligned[1].stems == ("a", "b") and aligned[1].pred.tolist() == [3, 0]
    with pytest.raises(InputError, match="A and C: different image sets"):
        align_images([("A", base), ("C", PerImageData(("a", "c"), *([np.array([1, 2])] * 3)))])
    with pytest.raises(InputError, match="image 'b' has 2 and 3 ground-truth targets"):
        other_truth = PerImageData(("a", "b"), np.array([1, 3]), np.array([1, 1]), np.array([1, 1]))
        align_images([("A", base), ("D", other_truth)])


def test_paired_p_value_identical_runs_one_dominated_runs_vanishing():
    rng = np.random.default_rng(0)
    a = rng.random(2000)
    same = paired_difference(a, a.copy(), 0.0)
    assert same.p_value == 1.0 and same.interval == [0.0, 0.0] and same.resamples == 2000
    better = paired_difference(a, a + 0.01, 0.01)
    assert better.p_value == pytest.approx(2 / 2001)
    assert paired_difference(a[:200], a[:200] + 0.01).p_value == pytest.approx(2 / 201)  # -> 0 as B grows
    assert paired_difference(a, a - 0.01).p_value == pytest.approx(2 / 2001)  # two-sided
    # The definition on a known sample: 3 of 9 differences <= 0, 7 >= 0 (0 counts in both).
    d = np.array([-2, -1, 0, 1, 2, 3, 4, 5, 6], float)
    assert paired_difference(np.zeros(9), d).p_value == pytest.approx(2 * (3 + 1) / 10)
    undefined = paired_difference(np.array([np.nan, 1.0]), np.array([1.0, 2.0]))
    assert undefined.resamples == 1


def test_dominated_method_has_a_small_p_value_on_real_resamples():
    gt, preds = box_split(30, seed=8)
    good = evaluate(gt, box_predictions(preds), conf=0.3, bootstrap=0).per_image
    bad_preds = [(s, b[:0], sc[:0]) for s, b, sc in preds]  # finds nothing
    bad = evaluate(gt, box_predictions(bad_preds), conf=0.3, bootstrap=0).per_image
    w = resample_counts(30, 2000, seed=0)
    f1_good, f1_bad = metric_samples(good, w)["f1"], metric_samples(bad, w)["f1"]
    assert paired_difference(f1_good, f1_bad).p_value < 0.01
    assert paired_difference(f1_good, f1_good).p_value == 1.0


def test_bootstrap_settings_refuse_negative_values():
    with pytest.raises(InputError, match="resamples"):
        BootstrapSettings(-1)
    with pytest.raises(InputError, match="seed"):
        BootstrapSettings(10, seed=-3)


DETERMINISM_SCRIPT = """
import json, numpy as np
from irstd_bench.evaluate import BootstrapSettings, PerImageData, bootstrap_intervals
rng = np.random.default_rng(5)
n = 300
gt = rng.integers(0, 4, n); pred = rng.integers(0, 5, n); tp = np.minimum(gt, pred) * (rng.random(n) < .7)
cand = rng.integers(0, 40, n); scores = np.concatenate([np.sort(rng.random(c))[::-1] for c in cand])
hits = np.zeros(cand.sum(), bool)
starts = np.concatenate([[0], np.cumsum(cand)[:-1]])
for s, c, g in zip(starts, cand, gt):
    hits[s + rng.permutation(c)[: min(c, g)]] = True
union = rng.integers(0, 60, n); inter = (union * rng.random(n)).astype(np.int64)
pixels = {"intersection": inter, "union": union, "pd_matched": np.minimum(gt, tp + 1),
          "fa_px": rng.integers(0, 30, n), "total_px": np.full(n, 65536)}
data = PerImageData(tuple(map(str, range(n))), gt, pred, tp, pixels, cand, scores, hits)
metrics = dict.fromkeys(["precision", "recall", "f1", "ap50", "iou", "niou", "pd", "fa_e6"], 0.5)
print(json.dumps(bootstrap_intervals(data, metrics, BootstrapSettings(2000, 3))))
"""


def test_intervals_do_not_depend_on_the_thread_count():
    outputs = []
    for threads in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT], env=env, capture_output=True, text=True,
                              check=True)
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert all(v is not None for v in json.loads(outputs[0]).values())
