"""HTML pages from jinja2 templates (``engine/reports/templates/*.html.j2``), and the charts they
embed.

One environment for every report page: templates read from the package (so they travel with an
installed wheel), autoescape on (paths, class names and provenance are data, never markup),
undefined names an error rather than an empty string.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from pathlib import Path
from typing import Any

import jinja2

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("engine.reports", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render(template: str, **context: Any) -> str:
    """The page ``templates/<template>`` filled with ``context``."""
    return ENVIRONMENT.get_template(template).render(**context)


@dataclasses.dataclass(frozen=True)
class ChartImage:
    """A chart drawn as PNG: written beside the page as ``file`` and embedded in it."""

    file: str  # file name beside the page, e.g. roc_urgent_referral.png
    title: str  # what it shows (the image's alt text)
    png: bytes
    notes: tuple[str, ...] = ()  # its legend as text, shown under it (searchable, copyable)

    @property
    def data_uri(self) -> str:
        """The PNG inline, so the page opens on its own, moved or mailed."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def write(self, out_dir: str | Path) -> Path:
        path = Path(out_dir) / self.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.png)
        return path


def chart_file_name(stem: str) -> str:
    """``stem`` made safe as a file name (class and task names come from folder names)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_.")[:80] + ".png"
