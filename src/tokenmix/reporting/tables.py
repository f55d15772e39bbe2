"""Tables as text: aligned plain text for the terminal, or GitHub-flavoured markdown for report files.
Every table tokenmix prints or writes goes through :func:`render_table` (results are also written as
JSON; this is the readable view)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool = False) -> str:
    """Left-align text, right-align numbers; floats are expected to be pre-formatted strings, None
    is an empty cell. Plain text pads the columns to one width; markdown marks numeric columns
    right-aligned (``---:``)."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    numeric = [bool(cells) and all(_is_number(row[i]) for row in cells if row[i]) for i in range(len(headers))]
    if markdown:
        lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
    cells.insert(0, [str(h) for h in headers])
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

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
