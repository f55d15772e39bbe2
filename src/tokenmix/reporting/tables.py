"""Plain-text tables for the CLI (results are also written as JSON; this is the readable view)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-align text, right-align numbers; floats are expected to be pre-formatted strings."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in cells[1:] if row[i]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])])


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("x%").replace(",", ""))
        return True
    except ValueError:
        return False


def mib(num_bytes: float | None) -> str:
    return "-" if num_bytes is None else f"{num_bytes / 2**20:.0f}"


def render_markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (numbers right-aligned), for report files."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    numeric = [bool(cells) and all(_is_number(r[i]) for r in cells if r[i]) for i in range(len(headers))]
    out = ["| " + " | ".join(map(str, headers)) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    return "\n".join(out + ["| " + " | ".join(row) + " |" for row in cells])
