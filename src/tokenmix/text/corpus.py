"""Reading raw text corpora: plain text (documents separated by blank lines), JSONL with a text
field, either optionally gzip-compressed. Shared by tokenizer training and data preparation so that
both accept the same inputs and reject bad ones (non-UTF-8 bytes, invalid JSON, broken gzip) with
the same messages, naming the file and line."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from tokenmix.text.tables import json_object


def check_inputs(paths: tuple[str, ...]) -> list[Path]:
    """The ``--input`` files as paths, each an existing file named once: a file given twice would count its
    text twice (and in prepared data put copies of a document in both the train and the held-out split)."""
    seen: dict[Path, str] = {}
    for path in map(Path, paths):
        if path.is_dir():
            raise ValueError(f"input {path} is a folder; pass the files in it, e.g. --input {path}/a.txt,{path}/b.txt")
        if not path.is_file():
            raise FileNotFoundError(f"input file {path} not found; check the --input paths")
        if path.resolve() in seen:
            again = "" if seen[path.resolve()] == str(path) else f" (again as {path})"
            raise ValueError(f"--input names {seen[path.resolve()]} twice{again}; give each file once")
        seen[path.resolve()] = str(path)
    return [Path(p) for p in paths]


def is_jsonl(path: Path) -> bool:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return name.endswith((".jsonl", ".json"))


def read_documents(path: str | Path, text_field: str = "text",
                   advance: Callable[[int], None] | None = None) -> Iterator[list[str]]:
    """Each document of one file as its list of non-empty, stripped lines. Reads bytes so that a
    progress bar can follow the (compressed) file position through ``advance(bytes_read)`` and a bad
    byte is reported by line instead of being silently replaced."""
    path = Path(path)
    jsonl = is_jsonl(path)
    with open(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if path.name.endswith(".gz") else raw
        done, doc = 0, []
        try:
            for number, data in enumerate(stream, 1):
                try:
                    line = data.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise ValueError(f"{path}: line {number} is not valid UTF-8 ({err.reason} at byte {err.start}); "
                                     "re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)") from None
                if number == 1:
                    line = line.lstrip("\ufeff")
                if jsonl:
                    if not line.strip():
                        continue
                    record = json_object(path, number, line, f'each line of a .jsonl file must be one object with '
                                                             f'a "{text_field}" field')
                    if not isinstance(record.get(text_field), str):
                        raise ValueError(f'{path}: line {number} has no string "{text_field}" field; each line of a '
                                         f'.jsonl file must be one object like {{"{text_field}": "..."}}')
                    yield [s for s in (part.strip() for part in record[text_field].split("\n")) if s]
                elif line.strip():
                    doc.append(line.strip())
                elif doc:
                    yield doc
                    doc = []
                if advance is not None and number % 1024 == 0:
                    advance(raw.tell() - done)
                    done = raw.tell()
            if doc:
                yield doc
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: not a valid gzip file ({err}); decompress it or fix the file") from None
        finally:
            if advance is not None:
                advance(os.path.getsize(path) - done)
            stream.close()
