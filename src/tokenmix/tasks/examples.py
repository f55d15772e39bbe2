"""The one record every text task reader produces, whatever its file format."""

from __future__ import annotations

from dataclasses import dataclass


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
