"""Flags from config dataclasses: every field of a command's config is one ``--field-name`` flag with
the field's type, default and help text, so the CLI and the Python API cannot drift apart. Numbers are
checked against :data:`tokenmix.options.RANGES` as they are parsed (the configs check them again, with
the same :func:`~tokenmix.options.range_problem`, for the Python API)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from tokenmix.options import flag, range_problem


def _number(kind: type, f: dataclasses.Field) -> Callable[[str], Any]:
    """``kind`` (int or float) that also refuses values outside the field's range."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        problem = range_problem(f.name, value, f.metadata.get("range"))
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _comma_list(item_type: Callable[[str], Any], type_name: str) -> Callable[[str], tuple]:
    """Comma-separated values; ``""`` is the empty list, but an empty item (``128,,512``, ``fnet,``) is
    refused: it is a value lost to a typo, not one to drop silently."""

    def parse(text: str) -> tuple:
        parts = [part.strip() for part in text.split(",")]
        if text.strip() and not all(parts):
            raise argparse.ArgumentTypeError(f"empty item in {text!r}; separate the values with single commas, "
                                             f"e.g. {','.join(filter(None, parts))}")
        try:
            return tuple(item_type(part) for part in parts if part)
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentTypeError(f"{err} (in {text!r})") from None
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {type_name} values, got {text!r}") from None

    return parse


def _parser_of(kind: type, f: dataclasses.Field) -> Callable[[str], Any]:
    return _number(kind, f) if kind in (int, float) else kind


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--field-name`` option per dataclass field, typed and documented from the field; fields
    with ``metadata["positional"]`` become positional arguments (a tuple field takes any number)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f.metadata.get("help", "") + (f" (default: {shown})" if shown not in ("", ()) else "")
        if f.metadata.get("positional"):  # e.g. `tokenmix predict --model DIR "text a" "text b"`
            is_tuple = typing.get_origin(hint) is tuple
            parser.add_argument(f.name, nargs="*" if is_tuple else None, default=default,
                                type=_parser_of(args[0] if is_tuple else hint, f), metavar=f.name.upper(),
                                help=help_text)
            continue
        if hint is bool:
            parser.add_argument(flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        if typing.get_origin(hint) is tuple:
            kind, metavar = _comma_list(_parser_of(args[0], f), args[0].__name__), "A,B,..."
        elif typing.get_origin(hint) in (typing.Union, types.UnionType):
            kind, metavar = _parser_of(next(a for a in args if a is not type(None)), f), None
        else:
            kind, metavar = _parser_of(hint, f), None
        parser.add_argument(flag(f.name), dest=f.name, type=kind, default=default, metavar=metavar, help=help_text)


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})  # nargs="*" gives lists
