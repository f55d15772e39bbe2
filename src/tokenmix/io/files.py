"""Writing files so that nothing is ever half-written: a temporary file in the same folder, then an
atomic rename. Torch-free."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "TOKENMIX_CACHE"


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path``: readers see the old file or the new one,
    never a half-written one, even if the process dies mid-write."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, payload: object) -> Path:
    """Indented JSON, written atomically (parent folders created): a results or summary file is
    never left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def ensure_writable(path: str | Path, directory: bool = False, flag: str = "") -> Path:
    """Create ``path``'s folder (``path`` itself if ``directory``) and make sure a file can be written
    there, so that a long run fails at once, not at its end, with a message naming the path (and the
    command-line ``flag`` it came from)."""
    path = Path(path)
    folder, name = (path if directory else path.parent), f"{flag} {path}" if flag else str(path)
    if not directory and path.is_dir():
        raise ValueError(f"{name} is a folder; give the name of a file to write")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise ValueError(f"{name}: cannot write to {folder} ({err.strerror or err}); choose a writable output path") from None
    return path


def cache_dir() -> Path:
    """tokenmix's cache folder: ``$TOKENMIX_CACHE``, else ``$XDG_CACHE_HOME/tokenmix`` (default
    ``~/.cache/tokenmix``). It holds measured choices and converted Hub models, never anything that
    cannot be made again."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tokenmix"
