"""Flags from config dataclasses: every field of a command's config is one ``--field-name`` flag with
the field's type, default and help text, so the CLI and the Python API cannot drift apart."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any


def _comma_list(item_type: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            return tuple(item_type(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {item_type.__name__} values, got {text!r}") from None

    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--field-name`` option per dataclass field, typed and documented from the field; fields
    with ``metadata["positional"]`` become positional arguments (a tuple field takes any number)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, flag = hints[f.name], "--" + f.name.replace("_", "-")
        args = typing.get_args(hint)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f.metadata.get("help", "") + (f" (default: {shown})" if shown not in ("", ()) else "")
        if f.metadata.get("positional"):  # e.g. `tokenmix predict --model DIR "text a" "text b"`
            is_tuple = typing.get_origin(hint) is tuple
            parser.add_argument(f.name, nargs="*" if is_tuple else None, default=default,
                                type=args[0] if is_tuple else hint, metavar=f.name.upper(), help=help_text)
            continue
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        if typing.get_origin(hint) is tuple:
            kind, metavar = _comma_list(args[0]), "A,B,..."
        elif typing.get_origin(hint) in (typing.Union, types.UnionType):
            kind, metavar = next(a for a in args if a is not type(None)), None
        else:
            kind, metavar = hint, None
        parser.add_argument(flag, dest=f.name, type=kind, default=default, metavar=metavar, help=help_text)


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})  # nargs="*" gives lists
