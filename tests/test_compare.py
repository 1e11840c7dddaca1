"""``irstd-bench compare``: paired differences, their p-values, refusals and the output file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from irstd_bench.cli import cli
from irstd_bench.compare import COMPARE_SCHEMA, compare_runs
from irstd_bench.errors import InputError
from irstd_bench.evaluate import Prediction, evaluate, resample_counts
from irstd_bench.targets import boxes_to_targets

SIZE = 40
N_IMAGES = 24


def split(seed=0, n=N_IMAGES):
    """Ground truth of ``n`` images with 1-3 boxes each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 4))
        corner = rng.integers(0, SIZE - 8, size=(k, 2))
        out.append((f"im{i:02d}", np.concatenate([corner, corner + 5], axis=1)))
    return out


def predictions(gt, found: float, seed: int):
    """Each target found (exact box) with probability ``found``, plus a false alarm per image."""
    rng = np.random.default_rng(seed)
    out = []
    for stem, boxes in gt:
        kept = [b for b in boxes if rng.random() < found]
        boxes_out = np.array(kept + [[0, SIZE - 4, 3, SIZE - 1]], np.int64).reshape(-1, 4)
        scores = rng.uniform(0.5, 1.0, len(boxes_out))
        scores[-1] = rng.uniform(0.3, 0.9)
        out.append(Prediction.from_boxes(stem, boxes_out, scores, (SIZE, SIZE)))
    return out


def write_run(folder, name, gt, preds, *, split_name="test", matcher="iou:0.5", dataset="synthetic"):
    truth = [(stem, boxes_to_targets(boxes, (SIZE, SIZE))) for stem, boxes in gt]
    meta = {"method": name, "dataset": dataset, "split": split_name}
    result = evaluate(truth, preds, matcher=matcher, conf=0.5, bootstrap=0, meta=meta)
    path = folder / f"{name}.json"
    result.write(path)
    return path, result


@pytest.fixture()
def runs(tmp_path):
    gt = split()
    good = write_run(tmp_path, "good", gt, predictions(gt, 0.9, 1))
    fair = write_run(tmp_path, "fair", gt, predictions(gt, 0.6, 2))
    blind = write_run(tmp_path, "blind", gt, predictions(gt, 0.0, 3))
    return gt, good, fair, blind


def test_identical_runs_give_p_one_and_zero_difference(runs, tmp_path):
    gt, (good, _), *_ = runs
    twin = tmp_path / "twin.json"
    data = json.loads(good.read_text())
    data["method"] = "twin"
    twin.write_text(json.dumps(data))
    result = compare_runs([good, twin], resamples=500)
    assert {p.metric for p in result.pairs} == {"f1", "ap50"}
    for pair in result.pairs:
        assert pair.paired.difference == 0.0 and pair.paired.p_value == 1.0 and pair.paired.interval == [0.0, 0.0]


def test_a_method_that_finds_nothing_is_significantly_worse(runs):
    _, (good, _), _, (blind, _) = runs
    result = compare_runs([good, blind], resamples=1000)
    for pair in result.pairs:
        assert pair.paired.difference < 0
        assert pair.paired.p_value == pytest.approx(2 / 1001)
        assert pair.paired.interval[1] < 0


def test_paired_interval_equals_a_reference_loop_over_resampled_counts(runs):
    # Independently of metric_samples: per resample, F1 of each run from its per-image CSV counts.
    _, (good, good_result), (fair, fair_result), _ = runs
    result = compare_runs([good, fair], resamples=400, seed=5)
    weights = resample_counts(N_IMAGES, 400, seed=5)
    per = {}
    for name, r in (("good", good_result), ("fair", fair_result)):
        rows = r.per_image_rows()
        per[name] = [
            2 * sum(w * row["tp"] for w, row in zip(ws, rows, strict=True))
            / sum(w * (row["pred"] + row["gt"]) for w, row in zip(ws, rows, strict=True))
            for ws in weights
        ]
    d = np.array(per["fair"]) - np.array(per["good"])
    f1 = next(p for p in result.pairs if p.metric == "f1")
    assert f1.paired.interval == pytest.approx(np.percentile(d, [2.5, 97.5]).tolist(), rel=1e-12)
    below, above = (d <= 0).sum(), (d >= 0).sum()
    assert f1.paired.p_value == pytest.approx(min(1, 2 * min(below + 1, above + 1) / 401))
    assert f1.paired.difference == pytest.approx(fair_result.metrics["f1"] - good_result.metrics["f1"])


def test_all_pairs_and_against_the_first(runs):
    _, (good, _), (fair, _), (blind, _) = runs
    assert [(p.a, p.b) for p in compare_runs([good, fair, blind], resamples=50).pairs if p.metric == "f1"] == [
        ("good", "fair"),
        ("good", "blind"),
    ]
    pairs = compare_runs([good, fair, blind], all_pairs=True, resamples=50).pairs
    assert [(p.a, p.b) for p in pairs if p.metric == "f1"] == [("good", "fair"), ("good", "blind"), ("fair", "blind")]


def _cli(args):
    return CliRunner().invoke(cli, ["compare", *map(str, args)])


def test_refusals_are_one_line_with_exit_2_and_write_nothing(runs, tmp_path):
    gt, (good, _), *_ = runs
    for folder in "smig":
        (tmp_path / folder).mkdir()
    other_split, _ = write_run(tmp_path / "s", "other", gt, predictions(gt, 0.9, 1), split_name="val")
    other_matcher, _ = write_run(tmp_path / "m", "other", gt, predictions(gt, 0.9, 1), matcher="centroid:3")
    fewer = split()[:-1]
    other_images, _ = write_run(tmp_path / "i", "other", fewer, predictions(fewer, 0.9, 1))
    moved = [(stem, boxes + (1 if i == 3 else 0)) for i, (stem, boxes) in enumerate(gt)]
    moved[3] = (moved[3][0], np.concatenate([moved[3][1], [[30, 30, 35, 35]]]))
    other_truth, _ = write_run(tmp_path / "g", "other", moved, predictions(moved, 0.9, 1))
    out = tmp_path / "cmp.json"
    for other, message in [
        (other_split, "scored with split 'test' and 'val'"),
        (other_matcher, "scored with matcher 'iou:0.5' and 'centroid:3'"),
        (other_images, "different image sets"),
        (other_truth, "image 'im03' has"),
    ]:
        done = _cli([good, other, "--out", out])
        assert done.exit_code == 2, done.output
        lines = done.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], done.output
        assert not out.exists()
    assert _cli([good]).exit_code == 2


def test_out_file_is_ours_and_needs_force(runs, tmp_path):
    _, (good, _), (fair, _), _ = runs
    out = tmp_path / "cmp.json"
    done = _cli([good, fair, "--out", out, "--bootstrap", "300"])
    assert done.exit_code == 0, done.output
    data = json.loads(out.read_text())
    assert data["schema"] == COMPARE_SCHEMA and data["bootstrap"]["resamples"] == 300
    assert [p["metric"] for p in data["pairs"]] == ["f1", "ap50"] and "p_value" in data
    assert "--bootstrap 300" in data["command"]
    assert "F1" in done.output and "95% interval" in done.output
    again = _cli([good, fair, "--out", out])
    assert again.exit_code == 2 and "use --force" in again.output
    assert _cli([good, fair, "--out", out, "--force"]).exit_code == 0
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": 1}')
    refused = _cli([good, fair, "--out", foreign, "--force"])
    assert refused.exit_code == 2 and "not written by irstd-bench" in refused.output
    assert foreign.read_text() == '{"mine": 1}'
    inside = _cli([good, fair, "--out", good, "--force"])
    assert inside.exit_code == 2 and "inside the input" in inside.output


def test_older_results_are_compared_on_f1_from_their_per_image_csv(runs, tmp_path):
    _, (good, good_result), (fair, _), _ = runs
    data = json.loads(fair.read_text())
    del data["per_image"]
    fair.write_text(json.dumps(data))
    result = compare_runs([good, fair], resamples=200)
    assert [p.metric for p in result.pairs] == ["f1"]
    assert any("fair: AP50 not compared" in n for n in result.notes)
    (fair.parent / data["per_image_csv"]).unlink()
    with pytest.raises(InputError, match="no per-image data"):
        compare_runs([good, fair], resamples=200)


def test_ap50_undefined_for_score_maps_under_centroid_is_neither_stored_nor_compared(tmp_path):
    from irstd_bench.targets import mask_to_targets

    rng = np.random.default_rng(4)
    truth, maps = [], {"a": [], "b": []}
    for i in range(10):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[5 + i : 8 + i, 10:13] = 255
        truth.append((f"im{i}", mask_to_targets(mask)))
        for name in maps:
            score = np.zeros((SIZE, SIZE), np.float32)
            if rng.random() < 0.7:
                score[6 + i, 11] = rng.uniform(0.6, 1.0)  # a one-pixel peak on the target
            maps[name].append(score)
    paths = []
    for name, images in maps.items():
        preds = [Prediction.from_score_map(stem, m) for (stem, _), m in zip(truth, images, strict=True)]
        meta = {"method": name, "dataset": "synthetic", "split": "test"}
        result = evaluate(truth, preds, matcher="centroid:3", conf=0.5, bootstrap=200, meta=meta)
        assert result.metrics["ap50"] is None and result.metrics["ci95"]["ap50"] is None
        assert not result.per_image.has_ap50 and result.per_image.pixels is not None
        paths.append(tmp_path / f"{name}.json")
        result.write(paths[-1])
    comparison = compare_runs(paths, resamples=100)
    assert [p.metric for p in comparison.pairs] == ["f1"]
    assert any("a: AP50 not compared (AP50 undefined for score maps" in n for n in comparison.notes)


# Hostile battery over compare (issue 25, last part: bench/hostile_new_surfaces.py). Each test
# fails on the code before its fix.


def _edited(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def _refused(result, *needles):
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d["per_image"]["tp"].__setitem__(0, d["per_image"]["tp"][0] - 1), "give tp = "),
        (lambda d: d["per_image"]["pred"].__setitem__(0, d["per_image"]["pred"][0] + 5), "give fp = "),
        (lambda d: d["per_image"]["gt"].__setitem__(0, d["per_image"]["gt"][0] + 2), "give fn = "),
        (lambda d: d["metrics"].__setitem__("f1", 0.999), "give f1 = "),
        (lambda d: d["metrics"].__setitem__("ap50", 0.999), "give ap50 = "),
        (lambda d: d["per_image"]["ap50"]["scores"].__setitem__(-1, 1e6), "give ap50 = "),
    ],
    ids=["tp", "pred", "gt", "f1", "ap50", "ap-candidate"],
)
def test_per_image_numbers_must_give_the_results_own_metrics(runs, tmp_path, change, needle):
    # The bootstrap resamples per_image while the table states metrics: a file where the two
    # disagree was compared (and reported) with an interval around another run's value.
    _, (good, _), (fair, _), _ = runs
    _edited(fair, change)
    with pytest.raises(InputError, match="fair.json: its per-image numbers " + needle):
        compare_runs([good, fair], resamples=50)
    out = tmp_path / "cmp.json"
    _refused(_cli([good, fair, "--out", out]), "fair.json", needle)
    assert not out.exists()


def test_per_image_csv_of_an_older_file_must_give_its_metrics(runs):
    _, (good, _), (fair, _), _ = runs
    data = json.loads(fair.read_text())
    del data["per_image"]
    fair.write_text(json.dumps(data))
    csv = fair.parent / data["per_image_csv"]
    lines = csv.read_text().splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    for column in ("gt", "pred", "tp"):  # one more match on the first image: consistent in itself
        first[header.index(column)] = str(int(first[header.index(column)]) + 1)
    csv.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    with pytest.raises(InputError, match="per_image.csv: its per-image numbers give tp = "):
        compare_runs([good, fair], resamples=50)


@pytest.mark.parametrize("value", [10**30, 2**63, 10**12 + 1])
def test_per_image_counts_beyond_the_limit_are_one_line(runs, value):
    # 10**30 raised OverflowError (a traceback) when the counts became int64.
    _, (good, _), (fair, _), _ = runs
    _edited(fair, lambda d: d["per_image"]["gt"].__setitem__(0, value))
    _refused(_cli([good, fair]), "fair.json", "per_image.gt", "whole numbers in [0, 1000000000000]")


@pytest.mark.parametrize("value", ["1000000000000", str(10**6)])
def test_bootstrap_beyond_the_limit_is_one_line_before_any_work(runs, tmp_path, value):
    # --bootstrap 10**12 allocated (10**12, N) multiplicities: a MemoryError traceback.
    _, (good, _), (fair, _), _ = runs
    out = tmp_path / "cmp.json"
    _refused(_cli([good, fair, "--bootstrap", value, "--out", out]), f"--bootstrap {value}: must be in [1, 100000]")
    assert not out.exists()
    for command in (["eval", "--bootstrap", value], ["report", str(good), "--bootstrap", value]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2 and f"--bootstrap {value}: must be in [0, 100000]" in result.output


def test_resamples_times_images_beyond_memory_are_refused_before_allocating():
    from irstd_bench.evaluate import MAX_RESAMPLES, BootstrapSettings
    from irstd_bench.evaluate._bootstrap import MAX_RESAMPLE_CELLS

    with pytest.raises(InputError, match="--bootstrap 100001: at most 100000"):
        BootstrapSettings(MAX_RESAMPLES + 1, 0)
    images = MAX_RESAMPLE_CELLS // MAX_RESAMPLES + 1
    with pytest.raises(InputError, match=f"--bootstrap 100000 over {images} images"):
        resample_counts(images, MAX_RESAMPLES, 0)
    assert resample_counts(3, 2, 0).shape == (2, 3)


def test_names_from_the_files_stay_on_their_row_of_the_table(runs):
    # A line break or an escape sequence in a method name reached the terminal as it was.
    _, (good, _), (fair, _), _ = runs
    _edited(fair, lambda d: d.__setitem__("method", "evil\n# heading\x1b[2J"))
    result = _cli([good, fair, "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and not any(ln.startswith("# heading") for ln in result.output.splitlines())
    assert "good  evil # heading [2J  F1" in result.output


def test_runs_of_no_images_are_refused_not_an_empty_table(runs, tmp_path):
    # Two runs of 0 images exited 0 with a table without rows.
    _, (good, _), (fair, _), _ = runs

    def no_images(d):
        d["per_image"] = {"image": [], "gt": [], "pred": [], "tp": [], "pixels": None, "ap50": None}
        d["metrics"].update(tp=0, fp=0, fn=0, precision=None, recall=None, f1=None, ap50=None)
        del d["per_image_csv"]

    out = tmp_path / "cmp.json"
    done = _cli([_edited(good, no_images), _edited(fair, no_images), "--out", out])
    _refused(done, "nothing to compare over 0 images")
    assert not out.exists()


def test_a_refused_out_costs_no_bootstrap(runs, tmp_path, monkeypatch):
    # --out was checked after the bootstrap: a user's file there was refused only after the work.
    import irstd_bench.compare as compare_module

    def no_bootstrap(*args, **kwargs):
        raise AssertionError("the bootstrap ran before --out was checked")

    monkeypatch.setattr(compare_module, "resample_counts", no_bootstrap)
    _, (good, _), (fair, _), _ = runs
    mine = tmp_path / "mine.json"
    mine.write_text('{"mine": 1}')
    _refused(_cli([good, fair, "--out", mine, "--force"]), "mine.json")
    assert mine.read_text() == '{"mine": 1}'
