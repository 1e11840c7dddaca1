"""The qualitative grid: images x methods with detections circled (after the EFLNet paper's Fig. 7).

Rows are images, the first column is the ground truth, then one column per method. Each cell
shows the image (or, for images larger than ``WHOLE_IMAGE_MAX_PX``, a ``CROP_PX`` square
crop around where most targets and detections are, the same crop across the row) with circles:

- red: detected target (``tp`` row of the per-target CSV, at the prediction),
- orange: false alarm (``fp``),
- purple: missed target (``fn``, at the ground truth),
- green (ground-truth column): the ground-truth targets.

Images are chosen where methods disagree most (see :func:`choose_images`). Text is sized to stay
readable once the grid is scaled to a page's width: the report draws at most a few methods here
(:mod:`irstd_bench.report._selection`, one seed each), not every run.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from irstd_bench._csv import read_csv_cell, read_csv_rows
from irstd_bench._io import IMAGE_SUFFIXES, read_rgb
from irstd_bench.datasets import load_ground_truth, open_dataset
from irstd_bench.errors import InputError
from irstd_bench.report._load import RunResult, unique_in_order
from irstd_bench.report._plots import DPI, PDF_METADATA, FigureFile, new_figure
from irstd_bench.report._seeds import run_label

TP_COLOR = "#ff0000"
FP_COLOR = "#ff9900"
FN_COLOR = "#9933ff"
GT_COLOR = "#00cc44"
KIND_COLORS = {"tp": TP_COLOR, "fp": FP_COLOR, "fn": FN_COLOR, "gt": GT_COLOR}
KINDS = ("tp", "fp", "fn")

#: Images with both sides up to this many pixels are shown whole; larger ones are cropped.
WHOLE_IMAGE_MAX_PX = 320
#: Side of the square crop of larger images, in image pixels.
CROP_PX = 192
#: Smallest circle radius as a fraction of the shown window's longer side.
MIN_RADIUS_FRACTION = 1 / 28
#: Circle line width, points.
CIRCLE_LINEWIDTH = 1.5

#: Figure layout, inches (multiples of 1/DPI so the pixel size is exact).
TILE_IN = 1.8
PAD_IN = 0.04
LEFT_IN = 0.3
TOP_IN = 0.9
#: Text sizes, points: the title, column titles (wrapped at ``TITLE_WRAP`` characters), row labels, legend.
TITLE_PT, COLUMN_PT, ROW_PT, LEGEND_PT = 12, 10, 8, 10
TITLE_WRAP = 18
BOTTOM_IN = 0.4


@dataclass(frozen=True)
class TargetRow:
    """One row of a per-target CSV: a ``tp``, ``fp`` or ``fn`` with its box and centre (px)."""

    kind: str
    box: tuple[float, float, float, float]
    cx: float
    cy: float


@dataclass(frozen=True)
class Mark:
    """A drawn circle, in the saved PNG's pixels (origin top-left): for tests and image maps."""

    row: int
    column: int
    kind: str
    x_px: float
    y_px: float
    radius_px: float


@dataclass
class QualitativeGrid:
    """A written grid: the figure files, its row stems, column titles, circles and PNG size."""

    figure: FigureFile
    stems: list[str]
    columns: list[str]
    marks: list[Mark]
    size_px: tuple[int, int]


def grid_size_px(n_rows: int, n_columns: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a grid PNG with ``n_columns`` including the ground truth."""
    width_in = LEFT_IN + n_columns * TILE_IN
    height_in = TOP_IN + n_rows * TILE_IN + BOTTOM_IN
    return round(width_in * DPI), round(height_in * DPI)


def _stem(name: str) -> str:
    path = Path(name)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else name


def read_per_target_csv(path: Path) -> dict[str, list[TargetRow]]:
    """Read a per-target CSV (``docs/CONTRACTS.md``) into ``{image stem: rows}``.

    ``cx``/``cy`` may be empty; the box centre is used then. File names with an image suffix
    (``Misc_1.png``) are reduced to their stem. Coordinates must be finite numbers with
    ``x1 >= x0`` and ``y1 >= y0``; the file is read by :func:`irstd_bench._csv.read_csv_rows`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: per-target CSV not found (use --qualitative 0 to leave the grid out)")
    rows = read_csv_rows(path)
    header = [h.strip() for h in (rows[0][1] if rows else [])]
    missing = [c for c in ("image", "kind", "x0", "y0", "x1", "y1") if c not in header]
    if missing:
        raise InputError(f"{path}: per-target CSV lacks column(s) {', '.join(missing)}")
    out: dict[str, list[TargetRow]] = {}
    for line, cells in rows[1:]:
        if not any(cell.strip() for cell in cells):
            continue
        row = dict(zip(header, cells, strict=False))
        kind = (row.get("kind") or "").strip()
        if kind not in KINDS:
            raise InputError(f"{path}:{line}: kind {kind[:40]!r} is not tp, fp or fn")
        try:
            box = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
            cx = float(row["cx"]) if (row.get("cx") or "").strip() else (box[0] + box[2]) / 2
            cy = float(row["cy"]) if (row.get("cy") or "").strip() else (box[1] + box[3]) / 2
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}:{line}: box or centre is not a number") from None
        if not all(math.isfinite(v) for v in (*box, cx, cy)):
            values = ", ".join(f"{v:g}" for v in (*box, cx, cy))
            raise InputError(f"{path}:{line}: box or centre is not finite ({values})")
        if box[2] < box[0] or box[3] < box[1]:
            raise InputError(f"{path}:{line}: box {list(box)} has x1 < x0 or y1 < y0")
        out.setdefault(_stem(read_csv_cell(row["image"].strip())), []).append(TargetRow(kind, box, cx, cy))
    return out


def choose_images(per_run: Sequence[dict[str, list[TargetRow]]], n: int) -> list[str]:
    """The ``n`` images where the methods disagree most; deterministic.

    Disagreement of an image = sum over tp, fp and fn of (largest - smallest count across
    methods). Ties go to more errors (fp + fn over methods), then more rows, then the name.
    With one method this ranks by its errors.
    """
    stems = sorted({s for rows in per_run for s in rows})
    scored = []
    for stem in stems:
        counts = [[sum(r.kind == k for r in rows.get(stem, [])) for k in KINDS] for rows in per_run]
        disagreement = sum(max(c[k] for c in counts) - min(c[k] for c in counts) for k in range(3))
        errors = sum(c[1] + c[2] for c in counts)
        total = sum(sum(c) for c in counts)
        scored.append((-disagreement, -errors, -total, stem))
    return [s[-1] for s in sorted(scored)[:n]]


def _window(events: list[tuple[float, float]], height: int, width: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the part shown: the whole image, or the crop holding most events."""
    if height <= WHOLE_IMAGE_MAX_PX and width <= WHOLE_IMAGE_MAX_PX:
        return 0, 0, width, height
    side_x, side_y = min(CROP_PX, width), min(CROP_PX, height)

    def place(cx: float, cy: float) -> tuple[int, int, int, int]:
        x0 = int(min(max(round(cx - side_x / 2), 0), width - side_x))
        y0 = int(min(max(round(cy - side_y / 2), 0), height - side_y))
        return x0, y0, x0 + side_x, y0 + side_y

    best, best_count = place(width / 2, height / 2), -1
    for cx, cy in events:
        window = place(cx, cy)
        count = sum(window[0] <= x < window[2] and window[1] <= y < window[3] for x, y in events)
        if count > best_count:
            best, best_count = window, count
    return best


@dataclass
class _Cell:
    kind: str
    cx: float
    cy: float
    w: float
    h: float


def draw_grid(
    images: Sequence[tuple[str, np.ndarray, list[_Cell]]],
    columns: Sequence[tuple[str, dict[str, list[TargetRow]]]],
    folder: Path,
    name: str,
    title: str,
) -> QualitativeGrid:
    """Draw and save the grid.

    Parameters
    ----------
    images : list of (stem, rgb (H, W, 3) uint8, ground-truth circles)
    columns : list of (method, per-target rows by stem)
    """
    n_rows, n_cols = len(images), len(columns) + 1
    width_px, height_px = grid_size_px(n_rows, n_cols)
    width_in, height_in = width_px / DPI, height_px / DPI
    fig = new_figure((width_in, height_in), layout=None)
    fig.text(0.5, 1 - 0.08 / height_in, title, ha="center", va="top", fontsize=TITLE_PT, weight="bold")
    drawn: list[tuple[int, int, str, object, float, float, float]] = []
    titles = ["Ground truth"] + [method for method, _ in columns]
    for i, (stem, rgb, gt_cells) in enumerate(images):
        height, width = rgb.shape[:2]
        events = [(c.cx, c.cy) for c in gt_cells]
        events += [(r.cx, r.cy) for _, rows in columns for r in rows.get(stem, [])]
        x0, y0, x1, y1 = _window(events, height, width)
        crop = rgb[y0:y1, x0:x1]
        min_radius = MIN_RADIUS_FRACTION * max(x1 - x0, y1 - y0)
        bottom_in = BOTTOM_IN + (n_rows - 1 - i) * TILE_IN + PAD_IN
        cropped = (x1 - x0, y1 - y0) != (width, height)
        fig.text(
            LEFT_IN / 2 / width_in,
            (bottom_in + TILE_IN / 2 - PAD_IN) / height_in,
            f"{stem} (crop at x={x0}, y={y0})" if cropped else stem,
            rotation=90,
            ha="center",
            va="center",
            fontsize=ROW_PT,
        )
        for j in range(n_cols):
            rect = (
                (LEFT_IN + j * TILE_IN + PAD_IN) / width_in,
                bottom_in / height_in,
                (TILE_IN - 2 * PAD_IN) / width_in,
                (TILE_IN - 2 * PAD_IN) / height_in,
            )
            ax = fig.add_axes(rect)
            ax.imshow(crop, extent=(x0, x1, y1, y0), interpolation="nearest")
            ax.set_xlim(x0, x1)
            ax.set_ylim(y1, y0)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(textwrap.fill(titles[j], TITLE_WRAP), fontsize=COLUMN_PT, pad=3)
            if j == 0:
                cells = gt_cells
            else:
                cells = [
                    _Cell(r.kind, r.cx, r.cy, r.box[2] - r.box[0], r.box[3] - r.box[1])
                    for r in columns[j - 1][1].get(stem, [])
                ]
            for cell in cells:
                if not (x0 <= cell.cx <= x1 and y0 <= cell.cy <= y1):
                    continue
                radius = max(min_radius, 0.5 * math.hypot(cell.w, cell.h) + 2)
                ax.add_patch(
                    Circle(
                        (cell.cx, cell.cy),
                        radius,
                        fill=False,
                        edgecolor=KIND_COLORS[cell.kind],
                        linewidth=CIRCLE_LINEWIDTH,
                    )
                )
                drawn.append((i, j, cell.kind, ax, cell.cx, cell.cy, radius))
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markerfacecolor="none",
            markeredgecolor=color,
            markeredgewidth=CIRCLE_LINEWIDTH,
            label=label,
        )
        for label, color in (
            ("ground truth", GT_COLOR),
            ("detected (TP)", TP_COLOR),
            ("false alarm (FP)", FP_COLOR),
            ("missed (FN)", FN_COLOR),
        )
    ]
    fig.legend(
        handles=handles, loc="lower center", ncols=4, frameon=False, fontsize=LEGEND_PT, bbox_to_anchor=(0.5, 0.0)
    )
    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    fig.savefig(png, dpi=DPI, format="png")
    # Positions are read after the PNG is drawn and before the PDF redraws at another dpi.
    marks = []
    for i, j, kind, ax, cx, cy, radius in drawn:
        centre = ax.transData.transform((cx, cy))
        edge = ax.transData.transform((cx + radius, cy))
        marks.append(
            Mark(i, j, kind, float(centre[0]), float(height_px - centre[1]), float(abs(edge[0] - centre[0])))
        )
    fig.savefig(pdf, format="pdf", metadata=PDF_METADATA)
    figure = FigureFile(
        name,
        title,
        "Red: detected target; orange: false alarm; purple: missed target; green: ground truth.",
        png,
        pdf,
    )
    return QualitativeGrid(figure, [s for s, _, _ in images], titles, marks, (width_px, height_px))


def _open_run_dataset(run: RunResult):
    hint = "(use --qualitative 0 to leave the grid out)"
    if not run.root:
        raise InputError(f"{run.source}: no dataset 'root' to read images for the qualitative grid {hint}")
    try:
        if run.dataset == "custom":
            s = run.settings
            return open_dataset(
                run.root,
                "custom",
                image_dir=s.get("image_dir"),
                mask_dir=s.get("mask_dir"),
                mask_suffix=s.get("mask_suffix") or "",
            )
        return open_dataset(run.root, run.dataset)
    except InputError as exc:
        raise InputError(
            f"{run.source}: cannot open the dataset for the qualitative grid: {exc} {hint}"
        ) from None


def qualitative_figures(
    runs: Sequence[RunResult], folder: Path, n_images: int = 4, subtitle: str = ""
) -> list[QualitativeGrid]:
    """One grid per dataset, from the runs that name a per-target CSV; ``[]`` when ``n_images`` is 0.
    ``subtitle`` (which methods the columns are) follows the title."""
    if n_images <= 0:
        return []
    grids = []
    for key in unique_in_order(r.dataset_key for r in runs):
        group = [r for r in runs if r.dataset_key == key and r.per_target_csv is not None]
        if not group:
            continue
        per_run = [read_per_target_csv(r.per_target_csv) for r in group]
        stems = choose_images(per_run, n_images)
        if not stems:
            continue
        dataset = _open_run_dataset(group[0])
        threshold = group[0].settings.get("threshold", 127)
        connectivity = group[0].settings.get("connectivity", 8)
        images = []
        for stem in stems:
            sample = dataset.sample(stem)
            rgb = read_rgb(sample.image_path)
            truth = load_ground_truth(
                sample,
                threshold=threshold if isinstance(threshold, int | float) else 127,
                connectivity=connectivity if connectivity in (4, 8) else 8,
                resize_masks=True,
            )
            targets = truth.targets
            gt_cells = [
                _Cell("gt", float(c[0]), float(c[1]), float(b[2] - b[0]), float(b[3] - b[1]))
                for c, b in zip(targets.centroids, targets.boxes, strict=True)
            ]
            images.append((stem, rgb, gt_cells))
        slug = "".join(ch if ch.isalnum() else "_" for ch in key).strip("_").lower()
        title = f"Qualitative results, {group[0].dataset_label} ({group[0].split}, {group[0].matcher})"
        title += f": {subtitle}" if subtitle else ""
        grids.append(
            draw_grid(
                images,
                [(run_label(r), rows) for r, rows in zip(group, per_run, strict=True)],
                folder,
                f"qualitative_{slug}",
                title,
            )
        )
    return grids
