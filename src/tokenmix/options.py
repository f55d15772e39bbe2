"""``option()``: a config dataclass field with its ``--help`` text. Every command's settings are such a
dataclass, and the command line makes one flag per field (:mod:`tokenmix.cli`), so the CLI and the
Python API cannot drift apart. Torch-free, like every config module.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def option(default: Any, help_text: str, **metadata: Any) -> Any:
    """A config dataclass field with its ``--help`` text (the CLI builds one flag per field);
    ``positional=True`` makes it a positional argument."""
    return field(default=default, metadata={"help": help_text, **metadata})
