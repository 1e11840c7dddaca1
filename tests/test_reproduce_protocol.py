"""Named protocols and ``reproduce --protocol``: full schedules as a queue that ``--resume`` continues (issue 21)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_engine_models import make_nuaa_like
from test_engine_train import SIZES, _config

from irstd_bench.cli import cli
from irstd_bench.errors import InputError
from reference_model.engine import TrainConfig, load_checkpoint, train
from reference_model.engine.checkpoint import save_checkpoint
from reference_model.engine.config import apply_recipe
from reference_model.protocol import PROTOCOLS, find_protocol
from reference_model.reproduce._full import RunState, run_state
from reference_model.reproduce._plan import RunUnit


def _applied(model: str, protocol: str, **given) -> TrainConfig:
    config, _ = apply_recipe(TrainConfig(model=model, root="r", protocol=protocol, **given), {"protocol", *given})
    return config


@pytest.mark.parametrize(
    ("model", "sizes"),
    [("acm", (256, 512, 512)), ("alcnet", (256, 512, 512)), ("dnanet", (256, 256, 256)),
     ("mshnet", (256, 256, 256)), ("eflnet-n", (256, 512, 512))],
)
def test_windows_protocol_cuts_256_windows_from_the_recipes_own_canvas(model, sizes):
    config = _applied(model, "cpu-windows-256")
    assert (config.imgsz, config.base_size, config.eval_size) == sizes
    assert config.protocol == "cpu-windows-256"


def test_protocol_keeps_the_rest_of_the_recipe_and_explicit_options_win():
    plain, _ = apply_recipe(TrainConfig(model="acm", root="r"), set())
    windows = _applied("acm", "cpu-windows-256")
    assert (plain.imgsz, plain.base_size, plain.eval_size) == (480, 512, None)
    same = {"epochs", "batch", "optimizer", "lr", "schedule", "scale", "recipe", "grad_clip", "noise"}
    assert {k: getattr(plain, k) for k in same} == {k: getattr(windows, k) for k in same}
    assert _applied("acm", "cpu-windows-256", imgsz=128).imgsz == 128
    assert _applied("acm", "authors-sizes").imgsz == 480  # the recipe as it is
    with pytest.raises(InputError, match="--protocol 'nope'.*known: " + ", ".join(PROTOCOLS)):
        _applied("acm", "nope")
    assert find_protocol("cpu-windows-256").to_dict()["window"] == 256


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_nuaa_like(tmp_path_factory.mktemp("protocol") / "nuaa_like", SIZES, seed=4, targets_per_image=2)


def test_train_records_the_protocol_and_validates_and_predicts_at_the_canvas(data_root, tmp_path):
    config = _config(data_root, tmp_path / "r", base_size=320, imgsz=256, protocol="cpu-windows-256", epochs=1,
                     mosaic=0.0, mixup=0.0)
    result = train(config, explicit={"root", "dataset", "split", "model", "device", "out", "workers", "base_size",
                                     "protocol", "epochs", "progress"})
    args = json.loads((tmp_path / "r" / "args.json").read_text())
    assert (args["protocol"], args["imgsz"], args["base_size"], args["eval_size"]) == ("cpu-windows-256", 256, 320, 320)
    checkpoint = load_checkpoint(tmp_path / "r" / "last.pt")
    assert checkpoint["train_args"]["protocol"] == "cpu-windows-256"
    assert checkpoint["input_size"] == 320  # predict's default input side: the canvas, as validated
    assert result.epochs_done == 1


def _unit(model="acm", recipe="authors", seed=0) -> RunUnit:
    return RunUnit(model, recipe, seed, 0, 0, {"epochs": 3})


def test_run_state_continues_only_the_same_run(tmp_path):
    folder = tmp_path / "acm-authors-s0"
    assert run_state(folder, _unit(), 3, {}) == RunState(0, 3, False)
    folder.mkdir()
    # an empty folder (a run killed before it wrote anything) is started, not refused
    assert run_state(folder, _unit(), 3, {}) == RunState(0, 3, False)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an irstd-bench training folder"):
        run_state(folder, _unit(), 3, {})
    (folder / "notes.txt").unlink()
    args = {"model": "acm", "recipe": "authors", "seed": 0, "protocol": "cpu-windows-256", "root": str(tmp_path)}
    (folder / "args.json").write_text(json.dumps(args))
    (folder / "results.csv").write_text("epoch,time_s\n1,2.0\n2,2.5\n")
    (folder / "last.pt").write_bytes(b"x")
    (folder / ".irstd-bench-output.json").write_text(json.dumps(
        {"schema": "irstd-bench/output", "schema_version": 1, "command": "train",
         "files": ["args.json", "results.csv", "last.pt"]}))
    state = run_state(folder, _unit(), 3, {"seed": 0, "protocol": "cpu-windows-256", "root": str(tmp_path)})
    assert state == RunState(2, 3, True) and not state.finished
    with pytest.raises(InputError, match="a run of seed 0, the plan's is 1"):
        run_state(folder, _unit(seed=1), 3, {"seed": 1})
    with pytest.raises(InputError, match="a run of protocol 'cpu-windows-256', the plan's is 'authors-sizes'"):
        run_state(folder, _unit(), 3, {"protocol": "authors-sizes"})


def _reproduce(out, *extra):
    args = ["reproduce", "--smoke", "--protocol", "cpu-windows-256", "--only", "acm", "--out", str(out),
            "--budget-s", "1500", "--commit", "abc", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "report" / "summary.json").read_text())


@pytest.mark.slow
def test_reproduce_protocol_trains_full_schedules_and_resume_continues_them(tmp_path, monkeypatch):
    out = tmp_path / "repro"
    first = _reproduce(out, "--max-epochs", "1")
    (run,) = first["runs"]
    assert first["protocol"]["name"] == "cpu-windows-256"
    assert run["epochs_done"] == run["epochs_recipe"] == 1 and run["status"] == "scored"
    args = json.loads((out / "work" / "runs" / run["run"] / "args.json").read_text())
    assert args["protocol"] == "cpu-windows-256" and args["recipe"] == "authors"
    runs_md = (out / "report" / "RUNS.md").read_text()
    assert "Protocol `cpu-windows-256`" in runs_md

    # Not without --resume: the folder holds an earlier run.
    again = CliRunner().invoke(cli, ["reproduce", "--smoke", "--protocol", "cpu-windows-256", "--out", str(out)])
    assert again.exit_code == 2 and "--resume continues" in again.output

    # --resume with a longer schedule: the same run continues from its checkpoint (train --resume).
    second = _reproduce(out, "--max-epochs", "2", "--resume")
    (run2,) = second["runs"]
    assert run2["epochs_done"] == 2 and run2["status"] == "scored"
    commands = (out / "work" / "commands.txt").read_text()
    assert f"--resume {out / 'work' / 'runs' / run['run']}" in commands and "--epochs 2" in commands
    csv_rows = (out / "work" / "runs" / run["run"] / "results.csv").read_text().splitlines()
    assert len(csv_rows) == 3  # header + epoch 1 (first call) + epoch 2 (continued)
    assert (out / "work" / "preds" / f"{run['run']}-test-e1").is_dir()
    assert (out / "work" / "preds" / f"{run['run']}-test-e2").is_dir()  # new checkpoint, new predictions

    # A user's file in the report folder stops a resume before anything is replaced.
    (out / "report" / "mine.txt").write_text("keep")
    refused = CliRunner().invoke(cli, ["reproduce", "--smoke", "--protocol", "cpu-windows-256", "--resume",
                                       "--out", str(out)])
    assert refused.exit_code == 2 and "mine.txt" in refused.output
    assert (out / "report" / "mine.txt").read_text() == "keep"

    # A call killed midway (here: Ctrl-C in the train phase) leaves a report folder that the next
    # --resume still recognises as its own and replaces.
    (out / "report" / "mine.txt").unlink()
    from reference_model.reproduce import _run

    def interrupted(session, units):
        raise KeyboardInterrupt

    monkeypatch.setattr(_run, "_train_full", interrupted)
    killed = CliRunner().invoke(cli, ["reproduce", "--smoke", "--protocol", "cpu-windows-256", "--only", "acm",
                                      "--resume", "--out", str(out), "--max-epochs", "2"])
    assert killed.exit_code != 0 and not (out / "report" / "summary.json").exists()
    assert (out / "report" / "commands.txt").is_file()
    monkeypatch.undo()
    third = _reproduce(out, "--max-epochs", "2", "--resume")
    assert third["runs"][0]["epochs_done"] == 2 and third["runs"][0]["status"] == "scored"


def test_protocol_plan_caps_eflnet_n_at_150_epochs_and_keeps_the_recipes_schedule_elsewhere():
    from reference_model.reproduce._full import PROTOCOL_PLAN, full_epochs
    from reference_model.reproduce._plan import registry_models, resolve_plan

    units, left_out = resolve_plan(PROTOCOL_PLAN, registry_models(), train_has_recipe=True)
    assert not left_out
    epochs = {u.run_id: full_epochs(u, {"epochs": 100}) for u in units}
    assert epochs["eflnet-n-authors-s0"] == 150
    assert epochs["acm-authors-s0"] == epochs["acm-authors-s2"] == 300
    assert full_epochs(units[0], {}, cap=7) == 7


# Hostile battery over reproduce --protocol --resume (issue 25, last part:
# bench/hostile_new_surfaces.py). Each test fails on the code before its fix.


def _earlier_call(out, root, protocol="cpu-windows-256"):
    """What an earlier ``reproduce --protocol`` call left: a run folder of ours (args.json, a
    results.csv of one epoch, a real checkpoint) and a report folder of ours."""
    from irstd_bench._outputs import MANIFEST_NAME, write_manifest

    run = out / "work" / "runs" / "acm-authors-s0"
    run.mkdir(parents=True)
    args = {"model": "acm", "recipe": "authors", "seed": 0, "protocol": protocol, "split": "split_EFLNet",
            "dataset": "nuaa", "root": str(root.resolve())}
    (run / "args.json").write_text(json.dumps(args))
    (run / "results.csv").write_text("epoch,time_s\n1,2.0\n")
    # a checkpoint its loader accepts (what a resume needs of it is the train engine's concern)
    save_checkpoint(run / "last.pt", {"format": "irstd-bench/checkpoint", "version": 1, "model_name": "acm",
                                      "model_config": {}, "model": {}})
    (run / MANIFEST_NAME).write_text(json.dumps({"schema": "irstd-bench/output", "schema_version": 1,
                                                 "command": "train", "files": ["args.json", "results.csv", "last.pt"]}))
    (out / "report").mkdir()
    (out / "report" / "RUNS.md").write_text("earlier report\n")
    write_manifest(out / "report", "reproduce")
    return run


def _resume(root, out, *extra):
    return CliRunner().invoke(cli, ["reproduce", "--root", str(root), "--dataset", "nuaa", "--protocol",
                                    "cpu-windows-256", "--only", "acm", "--max-seeds", "1", "--device", "cpu",
                                    "--resume", "--out", str(out), "--budget-s", "600", *extra])


def _one_line(result, *needles):
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.output
    for needle in needles:
        assert needle in last, (needle, last)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("last.pt", b"not a checkpoint", "last.pt: corrupt or unreadable checkpoint"),
        ("results.csv", b"\x00\xff garbage\n1,2,3\n", "results.csv: not a readable results.csv"),
        ("args.json", b"[1, 2]", "args.json: not a run's settings"),  # AttributeError: a traceback
        ("args.json", b"{oops", "args.json: not valid JSON"),
    ],
    ids=["last.pt", "results.csv", "args-list", "args-not-json"],
)
def test_resume_checks_every_run_folder_before_anything_is_replaced(data_root, tmp_path,
                                                                    name, content, needle):
    # A corrupt run file surfaced only in the train phase, after the report folder was replaced
    # (or as a run "partial: continue with --resume" forever, exit 0).
    out = tmp_path / "repro"
    run = _earlier_call(out, data_root)
    (run / name).write_bytes(content)
    before = _files(out)
    _one_line(_resume(data_root, out), name, needle)
    assert _files(out) == before


def test_resume_with_another_protocol_is_refused_before_the_report_is_touched(data_root, tmp_path):
    out = tmp_path / "repro"
    _earlier_call(out, data_root, protocol="authors-sizes")
    before = _files(out)
    _one_line(_resume(data_root, out), "a run of protocol 'authors-sizes', the plan's is 'cpu-windows-256'")
    assert _files(out) == before


def test_resume_never_writes_into_a_users_folder_that_has_a_work_runs(data_root, tmp_path):
    # A user's folder with work/runs/ was taken for an earlier output: their work/commands.txt
    # was appended to and their logs replaced.
    out = tmp_path / "mine"
    (out / "work" / "runs").mkdir(parents=True)
    (out / "work" / "commands.txt").write_text("my own notes\n")
    before = _files(out)
    _one_line(_resume(data_root, out), "not an output of irstd-bench reproduce")
    assert _files(out) == before


def test_an_output_of_an_earlier_version_is_still_resumable_and_gets_its_manifest(data_root, tmp_path):
    from irstd_bench._outputs import MANIFEST_NAME
    from reference_model.reproduce._run import is_reproduce_output

    out = tmp_path / "repro"
    _earlier_call(out, data_root)
    assert is_reproduce_output(out)  # by its report's manifest and its run's
    (out / "report" / MANIFEST_NAME).unlink()
    assert is_reproduce_output(out)  # by its run's manifest alone (a call killed before its report)
    (out / "work" / "runs" / "acm-authors-s0" / MANIFEST_NAME).unlink()
    assert not is_reproduce_output(out)


def test_a_call_killed_midway_leaves_a_report_the_next_resume_may_replace(data_root, tmp_path, monkeypatch):
    # Killed during training, a call left report/commands.txt without a manifest: every later
    # --resume was refused ("report folder ... not written by irstd-bench") until the user deleted it.
    from irstd_bench._outputs import check_folder_replaceable
    from reference_model.reproduce import _run

    out = tmp_path / "repro"
    _earlier_call(out, data_root)

    def killed(session, units, *args, **kwargs):
        session.record_command("irstd-bench train --resume ...")
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(_run, "train_queue", killed)
    result = _resume(data_root, out)
    assert result.exit_code != 0 and "earlier report" not in (out / "report" / "commands.txt").read_text()
    assert not (out / "report" / "RUNS.md").exists()  # the earlier report was replaced, the new one not written
    check_folder_replaceable(out / "report", force=True, option="report folder")  # what the next --resume checks
