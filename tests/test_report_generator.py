"""reports/generator/make_reports.py: README tables built from the results files, not typed; one
generator for every result set (reports/nuaa-sirst, reports/nudt-sirst)."""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parents[1] / "reports"
NUAA_REPORTS = REPORTS / "nuaa-sirst"
sys.path.insert(0, str(REPORTS / "generator"))
import make_reports  # noqa: E402  (a script folder, not a package)
import report_sets  # noqa: E402
import score_classical  # noqa: E402

RS = report_sets.NUAA

FAMILY = "split_EFLNet"
ACM_SEEDS = ("acm-seed0", "acm-seed1", "acm-seed2")


def _copy(results: Path, stem: str, as_stem: str | None = None) -> None:
    """Copy one method's results (JSON + CSVs, both matchers) from the committed results/."""
    for tag in make_reports.MATCHERS:
        src_dir = NUAA_REPORTS / "results" / f"{FAMILY}-test" / tag
        dst_dir = results / f"{FAMILY}-test" / tag
        dst_dir.mkdir(parents=True, exist_ok=True)
        for src in src_dir.glob(f"{stem}.*"):
            shutil.copy(src, dst_dir / src.name.replace(stem, as_stem or stem, 1))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    if not (NUAA_REPORTS / "results" / f"{FAMILY}-test" / "iou50" / "tophat.json").is_file():
        pytest.skip("committed NUAA-SIRST results not present")
    root = tmp_path / "results"
    for stem in (*ACM_SEEDS, "tophat"):
        _copy(root, stem)
    return root


def test_seeds_merge_into_mean_std_and_cells_come_from_the_files(results: Path) -> None:
    rows = make_reports.collect(RS, FAMILY, results)
    assert [r.method for r in rows] == ["ACM", "Top-Hat"]
    acm, tophat = rows
    assert acm.trained and acm.seeds == 3 and not tophat.trained
    f1 = [json.loads((results / f"{FAMILY}-test" / "iou50" / f"{s}.json").read_text())["metrics"]["f1"]
          for s in ACM_SEEDS]
    table = make_reports.markdown_table(rows, RS, FAMILY, make_reports.DETAILED_COLUMNS)
    assert f"{statistics.mean(f1):.3f} ± {statistics.stdev(f1):.3f}" in table
    top_f1 = json.loads((results / f"{FAMILY}-test" / "iou50" / "tophat.json").read_text())["metrics"]["f1"]
    assert "| Top-Hat | " in table and f"{top_f1:.3f}" in table
    assert "*EFLNet paper" in table and "*0.870*" in table  # the paper rows stay


def test_older_evaluator_rows_are_marked(results: Path) -> None:
    rows = {r.method: r for r in make_reports.collect(RS, FAMILY, results)}
    assert not rows["ACM"].older_evaluator  # today's evaluator, pixel level recorded
    assert not rows["Top-Hat"].older_evaluator  # today's evaluator: pixel metrics agree across matchers
    centroid = results / f"{FAMILY}-test" / "centroid3" / "tophat.json"
    data = json.loads(centroid.read_text())
    data["metrics"]["iou"] = data["metrics"]["iou"] / 2  # as if taken at another level
    # by an evaluator that kept no per-image numbers (today's would refuse metrics they do not give)
    for key in ("per_image", "per_image_csv"):
        data.pop(key)
    centroid.write_text(json.dumps(data))
    rows = {r.method: r for r in make_reports.collect(RS, FAMILY, results)}
    assert rows["Top-Hat"].older_evaluator
    assert make_reports.label(rows["Top-Hat"], RS, FAMILY).endswith(make_reports.OLDER_MARK)


def _edit_tophat(results: Path, **settings) -> None:
    """Rewrite both matchers' Top-Hat files: created before the fixed level, ``settings`` updated
    (a value of ``...`` removes the key)."""
    for tag in make_reports.MATCHERS:
        path = results / f"{FAMILY}-test" / tag / "tophat.json"
        data = json.loads(path.read_text())
        data["created"] = "2026-11-01T00:00:00+00:00"  # before PIXEL_LEVEL_FIXED_SINCE
        for key, value in settings.items():
            if value is ...:
                data["settings"].pop(key, None)
            else:
                data["settings"][key] = value
        path.write_text(json.dumps(data))


def test_recorded_pixel_level_decides_the_older_mark(results: Path) -> None:
    # The level the file records wins over its creation time.
    _edit_tophat(results, pixel_threshold=make_reports.PIXEL_THRESHOLD)
    assert not make_reports.collect(RS, FAMILY, results)[1].older_evaluator
    _edit_tophat(results, pixel_threshold=make_reports.PIXEL_THRESHOLD / 2)
    tophat = make_reports.collect(RS, FAMILY, results)[1]
    assert tophat.method == "Top-Hat" and tophat.older_evaluator
    _edit_tophat(results, pixel_threshold=None)  # boxes: no pixel metrics, no level to differ
    assert not make_reports.collect(RS, FAMILY, results)[1].older_evaluator
    # A file without the key (an older evaluator's): the creation time decides, as before.
    _edit_tophat(results, pixel_threshold=...)
    assert make_reports.collect(RS, FAMILY, results)[1].older_evaluator


def test_two_files_of_one_model_based_method_are_refused(results: Path) -> None:
    _copy(results, "tophat", "top-hat")
    with pytest.raises(SystemExit, match="Top-Hat"):
        make_reports.collect(RS, FAMILY, results)


def test_replace_block_keeps_the_text_around_the_markers(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    begin, end = make_reports.BEGIN.format(key="k"), make_reports.END.format(key="k")
    path.write_text(f"before\n{begin}\nold table\n{end}\nafter\n")
    make_reports.replace_block(path, "k", "new table")
    assert path.read_text() == f"before\n{begin}\nnew table\n{end}\nafter\n"
    with pytest.raises(SystemExit, match="markers"):
        make_reports.replace_block(path, "other", "x")


def test_one_generator_per_result_set(results: Path, tmp_path: Path) -> None:
    nudt = report_sets.NUDT
    assert nudt.here == REPORTS / "nudt-sirst" and nudt.data_arg == "../shared/datasets/NUDT-SIRST"
    assert nudt.dataset_args() == ["--dataset", "nudt", "--root", "../shared/datasets/NUDT-SIRST"]
    # 50_50 has no val split: its rule names 50_50/train; other families use their val split.
    assert nudt.threshold_split("50_50") == "50_50/train"
    assert nudt.threshold_split("split_EFLNet") == "split_EFLNet/val" == RS.threshold_split("split_EFLNet")
    # The same rows, laid out with each set's typed paper rows.
    rows = make_reports.collect(RS, FAMILY, results)
    nuaa_table = make_reports.markdown_table(rows, RS, FAMILY, make_reports.DETAILED_COLUMNS)
    nudt_table = make_reports.markdown_table(rows, nudt, FAMILY, make_reports.DETAILED_COLUMNS)
    assert "*0.870*" in nuaa_table and "*0.947*" in nudt_table and "*0.870*" not in nudt_table
    assert "NUDT-SIRST column" in make_reports.family_heading(rows, nudt, FAMILY)
    assert make_reports.collect(nudt, "50_50", tmp_path / "none") == []


def test_score_classical_commands_of_a_baseline_and_of_bundled_weights(tmp_path: Path) -> None:
    nudt = report_sets.NUDT
    out = report_sets.REPO / "reports" / "nudt-sirst" / "work" / "50_50" / "x"
    cmd, read = score_classical.predictions("tophat", nudt, "50_50/train", out, "1")
    assert cmd[:2] == ["baseline", "tophat"] and read == out / "scoremaps"
    assert cmd[cmd.index("--split") + 1] == "50_50/train" and cmd[cmd.index("--root") + 1] == nudt.data_arg
    assert cmd[cmd.index("--out") + 1] == "reports/nudt-sirst/work/50_50/x"
    cmd, read = score_classical.predictions("weights:nuaa-eflnet-n", nudt, "split_EFLNet/val", out, "1")
    assert cmd[:3] == ["predict", "--weights", "nuaa-eflnet-n"] and read == out
    assert cmd[cmd.index("--format") + 1] == "coco" and "--dataset" in cmd and "nudt" in cmd


def test_bundled_weights_are_a_cross_dataset_row_only_on_another_dataset() -> None:
    # The checkpoint records the dataset it was trained on (NUAA-SIRST).
    nuaa_label = score_classical.weights_label("nuaa-eflnet-n", report_sets.NUAA)
    nudt_label = score_classical.weights_label("nuaa-eflnet-n", report_sets.NUDT)
    assert "cross-dataset" not in nuaa_label and nudt_label == nuaa_label + " (cross-dataset)"


def _finished_run(folder: Path, epochs: int, done: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "args.json").write_text(json.dumps(
        {"model": "acm", "recipe": "authors", "protocol": "cpu-windows-256", "seed": 1, "epochs": epochs}))
    rows = "".join(f"{e},0.1,0.5,2.5,9.0\n" for e in range(1, done + 1))
    (folder / "results.csv").write_text("epoch,lr,train/loss,time_s,cpu_s\n" + rows)
    return folder


def test_publish_reads_only_finished_runs_and_their_cost(tmp_path: Path) -> None:
    import publish_protocol_runs as publish

    assert publish.run_facts(_finished_run(tmp_path / "acm-authors-s1", 4, 3)) is None  # 3 of 4 epochs
    facts = publish.run_facts(_finished_run(tmp_path / "acm-authors-s2", 4, 4))
    assert facts == {"run": "acm-authors-s2", "model": "acm", "recipe": "authors", "protocol": "cpu-windows-256",
                     "seed": 1, "epochs": 4, "train_wall_s": 10.0, "train_cpu_s": 36.0, "epochs_cpu_timed": 4}
    # epochs from before the cpu_s column count at the mean of the timed ones
    partly = _finished_run(tmp_path / "acm-authors-s3", 4, 4)
    text = (partly / "results.csv").read_text().splitlines()
    text[1] = text[1].rsplit(",", 1)[0] + ","
    (partly / "results.csv").write_text("\n".join(text) + "\n")
    facts = publish.run_facts(partly)
    assert facts["train_cpu_s"] == 36.0 and facts["epochs_cpu_timed"] == 3


def test_published_runs_name_protocol_recipe_epochs_and_cost_in_the_row(results: Path, tmp_path: Path) -> None:
    import dataclasses

    import publish_protocol_runs as publish

    rs = dataclasses.replace(RS, folder=str(tmp_path / "set"))  # an absolute folder: rs.here is it
    runs = [{"run": f"acm-authors-s{k}", "model": "acm", "recipe": "authors", "protocol": "cpu-windows-256",
             "seed": k, "epochs": 150, "train_wall_s": 5400.0 * (k + 1), "train_cpu_s": 3600.0 * (k + 1),
             "epochs_cpu_timed": 150}
            for k in range(3)]
    folder = rs.here / "predictions" / FAMILY / "cpu-windows-256"
    folder.mkdir(parents=True)
    (folder / publish.RUNS_FILE).write_text(json.dumps({"protocol": "cpu-windows-256", "family": FAMILY,
                                                        "runs": runs}))
    rows = make_reports.collect(rs, FAMILY, results)
    table = make_reports.markdown_table(rows, rs, FAMILY, make_reports.DETAILED_COLUMNS)
    expected = "ACM (ours, cpu-windows-256, authors recipe, 150 epochs, 2.0 CPU-h and 3.0 h wall per seed, 3 seeds)"
    assert expected in table
    # another family's runs say nothing about this one
    assert "cpu-windows-256" not in make_reports.label(rows[0], rs, "idx_427")


def test_variant_runs_get_their_own_row_after_their_network(results: Path, tmp_path: Path) -> None:
    # A run that is not the protocol's own (another training, an earlier recipe) is published with
    # --variant: its own stem, title, predictions folder and row, never merged with the protocol's seeds.
    import argparse
    import dataclasses

    import publish_protocol_runs as publish

    names = publish.publication_names("ACM", "acm", 0, "cpu-windows-256", "engine-training")
    assert names == {"label": "ACM, engine-training (seed 0)", "stem": "acm-engine-training-seed0",
                     "folder": "cpu-windows-256+engine-training"}
    assert publish.publication_names("ACM", "acm", 2, "cpu-windows-256", None) == {
        "label": "ACM (seed 2)", "stem": "acm-seed2", "folder": "cpu-windows-256"}
    for bad in ("Engine", "engine training", "-x", "a/b", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            publish.variant_type(bad)

    for tag in make_reports.MATCHERS:  # ACM seed 0's figures, published again as a variant
        folder = results / f"{FAMILY}-test" / tag
        data = json.loads((folder / "acm-seed0.json").read_text())
        data["method"] = names["label"]
        (folder / f"{names['stem']}.json").write_text(json.dumps(data))
    rs = dataclasses.replace(RS, folder=str(tmp_path / "set"))
    record = {"run": "acm-engine-s0", "model": "acm", "recipe": None, "protocol": "cpu-windows-256", "seed": 0,
              "epochs": 150, "train_wall_s": 7200.0, "train_cpu_s": 3600.0, "epochs_cpu_timed": 150,
              "variant": "engine-training"}
    runs_dir = rs.here / "predictions" / FAMILY / names["folder"]
    runs_dir.mkdir(parents=True)
    (runs_dir / publish.RUNS_FILE).write_text(json.dumps(
        {"protocol": "cpu-windows-256", "variant": "engine-training", "family": FAMILY, "runs": [record]}))
    rows = make_reports.collect(rs, FAMILY, results)
    assert [r.method for r in rows] == ["ACM", "ACM, engine-training", "Top-Hat"]
    assert rows[0].seeds == 3 and rows[1].seeds == 1 and rows[1].trained
    table = make_reports.markdown_table(rows, rs, FAMILY, make_reports.DETAILED_COLUMNS)
    assert ("ACM, engine-training (ours, cpu-windows-256, the engine's default training, 150 epochs, "
            "1.0 CPU-h and 2.0 h wall per seed, seed 0)") in table
    assert "| ACM (ours, " in table and "authors recipe" not in table  # no runs.json of the protocol's own


def test_keep_predictions_replaces_only_when_asked_and_never_leaves_a_part(tmp_path: Path) -> None:
    # One helper keeps predictions in reports/ for both scripts: score_classical.py refuses to
    # replace other bytes (replace=False), publish_protocol_runs.py replaces its own run's folder.
    from evaluate_runs import keep_predictions

    run = tmp_path / "run"
    run.mkdir()
    (run / "a.png").write_bytes(b"one")
    (run / "b.png").write_bytes(b"two")
    kept = tmp_path / "set" / "predictions" / "run" / "val"
    keep_predictions(run, kept, replace=True)
    assert sorted(p.name for p in kept.iterdir()) == ["a.png", "b.png"] and (kept / "b.png").read_bytes() == b"two"
    mtime = (kept / "a.png").stat().st_mtime_ns
    keep_predictions(run, kept, replace=False)  # the same bytes: nothing written, no refusal
    assert (kept / "a.png").stat().st_mtime_ns == mtime
    (run / "b.png").unlink()
    (run / "a.png").write_bytes(b"new")
    with pytest.raises(SystemExit, match="exists with other predictions"):
        keep_predictions(run, kept, replace=False)
    assert (kept / "b.png").is_file()  # refused: untouched
    keep_predictions(run, kept, replace=True)
    assert [p.name for p in kept.iterdir()] == ["a.png"] and (kept / "a.png").read_bytes() == b"new"
    assert sorted(p.name for p in kept.parent.iterdir()) == ["val"]  # no staged or old copy left
    single = tmp_path / "val.json"
    single.write_text("[]")
    keep_predictions(single, tmp_path / "set" / "bundled" / "val.json", replace=False)
    single.write_text("[{}]")
    with pytest.raises(SystemExit, match="val.json: exists with other predictions"):
        keep_predictions(single, tmp_path / "set" / "bundled" / "val.json", replace=False)
