"""Cheap checks that a file is a whole JPEG or PNG, and content hashes for the leakage audit.

A dataset opens in seconds even at 100k files: these checks read a few bytes from the start
and the end of each file (zero bytes, wrong magic number, missing end marker = truncated), not
the pixels. Damage inside the entropy-coded data only shows at decode time; ``load_image``
raises ``BadImageError`` then, and the pipeline applies the same ``on_bad_image`` policy.

A pixel limit (``max_image_pixels``: 64 megapixels unless ``KERMANY_MAX_IMAGE_PIXELS`` says
otherwise) refuses decompression bombs: a 30,000 x 30,000 PNG is under 1 MB on disk and
2.7 GB once decoded. The width and height come from the header (PNG IHDR, JPEG SOF), here
at dataset open and again in ``preprocess.decode`` before any pixel is decoded.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
ON_BAD_IMAGE = ("error", "skip")

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TAIL_BYTES = 64
MAX_IMAGE_PIXELS = 64_000_000  # the chest films are 6 MP at most, the OCT scans 0.5 MP
PIXEL_LIMIT_ENV = "KERMANY_MAX_IMAGE_PIXELS"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class BadImageError(ValueError):
    """An image file that cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def max_image_pixels() -> int:
    """The pixel limit: ``KERMANY_MAX_IMAGE_PIXELS`` when set, else ``MAX_IMAGE_PIXELS``."""
    raw = os.environ.get(PIXEL_LIMIT_ENV)
    if raw is None:
        return MAX_IMAGE_PIXELS
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{PIXEL_LIMIT_ENV}={raw!r} is not a whole number of pixels") from None


def pixel_limit_problem(width: int, height: int) -> str | None:
    """The one-line problem of an image over the pixel limit, or None."""
    limit = max_image_pixels()
    if width * height <= limit:
        return None
    return (
        f"{width} x {height} = {width * height:,} pixels is over the limit of {limit:,} "
        f"(a decompression bomb?); set {PIXEL_LIMIT_ENV} to allow bigger images"
    )


def _png_size(f: BinaryIO) -> tuple[int, int] | None:
    f.seek(12)
    chunk = f.read(12)
    if len(chunk) < 12 or chunk[:4] != b"IHDR":
        return None
    return int.from_bytes(chunk[4:8], "big"), int.from_bytes(chunk[8:12], "big")


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame segment (markers walked, not read)."""
    f.seek(2)
    for _ in range(10_000):
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        code = marker[1]
        while code == 0xFF:  # fill bytes
            more = f.read(1)
            if not more:
                return None
            code = more[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a length
            continue
        if code == 0xD9:
            return None
        length = f.read(2)
        if len(length) < 2:
            return None
        if code in _JPEG_SOF:
            if int.from_bytes(length, "big") < 11:  # not a real frame header: let decode judge
                return None
            frame = f.read(5)
            if len(frame) < 5:
                return None
            return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
        f.seek(int.from_bytes(length, "big") - 2, os.SEEK_CUR)
    return None


def header_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) read from a PNG or JPEG header without decoding; None if not found."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head.startswith(_PNG_MAGIC):
                return _png_size(f)
            if head.startswith(_JPEG_MAGIC):
                return _jpeg_size(f)
    except OSError:
        return None
    return None


def image_file_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with ``path`` as a JPEG/PNG file, or None when it looks whole."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})"
    try:
        size = path.stat().st_size
        if size == 0:
            return "zero-byte file"
        with path.open("rb") as f:
            head = f.read(8)
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read()
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if head.startswith(_JPEG_MAGIC):
        # A JPEG ends with the EOI marker; some writers pad a few bytes after it.
        if b"\xff\xd9" not in tail:
            return "truncated JPEG (no end-of-image marker)"
    elif head.startswith(_PNG_MAGIC):
        if b"IEND" not in tail:
            return "truncated PNG (no IEND chunk)"
    else:
        return f"not a JPEG or PNG (file starts with {head[:8]!r})"
    size = header_size(path)
    return None if size is None else pixel_limit_problem(*size)


def check_on_bad_image(policy: str) -> str:
    if policy not in ON_BAD_IMAGE:
        raise ValueError(f"on_bad_image must be one of {ON_BAD_IMAGE}, got {policy!r}")
    return policy


def report_skipped(skipped: list[tuple[str, str]], context: str) -> None:
    """Log every skipped file and the count: nothing is dropped silently."""
    for path, problem in skipped:
        log.warning("skipped bad image %s: %s", path, problem)
    if skipped:
        log.warning("%s: skipped %d bad image file(s)", context, len(skipped))


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (duplicate detection across splits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
