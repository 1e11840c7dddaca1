"""Build a result set's report folders and README tables from the results JSONs present.

    .venv/bin/python reports/generator/make_reports.py --dataset nuaa [--tables-only | --family FAMILY]
    .venv/bin/python reports/generator/make_reports.py --dataset nudt

The result set (``report_sets.py``: ``nuaa`` -> ``reports/nuaa-sirst/``, ``nudt`` ->
``reports/nudt-sirst/``) gives the folder, the split families and the typed paper rows. Reads every
``results/FAMILY-test/MATCHER/*.json`` of its folder (written by ``irstd-bench eval``: the networks
by ``evaluate_runs.py``, the methods without training by ``score_classical.py``) and, for each
family and matcher, runs ``irstd-bench report ... --force`` into ``report_FAMILY_MATCHER/`` and
writes ``seeds_FAMILY_MATCHER.md``; its commands go to ``commands_report_FAMILY.txt`` (rewritten
each time). Then it rewrites, between their markers, the table of each family in the set's
``README.md`` and, for a set with a summary family, the summary table in the repository's
``README.md``. Nothing in the tables is typed: every figure comes from a results file, except the
rows quoting the EFLNet paper (``ReportSet.paper_rows``). Re-run it after adding results: the new
methods join the tables.

A table row is one method: the runs of a trained network (files ``NAME-seedN.json``) are merged
into ``mean ± std`` over seeds; a model-based method is one file named by its method id. P, R, F1,
best F1 on test and AP50 are read from the ``iou50`` results, F1 (centroid 3 px) from the
``centroid3`` ones, the pixel metrics (IoU, nIoU, Pd, Fa) from the ``centroid3`` ones as well.
The F1 and AP50 cells carry the 95 % interval over test images and the mark of rows not
significantly different from the best (:data:`INTERVAL_KEYS`), computed by ``irstd-bench report``'s
own code (``irstd_bench.report._intervals``) from each run's per-image data.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from evaluate_runs import MATCHERS, REPO, dataset_option, rel, run, summarise_seeds
from report_sets import REPORT_SETS, ReportSet

from irstd_bench.evaluate import PIXEL_THRESHOLD, BootstrapSettings
from irstd_bench.report import RunResult, Table, load_results
from irstd_bench.report._intervals import attach_intervals, resample_runs
from irstd_bench.report._seeds import base_method, run_label
from irstd_bench.report._tables import main_table

#: A trained network's results file: ``<method>-seed<N>.json``.
TRAINED_STEM = re.compile(r"-seed\d+$")
#: Order of the trained networks in the tables (others follow, alphabetically).
TRAINED_ORDER = ("EFLNet-n", "EFLNet-s", "DNANet", "ALCNet", "ACM", "ISNet", "MSHNet", "AGPCNet", "MDvsFA")
#: Score-map pixel metrics are taken at the fixed level ``PIXEL_THRESHOLD`` since commit 01a8deb
#: (issue 15, committed at this time); earlier evaluators took them at the run's ``conf``. Results
#: files record the level as ``settings.pixel_threshold`` (``null`` for boxes, no pixel metrics);
#: files written before that key existed do not, and are judged by this time instead. A row is
#: marked as scored by an older evaluator when a file of it records another level, or records none
#: and was created before this time, or when its pixel metrics differ between the two matchers' files.
PIXEL_LEVEL_FIXED_SINCE = "2026-11-29T13:50:20+00:00"
#: Columns of a result set's tables: key -> heading; ``c:`` keys come from the centroid3 results.
DETAILED_COLUMNS = {
    "precision": "P (IoU 0.5)", "recall": "R (IoU 0.5)", "f1": "F1 (IoU 0.5, val thr.)",
    "best_f1": "F1 (IoU 0.5, best on test)", "c:f1": "F1 (centroid 3 px, val thr.)", "ap50": "AP50",
    "c:iou": "IoU", "c:niou": "nIoU", "c:pd": "Pd", "c:fa_e6": "Fa x1e-6",
}
#: Columns of the summary table in the repository's README (the set's summary family).
SUMMARY_COLUMNS = {
    "precision": "P", "recall": "R", "f1": "F1 (box IoU 0.5, val thr.)",
    "best_f1": "F1 (box IoU 0.5, best on test)", "c:f1": "F1 (centroid 3 px, val thr.)",
}
#: Fa at or above this is printed without decimals.
FA_WHOLE_FROM = 1000.0
OLDER_MARK = "†"
#: Cells with the bootstrap interval over images and the not-significant mark (``value [lo, hi] ≈``).
INTERVAL_KEYS = ("f1", "c:f1", "ap50")
PIXEL_METRICS = ("iou", "niou", "pd", "fa_e6")

BEGIN = "<!-- BEGIN make_reports.py {key}: generated from results/, do not edit by hand -->"
END = "<!-- END make_reports.py {key} -->"


@dataclass
class Row:
    """One method on one family: its runs under each matcher (``iou50``, ``centroid3``)."""

    method: str
    trained: bool
    runs: dict[str, list[RunResult]]

    def values(self, key: str) -> list[float]:
        tag = "centroid3" if key.startswith("c:") else "iou50"
        metric = key.removeprefix("c:")
        return [r.metrics[metric] for r in self.runs.get(tag, []) if r.metrics.get(metric) is not None]

    @property
    def seeds(self) -> int:
        return max(len(v) for v in self.runs.values())

    @property
    def older_evaluator(self) -> bool:
        """Pixel metrics not at the fixed level: a file says so, or (files that do not record the
        level) was created before the change; or the pixel metrics are matcher-dependent."""
        runs = [r for v in self.runs.values() for r in v]
        return any(pixel_level_differs(r) for r in runs) or bool(self.pixel_disagreements())

    def pixel_disagreements(self) -> list[str]:
        """Pixel metrics whose ``iou50`` and ``centroid3`` values differ (today's evaluator: none)."""
        return [k for k in PIXEL_METRICS if self.values(k) != self.values("c:" + k)]


def pixel_level_differs(run: RunResult) -> bool:
    """Whether ``run``'s pixel metrics may not be at ``PIXEL_THRESHOLD``: its recorded level differs
    (``null``: boxes, no pixel metrics, never differs); without a recorded level, whether the file
    was created before ``PIXEL_LEVEL_FIXED_SINCE``."""
    if run.records_pixel_threshold:
        return run.pixel_threshold is not None and run.pixel_threshold != PIXEL_THRESHOLD
    return run.data.get("created", "") < PIXEL_LEVEL_FIXED_SINCE


def collect(rs: ReportSet, family: str, results: Path | None = None) -> list[Row]:
    """Every method with results on ``family``'s test split, networks first, then by F1 (IoU 0.5).

    ``results`` defaults to the set's ``results/`` folder.
    """
    results = results if results is not None else rs.here / "results"
    rows: dict[str, Row] = {}
    for tag in MATCHERS:
        for path in sorted((results / f"{family}-test" / tag).glob("*.json")):
            result = load_results(path)
            name = base_method(result)
            row = rows.setdefault(name, Row(name, bool(TRAINED_STEM.search(path.stem)), {}))
            row.runs.setdefault(tag, []).append(result)
    for row in rows.values():
        if not row.trained and row.seeds > 1:
            files = [r.path.name for v in row.runs.values() for r in v]
            raise SystemExit(f"{family}: several results files of {row.method} ({', '.join(files)}); keep one")
        if row.pixel_disagreements():
            print(f"note: {family} {row.method}: {', '.join(row.pixel_disagreements())} differ between "
                  f"iou50 and centroid3 (not at a fixed level): marked {OLDER_MARK}", file=sys.stderr)

    def order(row: Row):
        if row.trained:
            network = row.method.split(", ")[0]  # a variant row ("EFLNet-n, engine-training") after its network's
            rank = TRAINED_ORDER.index(network) if network in TRAINED_ORDER else len(TRAINED_ORDER)
            return (0, rank, row.method != network, row.method)
        f1 = row.values("f1")
        return (1, -(statistics.mean(f1) if f1 else -1.0), row.method)

    return sorted(rows.values(), key=order)


def interval_tables(rows: list[Row]) -> dict[str, Table]:
    """Per matcher, the report's table of F1 and AP50 of these rows, with its intervals and marks."""
    out = {}
    for tag in MATCHERS:
        runs = [r for row in rows for r in row.runs.get(tag, [])]
        if runs:
            table = main_table(runs, ("f1", "ap50"))
            attach_intervals(table, resample_runs(runs, BootstrapSettings()))
            out[tag] = table
    return out


def interval_cell(row: Row, key: str, tables: dict[str, Table]) -> str | None:
    """``mean [± std] [lo, hi] [≈]`` of an :data:`INTERVAL_KEYS` cell, as ``report`` prints it."""
    tag = "centroid3" if key.startswith("c:") else "iou50"
    table, metric = tables.get(tag), key.removeprefix("c:")
    if table is None or table.members is None or metric not in [c.metric for c in table.columns]:
        return None
    members = [run_label(r) for r in row.runs.get(tag, [])]
    if members not in table.members:
        return None
    i, j = table.members.index(members), [c.metric for c in table.columns].index(metric)
    return table.formatted(i, j) if table.values[i][j] is not None else None


def cell(row: Row, key: str, tables: dict[str, Table] | None = None) -> str:
    if key in INTERVAL_KEYS and tables:
        text = interval_cell(row, key, tables)
        if text is not None:
            return text
    values = row.values(key)
    if not values:
        return "–"
    digits = 1 if key == "c:fa_e6" else 3
    mean = statistics.mean(values)
    if key == "c:fa_e6" and mean >= FA_WHOLE_FROM:
        digits = 0
    text = f"{mean:.{digits}f}"
    if len(values) > 1:
        text += f" ± {statistics.stdev(values):.{digits}f}"
    return text


def published_runs(rs: ReportSet, family: str) -> dict[str, list[dict]]:
    """Network title -> the facts of its runs published by ``publish_protocol_runs.py`` on ``family``
    (``predictions/<family>/<protocol>[+<variant>]/runs.json``: protocol, recipe, epochs, training wall and CPU
    seconds; a variant's title is ``<Title>, <variant>``, as its rows)."""
    from publish_protocol_runs import RUNS_FILE

    from reference_model.reproduce._plan import METHOD_TITLES

    found: dict[str, list[dict]] = {}
    for path in sorted((rs.here / "predictions" / family).glob(f"*/{RUNS_FILE}")):
        data = json.loads(path.read_text())
        if data.get("family") != family:
            continue
        for facts in data["runs"]:
            title = METHOD_TITLES.get(facts["model"], facts["model"])
            if facts.get("variant"):
                title = f"{title}, {facts['variant']}"
            found.setdefault(title, []).append(facts)
    return found


def run_note(runs: list[dict]) -> str:
    """``cpu-windows-256, authors recipe, 300 epochs, 0.9 CPU-h and 2.5 h wall per seed`` (means over
    seeds; the wall time is that of a shared machine, the CPU time the steadier figure)."""
    first = runs[0]
    epochs = sorted({r["epochs"] for r in runs})
    training = f"{first['recipe']} recipe" if first["recipe"] else "the engine's default training"
    note = f"{first['protocol']}, {training}, {'/'.join(map(str, epochs))} epochs"
    cpu = [r["train_cpu_s"] for r in runs if r.get("train_cpu_s") is not None]
    wall = f"{statistics.mean(r['train_wall_s'] for r in runs) / 3600:.1f} h wall"
    if cpu:
        some_estimated = any(r.get("epochs_cpu_timed", r["epochs"]) < r["epochs"] for r in runs)
        note += f", {'about ' if some_estimated else ''}{statistics.mean(cpu) / 3600:.1f} CPU-h and {wall} per seed"
    else:
        note += f", {wall} per seed"
    return note


def label(row: Row, rs: ReportSet, family: str) -> str:
    text = row.method
    if row.trained:
        runs = published_runs(rs, family).get(row.method)
        parts = ["ours", run_note(runs) if runs else rs.trained_notes.get((family, row.method))]
        parts.append(f"{row.seeds} seeds" if row.seeds > 1 else "seed " + seed_of(row))
        text = f"{row.method} ({', '.join(p for p in parts if p)})"
    return text + (f" {OLDER_MARK}" if row.older_evaluator else "")


def seed_of(row: Row) -> str:
    match = re.search(r"\(seed\s+(-?\d+)\)", next(iter(row.runs.values()))[0].method)
    return match.group(1) if match else "?"


def markdown_table(rows: list[Row], rs: ReportSet, family: str, columns: dict[str, str]) -> str:
    lines = ["| method | " + " | ".join(columns.values()) + " |", "|---" * (len(columns) + 1) + "|"]
    tables = interval_tables(rows) if any(k in INTERVAL_KEYS for k in columns) else {}
    for row in rows:
        lines.append(f"| {label(row, rs, family)} | " + " | ".join(cell(row, k, tables) for k in columns) + " |")
    for text, values in rs.paper_rows.get(family, []):
        cells = [f"*{values[k]:.3f}*" if k in values else "" for k in columns]
        lines.append(f"| *{text}* | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def family_heading(rows: list[Row], rs: ReportSet, family: str) -> str:
    runs = rows[0].runs["iou50"][0].data["counts"] if rows else {}
    return (f"**{rs.family_titles[family]}; {runs.get('images', '?')} images, "
            f"{runs.get('gt_targets', '?')} targets)")


def replace_block(path: Path, key: str, text: str) -> None:
    """Replace what lies between the BEGIN/END markers ``key`` in ``path`` with ``text``."""
    begin, end = BEGIN.format(key=key), END.format(key=key)
    content = path.read_text()
    if begin not in content or end not in content:
        raise SystemExit(f"{path}: markers for {key!r} not found")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def build_reports(rs: ReportSet, family: str, rows: list[Row], log: Path) -> None:
    for tag, matcher in MATCHERS.items():
        paths = [r.path for row in rows for r in row.runs.get(tag, [])]
        run(["report", *(rel(p) for p in paths), "--out", rel(rs.here / f"report_{family}_{tag}"), "--title",
             f"{rs.title} {family}/test, {matcher} (threshold chosen on {rs.threshold_split(family)})", "--force"],
            log)
        summarise_seeds(paths, rs.here / f"seeds_{family}_{tag}.md", matcher)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    dataset_option(parser)
    parser.add_argument("--tables-only", action="store_true",
                        help="rewrite the README tables only (no report folders, seeds tables or commands file)")
    parser.add_argument("--family", action="append",
                        help="build the report folders of this family only (repeatable; default: all)")
    args = parser.parse_args()
    rs = REPORT_SETS[args.dataset]
    for family in args.family or ():
        if family not in rs.families:
            parser.error(f"--family {family}: not a family of {rs.title} ({', '.join(rs.families)})")
    readme = rs.here / "README.md"
    for family in rs.families:
        rows = collect(rs, family)
        if not rows:
            print(f"{rs.title} {family}: no results yet", file=sys.stderr)
            continue
        if not args.tables_only and family in (args.family or rs.families):
            log = rs.here / f"commands_report_{family}.txt"
            log.write_text("")
            build_reports(rs, family, rows, log)
        table = markdown_table(rows, rs, family, DETAILED_COLUMNS)
        replace_block(readme, family, f"{family_heading(rows, rs, family)}\n\n{table}")
        if family == rs.summary_family:
            replace_block(REPO / "README.md", rs.summary_key, markdown_table(rows, rs, family, SUMMARY_COLUMNS))


if __name__ == "__main__":
    sys.exit(main())
