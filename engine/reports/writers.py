"""Plain report files: CSV tables, JSON documents, text pages and ``.npz`` arrays.

Apart from the charts so that commands that only write a table (``launch.predict``) need not
import matplotlib. Each writer creates the parent folder and writes UTF-8 with "\n" line ends,
so equal data give equal bytes.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_csv(
    path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None
) -> Path:
    """Write dict rows (all with the same keys) as CSV; ``columns`` (default: the first row's
    keys) fixes the header, so an empty table still has it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(columns) if columns is not None else list(rows[0]) if rows else ["path"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json(path: str | Path, document: dict[str, Any]) -> Path:
    """``document`` as indented JSON; NaN refused (it is not JSON: write None)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def write_text(path: str | Path, text: str) -> Path:
    """A page or any other text file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


# Every member's zip timestamp: np.savez stamps the current time, so equal arrays would give
# different bytes on every run.
_NPZ_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` with fixed member timestamps: equal arrays give equal bytes; ``np.load``
    reads it as any ``.npz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_NPZ_DATE)
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return path
