"""Writing files so that nothing is ever half-written (a temporary file in the same folder, then an
atomic rename) or replaced by accident (:func:`claim_outputs`). Torch-free."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenmix.options import flag

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


def read_json(path: str | Path, fix: str = "repair it, or make it again with the command that wrote it") -> Any:
    """A JSON file's content; a damaged one (cut short by a kill, edited by hand) is an error naming the
    file and ``fix``, where a bare decode error would leave the user to guess which file it was."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {fix}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a JSON text file; {fix}") from None


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
    if directory and path.is_file():
        raise ValueError(f"{name} is a file; give a folder")
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


def claim_output(path: str | Path, overwrite: bool, flag: str = "--out", directory: bool = True) -> Path:
    """Refuse an existing output (a file, or a folder with anything in it) unless ``overwrite``, and
    check that it can be written: called before any long work, so that nothing made earlier is
    replaced by accident and no run is lost at its end."""
    path = Path(path)
    # a folder given for a file (or a file for a folder) is refused by ensure_writable
    taken = path.is_dir() and any(p.name != LOCK_NAME for p in path.iterdir()) if directory else path.is_file()
    if taken and not overwrite:
        kind = "folder" if directory else "file"
        raise ValueError(f"{flag} {path} already exists; pass --overwrite to replace it, or choose another {kind}")
    return ensure_writable(path, directory=directory, flag=flag)


def claim_outputs(config: Any) -> None:
    """:func:`claim_output` for every field of the dataclass ``config`` marked ``output="file"`` or
    ``"folder"`` that is set, with ``config.overwrite``: the first thing every command's implementation
    does, so the command line and the Python API claim outputs the same way before any work (``"run"``
    folders are claimed by their commands, which may resume them). Two outputs given one path are refused:
    the second written would replace the first (``--json r.md --markdown r.md``)."""
    claimed: dict[Path, str] = {}
    for f in dataclasses.fields(config):
        kind, path = f.metadata.get("output"), getattr(config, f.name)
        if kind in ("file", "folder") and path:
            same = claimed.setdefault(Path(path).resolve(), flag(f.name))
            if same != flag(f.name):
                raise ValueError(f"{same} and {flag(f.name)} are both {path}; give each its own file")
            claim_output(path, config.overwrite, flag=flag(f.name), directory=kind == "folder")


LOCK_NAME = ".tokenmix.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class FolderLock:
    """An exclusive lock on an output folder: the file ``.tokenmix.lock`` holding the owner's pid,
    created with ``O_EXCL``. A second process is refused with one line naming the holder; the lock of
    a process that died (kill -9, power loss) is taken over with a note. Re-entrant within a process
    (a sweep locks its folder and each run inside it). Disabled (``enabled=False``) on the non-main
    ranks of a distributed run, whose main rank holds it."""

    _held: dict[Path, int] = {}  # folder -> nesting depth, for this process

    def __init__(self, folder: str | Path, enabled: bool = True) -> None:
        self.folder, self.enabled = Path(folder).absolute(), enabled
        self.path = self.folder / LOCK_NAME

    def acquire(self) -> FolderLock:
        if not self.enabled:
            return self
        if self.folder in self._held:
            self._held[self.folder] += 1
            return self
        if self.folder.is_file():  # mkdir's "File exists" would suggest --overwrite, which cannot help
            raise ValueError(f"{self.folder} is a file; give a folder for the run")
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self._held[self.folder] = 1
            return self

    def _take_over_if_stale(self) -> None:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:  # released meanwhile: try again
            return
        pid = int(text) if text.isdigit() else None
        if pid is not None and pid != os.getpid() and _alive(pid):
            raise ValueError(f"{self.folder} is in use by process {pid} (lock file {self.path}); wait for it to end "
                             f"or choose another output folder")
        print(f"tokenmix: note: taking over the stale lock {self.path} of process {pid or text!r}, which is no "
              f"longer running", file=sys.stderr)
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        if not self.enabled or self.folder not in self._held:
            return
        self._held[self.folder] -= 1
        if self._held[self.folder] == 0:
            del self._held[self.folder]
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (checkpoint weights can be larger than memory allows twice)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
