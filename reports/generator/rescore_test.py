"""Score the model-based methods' test split again, at the thresholds their results files hold.

    .venv/bin/python reports/generator/rescore_test.py tophat ipi --dataset nuaa --family split_EFLNet --work /tmp/work

For each method: ``irstd-bench baseline METHOD`` on ``FAMILY/test`` into ``WORK/FAMILY/METHOD-test``
(when its score maps are already there, from this same command run earlier, the command is only
logged; default parameters, as ``score_classical.py``), then
for each matcher ``irstd-bench eval`` of those score maps at the ``conf`` recorded in
``reports/<set>/results/FAMILY-test/MATCHER/METHOD.json`` (the threshold chosen on val by ``score_classical.py``)
into that same file (``--force``). It adds what newer evaluators write (the per-image data and the
bootstrap intervals of issue 24) without running val again. Every command is appended to
the result set's ``commands_classical_FAMILY.txt``. A re-scored file whose metrics (intervals aside) differ from the
previous file's stops the script, naming both values, and the previous file is put back.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from evaluate_runs import MATCHERS, dataset_option, rel, run
from report_sets import REPORT_SETS
from score_classical import LABELS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("methods", nargs="+")
    dataset_option(parser)
    parser.add_argument("--family", required=True, help="a split family of the result set (split_EFLNet...)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the score maps (outside the repo)")
    parser.add_argument("--workers", default="1", help="processes of baseline and eval (default 1)")
    args = parser.parse_args()
    rs = REPORT_SETS[args.dataset]
    fam = args.family
    log = rs.here / f"commands_classical_{fam}.txt"
    ds = rs.dataset_args()
    for method in args.methods:
        out = args.work.resolve() / fam / f"{method}-test"
        baseline = ["baseline", method, *ds, "--split", f"{fam}/test", "--out", rel(out), "--save", "scoremaps",
                    "--workers", args.workers, "--no-progress"]
        if (out / "scoremaps").is_dir():  # made earlier by this same command: logged, not run again
            with log.open("a") as fh:
                fh.write("irstd-bench " + shlex.join(baseline) + "\n")
        else:
            run(baseline, log)
        for tag, matcher in MATCHERS.items():
            target = rs.here / "results" / f"{fam}-test" / tag / f"{method}.json"
            before = json.loads(target.read_text())
            saved = {p: p.read_bytes() for p in target.parent.glob(f"{method}.*")}
            run(["eval", rel(out / "scoremaps"), *ds, "--split", f"{fam}/test", "--match", matcher,
                 "--conf", repr(before["conf"]), "--name", LABELS.get(method, method), "--out", rel(target),
                 "--resize-masks", "--force", "--workers", args.workers, "--no-progress"], log)
            after = json.loads(target.read_text())
            old, new = ({k: v for k, v in d["metrics"].items() if k != "ci95"} for d in (before, after))
            changed = [k for k in set(old) | set(new) if old.get(k) != new.get(k)]
            if changed:
                for path, data in saved.items():
                    path.write_bytes(data)
                k = sorted(changed)[0]
                sys.exit(f"{rel(target)}: metrics.{k} was {old.get(k)!r}, re-scored {new.get(k)!r}; previous file kept")


if __name__ == "__main__":
    sys.exit(main())
