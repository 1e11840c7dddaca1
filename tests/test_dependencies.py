"""Every runtime dependency declared in pyproject.toml is imported by the package itself."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Distribution name -> the module it is imported as.
IMPORT_NAMES = {"pillow": "PIL", "pyyaml": "yaml", "scikit-image": "skimage"}


def test_declared_runtime_dependencies_are_used():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]]
    files = [p for folder in ("irstd_bench", "reference_model") for p in (REPO / folder).rglob("*.py")]
    sources = "\n".join(p.read_text(encoding="utf-8") for p in files)
    unused = []
    for name in names:
        module = IMPORT_NAMES.get(name, name)
        if not re.search(rf"^\s*(import|from)\s+{re.escape(module)}\b", sources, re.MULTILINE):
            unused.append(name)
    assert unused == [], f"declared but never imported by the package: {unused}"
