"""Fixtures for the data-pipeline tests: small trees of real images built in tmp dirs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import jax
import pytest


@pytest.fixture(scope="module")
def mesh8() -> jax.sharding.Mesh:
    """All 8 simulated CPU devices on the data axis."""
    return jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[dict[str, Path | bytes]], Path]:
    """``make_tree({"train/CNV/CNV-1-1.jpeg": source_path_or_bytes, ...})`` -> root."""

    def build(files: dict[str, Path | bytes], root: Path | None = None) -> Path:
        root = root or tmp_path / "tree"
        for rel, content in files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                shutil.copyfile(content, target)
        return root

    return build


@pytest.fixture(scope="session")
def sample_files() -> dict[str, list[Path]]:
    """The bundled sample's files per class (train split), sorted."""
    from data_pipelines.sources import BUNDLED_OCT_SAMPLE

    return {
        c.name: sorted(c.glob("*.jpeg")) for c in sorted((BUNDLED_OCT_SAMPLE / "train").iterdir())
    }
