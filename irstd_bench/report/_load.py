"""Reading and validating results JSON files written by ``irstd-bench eval``.

The format is described in ``docs/CONTRACTS.md`` ("Results JSON"). Every problem raises
:class:`~irstd_bench.errors.InputError` naming the file, so the CLI exits with code 2 before
anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irstd_bench._io import read_json
from irstd_bench.errors import InputError
from irstd_bench.evaluate._bootstrap import INTERVAL_METRICS, metric_samples
from irstd_bench.evaluate._per_image import PerImageData, parse_per_image, read_per_image_csv

SCHEMA = "irstd-bench/results"
SCHEMA_VERSION = 1

#: Top-level keys every results file must have.
REQUIRED_KEYS = ("schema", "schema_version", "method", "dataset", "split", "matcher", "metrics")
#: Key of ``settings`` holding the score level of the pixel metrics (absent in older files).
PIXEL_THRESHOLD_KEY = "pixel_threshold"
#: Metrics every run has (box, mask and score-map runs alike).
REQUIRED_METRICS = ("tp", "fp", "fn", "precision", "recall", "f1")
#: Metrics a run may leave out or set to ``null`` (the last four exist for masks and score maps only).
OPTIONAL_METRICS = ("best_f1", "best_f1_threshold", "ap50", "iou", "niou", "pd", "fa_e6")

#: Curves and the arrays each must hold, all of one length.
CURVE_ARRAYS = {"pr": ("thresholds", "precision", "recall"), "pd_fa": ("thresholds", "pd", "fa_e6")}


#: Metrics that are fractions: each must lie in [0, 1].
UNIT_METRICS = ("precision", "recall", "f1", "best_f1", "ap50", "iou", "niou", "pd")
#: Metrics that are counts: each must be a whole number >= 0.
COUNT_METRICS = ("tp", "fp", "fn")


def _number(value: Any) -> float | None:
    """A JSON number as float, ``None`` for null; raises ``TypeError`` for anything else.

    NaN and infinities (which Python's JSON reader accepts, but no irstd-bench file holds: the
    evaluator writes ``null`` where a value is undefined) are refused as well: a table must
    never show a number nobody computed.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    value = float(value)
    if not math.isfinite(value):
        raise TypeError(value)
    return value


def _check_metric_range(name: str, value: float | None, source: str) -> None:
    """Refuse a metric outside its range: fractions in [0, 1], counts whole and >= 0, Fa >= 0."""
    if value is None:
        return
    if name in UNIT_METRICS and not 0.0 <= value <= 1.0:
        raise InputError(f"{source}: metrics.{name} = {value!r} lies outside [0, 1]")
    if name in COUNT_METRICS and (value < 0 or not value.is_integer()):
        raise InputError(f"{source}: metrics.{name} = {value!r} is not a count (a whole number >= 0)")
    if name == "fa_e6" and value < 0:
        raise InputError(f"{source}: metrics.{name} = {value!r} is negative")


@dataclass(frozen=True)
class RunResult:
    """One validated results file: one method scored on one dataset split.

    Attributes
    ----------
    source : str
        The file it came from (or a description for results passed as dicts); used in messages.
    method, dataset, dataset_title, split, matcher : str
    conf : float or None
        Confidence threshold of the operating point (P, R, F1).
    root : str or None
        Dataset root, used to find images for the qualitative grid.
    metrics : dict
        Metric name -> float, or ``None`` where not available. Always has every name of
        ``REQUIRED_METRICS`` and ``OPTIONAL_METRICS``.
    size_bins : list of dict
        Target-size bins with ``name``, ``gt``, ``tp`` and ``recall`` (``None`` when ``gt`` is 0).
    curves : dict
        ``{"pr": {...}, "pd_fa": {...}}`` with lists of floats; either may be missing.
    config : dict
        The run's model configuration (``{}`` when absent), used for ablation tables.
    per_target_csv, per_image_csv : Path or None
        Absolute paths of the CSVs, resolved against the results file's folder.
    intervals : dict
        ``metrics.ci95`` (metric -> ``[lo, hi]`` or ``None``); ``{}`` in files without it (older
        evaluators, ``--bootstrap 0``).
    per_image : PerImageData or None
        The results' ``per_image`` numbers (``None`` in files of older evaluators: see
        :func:`load_per_image`).
    settings : dict
        The evaluator's free-form settings (``pixel_threshold``, when present, is checked to be
        a number in [0, 1] or ``null``).
    kind : str or None
        ``boxes``, ``masks`` or ``scoremaps`` (``None`` where the file does not say).
    undefined : dict
        Metric name -> why it means nothing for this run (its value in ``metrics`` is ``None``):
        ``ap50`` of a score map under a non-IoU matcher
        (:func:`irstd_bench.evaluate.ap50_undefined`, applied to older files' numbers too).
    data : dict
        The parsed JSON as read.
    """

    source: str
    method: str
    dataset: str
    dataset_title: str
    split: str
    matcher: str
    conf: float | None
    root: str | None
    metrics: dict[str, float | None]
    size_bins: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    per_target_csv: Path | None = None
    per_image_csv: Path | None = None
    intervals: dict[str, list[float] | None] = field(default_factory=dict)
    per_image: PerImageData | None = field(default=None, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    kind: str | None = None
    undefined: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def dataset_key(self) -> str:
        """The column a run goes in: the dataset name (custom trees: also their root folder)."""
        if self.dataset == "custom" and self.root:
            return f"custom:{Path(self.root).name}"
        return self.dataset

    @property
    def dataset_label(self) -> str:
        """The dataset's name as a table prints it."""
        if self.dataset == "custom" and self.root:
            return Path(self.root).name
        return self.dataset_title or self.dataset

    @property
    def pixel_threshold(self) -> float | None:
        """Score level of the pixel metrics as the results file records it (``None``: boxes, no
        pixel metrics). Files written before the key existed do not record it: use
        :attr:`records_pixel_threshold` to tell the two apart."""
        return _number(self.settings.get(PIXEL_THRESHOLD_KEY))

    @property
    def records_pixel_threshold(self) -> bool:
        """Whether the file records the pixel metrics' level (absent in files of older evaluators)."""
        return PIXEL_THRESHOLD_KEY in self.settings


def parse_results(data: Any, source: str, path: Path | None = None) -> RunResult:
    """Validate a parsed results document and return it as a :class:`RunResult`.

    Parameters
    ----------
    data : dict
        The parsed JSON (``EvaluationResult.to_dict()`` gives the same dict).
    source : str
        Name used in error messages (the file path).
    path : Path, optional
        The results file; relative CSV paths are resolved against its folder.
    """
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: not an irstd-bench results file (top level is not a JSON object)")
    if data.get("schema") != SCHEMA:
        raise InputError(
            f"{source}: not an irstd-bench results file (schema is {data.get('schema')!r}, "
            f"expected {SCHEMA!r})"
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise InputError(
            f"{source}: unsupported schema_version {version!r} (this irstd-bench reads {SCHEMA_VERSION})"
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise InputError(f"{source}: missing key(s) {', '.join(missing)}")
    for key in ("method", "dataset", "split", "matcher"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise InputError(f"{source}: {key!r} must be a non-empty string, got {data[key]!r}")
    metrics_in = data["metrics"]
    if not isinstance(metrics_in, Mapping):
        raise InputError(f"{source}: 'metrics' must be an object")
    metrics: dict[str, float | None] = {}
    for name in REQUIRED_METRICS + OPTIONAL_METRICS:
        if name not in metrics_in and name in REQUIRED_METRICS:
            raise InputError(f"{source}: metrics.{name} is missing")
        try:
            metrics[name] = _number(metrics_in.get(name))
        except TypeError:
            raise InputError(
                f"{source}: metrics.{name} must be a finite number or null, got {metrics_in[name]!r}"
            ) from None
        _check_metric_range(name, metrics[name], source)
        # A required metric may still be null where it is undefined (precision with no predictions).
    try:
        conf = _number(data.get("conf"))
    except TypeError:
        raise InputError(f"{source}: 'conf' must be a number, got {data.get('conf')!r}") from None

    size_bins = _parse_size_bins(data.get("size_bins"), source)
    curves = _parse_curves(data.get("curves"), source)
    config = data.get("config") or {}
    if not isinstance(config, Mapping):
        raise InputError(f"{source}: 'config' must be an object, got {type(config).__name__}")
    settings = data.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise InputError(f"{source}: 'settings' must be an object, got {type(settings).__name__}")
    _check_pixel_threshold(settings.get(PIXEL_THRESHOLD_KEY), source)
    per_image = data.get("per_image")
    per_image = None if per_image is None else parse_per_image(per_image, source)
    root = data.get("root")
    title = data.get("dataset_title")
    kind = data.get("kind") if isinstance(data.get("kind"), str) else None
    undefined = _undefined_metrics(kind, data["matcher"])
    for name in undefined:
        metrics[name] = None  # an older evaluator's number there (0.000) means nothing either
    if per_image is not None:
        check_per_image_metrics(metrics, per_image, source)
    return RunResult(
        source=source,
        method=data["method"].strip(),
        dataset=data["dataset"].strip(),
        dataset_title=title.strip() if isinstance(title, str) and title.strip() else data["dataset"].strip(),
        split=data["split"],
        matcher=data["matcher"],
        conf=conf,
        root=root if isinstance(root, str) and root else None,
        metrics=metrics,
        size_bins=size_bins,
        curves=curves,
        config=dict(config),
        per_target_csv=_csv_path(data, "per_target_csv", source, path),
        per_image_csv=_csv_path(data, "per_image_csv", source, path),
        intervals=_parse_intervals(metrics_in.get("ci95"), source),
        per_image=per_image,
        settings=dict(settings),
        path=path,
        kind=kind,
        undefined=undefined,
        data=dict(data),
    )


def _csv_path(data: Mapping, key: str, source: str, path: Path | None) -> Path | None:
    """A CSV named by the results (``per_target_csv``, ``per_image_csv``), resolved against the
    results file's folder."""
    name = data.get(key)
    if name is not None and not isinstance(name, str):
        raise InputError(f"{source}: {key!r} must be a path string, got {name!r}")
    if not name:
        return None
    out = Path(name)
    return out if out.is_absolute() else (path.parent if path is not None else Path.cwd()) / out


def _parse_intervals(value: Any, source: str) -> dict[str, list[float] | None]:
    """``metrics.ci95``: absent (older files), or metric -> ``null`` or ``[lo, hi]`` with lo <= hi."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{source}: metrics.ci95 must be an object")
    out: dict[str, list[float] | None] = {}
    for name in INTERVAL_METRICS:
        bounds = value.get(name)
        if bounds is None:
            out[name] = None
            continue
        try:
            lo, hi = (_number(v) for v in bounds)
        except (TypeError, ValueError):
            raise InputError(f"{source}: metrics.ci95.{name} must be [lo, hi] (numbers) or null") from None
        if lo is None or hi is None or lo > hi:
            raise InputError(f"{source}: metrics.ci95.{name} = {bounds!r} is not an interval [lo, hi]")
        out[name] = [lo, hi]
    return out


def load_per_image(run: RunResult) -> PerImageData | None:
    """The per-image numbers of a run: its results' ``per_image``; for files of older evaluators,
    the counts of its per-image CSV (P, R and F1 only: no AP candidates, no pixel counts);
    ``None`` when neither is there. Numbers that do not give the run's own metrics are refused
    (:func:`check_per_image_metrics`)."""
    if run.per_image is not None:
        return run.per_image  # checked when read (parse_results)
    if run.per_image_csv is None or not run.per_image_csv.is_file():
        return None
    data = read_per_image_csv(run.per_image_csv)
    check_per_image_metrics(run.metrics, data, str(run.per_image_csv))
    return data


#: Metrics the per-image numbers must give as the results state them (nIoU, a mean of
#: fractions, differs in its last digits with the order of the sum), and the relative tolerance.
PER_IMAGE_CHECKED = ("precision", "recall", "f1", "ap50", "iou", "pd", "fa_e6")
PER_IMAGE_TOLERANCE = 1e-9


def check_per_image_metrics(metrics: Mapping[str, float | None], data: PerImageData, source: str) -> None:
    """Refuse per-image numbers that do not give the run's own metrics.

    A bootstrap (``compare``, ``report``'s intervals) resamples the per-image numbers while the
    tables state the results' metrics: both must describe the same run. Summed over images,
    ``tp`` must be ``metrics.tp``, ``pred - tp`` ``metrics.fp`` and ``gt - tp`` ``metrics.fn``,
    exactly; P, R, F1, AP50, IoU, Pd and Fa computed from them (the bootstrap's own formulas on
    the split itself) must equal the stated values where these are numbers.
    """
    totals = {
        "tp": int(data.tp.sum()),
        "fp": int(data.pred.sum() - data.tp.sum()),
        "fn": int(data.gt.sum() - data.tp.sum()),
    }
    for name, total in totals.items():
        value = metrics.get(name)
        if value is not None and value != total:
            raise InputError(
                f"{source}: its per-image numbers give {name} = {total}, metrics.{name} is {value:g}; "
                "they do not describe the same run (score it again with irstd-bench eval)"
            )
    split = metric_samples(data, np.ones((1, len(data)), np.int64), PER_IMAGE_CHECKED)
    for name, values in split.items():
        stated, found = metrics.get(name), float(values[0])
        if stated is None:
            continue  # undefined for the run (AP50 of a score map under a centroid matcher): not compared
        if not math.isfinite(found) or abs(stated - found) > PER_IMAGE_TOLERANCE * max(1.0, abs(stated)):
            raise InputError(
                f"{source}: its per-image numbers give {name} = {found:.6g}, metrics.{name} is {stated:.6g}; "
                "they do not describe the same run (score it again with irstd-bench eval)"
            )


def _undefined_metrics(kind: str | None, matcher: str) -> dict[str, str]:
    """``{metric: why}`` for the metrics that mean nothing for a run of ``kind`` under ``matcher``."""
    from irstd_bench.evaluate import ap50_undefined

    try:
        reason = ap50_undefined(kind or "", matcher)
    except InputError:  # a matcher this version does not know: nothing to judge
        return {}
    return {"ap50": reason} if reason else {}


def _check_pixel_threshold(value: Any, source: str) -> None:
    """``settings.pixel_threshold``: absent, ``null`` or a number in [0, 1]."""
    try:
        level = _number(value)
    except TypeError:
        level = math.nan
    if level is not None and not 0.0 <= level <= 1.0:
        raise InputError(f"{source}: settings.{PIXEL_THRESHOLD_KEY} must be a number in [0, 1] or null, got {value!r}")


def _parse_size_bins(bins: Any, source: str) -> list[dict[str, Any]]:
    if bins is None:
        return []
    if not isinstance(bins, list):
        raise InputError(f"{source}: 'size_bins' must be a list")
    out = []
    for i, item in enumerate(bins):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise InputError(f"{source}: size_bins[{i}] must be an object with a 'name'")
        entry = dict(item)
        try:
            for key in ("gt", "tp", "recall"):
                entry[key] = _number(item.get(key))
        except TypeError:
            raise InputError(
                f"{source}: size_bins[{i}] ({item['name']}) has a non-numeric gt/tp/recall"
            ) from None
        out.append(entry)
    return out


def _parse_curves(curves: Any, source: str) -> dict[str, dict[str, list[float]]]:
    if curves is None:
        return {}
    if not isinstance(curves, Mapping):
        raise InputError(f"{source}: 'curves' must be an object")
    out: dict[str, dict[str, list[float]]] = {}
    for name, arrays in CURVE_ARRAYS.items():
        curve = curves.get(name)
        if curve is None:
            continue
        if not isinstance(curve, Mapping):
            raise InputError(f"{source}: curves.{name} must be an object")
        parsed = {}
        for key in arrays:
            values = curve.get(key)
            if not isinstance(values, list):
                raise InputError(f"{source}: curves.{name}.{key} must be a list of numbers")
            try:
                parsed[key] = [_number(v) for v in values]
            except TypeError:
                raise InputError(f"{source}: curves.{name}.{key} holds a non-numeric value") from None
        lengths = {len(v) for v in parsed.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}={len(v)}" for k, v in parsed.items())
            raise InputError(f"{source}: curves.{name} arrays differ in length ({sizes})")
        out[name] = parsed
    return out


def load_results(path: str | Path) -> RunResult:
    """Read and validate one results JSON file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: results file not found")
    return parse_results(read_json(path), str(path), path=path.resolve())


def as_run(item: RunResult | Mapping | str | Path, index: int = 0) -> RunResult:
    """A :class:`RunResult` from a run, a results dict or a results file path."""
    if isinstance(item, RunResult):
        return item
    if isinstance(item, Mapping):
        return parse_results(item, f"<results #{index + 1}: {item.get('method', '?')}>")
    return load_results(item)


def check_compatible(runs: Sequence[RunResult]) -> None:
    """Refuse inputs that cannot share one table.

    One (method, dataset) pair may appear once, and all runs on one dataset must use the same
    split and the same matcher: otherwise numbers in one column would not be comparable.
    """
    from irstd_bench.report._seeds import run_label

    seen: dict[tuple[str, str], RunResult] = {}
    first_on: dict[str, RunResult] = {}
    for run in runs:
        key = (run_label(run), run.dataset_key)  # seeds of one method (config seed) are distinct runs
        if key in seen:
            other = seen[key]
            raise InputError(
                f"{other.source} and {run.source}: both hold method {run.method!r} on {run.dataset_label}; "
                "each (method, dataset) pair may appear once (give the runs distinct method names)"
            )
        seen[key] = run
        first = first_on.setdefault(run.dataset_key, run)
        for what in ("split", "matcher"):
            a, b = getattr(first, what), getattr(run, what)
            if a != b:
                raise InputError(
                    f"{first.source} and {run.source}: {run.dataset_label} scored with {what} {a!r} "
                    f"and {b!r}; one report column needs one {what} (report them separately)"
                )


def load_runs(items: Iterable[RunResult | Mapping | str | Path]) -> list[RunResult]:
    """Load, validate and cross-check several results (files, dicts or runs), in input order."""
    runs = [as_run(item, i) for i, item in enumerate(items)]
    if not runs:
        raise InputError("no results given (pass one or more results JSON files)")
    check_compatible(runs)
    return runs


def unique_in_order(values: Iterable[Any]) -> list[Any]:
    """Values in order of first appearance, without repeats."""
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out
