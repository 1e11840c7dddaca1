"""``irstd-bench reproduce``: the plan, the time budget, the pack, and the whole path in --smoke mode."""

from __future__ import annotations

import json
import math
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench.cli import cli
from reference_model.reproduce import (
    DEFAULT_PLAN,
    MAX_FILE_BYTES,
    MAX_FILES,
    ModelInfo,
    PhaseBudget,
    Probe,
    RunSpec,
    allocate,
    registry_models,
    resolve_plan,
    scaled_warmup,
)
from reference_model.reproduce._budget import WINDOW_SAFETY, probe_from_run
from reference_model.reproduce._commands import command_args
from reference_model.reproduce._jobs import STOP_GRACE_S, Job, JobResult, run_jobs, start_server
from reference_model.reproduce._pack import PackResult, add_archive, add_file
from reference_model.reproduce._score import matcher_tag, store_predictions
from reference_model.reproduce._write import better_recipes

MODELS = {
    "eflnet-yolov7": ModelInfo({"authors": {"epochs": 300, "warmup_iters": 1000}, "paper": {"epochs": 400}}),
    "acm": ModelInfo({"authors": {"epochs": 300}}, default_recipe="authors"),
    "dnanet": ModelInfo({}),
}


# ---------------------------------------------------------------------------------- plan
def test_plan_keeps_what_the_registry_offers_and_says_why_the_rest_is_left_out():
    plan = (
        RunSpec("eflnet-yolov7", "authors", seeds=(0, 1, 2), priority=0, extra_seed_priority=6),
        RunSpec("eflnet-yolov7", "paper", seeds=(0, 1), priority=1, extra_seed_priority=7),
        RunSpec("eflnet-yolov7", "fast", priority=2),
        RunSpec("acm", priority=3),
        RunSpec("dnanet", priority=4),
        RunSpec("mshnet", priority=5),
    )
    units, left_out = resolve_plan(plan, MODELS)
    assert [u.run_id for u in units] == [
        "eflnet-yolov7-authors-s0",
        "eflnet-yolov7-paper-s0",
        "acm-authors-s0",  # the module's DEFAULT_RECIPE
        "dnanet-default-s0",  # no recipes: the engine's defaults
        "eflnet-yolov7-authors-s1",
        "eflnet-yolov7-authors-s2",
        "eflnet-yolov7-paper-s1",
    ]
    assert units[0].recipe_train["epochs"] == 300 and units[0].method == "EFLNet-YOLOv7 authors (seed 0)"
    reasons = {entry.model + "/" + str(entry.recipe): entry.reason for entry in left_out}
    assert reasons == {
        "eflnet-yolov7/fast": "model has no recipe 'fast' (its recipes: authors, paper)",
        "mshnet/None": "model not in the registry",
    }


def test_plan_without_the_recipe_option_runs_defaults_only():
    units, left_out = resolve_plan(DEFAULT_PLAN, MODELS, train_has_recipe=False)
    assert [u.run_id for u in units] == ["dnanet-default-s0", "acm-default-s0"]  # plan priorities
    assert {(e.model, e.recipe, e.reason) for e in left_out if e.model == "eflnet-yolov7"} == {
        ("eflnet-yolov7", "authors", "irstd-bench train has no --recipe option"),
        ("eflnet-yolov7", "paper", "irstd-bench train has no --recipe option"),
    }


def test_plan_max_seeds_and_only():
    units, left_out = resolve_plan(DEFAULT_PLAN, MODELS, max_seeds=1, only=lambda m: m != "dnanet")
    assert [u.run_id for u in units] == ["eflnet-yolov7-authors-s0", "eflnet-yolov7-paper-s0", "acm-authors-s0"]
    seeds_cut = [e for e in left_out if e.reason == "--max-seeds 1"]
    assert {(e.recipe, e.seeds) for e in seeds_cut} == {("authors", (1, 2)), ("paper", (1, 2))}
    assert any(e.model == "dnanet" and e.reason == "not selected (--only)" for e in left_out)


def test_default_plan_names_table_one_and_registry_is_read_at_run_time():
    models = {spec.model for spec in DEFAULT_PLAN}
    assert {"eflnet-yolov7", "eflnet-s", "acm", "alcnet", "dnanet", "mdvsfa", "agpcnet", "isnet", "mshnet"} <= models
    found = registry_models()
    assert {"acm", "alcnet", "dnanet", "eflnet-s"} <= set(found)
    for info in found.values():
        assert info.default_recipe is None or info.default_recipe in info.recipes


# ---------------------------------------------------------------------------------- budget
def _probe(key, epoch_s, startup_s=10.0, concurrency=2):
    return Probe(key, 2, epoch_s, startup_s, 30.0, 0, concurrency)


def test_allocate_scales_epochs_to_the_window_with_the_load_of_all_runs():
    units, _ = resolve_plan(
        (RunSpec("eflnet-yolov7", "authors", seeds=(0, 1)), RunSpec("acm"), RunSpec("dnanet")), MODELS
    )
    probes = {"eflnet-yolov7/authors": _probe("eflnet-yolov7/authors", 4.0), "acm/authors": _probe("acm/authors", 0.5),
              "dnanet/default": _probe("dnanet/default", 0.1)}
    scheduled, dropped = allocate(units, probes, window_s=300.0, default_epochs=100, min_epochs=5)
    assert dropped == []
    by_id = {s.unit.run_id: s for s in scheduled}
    load = 4 / 2  # four runs at once after a probe of two
    usable = WINDOW_SAFETY * 300.0 - 10.0  # minus the start-up the probe measured
    assert by_id["eflnet-yolov7-authors-s0"].epochs == math.floor(usable / (4.0 * load)) == 32
    assert by_id["eflnet-yolov7-authors-s1"].full_epochs == 300
    assert by_id["acm-authors-s0"].epochs == math.floor(usable / (0.5 * load)) == 260
    # Never more than the recipe's schedule (the engine's default without a recipe), nor max_epochs.
    assert (by_id["dnanet-default-s0"].epochs, by_id["dnanet-default-s0"].full_epochs) == (100, 100)
    scheduled, _ = allocate(units, probes, window_s=1e6, default_epochs=100, min_epochs=5, max_epochs=7)
    assert {s.epochs for s in scheduled} == {7}


def test_allocate_never_assumes_runs_faster_than_the_probe_measured():
    """A probe of four runs at once measured 10 s an epoch. Two runs at once are not assumed to
    take 5 s (the probe says nothing about a lighter load): 10 s; six runs: 10 x 6 / 4 = 15 s."""
    units, _ = resolve_plan((RunSpec("acm", seeds=(0, 1, 2, 3, 4, 5)),), MODELS)
    key = units[0].config_key
    probes = {key: _probe(key, 10.0, startup_s=5.0, concurrency=4)}
    usable = WINDOW_SAFETY * 1000.0 - 5.0
    for n_runs, epoch_s in ((1, 10.0), (2, 10.0), (4, 10.0), (6, 15.0)):
        scheduled, dropped = allocate(units[:n_runs], probes, window_s=1000.0, default_epochs=10**6, min_epochs=1)
        assert dropped == [] and len(scheduled) == n_runs
        assert {s.estimated_epoch_s for s in scheduled} == {epoch_s}, n_runs
        assert {s.epochs for s in scheduled} == {math.floor(usable / epoch_s)}, n_runs


def test_allocate_drops_the_lowest_priority_first_and_says_why():
    units, _ = resolve_plan(
        (RunSpec("eflnet-yolov7", "authors", seeds=(0, 1), extra_seed_priority=9), RunSpec("acm", priority=1),
         RunSpec("dnanet", priority=2)),
        MODELS,
    )
    probes = {
        "eflnet-yolov7/authors": _probe("eflnet-yolov7/authors", 20.0),
        "acm/authors": _probe("acm/authors", 0.5),
        "dnanet/default": Probe("dnanet/default", 0, None, None, 75.0, -15, 2),
    }
    # Runnable by probe: yolov7 s0, acm, yolov7 s1 (dnanet's probe failed). With 3 runs after a
    # probe of 2, yolov7 gets floor((0.9 * 150 - 10) / (20 * 3/2)) = 4 epochs, fewer than 6: the
    # lowest priority (yolov7 s1) gives way; with 2 runs, floor(125 / 20) = 6.
    scheduled, dropped = allocate(units, probes, window_s=150.0, default_epochs=100, min_epochs=6)
    assert [s.unit.run_id for s in scheduled] == ["eflnet-yolov7-authors-s0", "acm-authors-s0"]
    assert scheduled[0].epochs == 6
    reasons = {d.unit.run_id: d.reason for d in dropped}
    assert reasons["dnanet-default-s0"] == "timing probe finished no epoch in 75 s (exit code -15)"
    assert reasons["eflnet-yolov7-authors-s1"].startswith("time budget: gives way to eflnet-yolov7-authors-s0")
    # Memory: only two runs fit.
    scheduled, dropped = allocate(units, probes, window_s=1e5, default_epochs=100, min_epochs=1,
                                  memory_per_run_bytes=40e9, memory_total_bytes=100e9)
    assert len(scheduled) == 2 and dropped[-1].reason.startswith("device memory: 2 runs fit")
    # A run that cannot get its minimum even alone is dropped too.
    scheduled, dropped = allocate(units[:1], probes, window_s=20.0, default_epochs=100, min_epochs=1)
    assert scheduled == [] and dropped[0].reason == "time budget: 0 epochs fit (< 1)"


def test_compressed_schedule_scales_warmup():
    defaults = {"warmup_epochs": 3.0, "warmup_iters": 0}
    assert scaled_warmup({"epochs": 300, "warmup_iters": 1000}, defaults, 30, 300) == {
        "warmup_epochs": 0.3,
        "warmup_iters": 100,
    }
    assert scaled_warmup({"epochs": 300}, defaults, 300, 300) == {}


def test_probe_reads_epoch_times_of_results_csv(tmp_path):
    csv_path = tmp_path / "results.csv"
    csv_path.write_text("epoch,lr,time_s\n1,0.01,6.5\n2,0.01,4.0\n")
    probe = probe_from_run("acm/authors", csv_path, 20.0, 0, 3)
    assert (probe.epochs_done, probe.epoch_s, probe.startup_s, probe.ok) == (2, 4.0, 9.5, True)
    missing = probe_from_run("acm/authors", tmp_path / "none.csv", 20.0, -15, 3)
    assert not missing.ok and missing.epochs_done == 0


# ---------------------------------------------------------------------------------- commands
def test_command_args_follow_the_installed_options():
    args, missing = command_args(
        "train",
        {"model": "acm", "epochs": 3, "progress": False, "resize_masks": True, "ema": True, "no_such_setting": 1,
         "recipe": None},
    )
    assert args == ["train", "--model", "acm", "--epochs", "3", "--no-progress", "--resize-masks", "--ema"]
    assert missing == ["no_such_setting"]
    args, _ = command_args("eval", {"matcher": "iou:0.5"}, positional=("preds.json",))
    assert args == ["eval", "preds.json", "--match", "iou:0.5"]


def test_matcher_tags():
    assert [matcher_tag(m) for m in ("iou:0.5", "iou:0.25", "centroid:3", "nwd:0.5:12")] == [
        "iou50", "iou25", "centroid3", "nwd50"]


# ---------------------------------------------------------------------------------- outputs
def test_better_recipe_is_chosen_on_val_and_ties_choose_nothing():
    rows = [{"model": "eflnet-yolov7", "recipe": "authors", "val_best_f1_mean": 0.81},
            {"model": "eflnet-yolov7", "recipe": "paper", "val_best_f1_mean": 0.84},
            {"model": "acm", "recipe": "authors", "val_best_f1_mean": 0.7},
            {"model": "dnanet", "recipe": "a", "val_best_f1_mean": 0.5},
            {"model": "dnanet", "recipe": "b", "val_best_f1_mean": 0.5}]
    assert better_recipes(rows) == {"eflnet-yolov7": "paper"}



def test_stored_predictions_score_maps_become_8bit_pngs_boxes_are_copied(tmp_path):
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    (boxes / "predictions.json").write_text("[]")
    assert store_predictions(boxes, tmp_path / "boxes_stored") == 1
    assert (tmp_path / "boxes_stored" / "predictions.json").read_text() == "[]"
    scores = np.zeros((8, 10), np.float32)
    scores[2, 3], scores[4, 5] = 1.0, 0.5
    np.save(tmp_path / "a.npy", scores)
    faint = np.zeros((4, 4), np.float32)
    faint[1, 1] = 1.2 / 255  # would be an 8-bit 0/1 file, which the evaluator reads as a mask
    np.save(tmp_path / "b.npy", faint)
    stored = tmp_path / "stored"
    assert store_predictions(tmp_path, stored) == 2
    assert sorted(p.name for p in stored.iterdir()) == ["a.png", "b.png"]
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["a.npy", "b.npy"]  # predict's files stay
    a = np.asarray(Image.open(stored / "a.png"))
    assert a.dtype == np.uint8 and a[2, 3] == 255 and a[4, 5] == 128 and a.sum() == 255 + 128
    assert not np.asarray(Image.open(stored / "b.png")).any()


def test_pack_respects_file_count_and_size(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    members = []
    for i in range(6):  # incompressible, 400 kB each
        path = src / f"blob{i}.bin"
        path.write_bytes(rng.bytes(400_000))
        members.append((path, f"blobs/{path.name}"))
    big = src / "big.bin"
    big.write_bytes(rng.bytes(1_100_000))
    members.insert(2, (big, "blobs/big.bin"))
    out = tmp_path / "pack"
    out.mkdir()
    (out / "reproduce.log").write_text("log written by the GPU script\n")  # counts as one of the files
    result = PackResult()
    note = src / "RUNS.md"
    note.write_text("# runs\n")
    add_file(note, out, result, max_files=4)
    add_archive("runs", members, out, result, max_files=4, max_bytes=1_000_000)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["RUNS.md", "reproduce.log", "runs-2.tar.gz", "runs.tar.gz"]
    assert all(p.stat().st_size <= 1_000_000 for p in out.iterdir())
    packed = [m for f in ("runs.tar.gz", "runs-2.tar.gz") for m in tarfile.open(out / f).getnames()]
    assert packed == ["blobs/blob0.bin", "blobs/blob1.bin", "blobs/blob2.bin", "blobs/blob3.bin"]
    assert result.left_out[0] == "runs: blobs/big.bin (1100000 bytes, larger than a part)"
    assert result.left_out[1:] == [f"runs: blobs/blob{i}.bin (no file left of 4)" for i in (4, 5)]


# ---------------------------------------------------------------------------------- jobs
def test_jobs_past_the_deadline_are_stopped(tmp_path):
    sample = tmp_path / "data"
    assert CliRunner().invoke(cli, ["synth", "--out", str(sample), "--n-images", "12", "--size", "64"]).exit_code == 0
    train = ("train", "--root", str(sample), "--split", "split_synth", "--model", "acm", "--epochs", "10000",
             "--imgsz", "64", "--batch", "2", "--device", "cpu", "--workers", "0", "--no-progress")
    start_server()
    quick = [Job("bad", ("train", "--model", "no-such-model", "--root", str(sample)), tmp_path / "bad.log"),
             Job("help", ("synth", "--help"), tmp_path / "help.log")]
    results = run_jobs(quick, deadline=time.monotonic() + 120.0, max_parallel=1)  # one after the other
    assert results["bad"].returncode == 2 and not results["bad"].stopped
    assert "unknown model 'no-such-model'" in (tmp_path / "bad.log").read_text()
    assert results["help"].returncode == 0 and "Usage: irstd-bench synth" in (tmp_path / "help.log").read_text()
    started = time.monotonic()
    results = run_jobs([Job("long", (*train, "--out", str(tmp_path / "run")), tmp_path / "long.log"),
                        Job("later", ("synth", "--help"), tmp_path / "later.log")],
                       deadline=started + 3.0, max_parallel=1)
    assert results["long"].stopped and results["long"].returncode not in (0, None)
    assert results["later"] == JobResult("later", None, 0.0, True, False)  # never started
    assert time.monotonic() - started < 3.0 + 2 * STOP_GRACE_S + 2.0  # stopped, not waited for


# ---------------------------------------------------------------------------------- command
def test_cli_refuses_bad_input(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["reproduce", "--smoke", "--root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--smoke generates its own synthetic sample" in result.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("not ours")
    result = runner.invoke(cli, ["reproduce", "--smoke", "--out", str(tmp_path / "full")])
    assert result.exit_code == 2 and "is not an empty folder" in result.output
    assert (tmp_path / "full" / "mine.txt").read_text() == "not ours"
    result = runner.invoke(cli, ["reproduce", "--smoke", "--budget-s", "30", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "must exceed" in result.output
    assert PhaseBudget().after_training_s < 510


@pytest.mark.slow
def test_smoke_runs_the_whole_path(tmp_path):
    out, pack = tmp_path / "repro", tmp_path / "pack"
    result = CliRunner().invoke(
        cli,
        ["reproduce", "--smoke", "--only", "acm", "--only", "eflnet-s", "--out", str(out), "--pack-dir", str(pack),
         "--commit", "abc1234"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    # No progress bar anywhere: not in the command's own output, not in its steps' logs.
    logs = sorted((out / "work" / "logs").glob("*.log"))
    assert logs and all(b"\r" not in p.read_bytes() for p in logs) and "\r" not in result.output
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["schema"] == "irstd-bench/reproduce-summary" and summary["commit"] == "abc1234"
    assert summary["device"].startswith("CPU")
    runs = {r["run"]: r for r in summary["runs"]}
    assert set(runs) <= {"acm-" + r for r in ("default-s0", "authors-s0")} | {"eflnet-s-default-s0"}
    scored = [r for r in runs.values() if r["status"] == "scored"]
    assert scored, summary["runs"]
    for run in scored:
        # Every number comes with its command, epochs, wall time and seed, and equals the eval results.
        assert run["epochs_done"] == run["epochs_planned"] == 1 and run["train_wall_s"] > 0
        assert run["train_command"].startswith("irstd-bench train ") and "--epochs 1" in run["train_command"]
        assert f"--seed {run['seed']}" in run["train_command"]
        val = json.loads((out / "report" / "results" / "split_synth-val" / "iou50" / f"{run['run']}.json").read_text())
        test = json.loads(Path(run["test_results"]).read_text())
        threshold = val["metrics"]["best_f1_threshold"]
        assert run["scores"]["threshold"] == (threshold if threshold is not None else 0.5)
        assert test["conf"] == pytest.approx(run["scores"]["threshold"], rel=1e-5)
        assert run["scores"]["f1"] == test["metrics"]["f1"]
        assert run["scores"]["best_f1"] == test["metrics"]["best_f1"]
        assert test["split"] == "split_synth/test" and test["matcher"] == "iou:0.5"
    # Every plan entry is accounted for: run, left out, or dropped, with a reason.
    runs_md = (out / "report" / "RUNS.md").read_text()
    for entry in summary["left_out"]:
        assert f"- {entry['entry']}: {entry['reason']}" in runs_md
    assert any("not selected (--only)" in e["reason"] for e in summary["left_out"])
    for run in runs.values():
        assert run["train_command"] in runs_md
    assert (out / "report" / "report_split_synth_iou50" / "index.html").is_file()
    # What comes back from a device: at most 8 files of at most 16 MB.
    files = sorted(p.name for p in pack.iterdir())
    assert len(files) <= MAX_FILES and all((pack / f).stat().st_size <= MAX_FILE_BYTES for f in files)
    assert {"RUNS.md", "summary.json", "report.tar.gz", "runs.tar.gz"} <= set(files)
    names = tarfile.open(pack / "report.tar.gz").getnames()
    assert "report/RUNS.md" in names and "report/report_split_synth_iou50/index.html" in names


def test_a_failing_phase_still_leaves_runs_md_and_the_pack(tmp_path, monkeypatch):
    from reference_model.reproduce import ReproduceConfig, _run, reproduce

    def broken_probe(session, units):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(_run, "_probe", broken_probe)
    monkeypatch.setattr(_run, "start_server", lambda: 0.0)
    config = ReproduceConfig(out=tmp_path / "out", smoke=True, device="cpu", budget_s=300.0, command="test")
    with pytest.raises(RuntimeError, match="probe exploded"):
        reproduce(config)
    runs_md = (tmp_path / "out" / "pack" / "RUNS.md").read_text()
    assert "**Error**: probe phase failed: RuntimeError: probe exploded" in runs_md
    summary = json.loads((tmp_path / "out" / "pack" / "summary.json").read_text())
    assert summary["errors"] == ["probe phase failed: RuntimeError: probe exploded"] and summary["runs"] == []
