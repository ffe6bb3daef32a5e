"""File names of the In Silico Labeling data (Christiansen et al., Cell 2018).

Every PNG's name carries what it holds, as comma-separated fields. Two spellings occur in
google/in-silico-labeling (read for this module: ``data.md`` and ``isl/data_provider.py``):

- the published ``paper_data`` (``data.md``): a field is ``key-value`` or, for enumerations,
  ``key,value-VALUE``::

      lab-Finkbeiner,condition-kevan_0_8,acquisition_date,year-2015,month-9,day-28,well-A4,
      z_depth-3,channel,value-PHASE_CONTRAST,is_mask-false,kind,value-ORIGINAL.png
      ...,well-A4,depth_computation,value-MAXPROJECT,channel,value-DAPI_CONFOCAL,is_mask-false,
      kind,value-ORIGINAL.png
      ...,channel,value-DAPI_CONFOCAL,statistic,value-MEDIAN,kind,value-PREDICTED.png

- the repository's test data and data provider: every field ``key-value``
  (``...,well-A4,tile_computation-STITCHED,z_depth-0,channel-PHASE_CONTRAST,is_mask-false.png``).

A transmitted-light image has an integer ``z_depth`` (its focal plane); a fluorescence image
is a projection over z (``depth_computation`` ``MAXPROJECT``). ``is_mask-true`` marks a
per-pixel mask of where the matching image is valid; ``kind`` ``PREDICTED`` files are the
paper's network outputs, never inputs or targets. The image set (one well of one
acquisition) is every field but z, channel, mask, kind and statistic.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# Transmitted-light modalities; a well has one of them as its input z-stack (upstream sums
# the three into one "TRANSMISSION" channel, exactly one being present).
TRANSMITTED = ("BRIGHTFIELD", "PHASE_CONTRAST", "DIC")
MAXPROJECT = "MAXPROJECT"
_PER_IMAGE = ("z_depth", "depth_computation", "channel", "is_mask", "kind", "statistic")


class IslNameError(ValueError):
    """A file name that does not follow the ISL scheme; names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


@dataclasses.dataclass(frozen=True)
class IslImageName:
    """The fields of one ISL file name."""

    fields: tuple[tuple[str, str], ...]  # in file order, enumerations resolved to key -> value
    z: int | str  # focal plane index, or "MAXPROJECT"
    channel: str
    is_mask: bool
    kind: str  # ORIGINAL | PREDICTED

    def get(self, key: str, default: str | None = None) -> str | None:
        return dict(self.fields).get(key, default)

    @property
    def image_set(self) -> str:
        """The well/acquisition this image belongs to: every field but the per-image ones."""
        return ",".join(f"{k}-{v}" for k, v in self.fields if k not in _PER_IMAGE)

    @property
    def well_id(self) -> str:
        """``condition/well`` (what the splits and the bootstrap resample)."""
        return f"{self.get('condition', '?')}/{self.get('well', '?')}"


def parse_fields(stem: str) -> list[tuple[str, str]]:
    """``"a-1,b,value-X,c"`` -> ``[("a", "1"), ("b", "X"), ("c", "")]``.

    A bare token followed by ``value-V`` is the enumeration ``key,value-V``; a bare token
    without one (``acquisition_date``) is a group heading with an empty value.
    """
    tokens = stem.split(",")
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        key, sep, value = token.partition("-")
        if not sep and i + 1 < len(tokens) and tokens[i + 1].startswith("value-"):
            out.append((token, tokens[i + 1][len("value-") :]))
            i += 2
            continue
        out.append((key, value if sep else ""))
        i += 1
    return out


def parse_image_name(path: str | Path) -> IslImageName:
    """Parse one file name; raises :class:`IslNameError` naming the file when it does not fit."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise IslNameError(path, "not a .png file")
    fields = parse_fields(path.stem)
    values = dict(fields)
    channel = values.get("channel")
    if not channel:
        raise IslNameError(path, "no channel field (channel-NAME or channel,value-NAME)")
    if values.get("depth_computation"):
        z: int | str = values["depth_computation"].upper()
        if z != MAXPROJECT:
            raise IslNameError(path, f"depth_computation {z!r} is not {MAXPROJECT}")
    elif "z_depth" in values:
        try:
            z = int(values["z_depth"])
        except ValueError:
            raise IslNameError(path, f"z_depth {values['z_depth']!r} is not an integer") from None
    else:
        raise IslNameError(path, "neither z_depth-N nor depth_computation-MAXPROJECT")
    mask = values.get("is_mask", "false").lower()
    if mask not in ("true", "false"):
        raise IslNameError(path, f"is_mask {values['is_mask']!r} is not true/false")
    if "well" not in values:
        raise IslNameError(path, "no well field")
    kind = values.get("kind", "ORIGINAL").upper()
    return IslImageName(tuple(fields), z, channel.upper(), mask == "true", kind)


def published_name(
    *,
    lab: str,
    condition: str,
    well: str,
    channel: str,
    z: int | None,
    is_mask: bool = False,
    date: tuple[int, int, int] = (2015, 9, 28),
) -> str:
    """The ``paper_data`` file name of one original image (``z=None``: the MAXPROJECT)."""
    depth = f"z_depth-{z}" if z is not None else f"depth_computation,value-{MAXPROJECT}"
    year, month, day = date
    return (
        f"lab-{lab},condition-{condition},acquisition_date,year-{year},month-{month},day-{day},"
        f"well-{well},{depth},channel,value-{channel},is_mask-{str(is_mask).lower()},"
        "kind,value-ORIGINAL.png"
    )
