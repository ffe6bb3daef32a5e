"""Named run configurations, one module per experiment (as big_vision and the Flax examples).

``configs/<name>.py`` is the preset ``<name>`` of ``python -m launch.train --preset=<name>``.
Its docstring opens with what the experiment is and then the exact command that runs it; it
defines ``CONFIG`` (``engine.config.TrainConfig`` values) and ``SMOKE``, the values of its
smoke variant ``<name>_smoke``: the same code path in seconds on a bundled sample with a tiny
input (it checks the plumbing, not the science). Explicit flags override a preset's values.
Shared recipes (the paper's, the small-sample one, In Silico Labeling's, the smoke base) are
in ``configs/recipes.py``; a module without ``CONFIG`` is not a preset.

A new experiment is a new module here; ``tests/configs`` then checks that it loads, that its
smoke variant is small, and that its command builds exactly its config.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from types import ModuleType
from typing import Any

from engine.config import TrainConfig

SMOKE_SUFFIX = "_smoke"
COMMAND_PREFIX = "python -m launch.train"


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    description: str  # the docstring's first paragraph
    command: str  # the exact command that runs it (the docstring's first command line)
    values: dict[str, Any]
    smoke: dict[str, Any]  # the whole smoke variant (on top of ``values``)

    def config(self, *, smoke: bool = False, **overrides: Any) -> TrainConfig:
        return TrainConfig(**{**self.values, **(self.smoke if smoke else {}), **overrides})


def _from_module(name: str, module: ModuleType) -> Preset:
    doc = (module.__doc__ or "").strip()
    description = " ".join(doc.split("\n\n", 1)[0].split())
    commands = [
        s for s in (line.strip() for line in doc.splitlines()) if s.startswith(COMMAND_PREFIX)
    ]
    if not description or not commands:
        raise ValueError(
            f"configs/{name}.py: the docstring must open with a description, then the command "
            f"({COMMAND_PREFIX} --preset={name} ...)"
        )
    return Preset(name, description, commands[0], dict(module.CONFIG), dict(module.SMOKE))


def _discover() -> dict[str, Preset]:
    presets = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "CONFIG"):
            presets[info.name] = _from_module(info.name, module)
    return presets


PRESETS: dict[str, Preset] = _discover()


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """``PRESETS[name]`` (or its smoke variant, ``name_smoke``) with ``overrides`` applied."""
    smoke = name.endswith(SMOKE_SUFFIX)
    base = name.removesuffix(SMOKE_SUFFIX) if smoke else name
    if base not in PRESETS:
        known = ", ".join(preset_names())
        raise ValueError(f"unknown preset {name!r}; known: {known}")
    return PRESETS[base].config(smoke=smoke, **overrides)


def preset_names() -> list[str]:
    return sorted(PRESETS) + sorted(f"{p}{SMOKE_SUFFIX}" for p in PRESETS)
