"""The pieces trainer.py runs in order: run-folder bookkeeping (run_files), set-up and resume state
(run_setup), the AMP dtype (runtime) and the validation pass (validation)."""

from __future__ import annotations

import pytest
import torch
from test_engine_models import TINY_DETECTOR, TINY_SEGMENTER, make_nuaa_like
from test_engine_train import SIZES, _config

from irstd_bench._outputs import write_manifest
from irstd_bench.errors import InputError
from reference_model.engine import Trainer
from reference_model.engine.config import LAST_NAME
from reference_model.engine.distributed import DistContext, init_distributed
from reference_model.engine.run_files import ARGS_NAME, CSV_NAME, results_row, run_folder
from reference_model.engine.run_setup import check_adversarial, resumed_progress
from reference_model.engine.runtime import amp_dtype_for
from reference_model.engine.validation import VALIDATION_KEYS, validation_metrics


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_nuaa_like(tmp_path_factory.mktemp("setup") / "nuaa_like", SIZES, seed=4, targets_per_image=2)


def test_new_run_folder_absent_or_empty_is_written_without_replacing(tmp_path):
    assert not run_folder(tmp_path / "absent", force=False, root=None).replaces_earlier
    (tmp_path / "empty").mkdir()
    assert not run_folder(tmp_path / "empty", force=False, root=None).replaces_earlier


def test_new_run_folder_refuses_a_run_without_force_and_a_users_file_always(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LAST_NAME).write_bytes(b"x")
    with pytest.raises(InputError, match=r"already holds a run \(last.pt\); use --resume .*--force or another --out"):
        run_folder(run, force=False, root=None)
    with pytest.raises(InputError, match="not written by irstd-bench"):
        run_folder(run, force=True, root=None)  # no manifest: last.pt is not known to be ours
    write_manifest(run, "train")
    assert run_folder(run, force=True, root=None).replaces_earlier
    (run / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt: not written by irstd-bench"):
        run_folder(run, force=True, root=None)


def test_open_run_folder_replaces_only_an_earlier_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ARGS_NAME).write_text("{}")
    write_manifest(run, "train")
    folder = run_folder(run, force=True, root=None)
    folder.open()
    assert run.is_dir() and not any(run.iterdir())
    folder.write_text(CSV_NAME, "epoch\n1\n")  # the first file written: the earlier run is gone for good
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_unfinished_run_leaves_nothing_it_created(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    folder = run_folder(out, force=False, root=None)
    folder.open()
    assert out.is_dir()
    folder.discard()
    assert not (tmp_path / "a").exists()


def test_unfinished_run_puts_back_the_run_it_was_replacing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ARGS_NAME).write_text("{}")
    write_manifest(run, "train")
    folder = run_folder(run, force=True, root=None)
    folder.open()
    folder.discard()
    assert (run / ARGS_NAME).read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["run"]


def test_unfinished_run_keeps_a_folder_that_holds_something_else(tmp_path):
    out = tmp_path / "run"
    folder = run_folder(out, force=False, root=None)
    folder.open()
    (out / "other.txt").write_text("x")
    folder.discard()
    assert sorted(p.name for p in out.iterdir()) == ["other.txt"]


def test_run_folder_that_cannot_be_created_is_one_input_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match=r"--out .*file/run: cannot create the folder"):
        run_folder(blocker / "run", force=False, root=None).open()


def test_results_row_columns_in_order():
    row = results_row(3, 0.01, {"loss": 1.5, "heat": 0.5}, {"f1": 0.25}, 2.0)
    assert list(row) == ["epoch", "lr", "train/loss", "train/heat", "val/f1", "time_s"]
    assert row["epoch"] == 3 and row["train/heat"] == 0.5 and row["val/f1"] == 0.25 and row["time_s"] == 2.0


def test_resumed_progress_and_a_finished_run():
    ckpt = {"epoch": 2, "best_fitness": [0.5, 0.1], "best_metrics": {"f1": 0.5}, "history": [{"epoch": 1}]}
    start, best, best_metrics, history = resumed_progress(ckpt, 5, "r/last.pt")
    assert (start, best, best_metrics, history) == (2, [0.5, 0.1], {"f1": 0.5}, [{"epoch": 1}])
    assert best_metrics is not ckpt["best_metrics"] and history is not ckpt["history"]
    assert resumed_progress({"epoch": 0}, 1, "x")[1:] == (None, {}, [])
    with pytest.raises(InputError, match=r"r/last.pt: run already finished 2 of 2 epochs \(give a larger --epochs"):
        resumed_progress(ckpt, 2, "r/last.pt")


def test_adversarial_runs_take_one_process_and_no_accumulation():
    check_adversarial("mdvsfa", DistContext(), 1, None)
    with pytest.raises(InputError, match="run it in one process"):
        check_adversarial("mdvsfa", DistContext(world_size=2), 1, None)
    with pytest.raises(InputError, match="--nominal-batch 8 would accumulate 4 batches"):
        check_adversarial("mdvsfa", DistContext(), 4, 8)


def test_amp_dtype_only_on_cuda_when_asked():
    assert amp_dtype_for(torch.device("cpu"), True) is None
    assert amp_dtype_for(torch.device("cuda"), False) is None
    if torch.cuda.is_available():
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert amp_dtype_for(torch.device("cuda"), True) == expected


@pytest.mark.parametrize("model", [TINY_DETECTOR, TINY_SEGMENTER])
def test_validation_keeps_the_tasks_metrics_and_the_models_mode(data_root, tmp_path, model):
    trainer = Trainer(_config(data_root, tmp_path / "r", model=model), init_distributed("cpu"))
    trainer.setup()
    scored = trainer.ema.module if trainer.ema is not None else trainer.raw
    scored.train()
    metrics = trainer.validate()
    assert tuple(metrics) == VALIDATION_KEYS[trainer.task]
    assert scored.training  # back in the mode it was in
    scored.eval()
    again = validation_metrics(
        scored,
        trainer.val_data,
        trainer.val_truth,
        trainer.config,
        trainer.task,
        memory_format=trainer.memory_format,
        amp_dtype=None,
    )
    assert not scored.training
    assert again == metrics  # the pass the trainer runs is this function on the EMA (or raw) model
