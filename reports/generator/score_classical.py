"""Run methods that need no training here on a result set's split family and score them, threshold
chosen on the family's threshold split (its val split, or the rule of ``report_sets.py``).

    .venv/bin/python reports/generator/score_classical.py nram ript --dataset nuaa --family split_EFLNet
    .venv/bin/python reports/generator/score_classical.py weights:nuaa-eflnet-n --dataset nudt --family 50_50
    .venv/bin/python reports/generator/score_classical.py weights:nuaa-eflnet-n --dataset nuaa --family split_EFLNet \
        --keep-predictions

A METHOD is a classical method id (``irstd-bench baseline METHOD``) or ``weights:NAME``, a trained
network's weights (``irstd-bench predict --weights NAME``: the bundled ``nuaa-eflnet-n`` scored on
another dataset is a cross-dataset row). For each method: its predictions on the threshold split
(role ``val``) and on ``FAMILY/test``, kept under the git-ignored ``reports/<set>/work/`` (an
existing output of an earlier identical command is reused), then for each matcher ``irstd-bench
eval`` on the threshold split, the threshold of the best F1 there, and ``eval`` on test at that
threshold into ``results/FAMILY-test/MATCHER/<id>.json``. Every command is appended to
``commands_classical_FAMILY.txt`` of the result set.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from evaluate_runs import MATCHERS, NAMES, dataset_option, keep_predictions, rel, run
from report_sets import REPORT_SETS, ReportSet

#: Table label of each method id; the results file is named by the id (``tophat.json``).
LABELS = {**NAMES, "nram": "NRAM", "ript": "RIPT", "pstnn": "PSTNN", "ilcm": "ILCM", "rlcm": "RLCM",
          "tllcm": "TLLCM", "wslcm": "WSLCM", "tdlms": "TDLMS"}
#: Table label of bundled weights (``weights:NAME``); " (cross-dataset)" is added on a result set of
#: another dataset than the one the checkpoint records it was trained on.
WEIGHTS_LABELS = {"nuaa-eflnet-n": "EFLNet-n, bundled NUAA-SIRST weights (CPU, engine training, 150 epochs, seed 0)"}
#: Prefix of a METHOD that names trained weights.
WEIGHTS = "weights:"


def weights_label(name: str, rs: ReportSet) -> str:
    """Table label of the bundled weights ``name`` scored on result set ``rs``."""
    from reference_model.engine.checkpoint import load_checkpoint, resolve_weights

    trained_on = (load_checkpoint(resolve_weights(name)).get("train_args") or {}).get("dataset")
    label = WEIGHTS_LABELS.get(name, name)
    return label if trained_on == rs.key else f"{label} (cross-dataset)"


def predictions(method: str, rs: ReportSet, split: str, out: Path, workers: str) -> tuple[list[str], Path]:
    """The command writing ``method``'s predictions of ``split`` to ``out``, and the path ``eval`` reads."""
    if method.startswith(WEIGHTS):
        weights = method.removeprefix(WEIGHTS)
        cmd = ["predict", "--weights", weights, *rs.dataset_args(), "--split", split, "--out", rel(out),
               "--format", "coco", "--device", "cpu", "--no-progress"]
        return cmd, out
    cmd = ["baseline", method, *rs.dataset_args(), "--split", split, "--out", rel(out), "--save", "scoremaps",
           "--workers", workers]
    return cmd, out / "scoremaps"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("methods", nargs="+", help="classical method ids, or weights:NAME")
    dataset_option(parser)
    parser.add_argument("--family", required=True, help="a split family of the result set (split_EFLNet...)")
    parser.add_argument("--workers", default="1", help="processes of baseline and eval (default 1)")
    parser.add_argument("--keep-predictions", action="store_true",
                        help="weights:NAME: also copy its predictions to "
                             "predictions/FAMILY/bundled/NAME/{val,test}.json of the result set (kept in the "
                             "repository, so that they are re-scored without predicting again)")
    args = parser.parse_args()
    rs: ReportSet = REPORT_SETS[args.dataset]
    fam = args.family
    work = rs.here / "work" / fam
    log = rs.here / f"commands_classical_{fam}.txt"
    splits = {"val": rs.threshold_split(fam), "test": f"{fam}/test"}
    for method in args.methods:
        mid = method.removeprefix(WEIGHTS)
        read: dict[str, Path] = {}
        for part, split in splits.items():
            suffix = ".json" if method.startswith(WEIGHTS) else ""
            cmd, read[part] = predictions(method, rs, split, work / f"{mid}-{part}{suffix}", args.workers)
            if read[part].exists():
                with log.open("a") as fh:
                    fh.write("irstd-bench " + shlex.join(cmd) + "\n")
            else:
                run(cmd, log)
        if args.keep_predictions and method.startswith(WEIGHTS):
            for part, path in read.items():
                keep_predictions(path, rs.here / "predictions" / fam / "bundled" / mid / f"{part}.json",
                                 replace=False)
        label = weights_label(mid, rs) if method.startswith(WEIGHTS) else LABELS.get(mid, mid)
        for tag, matcher in MATCHERS.items():
            val_json = work / "val_results" / tag / f"{mid}.json"
            run(["eval", rel(read["val"]), *rs.dataset_args(), "--split", splits["val"], "--match", matcher,
                 "--conf", "0.5", "--name", label, "--out", rel(val_json), "--resize-masks", "--force",
                 "--workers", args.workers], log)
            threshold = json.loads(val_json.read_text())["metrics"]["best_f1_threshold"] or 0.5
            run(["eval", rel(read["test"]), *rs.dataset_args(), "--split", splits["test"], "--match", matcher,
                 "--conf", f"{threshold:.6g}", "--name", label,
                 "--out", rel(rs.here / "results" / f"{fam}-test" / tag / f"{mid}.json"),
                 "--resize-masks", "--force", "--workers", args.workers], log)


if __name__ == "__main__":
    sys.exit(main())
