"""What differs between the published result sets (``reports/nuaa-sirst/``, ``reports/nudt-sirst/``).

The scripts of this folder (``score_classical.py``, ``evaluate_runs.py``, ``make_reports.py``) are
one generator; ``--dataset`` picks a :class:`ReportSet`, the only place where a dataset's folder,
data root, split families, threshold rule and typed rows (the EFLNet paper's) are written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPORTS = Path(__file__).resolve().parents[1]
REPO = REPORTS.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@dataclass(frozen=True)
class ReportSet:
    """One dataset's published results.

    Attributes
    ----------
    key : str
        ``--dataset`` of the scripts and of every ``irstd-bench`` command they run.
    title : str
        The dataset's name in titles.
    folder : str
        Folder under ``reports/``.
    data : str
        Folder of the release under ``../shared/datasets``.
    families : tuple of str
        Split families with a table, in table order.
    family_titles : dict
        Family -> heading text (completed with the test split's image and target counts).
    threshold_splits : dict
        Family -> the split whose best F1 chooses the threshold applied to ``FAMILY/test``
        (default ``FAMILY/val``); a family without a val split names its rule here.
    trained_notes : dict
        ``(family, network)`` -> schedule note of a trained network's row.
    paper_rows : dict
        Family -> rows quoting the EFLNet paper: ``[(label, {column key: value})]``.
    summary_family : str or None
        Family whose table is also written to the repository's README (marker
        ``"<key> summary"``), or ``None``.
    """

    key: str
    title: str
    folder: str
    data: str
    families: tuple[str, ...]
    family_titles: dict[str, str]
    threshold_splits: dict[str, str] = field(default_factory=dict)
    trained_notes: dict[tuple[str, str], str] = field(default_factory=dict)
    paper_rows: dict[str, list[tuple[str, dict[str, float]]]] = field(default_factory=dict)
    summary_family: str | None = None

    @property
    def here(self) -> Path:
        """The result set's folder."""
        return REPORTS / self.folder

    @property
    def data_root(self) -> Path:
        return SHARED_DATASETS / self.data

    @property
    def data_arg(self) -> str:
        """The data root as the commands name it: relative to the repository root
        (``../shared/...``), where every command runs, so command files hold no absolute path."""
        return os.path.relpath(self.data_root, REPO)

    @property
    def summary_key(self) -> str:
        return f"{self.folder} summary"

    def threshold_split(self, family: str) -> str:
        """The split that chooses ``family``'s threshold (its ``val`` unless stated otherwise)."""
        return self.threshold_splits.get(family, f"{family}/val")

    def dataset_args(self) -> list[str]:
        return ["--dataset", self.key, "--root", self.data_arg]


NUAA = ReportSet(
    key="nuaa",
    title="NUAA-SIRST",
    folder="nuaa-sirst",
    data="NUAA-SIRST",
    families=("split_EFLNet", "idx_427"),
    family_titles={
        "split_EFLNet": "split_EFLNet/test** (the split behind the EFLNet paper's NUAA-SIRST column",
        "idx_427": "idx_427/test** (official split",
    },
    # The EFLNet paper (Yang et al., TGRS 2024, Table I, NUAA-SIRST; its F1 is the best over
    # thresholds on test, the "best on test" protocol).
    paper_rows={
        "split_EFLNet": [
            ("EFLNet paper (38.5 M params, full schedule; P, R at its F1's threshold)",
             {"precision": 0.882, "recall": 0.858, "best_f1": 0.870}),
            ("DNANet as reported by the EFLNet paper", {"best_f1": 0.841}),
            # ACM and ALCNet rows of the same table, as issue 21 quotes them (targets of the CPU runs).
            ("ALCNet as reported by the EFLNet paper", {"best_f1": 0.813}),
            ("ACM as reported by the EFLNet paper", {"best_f1": 0.763}),
        ],
    },
    summary_family="split_EFLNet",
)

NUDT = ReportSet(
    key="nudt",
    title="NUDT-SIRST",
    folder="nudt-sirst",
    data="NUDT-SIRST",
    families=("split_EFLNet", "50_50"),
    family_titles={
        "split_EFLNet": "split_EFLNet/test** (the split behind the EFLNet paper's NUDT-SIRST column",
        "50_50": "50_50/test** (the release's split, as DNANet and BasicIRSTD use it; threshold chosen "
                 "on 50_50/train",
    },
    # 50_50 has no val split. No method of this set learns from 50_50/train (model-based methods
    # train on nothing, the cross-dataset network on NUAA-SIRST), so 50_50/train is held-out data
    # for all of them, disjoint from 50_50/test (split_EFLNet/val is not: 119 of its 265 images are
    # in 50_50/test).
    threshold_splits={"50_50": "50_50/train"},
    # The EFLNet paper, Table I, NUDT-SIRST column (the same figures are in the authors' README,
    # YangBo0411/infrared-small-target); best F1 over thresholds on test.
    paper_rows={
        "split_EFLNet": [
            ("EFLNet paper (38.5 M params, full schedule; P, R at its F1's threshold)",
             {"precision": 0.963, "recall": 0.931, "best_f1": 0.947}),
            ("DNANet as reported by the EFLNet paper", {"best_f1": 0.901}),
        ],
    },
)

#: Every result set, by ``--dataset``.
REPORT_SETS = {rs.key: rs for rs in (NUAA, NUDT)}
