"""Real photographs that installed packages ship, for golden tests (nothing is fetched)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def chelsea() -> Path:
    """scikit-image's ``chelsea.png``: a cat (ImageNet classes 281-285)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("chelsea.png comes with scikit-image (the 'test' extra)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "chelsea.png"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed scikit-image")
    return path
