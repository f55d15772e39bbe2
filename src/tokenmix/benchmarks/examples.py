"""The one record every text task reader produces, whatever its file format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Example:
    """One model input: a text or text pair, its label (``None`` for unlabelled test rows), its id in
    the source file, and a group id for tasks scored per group (MultiRC questions, COPA/ReCoRD
    candidates of one example)."""

    text_a: str
    text_b: str | None = None
    label: int | float | None = None
    idx: int | str = 0
    group: int | str | None = None


def lookup_task(tasks: Mapping[str, T], name: str, family: str) -> T:
    """A task spec by name, case-insensitive, with or without dashes (``SST-2``, ``sst2``, ``AX-b``);
    an unknown name is an error that lists the valid ones."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in tasks:
        raise ValueError(f"unknown {family} task {name!r}; valid tasks: {', '.join(tasks)}")
    return tasks[key]
