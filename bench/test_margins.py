"""Margins of the tests whose verdict rests on trained floats: each probe over seeds x thread counts.

CPU training is not bit-reproducible across CPU models (AVX2 and AVX-512 kernels sum in other
orders) nor across thread counts, so a test that trains asserts a bound that holds with a margin
measured here. A *probe* is a function ``outcome_*(seed: int, work: Path) -> dict[str, float]``
in a test module (``tests/``); the test calls it with seed 0 and asserts bounds on its values,
stating in a comment the range this script measured and the command that measured it.

Each ``(probe, threads)`` pair runs its seeds in one fresh process with ``OMP_NUM_THREADS`` and
``torch.set_num_threads`` set, as ``make test`` runs the tests (``IRSTD_TEST_THREADS``); each
probe call seeds what it draws itself and gets a new empty work folder.

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


def load_probe(spec: str):
    """Import the probe's test module (``tests/`` on the path, as pytest puts it); the probe function."""
    sys.path.insert(0, str(TESTS))
    sys.path.insert(0, str(ROOT))
    file, name = spec.split("::")
    path = (ROOT / file).resolve()
    # Only an ``outcome_*`` function of a test module of this repository is ever called.
    if not name.startswith(PROBE_PREFIX) or path.parent != TESTS.resolve() or not path.name.startswith("test_"):
        raise SystemExit(f"{spec}: not a probe (tests/test_*.py::{PROBE_PREFIX}*)")
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[path.stem] = module
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def run_seeds(spec: str, seeds: list[int], threads: int) -> None:
    """The child process: the probe once per seed, one JSON line each (values, wall and CPU seconds)."""
    import torch

    torch.set_num_threads(threads)
    probe = load_probe(spec)
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="margins-") as work:
            wall, cpu = time.perf_counter(), time.process_time()
            values = probe(seed, Path(work))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        row = {"spec": spec, "seed": seed, "threads": threads, "values": values, "wall_s": round(wall, 1),
               "cpu_s": round(cpu, 1)}  # fmt: skip
        print(json.dumps(row), flush=True)


def measure(spec: str, seeds: list[int], threads: int):
    """Yield one row per seed from a fresh process running the probe with ``threads`` torch threads."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    # Idle OpenMP threads sleep instead of spinning: on a loaded machine spinning threads burn the CPU
    # the measurement needs (the wait policy changes no result).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--one", spec, "--seed-list", ",".join(map(str, seeds)), "--threads", str(threads)]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            yield json.loads(line)
    if proc.returncode != 0:
        raise SystemExit(f"{spec} ({threads} threads) failed with exit code {proc.returncode}")


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
    parser.add_argument("--seed-list", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child process of one probe and thread count
        run_seeds(args.one, [int(s) for s in args.seed_list.split(",")], args.threads[0])
        return
    specs = args.specs or find_probes()
    if args.list:
        print("\n".join(specs))
        return
    rows = []
    for spec in specs:
        for threads in args.threads:
            for row in measure(spec, list(range(args.first_seed, args.first_seed + args.seeds)), threads):
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json:  # after every run: a long measurement stopped half-way keeps what it measured
                    args.json.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows,
                                                     "summary": summarize(rows)}, indent=1) + "\n")  # fmt: skip
    print(json.dumps(summarize(rows), indent=1))


if __name__ == "__main__":
    main()
