"""What ``irstd-bench reproduce`` leaves: report folder, tables, RUNS.md, summary JSON, pack.

``OUT/report`` is laid out like ``reports/nuaa-sirst/``: ``results/<family>-{val,test}/<matcher>/``
(``irstd-bench eval`` results), ``report_<family>_<matcher>/`` (``irstd-bench report``'s library),
``seeds_<family>_<matcher>.md`` (mean ± std over seeds, both protocols), ``commands.txt``,
``RUNS.md`` and ``summary.json``. The pack folder receives at most
:data:`~._pack.MAX_FILES` files of at most :data:`~._pack.MAX_FILE_BYTES` bytes.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from irstd_bench._markdown import md_cell, md_code, one_line
from irstd_bench._outputs import write_manifest, write_new_file
from irstd_bench.errors import InputError

from ._pack import PackResult, add_archive, add_file, tree_members
from ._score import matcher_tag

SUMMARY_SCHEMA = "irstd-bench/reproduce-summary"
#: Released (EMA, float16) weights are packed only up to this size each, and this much in all.
WEIGHTS_MAX_BYTES = 8 * 2**20
WEIGHTS_TOTAL_BYTES = 15 * 2**20
#: A training checkpoint (model, EMA, optimizer state, float32) is about this many times its
#: float16 release; larger checkpoints are not released for the pack.
CHECKPOINT_TO_RELEASE = 8
#: Per-run files of a training folder that are packed (never the checkpoints).
RUN_FILES = ("args.json", "results.csv")
#: Score columns of the tables: key of :class:`~._score.Scores` -> column title.
SCORE_COLUMNS = {
    "f1": "F1 (val threshold)",
    "best_f1": "best F1 on test (paper protocol)",
    "precision": "P (val thr.)",
    "recall": "R (val thr.)",
    "ap50": "AP50",
}


@dataclass
class Outcome:
    """Paths written: the report folder, RUNS.md, the summary, and the pack."""

    report: Path
    runs_md: Path
    summary: Path
    pack: PackResult = field(default_factory=PackResult)


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def group_rows(records) -> list[dict]:
    """One row per method family (seeds pooled): runs, mean ± std of each score, epochs."""
    groups: dict[str, list] = {}
    for record in records:
        if record.scores is not None:
            groups.setdefault(record.unit.family, []).append(record)
    rows = []
    for family, members in groups.items():
        row = {"method": family, "runs": len(members), "seeds": [m.unit.seed for m in members]}
        for key in SCORE_COLUMNS:
            values = [getattr(m.scores, key) for m in members if getattr(m.scores, key) is not None]
            row[key] = {"values": values, "mean": statistics.mean(values) if values else None,
                        "std": statistics.stdev(values) if len(values) > 1 else None, "text": _mean_std(values)}
        vals = [m.scores.val_best_f1 for m in members if m.scores.val_best_f1 is not None]
        row["val_best_f1_mean"] = statistics.mean(vals) if vals else None
        row["epochs"] = sorted({f"{m.epochs_done}/{m.full_epochs}" for m in members})
        row["model"], row["recipe"] = members[0].unit.model, members[0].unit.recipe
        rows.append(row)
    return rows


def better_recipes(rows: list[dict]) -> dict[str, str]:
    """Per model scored under several recipes: the recipe of the best mean val F1 (chosen on val).

    A model whose top recipes tie is left out (nothing to choose).
    """
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        if row["recipe"] is not None and row["val_best_f1_mean"] is not None:
            by_model.setdefault(row["model"], []).append(row)
    out = {}
    for model, candidates in by_model.items():
        ranked = sorted(candidates, key=lambda r: r["val_best_f1_mean"], reverse=True)
        if len(ranked) > 1 and ranked[0]["val_best_f1_mean"] > ranked[1]["val_best_f1_mean"]:
            out[model] = ranked[0]["recipe"]
    return out


def seeds_table(rows: list[dict], matcher: str) -> str:
    header = ["method", "runs", *SCORE_COLUMNS.values(), "epochs done / recipe"]
    lines = [f"Matcher {md_code(matcher)}; mean ± std over seeds where runs > 1.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["method"], str(row["runs"]), *(row[k]["text"] for k in SCORE_COLUMNS), ", ".join(row["epochs"])]
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _run_dict(record) -> dict:
    unit = record.unit
    return {
        "run": unit.run_id, "method": unit.method, "model": unit.model, "recipe": unit.recipe, "seed": unit.seed,
        "priority": unit.priority, "epochs_recipe": record.full_epochs, "epochs_planned": record.epochs_planned,
        "epochs_done": record.epochs_done, "estimated_s": round(record.estimated_s, 1),
        "train_wall_s": None if record.train_s is None else round(record.train_s, 1),
        "stopped_at_deadline": bool(record.train and record.train.stopped),
        "train_exit": None if record.train is None else record.train.returncode,
        "schedule_changes": record.schedule, "settings_not_passed": record.not_passed,
        "status": record.status, "train_command": record.train_command, "commands": record.commands,
        "scores": None if record.scores is None else record.scores.to_dict(),
        "test_results": None if record.test_results is None else str(record.test_results),
    }


def _summary(session, commit: str, device: str, rows: list[dict], report_note: str) -> dict:
    cfg = session.config
    return {
        "schema": SUMMARY_SCHEMA, "schema_version": 1,
        "command": cfg.command, "commit": commit, "device": device,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "smoke": cfg.smoke, "protocol": _protocol_dict(cfg.protocol), "budget_s": cfg.budget_s,
        "elapsed_s": round(session.elapsed(), 1),
        "phases_s": {k: round(v, 1) for k, v in session.phase_s.items()},
        "dataset": session.dataset, "root": str(session.root), "family": session.family, "matcher": cfg.matcher,
        "probes": [
            {"config": p.config_key, "epochs": p.epochs_done, "epoch_s": p.epoch_s, "startup_s": p.startup_s,
             "wall_s": round(p.wall_s, 1), "exit": p.returncode, "concurrency": p.concurrency}
            for p in session.probes.values()
        ],
        "memory": session.memory,
        "runs": [_run_dict(r) for r in session.records],
        "groups": rows,
        "better_recipe": better_recipes(rows),
        "left_out": [{"entry": e.label, "reason": e.reason} for e in session.left_out]
        + [{"entry": f"{u.run_id}", "reason": reason} for u, reason in session.dropped],
        "report": report_note,
        "errors": list(session.errors),
    }


def _protocol_dict(name: str | None) -> dict | None:
    if not name:
        return None
    from reference_model.protocol import find_protocol

    return find_protocol(name).to_dict()


def runs_markdown(summary: dict, seeds_md: str) -> str:
    """RUNS.md: how every number was made (command, commit, device, epochs, wall time, seed).

    Every value from the command line or a file stays on its line or in its cell
    (:mod:`irstd_bench._markdown`): a line break in ``--commit`` cannot start a heading.
    """
    s = summary
    out = [
        "# How every number of this reproduction was made",
        "",
        f"- Command: {md_code(s['command'])}",
        f"- Commit: {one_line(s['commit'])}",
        f"- Device: {one_line(s['device'])}",
        f"- Created: {s['created']}; budget {s['budget_s']:.0f} s, used {s['elapsed_s']:.0f} s "
        f"(phases: {', '.join(f'{k} {v:.0f} s' for k, v in s['phases_s'].items())})",
        f"- Data: {md_code(s['dataset'])} at {md_code(s['root'])}, split family {md_code(s['family'])}: "
        "trained on train, checkpoint "
        "and score threshold chosen on val, scored on test.",
        f"- Matcher {md_code(s['matcher'])}. **F1 (val threshold)**: F1 on test at the threshold of the best val F1. "
        "**best F1 on test (paper protocol)**: the best F1 over thresholds on test itself, what the EFLNet "
        "authors' `test.py` reports (the evaluator's `best_f1`).",
    ]
    if s.get("protocol"):
        p = s["protocol"]
        out += [f"- **Protocol {md_code(p['name'])}** ({p['title']}): {p['description']} Every run keeps its "
                "recipe's full schedule; the trainings are a queue that `--resume` continues from each run's last "
                "checkpoint (the epochs done are per run below; only runs that finished are scored)."]
    else:
        out += ["- Every training ran at the same time as the others on the one device, with its recipe's schedule "
                "compressed to the epochs that fit (warm-up scaled by the same factor; both listed per run)."]
    out += [f"- **Error**: {one_line(e)} (the phases after it did not run)" for e in s["errors"]]
    if s["smoke"]:
        out += ["- **Smoke run** (synthetic sample, CPU, one epoch): checks the code path; its numbers mean nothing."]
    out += ["", f"## Results on {one_line(s['family'])}/test", "", seeds_md]
    if s["better_recipe"]:
        out += ["Recipe with the better mean val F1 (chosen on val): "
                + ", ".join(f"{one_line(m)}: {md_code(r)}" for m, r in s["better_recipe"].items()), ""]
    out += [f"Report: {one_line(s['report'])}", "", "## Every run", "",
            "| run | seed | epochs done / planned / recipe | train wall s | stopped at deadline | val thr. "
            "| F1 (val thr.) | best F1 (test) | status |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in s["runs"]:
        sc = r["scores"] or {}
        out.append(
            f"| {md_cell(r['run'])} | {r['seed']} | "
            f"{r['epochs_done']} / {r['epochs_planned']} / {r['epochs_recipe']} | "
            f"{_fmt(r['train_wall_s'], 0)} | {'yes' if r['stopped_at_deadline'] else 'no'} | "
            f"{_fmt(sc.get('threshold'))} | {_fmt(sc.get('f1'))} | {_fmt(sc.get('best_f1'))} | {md_cell(r['status'])} |"
        )
    out += ["", "## Commands of each run", ""]
    for r in s["runs"]:
        changes = ", ".join(f"{k} {v}" for k, v in r["schedule_changes"].items()) or "none"
        commands = [one_line(c) for c in (r["train_command"], *r["commands"])]
        fence = "`" * max([3, *(len(run) + 1 for c in commands for run in re.findall(r"`+", c))])
        out += [f"### {one_line(r['run'])}", "",
                f"Schedule changes: {one_line(changes)}. Settings the train command does not have: "
                f"{one_line(', '.join(r['settings_not_passed']) or 'none')}.", "", fence,
                *commands, fence, ""]
    out += ["## Left out", ""]
    out += [f"- {one_line(e['entry'])}: {one_line(e['reason'])}" for e in s["left_out"]] or ["- nothing"]
    out += ["", "## Timing probes", "",
            "| model/recipe | epochs | s per epoch (under load) | start-up s | runs at once | exit |",
            "|---|---|---|---|---|---|"]
    for p in s["probes"]:
        out.append(f"| {md_cell(p['config'])} | {p['epochs']} | {_fmt(p['epoch_s'], 1)} | {_fmt(p['startup_s'], 1)} | "
                   f"{p['concurrency']} | {p['exit']} |")
    if s["memory"]:
        m = s["memory"]
        out += ["", f"Device memory during the probe: peak {m['probe_peak_bytes'] / 2**30:.1f} GiB for all probes, "
                f"{m['per_run_bytes'] / 2**30:.1f} GiB per run, of {m['total_bytes'] / 2**30:.1f} GiB."]
    return "\n".join(out) + "\n"


def _build_report(session, tag: str) -> str:
    from irstd_bench.report import build_report

    scored = [r.test_results for r in session.records if r.test_results is not None]
    if not scored:
        return "none (no run was scored)"
    folder = session.report / f"report_{session.family}_{tag}"
    title = (f"{session.family}/test, {session.config.matcher}: F1 at the val threshold; "
             "best F1 on test = paper protocol")
    try:
        build_report(scored, folder, title=title)
    except InputError as exc:
        return f"not built ({exc})"
    return f"`{folder.relative_to(session.report)}/index.html`"


def _release_small_weights(session) -> tuple[list[tuple[Path, str]], str]:
    """Float16 released weights of the scored runs that are small enough, and a note on them."""
    from reference_model.engine.checkpoint import release_checkpoint

    members, total = [], 0
    records = sorted((r for r in session.records if r.scores is not None),
                     key=lambda r: (session.work / "runs" / r.unit.run_id / "best.pt").stat().st_size)
    for record in records:
        best = session.work / "runs" / record.unit.run_id / "best.pt"
        if best.stat().st_size > CHECKPOINT_TO_RELEASE * WEIGHTS_MAX_BYTES:
            continue
        target = session.work / "weights" / f"{record.unit.run_id}.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        release_checkpoint(best, target, half=True)
        size = target.stat().st_size
        if size <= WEIGHTS_MAX_BYTES and total + size <= WEIGHTS_TOTAL_BYTES:
            members.append((target, f"weights/{target.name}"))
            total += size
    return members, f"weights packed: {', '.join(m[1] for m in members) or 'none small enough'}"


def _pack(session, runs_md: Path, summary_path: Path) -> PackResult:
    folder = session.config.pack_dir or session.config.out / "pack"
    result = PackResult()
    add_file(runs_md, folder, result)
    add_file(summary_path, folder, result)
    add_archive("report", tree_members(session.report, "report"), folder, result)
    members = []  # small and most telling first: a part that does not fit loses predictions, not logs
    for kind in ("runs", "probe"):
        base = session.work / kind
        if base.is_dir():
            members += [(p, f"{kind}/{p.parent.name}/{p.name}") for name in RUN_FILES
                        for p in sorted(base.glob(f"*/{name}"))]
    members += tree_members(session.work / "logs", "logs") + tree_members(session.work / "preds", "preds")
    add_archive("runs", members, folder, result)
    weights, note = _release_small_weights(session)
    session.log(note)
    if weights:
        add_archive("weights", weights, folder, result, compress=False)
    return result


def write_outputs(session, *, commit: str, device: str) -> Outcome:
    """Report, tables, RUNS.md, summary.json, and the pack of ``session``."""
    begun = time.monotonic()
    tag = matcher_tag(session.config.matcher)
    report_note = _build_report(session, tag)
    rows = group_rows(session.records)
    seeds_md = seeds_table(rows, session.config.matcher) if rows else "No run was scored.\n"
    write_new_file(session.report / f"seeds_{session.family}_{tag}.md", seeds_md)
    session.phase_s["report"] = time.monotonic() - begun
    summary = _summary(session, commit, device, rows, report_note)
    summary_path = session.report / "summary.json"
    write_new_file(summary_path, json.dumps(summary, indent=2) + "\n")
    runs_md = session.report / "RUNS.md"
    write_new_file(runs_md, runs_markdown(summary, seeds_md))
    outcome = Outcome(session.report, runs_md, summary_path)
    write_manifest(session.report, "reproduce")  # a later --resume may replace this report folder
    if not session.config.protocol or session.config.pack_dir is not None:  # --protocol: no pack unless asked
        outcome.pack = _pack(session, runs_md, summary_path)
    session.log(f"done: {runs_md}; pack {', '.join(p.name for p in outcome.pack.files)}"
                + (f"; left out of the pack: {'; '.join(outcome.pack.left_out)}" if outcome.pack.left_out else ""))
    return outcome
