"""Publish the finished runs of a ``reproduce --protocol`` output in a result set (issue 21).

    .venv/bin/python reports/generator/publish_protocol_runs.py --dataset nuaa --family split_EFLNet \\
        --runs-out /work/runs/nuaa-cpu-windows-256

A run is published when it trained its full schedule (``results.csv`` holds every epoch of
``args.json``'s ``epochs``) and ``reproduce``'s report phase stored its val and test predictions
(``work/preds/<run>-{val,test}-e<epochs>``: COCO results for detectors, 8-bit PNG score maps for
segmenters). For each such run:

1. its predictions are copied to ``reports/<set>/predictions/<family>/<protocol>/<run>/{val,test}/`` (kept in
   the repository, a few hundred KB per run, so that any later evaluator re-scores them without
   training again);
2. for each matcher, ``irstd-bench eval`` on val chooses the threshold of the best F1 and ``eval`` on
   test at that threshold writes ``results/<family>-test/<matcher>/<model>-seed<k>.json`` (method
   ``<Title> (seed k)``), replacing an earlier file of that network and seed (``--force``: files of
   this generator);
3. ``predictions/<family>/<protocol>/runs.json`` records each run's model, recipe, protocol, seed, epochs,
   wall and CPU seconds of training (from its ``results.csv``; when its first epochs predate the
   ``cpu_s`` column, the CPU seconds count them at the mean of the timed ones and
   ``epochs_cpu_timed`` says how many were timed); the tables' notes are read from
   there (``make_reports.py``). The commits that trained them are in the set's RUNS.md.

``--variant SLUG`` publishes runs that are not the protocol's own (another training under the same
protocol, or an earlier version of a recipe) beside its rows, never in their place: results
``<model>-<SLUG>-seed<k>.json`` (method ``<Title>, <SLUG> (seed k)``, its own table row), predictions
and ``runs.json`` in ``predictions/<family>/<protocol>+<SLUG>/``.

Every command is appended to ``commands_<protocol>_<family>.txt`` of the result set. Runs not
finished are listed with their epochs and left alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

from evaluate_runs import MATCHERS, dataset_option, keep_predictions, rel, run
from report_sets import REPO, REPORT_SETS

sys.path.insert(0, str(REPO))

from reference_model.reproduce._plan import METHOD_TITLES  # noqa: E402
from reference_model.reproduce._score import prediction_input  # noqa: E402

#: File of the published runs' facts, in ``predictions/<family>/<protocol>[+<variant>]/``.
RUNS_FILE = "runs.json"
#: A ``--variant``: lower-case words joined by hyphens (it goes into file names and row titles).
VARIANT = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def variant_type(text: str) -> str:
    if not VARIANT.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: lower-case letters and digits joined by hyphens")
    return text


def predictions_folder(protocol: str, variant: str | None) -> str:
    """Folder of a protocol's kept predictions under ``predictions/<family>/`` (a variant's: its own)."""
    return protocol if variant is None else f"{protocol}+{variant}"


def publication_names(title: str, model: str, seed: int, protocol: str, variant: str | None) -> dict[str, str]:
    """Row label, results stem and predictions folder of one run (``variant``: its own row)."""
    folder = predictions_folder(protocol, variant)
    if variant is None:
        return {"label": f"{title} (seed {seed})", "stem": f"{model}-seed{seed}", "folder": folder}
    return {"label": f"{title}, {variant} (seed {seed})", "stem": f"{model}-{variant}-seed{seed}", "folder": folder}


def read_rows(results_csv: Path) -> list[dict[str, str]]:
    with results_csv.open(newline="") as fh:
        return list(csv.DictReader(fh))


def run_facts(run_dir: Path) -> dict | None:
    """Facts of a finished run (``None``: not finished)."""
    args = json.loads((run_dir / "args.json").read_text())
    rows = read_rows(run_dir / "results.csv") if (run_dir / "results.csv").is_file() else []
    if len(rows) < int(args["epochs"]):
        return None
    timed = [float(r["cpu_s"]) for r in rows if r.get("cpu_s")]
    # Epochs trained before results.csv had ``cpu_s`` count at the mean of the timed ones.
    cpu_s = sum(timed) * len(rows) / len(timed) if timed else None
    return {"run": run_dir.name, "model": args["model"], "recipe": args.get("recipe"),
            "protocol": args.get("protocol"), "seed": int(args["seed"]), "epochs": len(rows),
            "train_wall_s": round(sum(float(r["time_s"]) for r in rows), 1),
            "train_cpu_s": None if cpu_s is None else round(cpu_s, 1), "epochs_cpu_timed": len(timed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    dataset_option(parser)
    parser.add_argument("--family", required=True, help="the split family the runs trained on (split_EFLNet)")
    parser.add_argument("--runs-out", type=Path, required=True, help="a reproduce --protocol --out folder")
    parser.add_argument("--variant", type=variant_type, default=None,
                        help="publish these runs as their own rows, beside the protocol's (e.g. engine-training)")
    parser.add_argument("--run", action="append", default=None, metavar="NAME",
                        help="publish only this run folder of --runs-out (repeatable; default: every one)")
    opts = parser.parse_args()
    rs = REPORT_SETS[opts.dataset]
    fam = opts.family
    work = opts.runs_out / "work"
    published, waiting = [], []
    run_dirs = sorted((work / "runs").iterdir())
    if opts.run:
        unknown = sorted(set(opts.run) - {d.name for d in run_dirs})
        if unknown:
            sys.exit(f"--run {', '.join(unknown)}: no such run folder in {work / 'runs'}")
        run_dirs = [d for d in run_dirs if d.name in opts.run]
    for run_dir in run_dirs:
        if not (run_dir / "args.json").is_file():
            waiting.append(f"{run_dir.name}: not started")
            continue
        facts = run_facts(run_dir)
        if facts is None:
            waiting.append(f"{run_dir.name}: {len(read_rows(run_dir / 'results.csv'))} epochs so far")
            continue
        preds = {p: work / "preds" / f"{run_dir.name}-{p}-e{facts['epochs']}" for p in ("val", "test")}
        if not all(prediction_input(d) for d in preds.values() if d.is_dir()) or not all(
                d.is_dir() for d in preds.values()):
            waiting.append(f"{run_dir.name}: trained, predictions not stored yet (run cpu_reproduce.sh again)")
            continue
        published.append((facts, preds))
    if not published:
        sys.exit("nothing to publish: " + "; ".join(waiting))
    protocol = {f["protocol"] for f, _ in published}
    if len(protocol) != 1:
        sys.exit(f"runs of several protocols in {opts.runs_out}: {sorted(map(str, protocol))}")
    protocol = protocol.pop()
    folder = predictions_folder(protocol, opts.variant)
    root = rs.here / "predictions" / fam / folder
    log = rs.here / f"commands_{protocol}_{fam}.txt"
    ds = rs.dataset_args()
    records = {}
    if (root / RUNS_FILE).is_file():
        records = {r["run"]: r for r in json.loads((root / RUNS_FILE).read_text())["runs"]}
    for facts, preds in published:
        kept = {}
        for part, source in preds.items():
            kept[part] = root / facts["run"] / part
            keep_predictions(source, kept[part], replace=True)
        names = publication_names(METHOD_TITLES.get(facts["model"], facts["model"]), facts["model"], facts["seed"],
                                  protocol, opts.variant)
        label, stem = names["label"], names["stem"]
        facts = {**facts, "variant": opts.variant}
        for tag, matcher in MATCHERS.items():
            val_json = rs.here / "work" / fam / "val_results" / folder / tag / f"{stem}.json"
            for part, out, conf in (("val", val_json, None), ("test", rs.here / "results" / f"{fam}-test" / tag
                                                              / f"{stem}.json", "test")):
                pred, fmt = prediction_input(kept[part])
                if conf is None:
                    threshold = "0.5"
                else:
                    best = json.loads(val_json.read_text())["metrics"]["best_f1_threshold"]
                    threshold = f"{best if best is not None else 0.5:.6g}"
                run(["eval", rel(pred), *ds, "--split", f"{fam}/{part}", "--match", matcher, "--conf", threshold,
                     "--name", label, "--out", rel(out), "--resize-masks", "--force", "--no-progress", *fmt], log)
        records[facts["run"]] = facts
        cost = "CPU time not recorded" if facts["train_cpu_s"] is None else f"{facts['train_cpu_s'] / 3600:.2f} CPU-h"
        print(f"published {facts['run']}: {facts['epochs']} epochs, {cost}")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{RUNS_FILE}.tmp"
    tmp.write_text(json.dumps({"protocol": protocol, "variant": opts.variant, "family": fam,
                               "runs": [records[k] for k in sorted(records)]}, indent=1) + "\n")
    tmp.replace(root / RUNS_FILE)
    for line in waiting:
        print("not yet:", line)


if __name__ == "__main__":
    main()
