"""Command-line flags made from ``engine.config.TrainConfig``'s fields.

Each field is one ``--name=VALUE`` flag whose help is the field's own (``setting(doc=...)``
in engine/config.py, the only copy) followed by its default. Values are typed from the
annotation: Literal fields take one of their values, booleans are ``--name``/``--no-name``,
tuples are comma-separated, dicts are JSON, and a field that may be None takes ``None`` (any
case, or an empty value) for None.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.config import NONE_WORDS, TrainConfig


def _optional(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without ``| None``, whether None was allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return next(a for a in args if a is not type(None)), type(None) in args
    return annotation, False


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(s for s in text.split(",") if s)


def _or_none(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_none(text: str) -> Any:
        return None if text.strip().lower() in NONE_WORDS else parse(text)

    parse_or_none.__name__ = getattr(parse, "__name__", "value")  # argparse names it in errors
    return parse_or_none


def flag_kwargs(annotation: Any) -> dict[str, Any]:
    """argparse keyword arguments for a field annotation (see the module docstring)."""
    hint, may_be_none = _optional(annotation)
    if typing.get_origin(hint) is typing.Literal:
        if may_be_none:
            raise TypeError(f"no flag type for an optional Literal {annotation!r}")
        return {"type": str, "choices": typing.get_args(hint)}
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if hint in (int, float, str):
        parse = hint
    elif typing.get_origin(hint) is tuple:
        parse = _comma_list
    elif typing.get_origin(hint) is dict:
        parse = json.loads
    else:
        raise TypeError(f"no flag type for {annotation!r}")
    return {"type": _or_none(parse) if may_be_none else parse}


def field_default(field: dataclasses.Field) -> Any:
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def add_config_flags(
    parser: argparse.ArgumentParser,
    names: Iterable[str] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    title: str = "run configuration (engine.config.TrainConfig)",
) -> None:
    """One flag per TrainConfig field in ``names`` (default: every field), in group ``title``.

    Without ``defaults`` an absent flag leaves no attribute on the parsed namespace (so a
    preset's value stands, see :func:`explicit_values`); ``defaults`` gives this entry point's
    own value for the fields it names (shown in the help; the attribute is then always set).
    """
    group = parser.add_argument_group(title)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)
    defaults = defaults or {}
    for name in fields if names is None else names:
        field = fields[name]
        shown = defaults.get(name, field_default(field))
        help_text = field.metadata["help"].replace("%", "%%")
        group.add_argument(
            f"--{name}",
            default=defaults.get(name, argparse.SUPPRESS),
            help=f"{help_text} (default: {shown})",
            **flag_kwargs(hints[name]),
        )


def explicit_values(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields present on ``args`` (flags given, or given a default)."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if hasattr(args, f.name)
    }
