"""The layout of a run directory (``--workdir``), shared by training, evaluation and prediction.

config.json            resolved run config: TrainConfig fields + num_classes, class_names,
                       in_channels and the WeightMetadata used for preprocessing ("metadata")
versions.json          library versions, devices and git commit of the run
checkpoints/latest/<step>/   Orbax: "model", "train" (optimizer state, step), "data_iter"
checkpoints/best/<step>/     Orbax: "model" only, the best by the validation metric
checkpoints/damaged/         checkpoints that could not be restored, set aside (engine.checkpoints)
lock.json              the training process holding the run (engine.workdir_lock)
metrics.jsonl          one JSON object per logged step / evaluation
tb/                    TensorBoard event files
cache/                 linear-probe feature caches
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import jax

_LIBRARIES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "grain",
    "numpy",
    "pillow",
    "tensorboardX",
    "tensorflow-datasets",
)


@dataclasses.dataclass(frozen=True)
class Workdir:
    """Paths of one run; creating the object touches nothing on disk."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def versions_path(self) -> Path:
        return self.root / "versions.json"

    @property
    def latest_dir(self) -> Path:
        return self.root / "checkpoints" / "latest"

    @property
    def best_dir(self) -> Path:
        return self.root / "checkpoints" / "best"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def tb_dir(self) -> Path:
        return self.root / "tb"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def checkpoint_steps(self, which: str = "latest") -> list[int]:
        """Finished checkpoint steps under ``checkpoints/<which>`` (no Orbax needed)."""
        directory = {"latest": self.latest_dir, "best": self.best_dir}[which]
        if not directory.is_dir():
            return []
        return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.is_file():
            raise FileNotFoundError(
                f"{self.config_path} not found: {self.root} is not a training run directory "
                "(train one with `python -m launch.train --workdir=...`)"
            )
        try:
            return json.loads(self.config_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.config_path}: not valid JSON ({e})") from None

    def write_config(self, config: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json_atomically(self.config_path, config)

    def write_versions(self, extra: dict[str, Any] | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json_atomically(self.versions_path, {**library_versions(), **(extra or {})})


def library_versions() -> dict[str, Any]:
    """Python, library versions, JAX devices and the git commit of this checkout."""
    versions: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    versions["backend"] = jax.default_backend()
    versions["device_kind"] = jax.devices()[0].device_kind
    versions["device_count"] = jax.device_count()
    versions["process_count"] = jax.process_count()
    versions["git_commit"] = _git_commit()
    return versions


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
