"""Nothing irstd-bench did not create is overwritten or deleted; outputs appear whole or not at all.

Each test is a case of issue 11 (items 2 and 3) that misbehaved before: a command replacing a
user's folder or file, an output written over its own input, a CSV left without its JSON,
hidden temporaries left by an interrupted run, files made private by mkstemp.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irstd_bench._io import write_text_atomic
from irstd_bench._outputs import (
    MANIFEST_NAME,
    Claim,
    _host,
    output_folder,
    sweep_stale_temps,
    write_file_set,
)
from irstd_bench.cli import cli
from irstd_bench.errors import InputError
from irstd_bench.evaluate import Prediction
from reference_model.engine.predict import ImagePrediction, write_predictions

H = W = 32
STEMS = ("000001", "000002", "000003")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "Traceback" not in result.output, result.output
    for needle in needles:
        assert str(needle) in lines[-1], (needle, lines[-1])


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """A NUDT-SIRST-layout tree: three 32x32 images, one 2x2 target each, split 50_50/test."""
    root = tmp_path / "nudt"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "50_50").mkdir()
    for i, stem in enumerate(STEMS):
        Image.fromarray(np.full((H, W), 40, np.uint8)).save(root / "images" / f"{stem}.png")
        mask = np.zeros((H, W), np.uint8)
        mask[4 + i : 6 + i, 5:7] = 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "test.txt").write_text("\n".join(STEMS) + "\n")
    (root / "50_50" / "train.txt").write_text("000001\n")
    return root


def masks_as_predictions(data: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for stem in STEMS:
        (folder / f"{stem}.png").write_bytes((data / "masks" / f"{stem}.png").read_bytes())
    return folder


def eval_args(preds, data, out, *extra):
    return ("eval", preds, "--dataset", "nudt", "--root", data, "--split", "test", "--workers", 1,
            "--out", out, *extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _items(stems=STEMS, boxes=((1.0, 2.0, 5.0, 6.0),)) -> list[ImagePrediction]:
    out = []
    for stem in stems:
        pred = Prediction.from_boxes(stem, np.array(boxes, float), np.full(len(boxes), 0.9), (H, W))
        out.append(ImagePrediction(pred, Path(f"{stem}.png")))
    return out


def _segment_items(stems=STEMS) -> list[ImagePrediction]:
    maps = {s: Prediction.from_score_map(s, np.zeros((H, W), np.float32)) for s in stems}
    return [ImagePrediction(pred, Path(f"{s}.png")) for s, pred in maps.items()]


# ---------------------------------------------------------------------------------------------
# predict


def test_predict_does_not_replace_a_dataset_masks_folder(data, tmp_path):
    before = snapshot(data / "masks")
    with pytest.raises(InputError, match="not written by irstd-bench"):
        write_predictions(_segment_items(), data / "masks", "masks", force=True)
    assert snapshot(data / "masks") == before


def test_predict_does_not_delete_a_split_folder(data):
    before = snapshot(data / "50_50")
    with pytest.raises(InputError, match="not written by irstd-bench"):
        write_predictions(_items(), data / "50_50", "yolo", force=True)
    assert snapshot(data / "50_50") == before


def test_predict_out_inside_its_inputs_is_refused(data):
    with pytest.raises(InputError, match="inside the dataset root"):
        write_predictions(_items(), data / "preds", "yolo", inputs=[("dataset root", data)])
    assert not (data / "preds").exists()


def test_predict_json_replaces_only_its_own_file_and_only_with_force(tmp_path):
    foreign = tmp_path / "gt.json"
    foreign.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(InputError, match="not written by irstd-bench"):
        write_predictions(_items(), foreign, "coco", force=True)
    assert json.loads(foreign.read_text()) == {"images": [], "annotations": []}
    ours = tmp_path / "p.json"
    write_predictions(_items(), ours, "coco")
    with pytest.raises(InputError, match="use --force"):
        write_predictions(_items(), ours, "coco")
    write_predictions(_items(stems=STEMS[:1]), ours, "coco", force=True)
    assert len(json.loads(ours.read_text())) == 1


def test_predict_folder_output_carries_a_manifest_and_reruns_with_force(tmp_path):
    out = tmp_path / "yolo"
    write_predictions(_items(), out, "yolo")
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["files"] == [f"{s}.txt" for s in STEMS] and manifest["command"] == "predict --format yolo"
    with pytest.raises(InputError, match="use --force"):
        write_predictions(_items(), out, "yolo")
    write_predictions(_items(stems=STEMS[:2]), out, "yolo", force=True)
    assert sorted(p.name for p in out.glob("*.txt")) == [f"{s}.txt" for s in STEMS[:2]]


def test_predict_yolo_to_a_json_name_is_refused(tmp_path):
    with pytest.raises(InputError, match="writes a folder"):
        write_predictions(_items(), tmp_path / "y.json", "yolo")
    assert not (tmp_path / "y.json").exists()


def test_predict_csv_escapes_formula_cells(tmp_path):
    out = tmp_path / "p.csv"
    write_predictions(_items(stems=("=HYPERLINK(1)", "@SUM(2)", "-x", "plain")), out, "csv")
    first_cells = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert first_cells == ["'=HYPERLINK(1)", "'@SUM(2)", "'-x", "plain"]
    # Numbers stay numbers, the negative ones included.
    assert out.read_text().splitlines()[1].split(",")[1:] == ["1.0", "2.0", "5.0", "6.0", "0.9"]


# ---------------------------------------------------------------------------------------------
# eval


def test_eval_out_onto_its_predictions_or_a_mask_is_refused(data, tmp_path):
    preds = tmp_path / "preds.csv"
    preds.write_text("image,x0,y0,x1,y1,score\n000001,5,4,7,6,0.9\n")
    before = preds.read_bytes()
    one_line_error(run(*eval_args(preds, data, preds)), "predictions")
    assert preds.read_bytes() == before
    mask = data / "masks" / "000001.png"
    mask_bytes = mask.read_bytes()
    one_line_error(run(*eval_args(preds, data, mask)), "dataset root")
    assert mask.read_bytes() == mask_bytes


def test_eval_does_not_overwrite_a_foreign_json_and_needs_force_for_its_own(data, tmp_path):
    preds = masks_as_predictions(data, tmp_path / "preds")
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": true}')
    one_line_error(run(*eval_args(preds, data, foreign, "--force")), foreign)
    assert foreign.read_text() == '{"mine": true}'
    out = tmp_path / "r.json"
    assert run(*eval_args(preds, data, out)).exit_code == 0
    one_line_error(run(*eval_args(preds, data, out)), "--force")
    assert run(*eval_args(preds, data, out, "--force")).exit_code == 0
    # A CSV of the set that the JSON does not name is not ours.
    (tmp_path / "r.json").unlink()
    one_line_error(run(*eval_args(preds, data, out, "--force")), "r.per_image.csv")


def test_eval_writes_json_and_csvs_as_one_set(data, tmp_path, monkeypatch):
    preds = masks_as_predictions(data, tmp_path / "preds")
    out = tmp_path / "res.json"
    from irstd_bench import _outputs

    real_rename = _outputs.rename_noreplace

    def failing_rename(src, dst):
        if str(dst).endswith("res.json"):
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(_outputs, "rename_noreplace", failing_rename)
    result = run(*eval_args(preds, data, out))
    assert result.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nudt", "preds"]  # no CSV, no temporary


def test_eval_unwritable_out_is_one_line(data, tmp_path):
    preds = masks_as_predictions(data, tmp_path / "preds")
    one_line_error(run(*eval_args(preds, data, "/proc/irstd-nope/r.json")), "/proc/irstd-nope")


def test_eval_csvs_escape_formula_cells(tmp_path):
    root = tmp_path / "custom"
    (root / "img").mkdir(parents=True)
    (root / "gt").mkdir()
    stem = "=1+2"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "img" / f"{stem}.png")
    mask = np.zeros((H, W), np.uint8)
    mask[3:5, 3:5] = 255
    Image.fromarray(mask).save(root / "gt" / f"{stem}.png")
    preds = tmp_path / "preds"
    preds.mkdir()
    Image.fromarray(mask).save(preds / f"{stem}.png")
    out = tmp_path / "r.json"
    result = run("eval", preds, "--dataset", "custom", "--root", root, "--image-dir", "img", "--mask-dir", "gt",
                 "--split", "all", "--workers", 1, "--out", out)
    assert result.exit_code == 0, result.output
    for name in ("r.per_image.csv", "r.per_target.csv"):
        rows = (tmp_path / name).read_text().splitlines()[1:]
        assert rows and all(row.startswith("'=1+2,") for row in rows), rows


# ---------------------------------------------------------------------------------------------
# report, demo, convert, train


def test_report_does_not_delete_a_folder_that_merely_holds_report_json(tmp_path):
    from test_report import write_run

    results = write_run(tmp_path / "in", "m1", method="m1")
    victim = tmp_path / "work"
    victim.mkdir()
    (victim / "report.json").write_text("{}")
    (victim / "thesis.tex").write_text("years of work")
    one_line_error(run("report", results, "--out", victim, "--force", "--qualitative", 0), victim)
    assert (victim / "thesis.tex").read_text() == "years of work"


def test_report_out_holding_its_input_is_refused(tmp_path):
    from test_report import write_run

    results = write_run(tmp_path / "in", "m1", method="m1")
    one_line_error(run("report", results, "--out", tmp_path / "in", "--qualitative", 0), "contains the input")


def test_demo_never_deletes_a_users_data_folder(tmp_path):
    out = tmp_path / "mine"
    (out / "data").mkdir(parents=True)
    (out / "data" / "keep.txt").write_text("x")
    one_line_error(run("demo", "--out", out), "not an earlier demo output")
    assert (out / "data" / "keep.txt").read_text() == "x"


def test_demo_with_a_bad_root_leaves_no_out(tmp_path):
    out = tmp_path / "demo_out"
    one_line_error(run("demo", "--out", out, "--root", tmp_path / "nothere"), "dataset root not found")
    assert not out.exists()


def test_convert_out_inside_the_dataset_root_is_refused(data):
    one_line_error(run("convert", data, "--out", data / "boxes"), "inside the dataset root")
    assert not (data / "boxes").exists()


def test_convert_unwritable_out_is_one_line(data):
    one_line_error(run("convert", data, "--out", "/proc/irstd-nope/boxes"), "/proc/irstd-nope")


def test_failed_training_leaves_no_lone_args_json(tmp_path, monkeypatch):
    from test_engine_models import TINY_DETECTOR, make_nuaa_like

    from reference_model.engine.trainer import TrainConfig, Trainer, train

    root = make_nuaa_like(tmp_path / "data", [(64, 64)] * 4)

    def broken_epoch(self, epoch):
        raise RuntimeError("the GPU fell off")

    monkeypatch.setattr(Trainer, "_train_epoch", broken_epoch)
    out = tmp_path / "runs" / "r"
    config = TrainConfig(root=str(root), dataset="nuaa", split="split_EFLNet", model=TINY_DETECTOR, epochs=1,
                         imgsz=64, batch=2, device="cpu", out=str(out), workers=0, progress=False)
    with pytest.raises(RuntimeError, match="fell off"):
        train(config)
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_train_refuses_a_non_empty_folder_that_is_not_a_run(tmp_path):
    from test_engine_models import TINY_DETECTOR, make_nuaa_like

    root = make_nuaa_like(tmp_path / "data", [(64, 64)] * 4)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.csv").write_text("my,numbers\n")
    result = run("train", "--root", root, "--dataset", "nuaa", "--split", "split_EFLNet", "--model", TINY_DETECTOR,
                 "--device", "cpu", "--out", out, "--force")
    one_line_error(result, out, "not written by irstd-bench")
    assert (out / "results.csv").read_text() == "my,numbers\n"


# ---------------------------------------------------------------------------------------------
# the output module itself: temporaries, modes, interrupted runs


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_files_and_folders_get_the_users_umask(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "x")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~_umask()
    with output_folder(tmp_path / "d", "test") as tmp:
        (tmp / "f").write_text("y")
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~_umask()
    files = {tmp_path / "s.csv": "a\n", tmp_path / "s.json": "{}"}
    write_file_set(files, {path: Claim.absent(path) for path in files})
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o666 & ~_umask()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_a_killed_run_are_swept_and_live_ones_kept(tmp_path):
    dead = f"{_host()}-{_dead_pid()}"
    stale_dir = tmp_path / f".report.irstd-tmp-{dead}-0badcafe"
    stale_dir.mkdir()
    (stale_dir / "index.html").write_text("half")
    stale_file = tmp_path / f".r.json.irstd-tmp-{dead}-0badcafe"
    stale_file.write_text("{")
    live = tmp_path / f".x.irstd-tmp-{_host()}-{os.getpid()}-0badcafe"
    live.write_text("mine")
    other_host = tmp_path / f".y.irstd-tmp-otherhost-{_dead_pid()}-0badcafe"
    other_host.write_text("another machine's live run, on a shared file system")
    user = tmp_path / ".report.irstd-tmp-notes"
    user.write_text("not our pattern")
    with output_folder(tmp_path / "out", "test") as tmp:
        (tmp / "a").write_text("a")
    assert not stale_dir.exists() and not stale_file.exists()
    assert live.exists() and user.exists() and other_host.exists()


def test_a_backup_left_by_a_killed_swap_is_put_back(tmp_path):
    dead = f"{_host()}-{_dead_pid()}"
    backup = tmp_path / f".report.irstd-tmp-{dead}-0badcafe.old"
    backup.mkdir()
    (backup / "index.html").write_text("previous report")
    sweep_stale_temps(tmp_path)
    assert (tmp_path / "report" / "index.html").read_text() == "previous report"


def test_an_error_inside_an_output_folder_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with output_folder(tmp_path / "a" / "b" / "out", "test") as tmp:
            (tmp / "x").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_interrupted_convert_leaves_no_hidden_folder(data, tmp_path, monkeypatch):
    from irstd_bench.convert import _convert

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_convert._yolo, "label_text", interrupted)
    result = run("convert", data, "--out", tmp_path / "boxes", "--workers", 1)
    assert result.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nudt"]


def test_a_report_written_before_manifests_is_rebuilt_only_with_force(tmp_path):
    from test_report import write_run

    results = write_run(tmp_path / "in", "m1", method="m1")
    out = tmp_path / "rep"
    assert run("report", results, "--out", out, "--qualitative", 0).exit_code == 0
    (out / MANIFEST_NAME).unlink()  # as reports of earlier versions: report.json lists the files
    one_line_error(run("report", results, "--out", out, "--qualitative", 0), "--force")
    assert run("report", results, "--out", out, "--qualitative", 0, "--force").exit_code == 0
    (out / MANIFEST_NAME).unlink()
    (out / "tables" / "mine.txt").write_text("not in report.json")
    one_line_error(run("report", results, "--out", out, "--qualitative", 0, "--force"), "mine.txt")


def test_demo_claims_a_new_folder_and_recognises_its_own(tmp_path):
    """`make demo` twice: the second run finds the first one's manifest and goes on (each step
    then replaces only its own earlier output with --force; checked by hand, see the README)."""
    from irstd_bench.demo import _claim_out

    out = tmp_path / "demo_out"
    _claim_out(out, None)
    (out / "boxes").mkdir()
    (out / "boxes" / "x.json").write_text("{}")
    _claim_out(out, None)
    assert json.loads((out / MANIFEST_NAME).read_text())["command"] == "demo"
    with pytest.raises(InputError, match="inside the dataset root"):
        _claim_out(tmp_path / "data" / "demo", tmp_path / "data")
