"""A published box version against the masks of a dataset split: every image, every difference.

The ground truth is the masks' targets (:func:`irstd_bench.datasets.load_ground_truth`, the one
mask -> targets path; 8-connectivity and threshold 127 unless asked otherwise); each image's
boxes are compared with them by :func:`irstd_bench.audit.compare_boxes`.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irstd_bench import __version__
from irstd_bench._csv import csv_cell
from irstd_bench._outputs import MEMBER_DIGESTS_KEY, text_digest
from irstd_bench._progress import progress_bar
from irstd_bench.audit._compare import EDGES, BoxComparison, compare_boxes
from irstd_bench.audit._labels import BoxVersion
from irstd_bench.datasets import Dataset, load_ground_truth
from irstd_bench.targets import DEFAULT_CONNECTIVITY, DEFAULT_THRESHOLD, hole_areas

#: Schema of the audit JSON (a file of ours when it carries it).
AUDIT_SCHEMA = "irstd-bench/audit"
#: Difference kinds as the JSON and the CSV name them, with the summary key counting each.
DIFFERENCE_KINDS = {
    "missing_target": "missing_targets",
    "extra_box": "extra_boxes",
    "nested_box": "nested_boxes",
    "edge_mismatch": "edge_mismatches",
    "other": "other",
}
#: Columns of the audit CSV: one row per difference.
CSV_COLUMNS = ("image", "label_name", "kind", "box_x0", "box_y0", "box_x1", "box_y1",
               "target_x0", "target_y0", "target_x1", "target_y1", "iou", "detail")
#: Differing images printed as examples by the command.
EXAMPLES = 5


@dataclass
class ImageAudit:
    """One image: its comparison, the holes of its targets and what the version says of it."""

    stem: str
    label_name: str | None
    comparison: BoxComparison
    hole_px: np.ndarray
    label_image_size: tuple[int, int] | None = None
    image_hw: tuple[int, int] = (0, 0)

    @property
    def size_mismatch(self) -> bool:
        return self.label_image_size is not None and tuple(self.label_image_size) != tuple(self.image_hw)

    @property
    def equal(self) -> bool:
        return self.comparison.equal and not self.size_mismatch

    def differences(self) -> list[dict]:
        """Every difference of the image, in a fixed order (pairs, nested, extra, missing)."""
        c, out = self.comparison, []
        for pair in c.pairs:
            if pair.kind == "equal":
                continue
            item = {
                "kind": "edge_mismatch" if pair.kind == "edge" else "other",
                "box": _box(c.label_boxes[pair.box]),
                "target": _box(c.target_boxes[pair.target]),
                "iou": round(pair.iou, 6),
                "deltas": {e: _number(d) for e, d in zip(EDGES, pair.deltas, strict=True) if d},
            }
            out.append(item)
        for b, t in c.nested:
            out.append({
                "kind": "nested_box", "box": _box(c.label_boxes[b]), "target": _box(c.target_boxes[t]),
                "target_hole_px": int(self.hole_px[t]),
            })
        out += [{"kind": "extra_box", "box": _box(c.label_boxes[b])} for b in c.extra]
        out += [{"kind": "missing_target", "target": _box(c.target_boxes[t])} for t in c.missing]
        return out

    def record(self) -> dict:
        rec = {
            "image": self.stem,
            "label_name": self.label_name,
            "targets": len(self.comparison.target_boxes),
            "boxes": len(self.comparison.label_boxes),
        }
        if self.size_mismatch:
            rec["label_image_size"] = list(self.label_image_size)
            rec["image_size"] = list(self.image_hw)
        rec["differences"] = self.differences()
        return rec


@dataclass
class AuditResult:
    """Every image of the split, and what the run was."""

    images: list[ImageAudit]
    meta: dict
    version: BoxVersion
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The counts: ``images``, ``images_equal``, one count per difference kind, and context."""
        kinds = Counter(d["kind"] for im in self.images for d in im.differences())
        patterns = Counter(
            _pattern(p.deltas) for im in self.images for p in im.comparison.pairs if p.kind == "edge"
        )
        nested_with_hole = sum(
            int(im.hole_px[t] > 0) for im in self.images for _, t in im.comparison.nested
        )
        return {
            "images": len(self.images),
            "images_equal": sum(im.equal for im in self.images),
            **{key: kinds.get(kind, 0) for kind, key in DIFFERENCE_KINDS.items()},
            "targets": sum(len(im.comparison.target_boxes) for im in self.images),
            "boxes": sum(len(im.comparison.label_boxes) for im in self.images),
            "pairs_equal": sum(im.comparison.count("equal") for im in self.images),
            "targets_with_holes": sum(int(np.count_nonzero(im.hole_px)) for im in self.images),
            "nested_boxes_in_targets_with_holes": nested_with_hole,
            "edge_mismatch_patterns": dict(sorted(patterns.items(), key=lambda kv: (-kv[1], kv[0]))),
            "images_without_labels": sum(im.label_name is None for im in self.images),
            "label_size_mismatches": sum(im.size_mismatch for im in self.images),
            "names_without_image": len(self.version.names_without_image),
        }

    def to_dict(self, csv_name: str | None = None) -> dict:
        return {
            "schema": AUDIT_SCHEMA,
            "schema_version": 1,
            **self.meta,
            "labels": str(self.version.path.resolve()),
            "format": self.version.format,
            "settings": self.settings,
            "summary": self.summary(),
            "images_without_labels": [im.stem for im in self.images if im.label_name is None],
            "names_without_image": self.version.names_without_image,
            "csv": csv_name,
            "records": [im.record() for im in self.images if not im.equal],
            "irstd_bench_version": __version__,
        }

    def csv_rows(self) -> list[dict]:
        rows = []
        for im in self.images:
            for d in im.differences():
                box, target = d.get("box", [""] * 4), d.get("target", [""] * 4)
                if "deltas" in d:
                    detail = " ".join(f"{e}{v:+g}" for e, v in d["deltas"].items())
                elif "target_hole_px" in d:
                    detail = f"target hole {d['target_hole_px']} px"
                else:
                    detail = ""
                rows.append({
                    "image": im.stem, "label_name": im.label_name or "", "kind": d["kind"],
                    **{f"box_{e}": v for e, v in zip(EDGES, box, strict=True)},
                    **{f"target_{e}": v for e, v in zip(EDGES, target, strict=True)},
                    "iou": d.get("iou", ""), "detail": detail,
                })
        return rows

    def texts(self, out: Path, csv_path: Path | None) -> dict[Path, str]:
        """``{path: text}`` of the files to write: the CSV (if asked) first, the JSON last."""
        texts: dict[Path, str] = {}
        csv_name = None
        data = self.to_dict(None)
        if csv_path is not None:
            csv_name = _relative_name(csv_path, out)
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in self.csv_rows())
            texts[csv_path] = buffer.getvalue()
            data = self.to_dict(csv_name)
            data[MEMBER_DIGESTS_KEY] = {csv_name: text_digest(texts[csv_path])}  # the CSV is ours while unedited
        texts[out] = json.dumps(data, indent=2, allow_nan=False) + "\n"
        return texts


def audit_box_version(
    ds: Dataset,
    split: str,
    version: BoxVersion,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    connectivity: int = DEFAULT_CONNECTIVITY,
    resize_masks: bool = False,
    progress: bool = False,
) -> AuditResult:
    """Compare ``version`` with the masks of every image of ``split`` of ``ds``.

    Every image of the split is audited (images without a mask have no targets); the records
    keep the split's order.
    """
    samples = [ds.sample(stem) for stem in ds.stems(split)]
    images = []
    with progress_bar(len(samples), "audit", enabled=progress) as bar:
        for sample in samples:
            gt = load_ground_truth(
                sample, threshold=threshold, connectivity=connectivity, resize_masks=resize_masks,
                known_defect=ds.known_defect(sample.stem),
            )
            hw = gt.targets.image_size
            boxes, stated = version.boxes(sample.stem, hw)
            images.append(ImageAudit(
                stem=sample.stem, label_name=version.names.get(sample.stem),
                comparison=compare_boxes(gt.targets.boxes, boxes), hole_px=hole_areas(gt.targets),
                label_image_size=stated, image_hw=tuple(hw),
            ))
            bar.update(1)
    split_file = ds.resolve_split(split)
    meta = {
        "dataset": ds.name,
        "dataset_title": ds.layout.title,
        "root": str(ds.root.resolve()),
        "split": "all" if split_file is None else _split_name(ds, split_file),
    }
    settings = {"threshold": threshold, "connectivity": connectivity, "resize_masks": resize_masks}
    return AuditResult(images=images, meta=meta, version=version, settings=settings)


def _split_name(ds: Dataset, path: Path) -> str:
    try:
        return path.relative_to(ds.root).with_suffix("").as_posix()
    except ValueError:
        return str(path)


def _relative_name(path: Path, out: Path) -> str:
    """How the JSON names its CSV: relative to the JSON's folder when below it, else absolute."""
    try:
        return Path(path).absolute().relative_to(Path(out).absolute().parent).as_posix()
    except ValueError:
        return str(Path(path).absolute())


def _number(value: float) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else round(value, 6)


def _box(box) -> list:
    return [_number(v) for v in box]


def _pattern(deltas) -> str:
    """``"x1+1 y1+1"``: the edges an edge mismatch moves, and by how much."""
    return " ".join(f"{e}{d:+g}" for e, d in zip(EDGES, deltas, strict=True) if d)
