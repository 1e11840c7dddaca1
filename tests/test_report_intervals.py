"""Report tables with bootstrap intervals, seed-mean intervals and not-significant marks; crowded
figures (titles, legends, the default selection of methods)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench.cli import cli
from irstd_bench.errors import InputError
from irstd_bench.evaluate import Prediction, evaluate, percentile_interval, resample_counts
from irstd_bench.report import build_report, grid_size_px, load_results
from irstd_bench.report._plots import _legend, new_figure
from irstd_bench.report._selection import DEFAULT_BEST
from irstd_bench.targets import mask_to_targets

SIZE = 32
N_IMAGES = 30
SPLIT = "50_50/test"


def make_tree(root: Path) -> list[tuple[str, np.ndarray]]:
    """A NUDT-SIRST tree of ``N_IMAGES`` images with 1-2 square targets; returns (stem, boxes)."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks", "50_50"):
        (root / sub).mkdir(parents=True)
    out = []
    for i in range(N_IMAGES):
        stem = f"{i + 1:06d}"
        mask = np.zeros((SIZE, SIZE), np.uint8)
        for k in range(int(rng.integers(1, 3))):
            x, y = int(rng.integers(2, 12)) + 14 * k, int(rng.integers(2, 26))
            mask[y : y + 3, x : x + 3] = 255
        Image.fromarray((40 + mask // 2).astype(np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
        out.append((stem, mask_to_targets(mask).boxes))
    (root / "50_50" / "test.txt").write_text("\n".join(s for s, _ in out) + "\n")
    return out


def write_method(folder: Path, root: Path, truth, name: str, found: float, seed: int, false_alarms: float = 0.3):
    """Results of a method finding each target with probability ``found`` (exact box)."""
    rng = np.random.default_rng(seed)
    preds, gt = [], []
    for stem, boxes in truth:
        kept = [b for b in boxes if rng.random() < found]
        if rng.random() < false_alarms:
            kept.append(np.array([0, 0, 2, 2]))
        boxes_out = np.array(kept, np.int64).reshape(-1, 4)
        preds.append(Prediction.from_boxes(stem, boxes_out, rng.uniform(0.5, 1, len(boxes_out)), (SIZE, SIZE)))
        gt.append((stem, mask_to_targets(np.asarray(Image.open(root / "masks" / f"{stem}.png")))))
    meta = {"method": name, "dataset": "nudt", "dataset_title": "NUDT-SIRST", "root": str(root), "split": SPLIT}
    path = folder / f"{name.replace(' ', '_').replace('(', '').replace(')', '')}.json"
    evaluate(gt, preds, conf=0.5, meta=meta, bootstrap=300, bootstrap_seed=0).write(path)
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("intervals")
    root = base / "data"
    truth = make_tree(root)
    runs = base / "runs"
    runs.mkdir()
    paths = {
        "best": write_method(runs, root, truth, "Best", 0.95, 1),
        "twin": write_method(runs, root, truth, "Twin", 0.93, 2),
        "weak": write_method(runs, root, truth, "Weak", 0.15, 3, false_alarms=0.9),
        "seeds": [write_method(runs, root, truth, f"Seeded (seed {k})", 0.6, 10 + k) for k in range(3)],
    }
    paths["extra"] = [write_method(runs, root, truth, f"M{k}", 0.3 + 0.05 * k, 20 + k) for k in range(6)]
    return base, root, paths


def _markdown_rows(text: str) -> dict[str, list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Method")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in r.strip("|").split("|")] for r in rows)}


def test_single_run_interval_in_the_table_is_evals_own(tree, tmp_path):
    base, _, paths = tree
    report = build_report([paths["best"], paths["weak"]], tmp_path / "r", qualitative=0, bootstrap=300)
    main = report.tables[0]
    f1 = [c.metric for c in main.columns].index("f1")
    # Same seed, same images in the same order: the report's resamples are eval's.
    assert main.intervals[0][f1] == load_results(paths["best"]).intervals["f1"]
    rows = _markdown_rows((tmp_path / "r" / "tables" / "main.md").read_text())
    lo, hi = main.intervals[0][f1]
    assert f"[{lo:.3f}, {hi:.3f}]" in rows["Best"][f1]
    assert "95 % interval over images" in main.caption


def test_seed_rows_have_the_interval_of_the_seed_mean_over_jointly_resampled_images(tree, tmp_path):
    _, _, paths = tree
    report = build_report(paths["seeds"], tmp_path / "r", qualitative=0, bootstrap=400, bootstrap_seed=3)
    main = report.tables[0]
    assert main.rows == ["Seeded (3 seeds)"]
    f1 = [c.metric for c in main.columns].index("f1")
    # Reference: per resample, each seed's F1 from its per-image CSV counts, then the mean over seeds.
    weights = resample_counts(N_IMAGES, 400, seed=3)
    per_seed = []
    for path in paths["seeds"]:
        with (path.parent / json.loads(path.read_text())["per_image_csv"]).open() as handle:
            rows = list(csv.DictReader(handle))
        tp, pred, gt = (np.array([int(r[k]) for r in rows]) for k in ("tp", "pred", "gt"))
        per_seed.append([2 * (w @ tp) / (w @ pred + w @ gt) for w in weights])
    want = percentile_interval(np.mean(per_seed, axis=0))
    assert main.intervals[0][f1] == pytest.approx(want, rel=1e-12)
    assert main.std(0, f1) is not None  # the spread over seeds is still there, beside it
    text = (tmp_path / "r" / "tables" / "main.md").read_text()
    assert " ± " in _markdown_rows(text)["Seeded (3 seeds)"][f1] and "[" in _markdown_rows(text)["Seeded (3 seeds)"][f1]
    assert "interval of the seed mean" in text and "not the spread over seeds" in text
    detailed = report.tables[1]
    assert all(detailed.intervals[i][0] is not None for i in range(len(detailed.rows)))  # each seed too


def test_rows_close_to_the_best_are_marked_and_a_dominated_row_is_not(tree, tmp_path):
    _, _, paths = tree
    report = build_report([paths["best"], paths["twin"], paths["weak"]], tmp_path / "r", qualitative=0)
    main = report.tables[0]
    f1 = [c.metric for c in main.columns].index("f1")
    best = main.best_rows(f1)
    assert best == {main.rows.index("Best")} or best == {main.rows.index("Twin")}
    other = ({0, 1} - best).pop()
    assert (other, f1) in main.indistinct and main.p_vs_best[other][f1] >= 0.05
    weak = main.rows.index("Weak")
    assert (weak, f1) not in main.indistinct and main.p_vs_best[weak][f1] < 0.01
    rows = _markdown_rows((tmp_path / "r" / "tables" / "main.md").read_text())
    assert rows[main.rows[other]][f1].endswith("\u2248") and not rows["Weak"][f1].endswith("\u2248")
    latex = (tmp_path / "r" / "tables" / "main.tex").read_text()
    assert "$\\approx$" in latex
    frame = list(csv.DictReader(io.StringIO((tmp_path / "r" / "tables" / "main.csv").read_text())))
    assert {"nudt/f1_ci_lo", "nudt/f1_ci_hi", "nudt/f1_p_vs_best"} <= set(frame[0])
    by_method = {r["Method"]: r for r in frame}
    assert float(by_method["Weak"]["nudt/f1_p_vs_best"]) == pytest.approx(main.p_vs_best[weak][f1])
    assert by_method[main.rows[min(best)]]["nudt/f1_p_vs_best"] == ""


def test_no_intervals_option_gives_paste_ready_cells_and_keeps_the_marks(tree, tmp_path):
    _, _, paths = tree
    done = CliRunner().invoke(
        cli,
        ["report", *map(str, [paths["best"], paths["twin"], paths["weak"]]), "--out", str(tmp_path / "r"),
         "--qualitative", "0", "--no-intervals"],
    )
    assert done.exit_code == 0, done.output
    text = (tmp_path / "r" / "tables" / "main.md").read_text()
    body = "\n".join(line for line in text.splitlines() if line.startswith("| "))
    assert "[" not in body and "\u2248" in body
    assert "--no-intervals" in json.loads((tmp_path / "r" / "report.json").read_text())["command"]
    off = build_report([paths["best"], paths["weak"]], tmp_path / "off", qualitative=0, bootstrap=0)
    assert off.tables[0].intervals is None and "[" not in (tmp_path / "off" / "tables" / "main.md").read_text()


def test_older_results_load_and_get_f1_intervals_from_their_csv_only(tree, tmp_path):
    _, _, paths = tree
    old = tmp_path / "old"
    old.mkdir()
    copies = []
    for key in ("best", "weak"):
        data = json.loads(paths[key].read_text())
        del data["per_image"], data["metrics"]["ci95"], data["settings"]["bootstrap"]
        for name in (data["per_image_csv"], data["per_target_csv"]):
            (old / name).write_bytes((paths[key].parent / name).read_bytes())
        copies.append(old / paths[key].name)
        copies[-1].write_text(json.dumps(data))
    assert load_results(copies[0]).intervals == {} and load_results(copies[0]).per_image is None
    report = build_report(copies, tmp_path / "r", qualitative=0)
    detailed = report.tables[1]
    columns = [c.metric for c in detailed.columns]
    assert detailed.intervals[0][columns.index("f1")] is not None
    assert detailed.intervals[0][columns.index("ap50")] is None  # no AP candidates in a CSV
    for name in ("per_image_csv",):
        for copy in copies:
            (old / json.loads(copy.read_text())[name]).unlink()
    bare = build_report(copies, tmp_path / "r2", qualitative=0)
    assert bare.tables[0].intervals is None


@pytest.mark.parametrize(
    "ci, message",
    [({"f1": [0.9, 0.1]}, "is not an interval"), ({"f1": "x"}, "must be \\[lo, hi\\]"), ("no", "must be an object")],
)
def test_a_broken_ci95_is_refused_naming_the_file(tree, tmp_path, ci, message):
    _, _, paths = tree
    data = json.loads(paths["best"].read_text())
    data["metrics"]["ci95"] = ci
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match=f"bad.json: metrics.ci95.*{message}" if isinstance(ci, dict) else message):
        load_results(bad)


# -- figures ------------------------------------------------------------------------------------


def test_crowded_figures_show_the_best_methods_with_titles_that_say_so(tree, tmp_path):
    _, _, paths = tree
    inputs = [paths["best"], paths["twin"], paths["weak"], *paths["seeds"], *paths["extra"]]  # 10 methods
    report = build_report(inputs, tmp_path / "r", qualitative=2)
    shown = json.loads((tmp_path / "r" / "report.json").read_text())["figure_methods"]
    assert len(shown) == DEFAULT_BEST and "Best" in shown and "Weak" not in shown
    pr = next(f for f in report.figures if f.name.startswith("pr_"))
    assert pr.title.startswith("Precision-recall, NUDT-SIRST (50_50/test, iou:0.5): 6 of 10 methods, best by F1")
    assert "--methods all" in pr.caption
    grid = report.qualitative[0]
    # Ground truth + one column per shown method (first seed only), not 13 runs.
    assert grid.columns[0] == "Ground truth" and len(grid.columns) == DEFAULT_BEST + 1
    assert "Seeded (seed 0)" in grid.columns and "Seeded (seed 1)" not in grid.columns
    assert grid.size_px == grid_size_px(2, DEFAULT_BEST + 1)
    assert len(report.tables[0].rows) == 10  # the tables keep every method

    named = build_report(inputs, tmp_path / "r2", qualitative=0, methods=["Weak"])
    assert "Weak" in json.loads((tmp_path / "r2" / "report.json").read_text())["figure_methods"]
    assert next(f for f in named.figures if f.name.startswith("pr_")).title.endswith("+ Weak")
    every = build_report(inputs, tmp_path / "r3", qualitative=0, methods=["all"])
    assert len(json.loads((tmp_path / "r3" / "report.json").read_text())["figure_methods"]) == 10
    assert ": 10 methods" in next(f for f in every.figures if f.name.startswith("pr_")).title
    done = CliRunner().invoke(cli, ["report", *map(str, inputs), "--out", str(tmp_path / "r4"), "--methods", "Nope"])
    assert done.exit_code == 2 and "--methods 'Nope': no such method" in done.output
    assert not (tmp_path / "r4").exists()


def test_legend_sits_beside_the_axes_not_on_the_data():
    figure = new_figure()
    ax = figure.add_subplot()
    for k in range(8):
        ax.plot([0, 1], [k / 8, 1 - k / 8], label=f"a long method name {k}")
    _legend(ax, title="method")
    figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    axes = ax.get_window_extent()
    assert legend.x0 >= axes.x1  # entirely right of the plotting area
    assert legend.x1 <= figure.bbox.x1 + 1  # and inside the figure
