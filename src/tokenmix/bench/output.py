"""Output paths of the benchmarks, checked before any measurement so a long run never ends in an
unwritable path (the files themselves are written atomically: never half-written)."""

from __future__ import annotations

import os
from pathlib import Path


def ensure_writable(path: str | Path | None, flag: str, folder: bool = False) -> None:
    """Raise ValueError naming ``flag`` when ``path`` (a file, or a folder if ``folder``) cannot be
    written; creates the missing parent folders."""
    if path is None:
        return
    path = Path(path)
    target = path if folder else path.parent
    if not folder and path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file path")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{flag} {path}: cannot create folder {target} ({err.strerror}); choose a writable path") from None
    if not target.is_dir() or not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: folder {target} is not writable; choose a writable path")
