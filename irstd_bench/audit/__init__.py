"""Audit a published box version of a dataset against its masks.

>>> from irstd_bench.audit import audit_box_version, open_box_version          # doctest: +SKIP
>>> ds = open_dataset("NUDT-SIRST")                                             # doctest: +SKIP
>>> result = audit_box_version(ds, "all", open_box_version("labels/", "yolo", ds))  # doctest: +SKIP
>>> result.summary()["edge_mismatches"]                                         # doctest: +SKIP

The pairing rule and the kinds of difference are documented in :mod:`irstd_bench.audit._compare`
(:func:`compare_boxes`); the readers of each format in :mod:`irstd_bench.audit._labels`.
"""

from irstd_bench.audit._audit import (
    AUDIT_SCHEMA,
    CSV_COLUMNS,
    DIFFERENCE_KINDS,
    AuditResult,
    ImageAudit,
    audit_box_version,
)
from irstd_bench.audit._compare import (
    EDGE_MISMATCH_PX,
    EDGE_TOLERANCE_PX,
    BoxComparison,
    Pair,
    compare_boxes,
    edge_distance,
)
from irstd_bench.audit._labels import LABEL_FORMATS, BoxVersion, open_box_version

__all__ = [
    "AUDIT_SCHEMA",
    "CSV_COLUMNS",
    "DIFFERENCE_KINDS",
    "EDGE_MISMATCH_PX",
    "EDGE_TOLERANCE_PX",
    "LABEL_FORMATS",
    "AuditResult",
    "BoxComparison",
    "BoxVersion",
    "ImageAudit",
    "Pair",
    "audit_box_version",
    "compare_boxes",
    "edge_distance",
    "open_box_version",
]
