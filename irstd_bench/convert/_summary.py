"""Statistics of a conversion: per split and overall, and the defects met."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from irstd_bench.convert._records import ImageRecord
from irstd_bench.targets import SIZE_BINS, size_bin_index

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def split_file_name(split: str) -> str:
    """File name (without extension) for a split: ``idx_427/test`` -> ``idx_427__test``.

    Folder separators become ``__`` and any character other than letters, digits, ``.``,
    ``_`` and ``-`` becomes ``_``, so the name never leaves its folder.
    """
    name = split.replace("\\", "/").strip("/")
    return _UNSAFE.sub("_", name.replace("/", "__")) or "_"


def _number(value: float) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else round(value, 6)


def describe(values: Sequence[float]) -> dict:
    """``{"min", "median", "mean", "max"}`` of values (``None`` each when there are none)."""
    if len(values) == 0:
        return {"min": None, "median": None, "mean": None, "max": None}
    v = np.asarray(values, np.float64)
    return {
        "min": _number(v.min()),
        "median": _number(np.median(v)),
        "mean": _number(v.mean()),
        "max": _number(v.max()),
    }


def size_bin_counts(area_px: Sequence[int]) -> dict[str, int]:
    """Targets per :data:`SIZE_BINS` bin, by pixel area."""
    index = size_bin_index(np.asarray(area_px, np.int64))
    return {name: int(np.count_nonzero(index == i)) for i, (name, _, _) in enumerate(SIZE_BINS)}


def split_statistics(records: Sequence[ImageRecord]) -> dict:
    """Counts and distributions of one set of converted images.

    Returns
    -------
    dict
        ``images``, ``targets``, ``background_images`` (images with zero targets),
        ``targets_per_image`` (``mean``, ``max`` and ``histogram``: index ``k`` is the number of
        images with ``k`` targets), ``box_width_px``, ``box_height_px``, ``box_area_px`` (``w * h``),
        ``area_px`` (target pixel count) as ``{min, median, mean, max}``, and ``size_bins``
        (targets per pixel-area bin).
    """
    per_image = np.array([rec.n_targets for rec in records], np.int64)
    boxes = np.array([b for rec in records for b in rec.boxes], np.int64).reshape(-1, 4)
    area = [a for rec in records for a in rec.area_px]
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return {
        "images": len(records),
        "targets": int(per_image.sum()),
        "background_images": int((per_image == 0).sum()),
        "targets_per_image": {
            "mean": _number(per_image.mean()) if len(records) else None,
            "max": int(per_image.max()) if len(records) else None,
            "histogram": np.bincount(per_image).tolist() if len(records) else [],
        },
        "box_width_px": describe(width),
        "box_height_px": describe(height),
        "box_area_px": describe(width * height),
        "area_px": describe(area),
        "size_bins": size_bin_counts(area),
    }


def defects_report(records: Sequence[ImageRecord], missing_masks: Sequence[str], threshold: float) -> dict:
    """The defects met, by name: skipped mask-size mismatches, resized masks, non-binary
    masks, images left out for lack of a mask."""
    skipped = [
        {
            "image": rec.stem,
            "image_size": [rec.height, rec.width],
            "mask_size": list(rec.mask_size) if rec.mask_size else None,
            "known_defect": rec.known_defect,
        }
        for rec in records
        if rec.skipped
    ]
    resized = [{"image": rec.stem, "known_defect": rec.known_defect} for rec in records if rec.mask_resized]
    nonbinary = [rec for rec in records if rec.nonbinary_values and not rec.skipped]
    values = sorted({v for rec in nonbinary for v in rec.nonbinary_values})
    return {
        "mask_size_mismatch_skipped": skipped,
        "mask_resized": resized,
        "nonbinary_masks": {
            "count": len(nonbinary),
            "values": values,
            "foreground_values": [v for v in values if v > threshold],
            "images": [rec.stem for rec in nonbinary],
        },
        "missing_masks_skipped": list(missing_masks),
    }


def render_text(summary: dict) -> str:
    """A short human-readable table of a conversion summary (printed by the CLI)."""
    lines = [f"{summary['dataset_title']} at {summary['root']} -> {summary['out']}"]
    header = f"{'split':<24} {'images':>7} {'targets':>8} {'bg':>5} {'mean/img':>9} {'max/img':>8}"
    lines += [header, "-" * len(header)]
    for name, s in summary["splits"].items():
        tpi = s["targets_per_image"]
        mean = "-" if tpi["mean"] is None else f"{tpi['mean']:.2f}"
        top = "-" if tpi["max"] is None else str(tpi["max"])
        lines.append(
            f"{name:<24} {s['images']:>7} {s['targets']:>8} {s['background_images']:>5} {mean:>9} {top:>8}"
        )
    total = summary["total"]
    lines.append(
        f"total: {total['images']} images, {total['targets']} targets; size bins (px area) "
        + ", ".join(f"{k}: {v}" for k, v in total["size_bins"].items())
    )
    d = summary["defects"]
    for item in d["mask_size_mismatch_skipped"]:
        why = item["known_defect"] or "mask size differs from image"
        lines.append(f"skipped {item['image']}: {why}")
    if d["mask_resized"]:
        lines.append("masks resized (nearest neighbour): " + ", ".join(i["image"] for i in d["mask_resized"]))
    nb = d["nonbinary_masks"]
    if nb["count"]:
        lines.append(f"non-binary masks: {nb['count']} (values {nb['values']}): " + _names(nb["images"]))
    if d["missing_masks_skipped"]:
        lines.append(
            f"images without mask skipped: {len(d['missing_masks_skipped'])}: "
            + _names(d["missing_masks_skipped"])
        )
    return "\n".join(lines)


def _names(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
