"""File-name rules of the Kermany et al. archives: patient ids and the pneumonia pathogen.

The published archives encode the patient and, for pneumonia, the pathogen only in file names
(../shared/data/kermany/README.md). Patient ids drive the patient-level splits and the leakage
audit, so the rules live in one place and are tested on the real names.

- OCT: ``CNV-1016042-1.jpeg`` -> patient ``1016042`` (the middle number).
- Chest, pneumonia: ``person1026_bacteria_2957.jpeg`` -> ``person1026``, pathogen ``bacteria``.
- Chest, normal: ``IM-0041-0001.jpeg``, ``IM-0041-0001-0002.jpeg`` and
  ``NORMAL2-IM-0041-0001.jpeg`` -> ``IM-0041`` (``NORMAL2-`` taken as the same patient:
  the conservative choice, it can only merge patients, never split one).
- Anything else: the file stem (each file its own patient), which is what a generic
  class-per-folder tree gives us.
"""

from __future__ import annotations

import re
from pathlib import PurePath

OCT_NAME = re.compile(r"^(?P<cls>[A-Za-z]+)-(?P<patient>\d+)-(?P<n>\d+)$")
PNEUMONIA_NAME = re.compile(
    r"^(?P<patient>person\d+)_(?P<pathogen>bacteria|virus)_\d+$", re.IGNORECASE
)
NORMAL_CHEST_NAME = re.compile(r"^(?:NORMAL2-)?(?P<patient>IM-\d+)-\d+(?:-\d+)?$", re.IGNORECASE)

PATHOGENS = ("bacteria", "virus")


def oct_patient(path: str | PurePath) -> str | None:
    """Patient id of an OCT file name (``CNV-1016042-1.jpeg`` -> ``"1016042"``), else None."""
    match = OCT_NAME.match(PurePath(path).stem)
    return match["patient"] if match else None


def chest_patient(path: str | PurePath) -> str | None:
    """Patient id of a chest X-ray file name (``personN`` or ``IM-xxxx``), else None."""
    stem = PurePath(path).stem
    match = PNEUMONIA_NAME.match(stem)
    if match:
        return match["patient"].lower()
    match = NORMAL_CHEST_NAME.match(stem)
    return match["patient"].upper() if match else None


def pathogen(path: str | PurePath) -> str | None:
    """``"bacteria"`` or ``"virus"`` from a pneumonia file name, else None."""
    match = PNEUMONIA_NAME.match(PurePath(path).stem)
    return match["pathogen"].lower() if match else None


def patient_of(path: str | PurePath) -> str:
    """Patient id by the first rule that matches (chest, then OCT: ``IM-0041-0001`` also
    fits the OCT pattern), else the file stem."""
    return chest_patient(path) or oct_patient(path) or PurePath(path).stem
