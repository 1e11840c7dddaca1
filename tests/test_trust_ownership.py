"""One ownership rule for every output, checked again at the moment of writing (issue 25, items 1-5,
11, 13 and the output items of 18-25).

Each test is a defect class the second trust audit found, and failed before the fix: a resumed
training writing into a user's folder and claiming its files, reproduce replacing a user's
RUNS.md, predict taking another detector's results for its own, ``--force`` hiding an unreadable
folder in a backup that a later run deleted, two evals on one ``--out`` both "succeeding",
outputs inside the dataset root, partial outputs that a rerun had to ``--force``, an empty
folder of the user's removed by ``--force``, and line breaks escaping a Markdown cell or line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import test_trust_outputs
from test_engine_models import TINY_DETECTOR, make_nuaa_like
from test_trust_outputs import _items, eval_args, masks_as_predictions, one_line_error, run, snapshot

from irstd_bench import _outputs
from irstd_bench._outputs import MANIFEST_NAME, _host, output_folder, sweep_stale_temps
from irstd_bench.errors import InputError
from reference_model.engine.predict import write_predictions

TESTS = Path(__file__).resolve().parent
#: A NUDT-SIRST-layout tree of three 32x32 images (the fixture of test_trust_outputs).
data = test_trust_outputs.data


@pytest.fixture(scope="module")
def nuaa_root(tmp_path_factory) -> Path:
    return make_nuaa_like(tmp_path_factory.mktemp("own") / "nuaa_like", [(64, 64)] * 6, seed=3)


def train_args(root: Path, out: Path, *extra) -> tuple:
    return ("train", "--root", root, "--dataset", "nuaa", "--split", "split_EFLNet", "--model", TINY_DETECTOR,
            "--epochs", 1, "--imgsz", 64, "--batch", 2, "--device", "cpu", "--workers", 0, "--no-progress",
            "--out", out, *extra)


@pytest.fixture(scope="module")
def finished_run(nuaa_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("own_run") / "run"
    result = run(*train_args(nuaa_root, out))
    assert result.exit_code == 0, result.output
    return out


def _manifest_files(folder: Path) -> list[str]:
    return json.loads((folder / MANIFEST_NAME).read_text())["files"]


# ---------------------------------------------------------------------------------------------
# 1. train --resume RUN --out DIR: DIR is checked like any new output; a manifest lists only our files


def test_resume_into_another_out_never_writes_over_a_users_folder(finished_run, tmp_path):
    import shutil

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("my,numbers\n")
    (mine / "notes.txt").write_text("keep")
    before = snapshot(mine)
    for extra in ((), ("--force",)):
        result = run("train", "--resume", finished_run, "--epochs", 2, "--model", TINY_DETECTOR, "--device", "cpu",
                     "--no-progress", "--out", mine, *extra)
        one_line_error(result, mine, "not written by irstd-bench")
        assert snapshot(mine) == before and not (mine / MANIFEST_NAME).exists()
    # A new --out is fine: the resumed run is written there, the original stays as it was.
    original = snapshot(finished_run)
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    result = run("train", "--resume", copy, "--epochs", 2, "--model", TINY_DETECTOR, "--device", "cpu",
                 "--no-progress", "--out", tmp_path / "continued")
    assert result.exit_code == 0, result.output
    assert snapshot(finished_run) == original
    assert _manifest_files(tmp_path / "continued") == ["args.json", "best.pt", "last.pt", "results.csv"]


def test_a_run_manifest_lists_only_the_files_the_run_wrote(finished_run, nuaa_root, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "notes.txt").write_text("my notes on this run")
    result = run("train", "--resume", run_dir, "--epochs", 2, "--model", TINY_DETECTOR, "--device", "cpu",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert "notes.txt" not in _manifest_files(run_dir)
    # so --force, which replaces only what the manifest lists, refuses instead of deleting the notes
    one_line_error(run(*train_args(nuaa_root, run_dir, "--force")), "notes.txt", "not written by irstd-bench")
    assert (run_dir / "notes.txt").read_text() == "my notes on this run"


def test_a_run_folder_without_our_manifest_is_not_continued_in_place(finished_run, tmp_path):
    loose = tmp_path / "downloads"
    loose.mkdir()
    (loose / "last.pt").write_bytes((finished_run / "last.pt").read_bytes())
    (loose / "results.csv").write_text("someone else's\n")
    result = run("train", "--resume", loose, "--epochs", 2, "--model", TINY_DETECTOR, "--device", "cpu",
                 "--no-progress")
    one_line_error(result, loose, "--out NEW")
    assert (loose / "results.csv").read_text() == "someone else's\n" and not (loose / MANIFEST_NAME).exists()


# ---------------------------------------------------------------------------------------------
# 2. reproduce --pack-dir: never over a user's files


def test_reproduce_pack_dir_holding_files_is_refused_before_any_work(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "RUNS.md").write_text("my own notes\n")
    result = run("reproduce", "--smoke", "--out", tmp_path / "o", "--pack-dir", pack)
    one_line_error(result, "--pack-dir", pack, "not an empty folder")
    assert (pack / "RUNS.md").read_text() == "my own notes\n" and not (tmp_path / "o").exists()


def test_the_pack_never_replaces_a_file_that_appeared_in_its_folder(tmp_path):
    from reference_model.reproduce._pack import PackResult, add_archive, add_file

    src = tmp_path / "RUNS.md"
    src.write_text("# the reproduction's\n")
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "RUNS.md").write_text("a user's\n")
    (pack / "runs.tar.gz").write_text("a user's archive\n")
    result = PackResult()
    add_file(src, pack, result)
    add_archive("runs", [(src, "RUNS.md")], pack, result)
    assert (pack / "RUNS.md").read_text() == "a user's\n"
    assert (pack / "runs.tar.gz").read_text() == "a user's archive\n"
    assert result.files == [] and len(result.left_out) == 2 and "kept" in result.left_out[0]
    assert sorted(p.name for p in pack.iterdir()) == ["RUNS.md", "runs.tar.gz"]  # no temporary left


# ---------------------------------------------------------------------------------------------
# 3. predict --force: a single file is ours only when its sidecar manifest proves it


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("other.json", '[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9, "file_name": "a.png"}]'),
        ("other.json", '[{"file_name": "a.png", "bbox": [1, 2, 3, 4], "score": 0.9}]'),
        ("empty.json", "[]"),
        ("other.csv", "image,x0,y0,x1,y1,score\nmine,1,2,3,4,0.9\n"),
    ],
)
def test_predict_force_never_takes_another_detectors_file_for_its_own(tmp_path, name, content):
    out = tmp_path / name
    out.write_text(content)
    fmt = "csv" if name.endswith(".csv") else "coco"
    with pytest.raises(InputError, match="not written by irstd-bench"):
        write_predictions(_items(), out, fmt, force=True)
    assert out.read_text() == content


def test_predict_force_replaces_its_own_file_until_someone_edits_it(tmp_path):
    out = tmp_path / "preds.json"
    write_predictions(_items(), out, "coco")
    with pytest.raises(InputError, match="use --force"):
        write_predictions(_items(), out, "coco")
    write_predictions(_items(boxes=((2.0, 2.0, 6.0, 6.0),)), out, "coco", force=True)
    assert json.loads(out.read_text())[0]["bbox"] == [2.0, 2.0, 4.0, 4.0]
    out.write_text(out.read_text().replace("0.9", "0.8"))  # edited by hand: no longer what we wrote
    with pytest.raises(InputError, match="not written by irstd-bench"):
        write_predictions(_items(), out, "coco", force=True)


# ---------------------------------------------------------------------------------------------
# 4. --force over an output holding a folder irstd-bench cannot read: refused, never hidden away


def _earlier_output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    with output_folder(out, "test") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.txt").write_text("ours")
    return out


def _cannot_read(monkeypatch, folder: Path) -> None:
    """Make ``folder`` unreadable to irstd-bench (tests run as root, which chmod does not stop)."""
    real_scandir, real_access = os.scandir, os.access
    blocked = str(folder)

    def scandir(path=".", *args):
        if isinstance(path, (str, os.PathLike)) and os.fspath(path) == blocked:
            raise PermissionError(13, "Permission denied", blocked)
        return real_scandir(path, *args)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != blocked and real_access(path, mode))


def test_force_refuses_an_output_holding_an_unreadable_folder(tmp_path, monkeypatch):
    out = _earlier_output(tmp_path)
    (out / "sub" / "private.txt").write_text("a user's file inside a folder they then locked")
    _cannot_read(monkeypatch, out / "sub")
    with pytest.raises(InputError, match=r"sub: a folder irstd-bench cannot read or change"):
        with output_folder(out, "test", force=True) as tmp:
            (tmp / "new.txt").write_text("new")
    monkeypatch.undo()
    assert (out / "sub" / "private.txt").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_force_refuses_an_output_holding_a_folder_made_unreadable_by_chmod(tmp_path):
    out = _earlier_output(tmp_path)
    (out / "sub").chmod(0)
    try:
        with pytest.raises(InputError, match="cannot read or change"):
            with output_folder(out, "test", force=True) as tmp:
                (tmp / "new.txt").write_text("new")
    finally:
        (out / "sub").chmod(0o755)
    assert (out / "sub" / "a.txt").exists()


def test_a_stale_backup_that_is_not_provably_ours_is_kept(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    target = tmp_path / "report"
    target.mkdir()
    (target / "index.html").write_text("the new report")  # the killed run had put it in place
    backup = tmp_path / f".report.irstd-tmp-{_host()}-{proc.pid}-0badcafe.old"
    backup.mkdir()
    (backup / MANIFEST_NAME).write_text(json.dumps({"schema": "irstd-bench/output", "files": ["a.txt"]}))
    (backup / "a.txt").write_text("ours")
    (backup / "yours.txt").write_text("not in the manifest")
    sweep_stale_temps(tmp_path)
    assert (backup / "yours.txt").exists()
    (backup / "yours.txt").unlink()
    sweep_stale_temps(tmp_path)  # now wholly ours: removed
    assert not backup.exists() and target.is_dir()


# ---------------------------------------------------------------------------------------------
# 5. eval: --out checked again when written; two evals on one --out never both succeed


def _race(monkeypatch, during) -> None:
    """Run ``during()`` after the evaluation, before eval writes (as a second command would)."""
    from irstd_bench.evaluate import cli as eval_cli

    real = eval_cli.evaluate_split

    def evaluate_split(*args, **kwargs):
        result = real(*args, **kwargs)
        during(result)
        return result

    monkeypatch.setattr(eval_cli, "evaluate_split", evaluate_split)


def test_eval_out_written_meanwhile_is_never_replaced(data, tmp_path, monkeypatch):
    preds = masks_as_predictions(data, tmp_path / "preds")
    out = tmp_path / "res.json"
    user_csv = tmp_path / "res.per_image.csv"
    _race(monkeypatch, lambda result: user_csv.write_text("a user's table\n"))
    one_line_error(run(*eval_args(preds, data, out)), "appeared while this command ran")
    assert user_csv.read_text() == "a user's table\n" and not out.exists()


@pytest.mark.parametrize("force", [False, True])
def test_two_evals_on_one_out_one_wins_the_other_exits_2(data, tmp_path, monkeypatch, force):
    preds = masks_as_predictions(data, tmp_path / "preds")
    out = tmp_path / "res.json"
    if force:  # an earlier set both replace
        assert run(*eval_args(preds, data, out)).exit_code == 0
    other = {}

    def second_eval_finishes_first(result):
        from irstd_bench.evaluate._results_io import results_texts

        for path, text in results_texts(result, out)[1].items():  # what another process wrote meanwhile
            path.write_text(text.replace('"first"', '"second"'))
        other.update(snapshot(tmp_path))

    _race(monkeypatch, second_eval_finishes_first)
    result = run(*eval_args(preds, data, out, "--name", "first", *(["--force"] if force else [])))
    one_line_error(result, tmp_path / "res.", "while this command ran")
    assert snapshot(tmp_path) == other  # the winner's set, whole; nothing of the loser's
    assert json.loads(out.read_text())["method"] == "second"


# ---------------------------------------------------------------------------------------------
# 13. train and reproduce never write inside the dataset root


def test_train_out_inside_the_dataset_root_is_refused(nuaa_root):
    one_line_error(run(*train_args(nuaa_root, nuaa_root / "runs")), "inside the dataset root")
    assert not (nuaa_root / "runs").exists()


def test_reproduce_out_inside_the_dataset_root_is_refused(nuaa_root):
    result = run("reproduce", "--root", nuaa_root, "--dataset", "nuaa", "--only", "acm", "--device", "cpu",
                 "--out", nuaa_root / "repro")
    one_line_error(result, "inside the dataset root")
    assert not (nuaa_root / "repro").exists()


# ---------------------------------------------------------------------------------------------
# 11. a failure leaves nothing a rerun would have to --force


def test_train_killed_before_its_first_checkpoint_reruns_without_force(nuaa_root, tmp_path):
    out = tmp_path / "run"
    killed = (
        "import os, signal, sys\n"
        "from reference_model.engine.trainer import Trainer\n"
        "Trainer._train_epoch = lambda self, epoch: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from irstd_bench.cli import cli\n"
        "cli.main(args=sys.argv[1:], prog_name='irstd-bench')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", killed, *map(str, train_args(nuaa_root, out))], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing written before the first checkpoint
    result = run(*train_args(nuaa_root, out))
    assert result.exit_code == 0, result.output
    assert _manifest_files(out) == ["args.json", "best.pt", "last.pt", "results.csv"]


def test_a_failed_demo_in_a_new_folder_leaves_nothing(tmp_path, monkeypatch):
    from reference_model.engine.trainer import Trainer

    def broken_epoch(self, epoch):
        raise RuntimeError("the GPU fell off")

    monkeypatch.setattr(Trainer, "_train_epoch", broken_epoch)
    out = tmp_path / "a" / "demo"
    result = run("demo", "--out", out, "--n-images", 12, "--size", 64, "--epochs", 1, "--imgsz", 64,
                 "--device", "cpu")
    assert result.exit_code != 0 and "the GPU fell off" in repr(result.exception)
    assert list(tmp_path.iterdir()) == []


def test_reproduce_with_a_split_family_it_lacks_creates_nothing(nuaa_root, tmp_path):
    result = run("reproduce", "--root", nuaa_root, "--dataset", "nuaa", "--split-family", "nope", "--device", "cpu",
                 "--out", tmp_path / "o", "--pack-dir", tmp_path / "p")
    one_line_error(result, "nope")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 18-25: an empty folder of the user's; line breaks in Markdown


def test_convert_force_keeps_an_empty_folder_the_user_added(data, tmp_path):
    out = tmp_path / "boxes"
    assert run("convert", data, "--out", out, "--workers", 1).exit_code == 0
    (out / "my-notes").mkdir()
    one_line_error(run("convert", data, "--out", out, "--workers", 1, "--force"), "my-notes",
                   "not written by irstd-bench")
    assert (out / "my-notes").is_dir()
    (out / "my-notes").rmdir()
    assert run("convert", data, "--out", out, "--workers", 1, "--force").exit_code == 0


def test_a_line_break_in_a_method_name_stays_in_its_table_cell(tmp_path):
    from test_report import write_run

    results = [write_run(tmp_path / "in", "m1", method="good\n# not a heading|x"),
               write_run(tmp_path / "in", "m2", method="other")]
    result = run("report", *results, "--out", tmp_path / "rep", "--qualitative", 0)
    assert result.exit_code == 0, result.output
    for table in (tmp_path / "rep" / "tables").glob("*.md"):
        lines = table.read_text().splitlines()
        rows = [line for line in lines if line.startswith("|")]
        assert not any(line.startswith(("# not a heading", "x")) for line in lines), table
        assert sum(line.startswith("| good # not a heading") for line in lines) == 1, table
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in rows}) == 1, table  # unescaped pipes
    assert "good # not a heading\\|x" in (tmp_path / "rep" / "tables" / "main.md").read_text()


def test_a_line_break_in_commit_cannot_inject_a_heading_into_runs_md():
    from reference_model.reproduce._write import runs_markdown, seeds_table

    summary = {
        "command": "irstd-bench reproduce --commit 'abc\n# Injected'", "commit": "abc\n# Injected\r\n## Also",
        "device": "CPU\nx", "created": "2026", "budget_s": 60.0, "elapsed_s": 1.0, "phases_s": {"probe": 1.0},
        "dataset": "nuaa", "root": "/data/x`y\n# root", "family": "split\n# fam", "matcher": "iou:0.5",
        "errors": ["boom\n# err"], "smoke": False, "better_recipe": {}, "report": "none\n# rep",
        "runs": [{"run": "r\n# run", "seed": 0, "epochs_done": 1, "epochs_planned": 1, "epochs_recipe": 1,
                  "train_wall_s": 1.0, "stopped_at_deadline": False, "scores": None, "status": "ok\n# st",
                  "schedule_changes": {}, "settings_not_passed": [],
                  "train_command": "irstd-bench train --root '/x\n```\n# cmd'", "commands": []}],
        "left_out": [{"entry": "e\n# e", "reason": "r\n# r"}], "probes": [], "memory": {},
    }
    text = runs_markdown(summary, seeds_table([], "iou:0.5\n# m"))
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == ["# How every number of this reproduction was made", "## Results on split # fam/test",
                        "## Every run", "## Commands of each run", "### r # run", "## Left out", "## Timing probes"]
    assert "abc # Injected ## Also" in text


def test_rename_noreplace_never_replaces(tmp_path):
    (tmp_path / "a").write_text("new")
    (tmp_path / "b").write_text("old")
    with pytest.raises(FileExistsError):
        _outputs.rename_noreplace(tmp_path / "a", tmp_path / "b")
    (tmp_path / "d").mkdir()
    (tmp_path / "e").mkdir()
    with pytest.raises(FileExistsError):
        _outputs.rename_noreplace(tmp_path / "d", tmp_path / "e")  # not even an empty folder
    _outputs.rename_noreplace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "b").read_text() == "old" and (tmp_path / "c").read_text() == "new"


def test_two_runs_continuing_one_folder_never_both_write(finished_run, tmp_path):
    import shutil

    from irstd_bench._outputs import OwnedFolder

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    first, second = OwnedFolder.existing(run_dir, "train"), OwnedFolder.existing(run_dir, "train")
    first.write_text("results.csv", "epoch\n1\n2\n")
    with pytest.raises(InputError, match="results.csv: changed while this command ran"):
        second.write_text("results.csv", "epoch\n1\n2\n3\n")
    assert (run_dir / "results.csv").read_text() == "epoch\n1\n2\n"
    first.write_text("results.csv", "epoch\n1\n2\n3\n")  # the first goes on
    assert sorted(p.name for p in run_dir.iterdir() if "irstd-tmp" in p.name) == []


# ---------------------------------------------------------------------------------------------
# Hostile battery over the new surfaces (issue 25, last part): a CSV of a set is ours while it
# holds what we wrote


def test_eval_force_never_replaces_a_per_image_csv_the_user_edited(data, tmp_path):
    preds = masks_as_predictions(data, tmp_path / "preds")
    out = tmp_path / "res.json"
    assert run(*eval_args(preds, data, out)).exit_code == 0
    assert run(*eval_args(preds, data, out, "--force")).exit_code == 0  # unedited: ours, replaced
    table = tmp_path / "res.per_image.csv"
    table.write_text("my own notes\n")
    one_line_error(run(*eval_args(preds, data, out, "--force")), "res.per_image.csv", "not written by irstd-bench")
    assert table.read_text() == "my own notes\n"


def test_a_results_json_of_an_earlier_version_still_vouches_for_its_csvs_by_name(data, tmp_path):
    preds = masks_as_predictions(data, tmp_path / "preds")
    out = tmp_path / "res.json"
    assert run(*eval_args(preds, data, out)).exit_code == 0
    results = json.loads(out.read_text())
    del results[_outputs.MEMBER_DIGESTS_KEY]  # as written before the digests
    out.write_text(json.dumps(results))
    assert run(*eval_args(preds, data, out, "--force")).exit_code == 0
