"""The results of a split and their files: the results JSON and the two CSVs.

:class:`EvaluationResult` holds the metrics and the per-image records; :func:`results_texts`
builds the three texts (JSON, per-image CSV, per-target CSV) and :func:`write_results` writes
them. The layout is the contract of ``docs/CONTRACTS.md`` (read by ``irstd-bench report``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from irstd_bench import __version__
from irstd_bench._csv import csv_cell
from irstd_bench._outputs import (
    MEMBER_DIGESTS_KEY,
    Claim,
    check_file_replaceable,
    json_schema_owner,
    set_member_owner,
    text_digest,
    write_file_set,
)
from irstd_bench.evaluate._matching import UNMATCHED
from irstd_bench.evaluate._per_image import PerImageData
from irstd_bench.evaluate._records import ImageRecord

SCHEMA = "irstd-bench/results"
SCHEMA_VERSION = 1

#: Columns of the per-image CSV.
PER_IMAGE_COLUMNS = ("image", "gt", "pred", "tp", "fp", "fn", "iou")

#: Columns of the per-target CSV (also read by ``report``'s qualitative figures).
PER_TARGET_COLUMNS = ("image", "kind", "x0", "y0", "x1", "y1", "cx", "cy", "area_px", "score", "matched_with")


@dataclass
class EvaluationResult:
    """Metrics of a split, with everything the results JSON and the CSVs hold.

    Attributes
    ----------
    metrics : dict
        ``tp fp fn precision recall f1 best_f1 best_f1_threshold ap50 ap iou niou pd fa_e6``;
        ``None`` where undefined or not applicable (pixel metrics for boxes); ``ci95`` (with the
        bootstrap): ``{metric: [lo, hi] or None}``.
    counts : dict
    size_bins : list of dict
    curves : dict
        ``pr`` (and ``pd_fa`` for score maps), thresholds increasing.
    records : list of ImageRecord
    settings : dict
        How the run was scored, including the ``ap`` conventions (``interpolation``,
        ``max_dets``, ``ap50_iou``) and the ``bootstrap`` settings.
    per_image : PerImageData or None
        The numbers the metrics add up, image by image (the JSON's ``per_image``).
    """

    metrics: dict
    counts: dict
    size_bins: list[dict]
    curves: dict
    records: list[ImageRecord] = field(repr=False)
    matcher: str = "iou:0.5"
    conf: float = 0.5
    kind: str = "boxes"
    pred_format: str = "memory"
    settings: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    per_image: PerImageData | None = field(default=None, repr=False)

    def to_dict(self, *, per_image_csv: str | None = None, per_target_csv: str | None = None) -> dict:
        """The results JSON (``docs/CONTRACTS.md``)."""
        meta = self.meta
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "method": meta.get("method", "unnamed"),
            "dataset": meta.get("dataset"),
            "dataset_title": meta.get("dataset_title"),
            "root": meta.get("root"),
            "split": meta.get("split"),
            "matcher": self.matcher,
            "conf": self.conf,
            "pred_format": self.pred_format,
            "kind": self.kind,
            "counts": dict(self.counts),
            "metrics": dict(self.metrics),
            "size_bins": [dict(b) for b in self.size_bins],
            "curves": self.curves,
            "per_image_csv": per_image_csv,
            "per_target_csv": per_target_csv,
            "per_image": None if self.per_image is None else self.per_image.to_json(),
            "settings": dict(self.settings),
            **({"config": meta["config"]} if "config" in meta else {}),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "irstd_bench_version": __version__,
        }

    def per_image_rows(self) -> list[dict]:
        """One row per image, :data:`PER_IMAGE_COLUMNS`."""
        rows = []
        for r in self.records:
            n_pred, n_gt, tp = len(r.pred_scores), len(r.gt_boxes), r.tp
            image_iou = r.pixels.iou if r.pixels is not None else None
            rows.append(
                {
                    "image": r.stem,
                    "gt": n_gt,
                    "pred": n_pred,
                    "tp": tp,
                    "fp": n_pred - tp,
                    "fn": n_gt - tp,
                    "iou": "" if image_iou is None else f"{image_iou:.6g}",
                }
            )
        return rows

    def per_target_rows(self) -> list[dict]:
        """One row per kept prediction (``tp``/``fp``) and per missed target (``fn``),
        :data:`PER_TARGET_COLUMNS`."""
        rows = []
        for r in self.records:
            for i, g in enumerate(r.pred_to_gt.tolist()):
                kind = "fp" if g == UNMATCHED else "tp"
                matched = "" if g == UNMATCHED else g
                box, centroid, area = r.pred_boxes[i], r.pred_centroids[i], r.pred_area[i]
                rows.append(_target_row(r.stem, kind, box, centroid, area, r.pred_scores[i], matched))
            hit = set(r.pred_to_gt.tolist())
            for g in range(len(r.gt_boxes)):
                if g not in hit:
                    rows.append(_target_row(r.stem, "fn", r.gt_boxes[g], r.gt_centroids[g], r.gt_area[g], None, ""))
        return rows

    def write(self, out: str | Path, *, force: bool = False, claims: dict[Path, Claim] | None = None) -> dict:
        """Write the results JSON to ``out`` and the CSVs next to it (:func:`write_results`)."""
        return write_results(self, out, force=force, claims=claims)


def results_texts(result: EvaluationResult, out: str | Path) -> tuple[dict, dict[Path, str]]:
    """The results JSON data and the texts of every file of ``out``: ``{path: text}`` for the
    per-image CSV (``<stem>.per_image.csv``), the per-target CSV and the JSON itself, in that
    order (the JSON last, as it names the CSVs)."""
    out = Path(out)
    base = out.name[: -len(out.suffix)] if out.suffix else out.name
    image_csv, target_csv = f"{base}.per_image.csv", f"{base}.per_target.csv"
    data = result.to_dict(per_image_csv=image_csv, per_target_csv=target_csv)
    csvs = {
        image_csv: _csv_text(PER_IMAGE_COLUMNS, result.per_image_rows()),
        target_csv: _csv_text(PER_TARGET_COLUMNS, result.per_target_rows()),
    }
    data[MEMBER_DIGESTS_KEY] = {name: text_digest(text) for name, text in csvs.items()}
    texts = {**{out.parent / name: text for name, text in csvs.items()}, out: json_text(data)}
    return data, texts


def results_claims(out: str | Path, *, force: bool = False) -> dict[Path, Claim]:
    """Check that the set of ``out`` may be written; the claims :func:`write_results` checks again.

    The JSON is ours when it carries our results ``schema``; a CSV when the results JSON of the
    set is ours, names it (``per_image_csv`` / ``per_target_csv``) and records its content
    (:func:`~irstd_bench._outputs.set_member_owner`). Anything else, or an earlier set without
    ``force``, raises :class:`~irstd_bench.errors.InputError`.
    """
    out = Path(out)
    json_owned = json_schema_owner(SCHEMA)
    csv_owned = set_member_owner(out, json_owned, lambda data: (data.get("per_image_csv"), data.get("per_target_csv")))

    image_csv, target_csv = _csv_paths(out)
    claims = {path: check_file_replaceable(path, force=force, owned=csv_owned) for path in (image_csv, target_csv)}
    claims[out] = check_file_replaceable(out, force=force, owned=json_owned)
    return claims


def _csv_paths(out: Path) -> tuple[Path, Path]:
    base = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.parent / f"{base}.per_image.csv", out.parent / f"{base}.per_target.csv"


def write_results(
    result: EvaluationResult, out: str | Path, *, force: bool = False, claims: dict[Path, Claim] | None = None
) -> dict:
    """Build every text first (:func:`results_texts`), then write the three files as one set
    (:func:`irstd_bench._outputs.write_file_set`: all appear or none, the JSON last).

    ``claims`` are the checks made before the evaluation (:func:`results_claims`); without them
    the set is checked now (an earlier set is replaced only with ``force``). Whatever changed at
    ``out`` since the check is refused, never replaced. Returns the results JSON data."""
    out = Path(out)
    data, texts = results_texts(result, out)
    write_file_set(texts, claims if claims is not None else results_claims(out, force=force))
    return data


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def _target_row(stem, kind, box, centroid, area, score, matched_with) -> dict:
    return {
        "image": stem,
        "kind": kind,
        "x0": _fmt(box[0]),
        "y0": _fmt(box[1]),
        "x1": _fmt(box[2]),
        "y1": _fmt(box[3]),
        "cx": _fmt(centroid[0]),
        "cy": _fmt(centroid[1]),
        "area_px": _fmt(area),
        "score": "" if score is None else _fmt(score),
        "matched_with": matched_with,
    }


def _csv_text(columns, rows) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in rows)  # no formulas
    return buffer.getvalue()


def json_text(data: dict) -> str:
    """The results JSON text: objects indented by 2, each list of numbers or strings on one line
    (the per-image columns and curves stay compact: one line each, not one line per value)."""
    return _dump(_jsonable(data), 0) + "\n"


def _dump(value, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = ",\n".join(f"{inner}{json.dumps(k)}: {_dump(v, depth + 1)}" for k, v in value.items())
        return "{\n" + items + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(inner + _dump(v, depth + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, allow_nan=False)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    return value
