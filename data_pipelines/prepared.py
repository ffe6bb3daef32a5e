"""TFDS ArrayRecord builds of the OCT and chest X-ray sets (placeholder until the builders land)."""

from __future__ import annotations

from pathlib import Path


def has_build(name: str, data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a ``launch.prepare`` build for ``name``."""
    del name, data_dir
    return False


def open_splits(name: str, data_dir: Path, *, on_bad_image: str = "error") -> dict:
    raise NotImplementedError(name, data_dir, on_bad_image)
