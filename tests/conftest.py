"""Shared test fixtures: where ../shared/datasets is, and small torch thread counts."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
NUAA_ROOT = SHARED_DATASETS / "NUAA-SIRST"


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


@pytest.fixture(scope="session")
def nuaa_root() -> Path:
    """The real NUAA-SIRST release in ../shared/datasets (skips where that folder is absent)."""
    if not NUAA_ROOT.is_dir():
        pytest.skip(f"real NUAA-SIRST not found at {NUAA_ROOT} (../shared/datasets is absent)")
    return NUAA_ROOT


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """../shared/datasets (skips where absent)."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"{SHARED_DATASETS} is absent")
    return SHARED_DATASETS
