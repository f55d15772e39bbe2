"""Tables of your own data: CSV, TSV and JSON Lines files (or any sequence of row dicts, such as a
``datasets.Dataset``) read as rows, and written back with extra columns (``tokenmix predict --output``).

The format follows the file name: ``.csv``, ``.tsv`` (both with a header row and standard CSV quoting)
or ``.jsonl`` / ``.json`` (one object per line). Every problem is one line naming the file, the line
and the fix; writing is atomic, so a failed run leaves no half-written file.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenmix.io.files import atomic_write

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def table_format(path: str | Path) -> str:
    """``csv``, ``tsv`` or ``jsonl``, from the file name."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown table format {suffix or '(no suffix)'!r}; name the file .csv, .tsv or .jsonl")
    return FORMATS[suffix]


def json_object(file: str | Path, number: int, line: str, fix: str) -> dict[str, Any]:
    """Line ``number`` of a JSON Lines ``file`` as an object, or one error naming the file, the line and ``fix``."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}:{number}: not valid JSON ({err.msg}); {fix}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{file}:{number}: a JSON {type(record).__name__}, not an object; {fix}")
    return record


def check_input_file(path: str | Path, flag: str = "") -> Path:
    """``path`` as an existing file, or one error naming it (a folder is not "missing": say so)."""
    file, name = Path(path), f"{flag} {path}" if flag else str(path)
    if file.is_dir():
        raise ValueError(f"{name} is a folder; give the name of a file")
    if not file.is_file():
        raise FileNotFoundError(f"{name} does not exist")
    return file


def not_utf8(file: str | Path, err: UnicodeDecodeError) -> ValueError:
    """The error for a file in another encoding (latin-1, cp1252...): the file and the fix, not a bare codec message."""
    where, fix = (("standard input", "pipe it through `iconv -f latin1 -t utf-8`") if str(file) == "-" else
                  (str(file), f"save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {file}`"))
    return ValueError(f"{where} is not UTF-8 text (it holds the byte 0x{err.object[err.start]:02x}); {fix}")


def read_table(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, rows) of a CSV/TSV/JSONL file; an empty file or a malformed line is an error."""
    file = Path(path)
    kind = table_format(file)
    check_input_file(file)
    try:
        columns, rows = _read_rows(file, kind)
    except UnicodeDecodeError as err:
        raise not_utf8(file, err) from None
    if not rows:
        raise ValueError(f"{file} has no data rows; give a file with a header and at least one row")
    return columns, rows


def _read_rows(file: Path, kind: str) -> tuple[list[str], list[dict[str, Any]]]:
    with file.open(encoding="utf-8-sig", newline="") as f:
        if kind == "jsonl":
            rows = []
            for number, line in enumerate(f, 1):
                if line.strip():
                    rows.append(json_object(file, number, line, "JSON Lines files hold one object per line"))
            columns = list(dict.fromkeys(key for row in rows for key in row))
        else:
            csv.field_size_limit(sys.maxsize)
            reader = csv.DictReader(f, delimiter="\t" if kind == "tsv" else ",")
            columns = list(reader.fieldnames or [])
            rows = []
            for row in reader:
                if None in row:  # more fields than the header names
                    raise ValueError(f"{file}:{reader.line_num}: {len(columns) + len(row[None])} fields but the "
                                     f"header has {len(columns)}; quote fields that contain the delimiter")
                rows.append(row)
    return columns, rows


def dataset_rows(dataset: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, rows) of a ``datasets.Dataset`` or any sequence of row dicts."""
    rows = [dict(row) for row in dataset]
    columns = list(getattr(dataset, "column_names", None) or dict.fromkeys(k for row in rows for k in row))
    if not rows:
        raise ValueError("the dataset has no rows")
    return columns, rows


def require_columns(columns: Sequence[str], wanted: dict[str, str], source: str) -> None:
    """Each ``flag -> column`` of ``wanted`` names a column of the table; otherwise list those present."""
    for flag, column in wanted.items():
        if column and column not in columns:
            raise ValueError(f"{source} has no column {column!r} ({flag}); its columns are: {', '.join(columns)}")


def write_table(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``rows`` as CSV/TSV (``columns`` as the header; nested values as JSON) or JSON Lines, atomically."""
    kind = table_format(path)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            if kind == "jsonl":
                f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
                return
            writer = csv.DictWriter(f, list(columns), delimiter="\t" if kind == "tsv" else ",", extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()})

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(Path(path), write)
