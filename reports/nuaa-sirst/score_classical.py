"""Run model-based methods on a NUAA-SIRST split family and score them, val-chosen threshold.

    .venv/bin/python reports/nuaa-sirst/score_classical.py nram ript --family split_EFLNet

For each method: `irstd-bench baseline` on FAMILY/val and FAMILY/test (score maps kept under the
git-ignored `work/`; an existing folder from an earlier identical command is reused), then for each
matcher `irstd-bench eval` on val, the threshold of the best val F1, and `eval` on test at that
threshold into `results/FAMILY-test/MATCHER/METHOD.json`. Every command is appended to
`commands_classical_FAMILY.txt`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from evaluate_runs import DATA_ARG, HERE, MATCHERS, NAMES, rel, run

#: Table label of each method id; the results file is named by the id (``tophat.json``).
LABELS = {**NAMES, "nram": "NRAM", "ript": "RIPT", "pstnn": "PSTNN", "ilcm": "ILCM", "rlcm": "RLCM",
          "tllcm": "TLLCM", "wslcm": "WSLCM", "tdlms": "TDLMS"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--family", required=True, help="split_EFLNet or idx_427")
    parser.add_argument("--workers", default="1", help="processes of baseline and eval (default 1)")
    args = parser.parse_args()
    fam = args.family
    work = HERE / "work" / fam
    log = HERE / f"commands_classical_{fam}.txt"
    ds = ["--dataset", "nuaa", "--root", DATA_ARG]
    for method in args.methods:
        for part in ("val", "test"):
            out = work / f"{method}-{part}"
            cmd = ["baseline", method, *ds, "--split", f"{fam}/{part}", "--out", rel(out),
                   "--save", "scoremaps", "--workers", args.workers]
            if (out / "scoremaps").is_dir():
                with log.open("a") as fh:
                    fh.write("irstd-bench " + shlex.join(cmd) + "\n")
            else:
                run(cmd, log)
        label = LABELS.get(method, method)
        for tag, matcher in MATCHERS.items():
            val_json = work / "val_results" / tag / f"{method}.json"
            run(["eval", rel(work / f"{method}-val" / "scoremaps"), *ds, "--split", f"{fam}/val",
                 "--match", matcher, "--conf", "0.5", "--name", label, "--out", rel(val_json),
                 "--resize-masks", "--force", "--workers", args.workers], log)
            threshold = json.loads(val_json.read_text())["metrics"]["best_f1_threshold"] or 0.5
            run(["eval", rel(work / f"{method}-test" / "scoremaps"), *ds, "--split", f"{fam}/test",
                 "--match", matcher, "--conf", f"{threshold:.6g}", "--name", label,
                 "--out", rel(HERE / "results" / f"{fam}-test" / tag / f"{method}.json"),
                 "--resize-masks", "--force", "--workers", args.workers], log)


if __name__ == "__main__":
    sys.exit(main())
