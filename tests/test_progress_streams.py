"""Progress bars on stderr (only at a terminal, never with --no-progress, in every command) and ``eval --out -``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from test_engine_models import TINY_DETECTOR

from irstd_bench._progress import progress_bar, show_progress
from irstd_bench.cli import cli
from irstd_bench.synth import generate_sample

TESTS_DIR = Path(__file__).resolve().parent


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_shows_at_a_terminal_only_and_never_when_disabled(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress_bar(3, "eval") as bar:
        bar.update(3)
    assert "eval" in terminal.getvalue() and "/3 " in terminal.getvalue()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    with progress_bar(3, "eval", enabled=False) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""
    piped = io.StringIO()  # not a terminal: a log file, CI
    monkeypatch.setattr(sys, "stderr", piped)
    with progress_bar(3, "eval") as bar:
        bar.update(3)
    assert piped.getvalue() == ""


def test_baseline_and_eval_to_stdout(tmp_path, monkeypatch):
    root = tmp_path / "data"
    generate_sample(root, n_images=6, size=48, seed=2)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    preds = tmp_path / "preds"
    args = ["baseline", "tophat", "--root", str(root), "--split", "50_50/test", "--out", str(preds),
            "--workers", "1", "--no-progress"]  # fmt: skip
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    args = ["eval", str(preds / "scoremaps"), "--root", str(root), "--split", "50_50/test", "--out", "-",
            "--workers", "1", "--no-progress"]  # fmt: skip
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # standard output holds the results JSON and nothing else
    assert data["schema"] == "irstd-bench/results" and data["dataset"] == "synthetic"
    assert data["per_image_csv"] is None and "F1" in result.stderr
    assert not (tmp_path / "-").exists() and not list(tmp_path.glob("-*"))


def test_one_rule_decides_every_bar():
    """``show_progress``: wanted and a terminal; a pipe, a file, a closed stream or no ``isatty``: never."""
    assert show_progress(True, _Terminal()) and not show_progress(False, _Terminal())
    assert not show_progress(True, io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not show_progress(True, closed)
    assert not show_progress(True, object())


def _tiny_train_args(root, out, *extra):
    return ["train", "--root", str(root), "--split", "split_synth", "--model", TINY_DETECTOR, "--epochs", "1",
            "--imgsz", "64", "--batch", "4", "--device", "cpu", "--workers", "0", "--out", str(out),
            *extra]  # fmt: skip


def test_train_bar_at_a_terminal_one_line_per_epoch_elsewhere(tmp_path, monkeypatch):
    """The training loop asks the same rule: a bar at a terminal, only its ``epoch k/N`` line elsewhere."""
    from reference_model.engine import TrainConfig, train

    root = tmp_path / "data"
    generate_sample(root, n_images=12, size=64, seed=1)
    config = dict(root=str(root), split="split_synth", model=TINY_DETECTOR, epochs=1, imgsz=64, batch=4,
                  device="cpu", workers=0, progress=True)  # fmt: skip
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train(TrainConfig(out=str(tmp_path / "at_terminal"), **config))
    assert "\r" in terminal.getvalue() and "batch/s" in terminal.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    train(TrainConfig(out=str(tmp_path / "piped"), **config))
    assert "\r" not in piped.getvalue()
    assert [line for line in piped.getvalue().splitlines() if line.startswith("epoch ")][0].startswith("epoch 1/1 ")


def test_no_bar_in_any_command_when_stderr_is_not_a_terminal(tmp_path):
    """Every command family, progress left on (the default), run as a log or CI would: no ``\\r``."""
    root, runner = tmp_path / "data", CliRunner()
    preds, run = tmp_path / "preds", tmp_path / "run"
    commands = [
        ["synth", "--out", str(root), "--n-images", "12", "--size", "64", "--seed", "1"],
        ["convert", str(root), "--out", str(tmp_path / "boxes"), "--workers", "1"],
        ["baseline", "tophat", "--root", str(root), "--split", "split_synth/test", "--out", str(preds),
         "--workers", "1"],
        ["eval", str(preds / "scoremaps"), "--root", str(root), "--split", "split_synth/test", "--out",
         str(tmp_path / "tophat.json"), "--workers", "1"],
        _tiny_train_args(root, run),
        ["predict", "--weights", str(run / "best.pt"), "--root", str(root), "--split", "split_synth/test",
         "--model", TINY_DETECTOR, "--out", str(tmp_path / "det.json"), "--device", "cpu"],
        ["report", str(tmp_path / "tophat.json"), "--out", str(tmp_path / "report"), "--qualitative", "0"],
    ]  # fmt: skip
    for args in commands:
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, (args[0], result.output)
        assert "\r" not in result.stderr and "\r" not in result.stdout, args[0]
    assert "epoch 1/1 " in runner.invoke(cli, _tiny_train_args(root, run, "--force")).stderr


def test_no_bar_through_a_pipe(tmp_path):
    """A real process whose stderr is a pipe (``make demo > log 2>&1``): ``train`` writes epoch lines only."""
    root = tmp_path / "data"
    generate_sample(root, n_images=12, size=64, seed=1)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), str(TESTS_DIR.parent)]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "irstd_bench", *_tiny_train_args(root, tmp_path / "run")]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=300)  # bytes: text mode would turn \r into \n
    assert proc.returncode == 0, proc.stderr[-3000:].decode(errors="replace")
    assert b"\r" not in proc.stderr and b"\r" not in proc.stdout
    assert b"epoch 1/1 " in proc.stderr
