"""Issue 7: score every method of a result set with `irstd-bench eval` and build the reports.

    .venv/bin/python reports/generator/evaluate_runs.py --dataset nuaa --gpu-dir .gpu_results/A --family split_EFLNet

For each method the confidence threshold is chosen on the family's *val* split (the threshold of
the best val F1, under the same matcher; :meth:`ReportSet.threshold_split` names another split for
a family without one) and then applied to *test*: nothing is selected on test. Classical baselines
are run here (CPU) with `irstd-bench baseline` on val and test. Every command is printed and
appended to `commands_<family>.txt` in the result set's folder (`reports/<dataset>/`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from report_sets import REPO, REPORT_SETS, ReportSet

#: The CLI, run by the interpreter running this script from the repository root.
CLI = [sys.executable, "-m", "irstd_bench"]
MATCHERS = {"iou50": "iou:0.5", "centroid3": "centroid:3"}
CLASSICAL = ("tophat", "maxmedian", "lcm", "mpcm", "ipi")
NAMES = {"eflnet-n": "EFLNet-n", "eflnet-s": "EFLNet-s", "dnanet": "DNANet", "acm": "ACM",
         "tophat": "Top-Hat", "maxmedian": "Max-Median", "lcm": "LCM", "mpcm": "MPCM", "ipi": "IPI"}


def dataset_option(parser: argparse.ArgumentParser) -> None:
    """``--dataset``: which result set (``reports/<folder>/``) the script writes."""
    parser.add_argument("--dataset", required=True, choices=sorted(REPORT_SETS),
                        help="result set: nuaa (reports/nuaa-sirst) or nudt (reports/nudt-sirst)")


def run(args: list[str], log: Path) -> None:
    line = "irstd-bench " + shlex.join(args)
    print("$", line, flush=True)
    with log.open("a") as fh:
        fh.write(line + "\n")
    subprocess.run(CLI + args, check=True, cwd=REPO)


def same_files(a: Path, b: Path) -> bool:
    """Whether two files, or two folders of plain files, hold the same names and bytes."""
    if a.is_file() and b.is_file():
        return a.read_bytes() == b.read_bytes()
    if not (a.is_dir() and b.is_dir()):
        return False
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(same_files(a / n, b / n) for n in names)


def keep_predictions(source: Path, target: Path, *, replace: bool) -> None:
    """Keep ``source`` (a predictions file, or a folder of them) at ``target`` in the result set.

    The same names and bytes already there: nothing is written. Other contents: replaced when
    ``replace`` (the caller's own copy of a run it publishes again), else refused with one line
    naming ``target``. The copy is made beside ``target`` and renamed into place, so a reader sees
    the old contents or the new ones, never a part.
    """
    if target.exists():
        if same_files(source, target):
            return
        if not replace:
            raise SystemExit(f"{target}: exists with other predictions; remove it to keep the new ones")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged, old = target.with_name(f".{target.name}.tmp"), target.with_name(f".{target.name}.old")
    for leftover in (staged, old):  # an interrupted earlier call of this function
        if leftover.is_dir():
            shutil.rmtree(leftover)
        elif leftover.exists():
            leftover.unlink()
    if source.is_dir():
        shutil.copytree(source, staged)
    else:
        shutil.copyfile(source, staged)
    if target.is_dir():  # a folder cannot be renamed over: move it aside first
        target.replace(old)
    staged.replace(target)
    if old.is_dir():
        shutil.rmtree(old)


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    dataset_option(parser)
    parser.add_argument("--gpu-dir", type=Path, required=True, help="what train_gpu.sh wrote (preds/, runs/)")
    parser.add_argument("--family", required=True, help="a split family of the result set (split_EFLNet...)")
    parser.add_argument("--skip-classical", action="store_true")
    args = parser.parse_args()
    rs: ReportSet = REPORT_SETS[args.dataset]
    fam = args.family
    here = rs.here
    work = here / "work" / fam  # predictions of classical methods (ignored by git)
    results = here / "results" / f"{fam}-test"  # not named like a split folder: these are scores
    log = here / f"commands_{fam}.txt"
    log.write_text("")
    ds = rs.dataset_args()
    val_split = rs.threshold_split(fam)
    if val_split == f"{fam}/train":  # held out for untrained methods only: the networks trained on it
        raise SystemExit(f"{rs.title} {fam}: thresholds are chosen on {val_split}, which the networks trained on; "
                         "choose a held-out part of train for them first")

    # (method label, prediction path for val, for test)
    methods: list[tuple[str, Path, Path, list[str]]] = []
    for run_dir in sorted((args.gpu_dir / "runs").iterdir()):
        name = run_dir.name  # e.g. eflnet-n-s0, dnanet-s0
        base, seed = name.rsplit("-s", 1)
        label = f"{NAMES.get(base, base)} (seed {seed})"
        if base.startswith("eflnet"):
            val, test = (args.gpu_dir / "preds" / f"{name}-{p}.json" for p in ("val", "test"))
        else:
            val, test = (args.gpu_dir / "preds" / f"{name}-{p}" for p in ("val", "test"))
        if val.exists() and test.exists():
            methods.append((label, val, test, [] if base.startswith("eflnet") else ["--format", "scoremaps"]))
    if not args.skip_classical:
        for method in CLASSICAL:
            for part, split in (("val", val_split), ("test", f"{fam}/test")):
                out = work / f"{method}-{part}"
                cmd = ["baseline", method, *ds, "--split", split, "--out", rel(out), "--save", "scoremaps"]
                if (out / "scoremaps").is_dir():  # made by an earlier run of the same command
                    with log.open("a") as fh:
                        fh.write("irstd-bench " + shlex.join(cmd) + "\n")
                else:
                    run(cmd, log)
            methods.append(
                (NAMES[method], work / f"{method}-val" / "scoremaps", work / f"{method}-test" / "scoremaps", [])
            )

    for tag, matcher in MATCHERS.items():
        out_dir = results / tag
        paths = []
        for label, val, test, fmt in methods:
            slug = label.lower().replace(" ", "").replace("(", "-").replace(")", "")
            val_json = work / "val_results" / tag / f"{slug}.json"
            run(["eval", rel(val), *ds, "--split", val_split, "--match", matcher, "--conf", "0.5",
                 "--name", label, "--out", rel(val_json), "--resize-masks", *fmt], log)
            threshold = json.loads(val_json.read_text())["metrics"]["best_f1_threshold"] or 0.5
            test_json = out_dir / f"{slug}.json"
            run(["eval", rel(test), *ds, "--split", f"{fam}/test", "--match", matcher, "--conf",
                 f"{threshold:.6g}", "--name", label, "--out", rel(test_json), "--resize-masks", *fmt], log)
            paths.append(test_json)
        run(["report", *map(rel, paths), "--out", rel(here / f"report_{fam}_{tag}"), "--title",
             f"{rs.title} {fam}/test, {matcher} (threshold chosen on {val_split})", "--force"], log)
        summarise_seeds(paths, here / f"seeds_{fam}_{tag}.md", matcher)


def summarise_seeds(paths: list[Path], target: Path, matcher: str) -> None:
    """Mean ± std over seeds of each trained method (P, R, F1, AP50).

    The metrics are ``irstd-bench report``'s reading of each file (``load_results``): an AP50 that
    means nothing for the run (a score map under a non-IoU matcher) is ``–†``, its reason below.
    """
    from irstd_bench.report import load_results

    groups: dict[str, list] = {}
    for path in paths:
        result = load_results(path)
        groups.setdefault(result.method.split(" (seed")[0], []).append(result)
    lines = [f"| Method ({matcher}) | runs | P | R | F1 | AP50 |", "|---|---|---|---|---|---|"]
    notes: list[str] = []
    for base, runs in groups.items():
        cells = []
        for key in ("precision", "recall", "f1", "ap50"):
            values = [r.metrics[key] for r in runs if r.metrics.get(key) is not None]
            reasons = [r.undefined[key] for r in runs if key in r.undefined]
            if reasons and len(reasons) == len(runs):
                notes += [reasons[0]] if reasons[0] not in notes else []
                cells.append("–" + "†" * (notes.index(reasons[0]) + 1))
            elif not values:
                cells.append("–")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}")
            else:
                cells.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}")
        lines.append(f"| {base} | {len(runs)} | " + " | ".join(cells) + " |")
    if notes:
        lines += [""] + [f"{'†' * (k + 1)} {text}  " for k, text in enumerate(notes)]
    target.write_text("\n".join(lines) + "\n")
    print(target.read_text())


if __name__ == "__main__":
    sys.exit(main())
