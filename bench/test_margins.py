"""Margins of the tests whose verdict rests on trained floats: each probe over seeds x thread counts.

CPU training is not bit-reproducible across CPU models (AVX2 and AVX-512 kernels sum in other
orders) nor across thread counts, so a test that trains asserts a bound that holds with a margin
measured here. A *probe* is a function ``outcome_*(seed: int, work: Path) -> dict[str, float]``
in a test module (``tests/``); the test calls it with seed 0 and asserts bounds on its values,
stating in a comment the range this script measured and the command that measured it.

Each ``(probe, seed, threads)`` runs in a fresh process with ``OMP_NUM_THREADS`` and
``torch.set_num_threads`` set, as ``make test`` runs the tests (``IRSTD_TEST_THREADS``).

Examples::

    .venv/bin/python bench/test_margins.py --list
    nice -n 5 .venv/bin/python bench/test_margins.py tests/test_segmentation.py::outcome_small_acm_overfit \\
        --seeds 10 --threads 1 2 --json /tmp/margins.json     # (10 and 1 2 are the defaults)
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
#: Prefix of a probe function's name in a test module.
PROBE_PREFIX = "outcome_"


def find_probes() -> list[str]:
    """Every ``tests/test_*.py::outcome_*`` function (read from the source, nothing imported)."""
    specs = []
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith(PROBE_PREFIX):
                specs.append(f"tests/{path.name}::{node.name}")
    return specs


def run_one(spec: str, seed: int, threads: int, work: Path) -> dict[str, float]:
    """Import the probe's test module (``tests/`` on the path, as pytest puts it) and call the probe."""
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(TESTS))
    sys.path.insert(0, str(ROOT))
    file, name = spec.split("::")
    path = ROOT / file
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[path.stem] = module
    module_spec.loader.exec_module(module)
    return getattr(module, name)(seed, work)


def measure(spec: str, seed: int, threads: int) -> dict:
    """One probe run in a fresh process; its values and the process's wall and CPU time (s)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="margins-") as work:
        cmd = [sys.executable, __file__, "--one", spec, "--seed", str(seed), "--threads", str(threads), "--work", work]
        started, cpu0 = time.perf_counter(), os.times()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        cpu1 = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"{spec} seed {seed} threads {threads} failed:\n{proc.stderr[-3000:]}")
    values = json.loads(proc.stdout.strip().splitlines()[-1])
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    return {"spec": spec, "seed": seed, "threads": threads, "values": values,
            "wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(cpu, 1)}  # fmt: skip


def summarize(rows: list[dict]) -> dict:
    """Per probe and value: min and max over all runs, and per thread count."""
    out: dict = {}
    for row in rows:
        probe = out.setdefault(row["spec"], {"runs": 0, "cpu_s_max": 0.0})
        probe["runs"] += 1
        probe["cpu_s_max"] = max(probe["cpu_s_max"], row["cpu_s"])
        for key, value in row["values"].items():
            for label in ("all", f"threads={row['threads']}"):
                lo, hi = probe.setdefault(key, {}).get(label, (value, value))
                probe[key][label] = (min(lo, value), max(hi, value))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", help="tests/FILE.py::outcome_NAME (default: every probe)")
    parser.add_argument("--seeds", type=int, default=10, help="Seeds 0..N-1.")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, default=None, help="Write every run and the summary here.")
    parser.add_argument("--list", action="store_true", help="List the probes and exit.")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child process of one measurement
        print(json.dumps(run_one(args.one, args.seed, args.threads[0], args.work)))
        return
    specs = args.specs or find_probes()
    if args.list:
        print("\n".join(specs))
        return
    rows = []
    for spec in specs:
        for threads in args.threads:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                row = measure(spec, seed, threads)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json:  # after every run: a long measurement stopped half-way keeps what it measured
                    args.json.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows,
                                                     "summary": summarize(rows)}, indent=1) + "\n")  # fmt: skip
    print(json.dumps(summarize(rows), indent=1))


if __name__ == "__main__":
    main()
