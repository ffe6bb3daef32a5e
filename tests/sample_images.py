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


def bomb_png(path: Path, side: int = 30_000) -> Path:
    """A PNG whose header says ``side`` x ``side`` grey pixels (a decompression bomb).

    Only the first rows are encoded: every reader must refuse it from the header, before
    decoding, so the file stays a few hundred bytes and the test fast.
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = zlib.compress(b"\0" * (side + 1) * 4)
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
    return path


def bomb_jpeg(path: Path, side: int = 30_000) -> Path:
    """A small real JPEG whose start-of-frame is rewritten to say ``side`` x ``side``."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))
    return path
