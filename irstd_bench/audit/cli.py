"""``irstd-bench audit``: where a published box version and the masks disagree."""

from __future__ import annotations

from pathlib import Path

import click

from irstd_bench._cli_options import MASK_THRESHOLD, max_pixels_option, skip_defects_option
from irstd_bench._io import pixel_limit
from irstd_bench.audit._audit import AUDIT_SCHEMA, EXAMPLES, AuditResult, audit_box_version
from irstd_bench.audit._labels import LABEL_FORMATS, open_box_version
from irstd_bench.errors import InputError
from irstd_bench.targets import DEFAULT_CONNECTIVITY, DEFAULT_THRESHOLD


def check_audit_out(out: Path, csv_path: Path | None, force: bool, inputs) -> dict:
    """Refuse outputs that are inputs or files irstd-bench did not write; the claims of the outputs.

    The JSON is ours when it carries the audit ``schema``; the CSV is ours when that JSON is
    ours, names it (its ``csv`` key) and records its content (a user's edit makes it theirs).
    The claims (path -> :class:`~irstd_bench._outputs.Claim`)
    go to :func:`~irstd_bench._outputs.write_file_set`, which checks them again when it writes.
    """
    from irstd_bench._outputs import check_file_replaceable, json_schema_owner, refuse_inside_inputs, set_member_owner

    json_owned = json_schema_owner(AUDIT_SCHEMA)
    csv_owned = set_member_owner(out, json_owned, lambda data: (data.get("csv"),))

    claims = {}
    if csv_path is not None:
        if Path(csv_path).absolute() == Path(out).absolute():
            raise InputError(f"--csv {csv_path}: is the --out file; give the table another name")
        refuse_inside_inputs(csv_path, inputs, option="--csv", folder=False)
        claims[Path(csv_path)] = check_file_replaceable(csv_path, force=force, owned=csv_owned, option="--csv")
    refuse_inside_inputs(out, inputs, folder=False)
    claims[Path(out)] = check_file_replaceable(out, force=force, owned=json_owned)
    return claims


def summary_text(result: AuditResult) -> str:
    """The lines ``audit`` prints: the counts, then a few differing images."""
    s = result.summary()
    meta = result.meta
    lines = [
        f"audit of {result.version.path} ({result.version.format}) against the masks of "
        f"{meta['dataset_title']} {meta['split']}",
        f"images {s['images']}, equal {s['images_equal']}, differing {s['images'] - s['images_equal']}",
        f"targets {s['targets']}, boxes {s['boxes']}, pairs equal {s['pairs_equal']}",
        f"missing targets {s['missing_targets']}, extra boxes {s['extra_boxes']}, nested boxes "
        f"{s['nested_boxes']} ({s['nested_boxes_in_targets_with_holes']} in targets with holes), "
        f"edge mismatches {s['edge_mismatches']}, other {s['other']}",
    ]
    if s["edge_mismatch_patterns"]:
        patterns = ", ".join(f"{k} {v}" for k, v in s["edge_mismatch_patterns"].items())
        lines.append(f"edge mismatches by edge: {patterns}")
    for key, text in (
        ("images_without_labels", "split images have no boxes in the version (compared as no boxes)"),
        ("label_size_mismatches", "images have another size in the version than in the dataset"),
        ("names_without_image", "names in the version are no image of the dataset (ignored)"),
    ):
        if s[key]:
            lines.append(f"warning: {s[key]} {text}")
    differing = [im for im in result.images if not im.equal]
    for im in differing[:EXAMPLES]:
        kinds = ", ".join(
            f"{d['kind']} box {d.get('box', '-')} target {d.get('target', '-')}" for d in im.differences()[:3]
        )
        lines.append(f"  {im.stem} ({im.label_name}): {kinds}")
    if len(differing) > EXAMPLES:
        lines.append(f"  ... {len(differing) - EXAMPLES} more differing images in the JSON")
    return "\n".join(lines)


@click.command("audit")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--dataset", default=None, help="nuaa, nudt, irstd1k, sirstv2 (default: detect).")
@click.option("--labels", type=click.Path(path_type=Path), required=True,
              help="The box version: a folder of YOLO .txt or VOC .xml files, or a COCO JSON.")
@click.option("--format", "fmt", type=click.Choice(LABEL_FORMATS), required=True, help="Format of --labels.")
@click.option("--split", default="all", show_default=True, help="Split audited (all, split_EFLNet/test, ...).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Audit JSON.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None,
              help="Also a table: one row per difference.")
@click.option("--threshold", default=DEFAULT_THRESHOLD, show_default=True, type=MASK_THRESHOLD,
              help="Mask binarisation: foreground where value > threshold.")
@click.option("--connectivity", default=str(DEFAULT_CONNECTIVITY), show_default=True, type=click.Choice(["4", "8"]))
@click.option("--resize-masks", is_flag=True, help="Resize masks of another size than their image.")
@max_pixels_option
@skip_defects_option
@click.option("--force", is_flag=True, help="Replace an earlier audit at --out / --csv (only files audit wrote).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def audit(root, dataset, labels, fmt, split, out, csv_path, threshold, connectivity, resize_masks, max_pixels,
          skip_defects, force, progress):
    """Compare the box version LABELS of the dataset at ROOT with the boxes of its masks.

    Every image of --split is compared; each difference is a missing target (a target without
    a box), an extra box (a box without a target), a nested box (a box inside a target's box:
    the inner contour of a target with a hole), an edge mismatch (a box off by one pixel on
    some edge) or other (overlapping, more than one pixel off). Example:

        irstd-bench audit NUDT-SIRST --labels nudt_boxes/ --format yolo --out audit.json
    """
    from irstd_bench._outputs import write_file_set
    from irstd_bench.datasets import open_dataset

    with pixel_limit(max_pixels):
        ds = open_dataset(root, dataset, skip_defects=skip_defects)
        inputs = [("dataset root", ds.root), ("labels", labels)]
        claims = check_audit_out(out, csv_path, force, inputs)
        version = open_box_version(labels, fmt, ds)
        result = audit_box_version(
            ds, split, version, threshold=threshold, connectivity=int(connectivity),
            resize_masks=resize_masks, progress=progress,
        )
    if not result.images:
        raise InputError(f"split {split!r} has no images")
    texts = result.texts(out, csv_path)
    write_file_set(texts, {Path(p): claims[Path(p)] for p in texts})  # each claim checked again there
    click.echo(summary_text(result))
    click.echo(f"wrote {out}" + (f" and {csv_path}" if csv_path else ""))
