"""The project's own weight file: a NumPy ``.npz`` of flat parameters plus JSON metadata.

Why npz: numpy-only, random access, no pickle (read with ``allow_pickle=False``), and a
truncated file fails the zip directory check instead of loading half the weights.
Keys are the model's flat state paths joined by ``/`` (e.g. ``stage1/0/conv1/kernel``).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from models.metadata import WeightMetadata

METADATA_KEY = "__metadata__"
FORMAT_KEY = "__format__"
FORMAT = "kermany-jax-weights/1"


class WeightFileError(ValueError):
    """A weight file that cannot be used: missing, truncated, foreign or for another model."""


def check_file(path: Path) -> None:
    """Refuse a missing or empty file before any reader sees it."""
    if not path.is_file():
        raise WeightFileError(f"{path}: no such weight file")
    if path.stat().st_size == 0:
        raise WeightFileError(f"{path}: the file is empty (0 bytes)")


def save(path: str | os.PathLike, params: Mapping[str, np.ndarray], meta: WeightMetadata) -> Path:
    """Write ``params`` and ``meta`` atomically (temp file + rename) to ``path``."""
    path = Path(path)
    bad = [k for k in params if k.startswith("__")]
    if bad:
        raise ValueError(f"parameter names may not start with '__': {bad[:3]}")
    arrays = {k: np.asarray(v) for k, v in params.items()}
    arrays[METADATA_KEY] = np.frombuffer(meta.to_json().encode(), dtype=np.uint8)
    arrays[FORMAT_KEY] = np.frombuffer(FORMAT.encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], WeightMetadata]:
    """Read a file written by :func:`save`; refuse anything else with a message naming it."""
    path = Path(path)
    check_file(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if FORMAT_KEY not in npz.files:
                raise WeightFileError(
                    f"{path}: not a kermany-jax weight file (no {FORMAT_KEY!r} entry); "
                    "convert foreign weights first with `python -m launch.convert`"
                )
            fmt = npz[FORMAT_KEY].tobytes().decode()
            if fmt != FORMAT:
                raise WeightFileError(f"{path}: format {fmt!r}, this version reads {FORMAT!r}")
            meta = WeightMetadata.from_json(npz[METADATA_KEY].tobytes().decode())
            params = {k: npz[k] for k in npz.files if not k.startswith("__")}
    except WeightFileError:
        raise
    except zipfile.BadZipFile as e:
        raise WeightFileError(
            f"{path}: not a readable weight archive ({e}); the file may be truncated or "
            "not a kermany-jax weight file"
        ) from e
    except ValueError as e:  # e.g. an object array that would need pickle
        raise WeightFileError(f"{path}: refused to read ({e})") from e
    except (OSError, EOFError, KeyError, TypeError, RuntimeError, json.JSONDecodeError) as e:
        # KeyError, TypeError: a damaged entry name or metadata; RuntimeError: flag bits
        # saying "encrypted" or an unknown compression (all found by fuzzing)
        raise WeightFileError(f"{path}: unreadable or truncated ({type(e).__name__}: {e})") from e
    return params, meta
