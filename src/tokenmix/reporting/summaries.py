"""Finding run summaries in a folder tree and telling their kinds apart (for ``tokenmix report``).

Kinds, recognised by a ``"kind"`` key when there is one, else by their characteristic keys:

* ``pretraining``: ``summary.json`` of ``tokenmix pretrain`` (``heldout``, ``steps_per_s``);
* ``glue``: ``glue.json`` of ``tokenmix glue`` (``tasks``, ``average``);
* ``lra``: an LRA task's ``summary.json`` (``task``, ``test_accuracy``);
* ``speed``: benchmark records (``results`` with ``ms_per_step``), e.g. ``tokenmix bench speed --json``.

Anything else (model configs, tokenizers, metrics, per-task fine-tuning files) is counted, not read
further, so a whole ``runs/`` folder can be pointed at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("pretraining", "glue", "lra", "speed")
_KIND_NAMES = {"pretrain": "pretraining", "pretraining": "pretraining", "glue": "glue", "lra": "lra",
               "speed": "speed", "bench_speed": "speed"}
MAX_BYTES = 64 * 2**20  # larger JSON files are data (tokenizers, datasets), never summaries


@dataclass
class Summary:
    kind: str
    path: str  # relative to the scanned folder
    data: dict[str, Any]


@dataclass
class Collection:
    root: Path
    summaries: list[Summary] = field(default_factory=list)
    skipped: int = 0  # JSON files of other kinds
    unreadable: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[Summary]:
        return [s for s in self.summaries if s.kind == kind]


def _is_speed_record(record: Any) -> bool:
    return isinstance(record, dict) and "model" in record and "ms_per_step" in record


def classify(data: Any) -> str | None:
    """The kind of a parsed JSON document, or None for anything that is not a run summary."""
    if isinstance(data, list):
        return "speed" if data and all(map(_is_speed_record, data)) else None
    if not isinstance(data, dict):
        return None
    if "kind" in data:
        return _KIND_NAMES.get(str(data["kind"]))
    keys = data.keys()
    if {"model", "heldout", "steps_per_s"} <= keys:
        return "pretraining"
    if {"model", "tasks", "average"} <= keys:
        return "glue"
    if {"model", "task", "test_accuracy"} <= keys:
        return "lra"
    results = data.get("results")
    if isinstance(results, list) and results and all(map(_is_speed_record, results)):
        return "speed"
    return None


def collect(root: str | Path) -> Collection:
    """Every summary under ``root`` (recursively, hidden folders and temporary files left out)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"no such folder: {root}")
    if not root.is_dir():
        raise ValueError(f"{root} is a file; pass the folder that holds the runs (it is searched recursively)")
    found = Collection(root)
    for path in sorted(root.rglob("*.json")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.stat().st_size > MAX_BYTES:
            found.skipped += 1
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            found.unreadable.append(str(relative))
            continue
        kind = classify(data)
        if kind is None:
            found.skipped += 1
        else:
            found.summaries.append(Summary(kind, str(relative), {"results": data} if isinstance(data, list) else data))
    return found
