"""Progress bars on stderr (only at a terminal, never with --no-progress) and ``eval --out -``."""

from __future__ import annotations

import io
import json
import sys

from click.testing import CliRunner

from irstd_bench._progress import progress_bar
from irstd_bench.cli import cli
from irstd_bench.synth import generate_sample


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
