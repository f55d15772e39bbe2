"""Subword tokenizer: train a SentencePiece-style Unigram model, load it (or a SentencePiece ``.model``).

FNet and BERT-style pretraining need a subword vocabulary with ``[PAD] [UNK] [CLS] [SEP] [MASK]``.
Training uses the Hugging Face ``tokenizers`` library (Rust, multi-threaded), which reproduces
SentencePiece's Unigram algorithm and writes one portable ``tokenizer.json`` that ``tokenizers``,
``transformers`` and this module all read. The official FNet checkpoints ship a SentencePiece
``spiece.model`` instead; :meth:`Tokenizer.from_sentencepiece` converts it by reading the protobuf
directly, so neither ``sentencepiece`` nor ``protobuf`` is a dependency. ``tokenizers`` is imported
only inside functions, so the CLI can build its flags from :class:`TokenizerTrainConfig` cheaply.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, in this order
ROLES = ("pad", "unk", "cls", "sep", "mask")
# Names a role's token goes by in foreign tokenizers (SentencePiece models such as FNet's spiece.model).
_ALIASES = {"pad": ("[PAD]", "<pad>"), "unk": ("[UNK]", "<unk>"), "cls": ("[CLS]", "<cls>"),
            "sep": ("[SEP]", "<sep>"), "mask": ("[MASK]", "<mask>")}
_BATCH_LINES = 1000  # lines per hand-over to Rust: amortises the Python->Rust call


@dataclass
class TokenizerTrainConfig:
    input: tuple[str, ...] = field(default=(), metadata={"help": "text files: plain text (one document or paragraph per line), .gz, or JSONL (.jsonl / .jsonl.gz, one object per line)"})
    out: str = field(default="", metadata={"help": "output folder (created); receives tokenizer.json and tokenizer_config.json"})
    vocab_size: int = field(default=32000, metadata={"help": "vocabulary size, the 5 special tokens included"})
    lowercase: bool = field(default=False, metadata={"help": "lowercase text before tokenizing (part of the saved tokenizer)"})
    max_piece_length: int = field(default=16, metadata={"help": "longest token, in characters"})
    shrinking_factor: float = field(default=0.5, metadata={"help": "fraction of candidate pieces kept at each pruning round; SentencePiece uses 0.75, 0.5 trains ~1.5x faster for a negligibly different vocabulary"})
    n_sub_iterations: int = field(default=2, metadata={"help": "EM iterations between pruning rounds"})
    text_field: str = field(default="text", metadata={"help": "the field holding the text in JSONL inputs"})

    def __post_init__(self) -> None:
        self.input = (str(self.input),) if isinstance(self.input, (str, os.PathLike)) else tuple(map(str, self.input))
        if not self.input:
            raise ValueError("no --input files given; pass the text to train on, e.g. --input corpus.txt,more.jsonl.gz")
        if not self.out:
            raise ValueError("missing --out; name the folder to write tokenizer.json into, e.g. --out tokenizer")
        if self.vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size {self.vocab_size} is too small: the {len(SPECIAL_TOKENS)} special tokens "
                             f"{' '.join(SPECIAL_TOKENS)} alone take {len(SPECIAL_TOKENS)} ids; use e.g. --vocab-size 32000")
        if self.max_piece_length < 1 or self.n_sub_iterations < 1 or not 0 < self.shrinking_factor < 1:
            raise ValueError("max_piece_length and n_sub_iterations must be positive and shrinking_factor in (0, 1), got "
                             f"{self.max_piece_length}, {self.n_sub_iterations} and {self.shrinking_factor}")


def _read_batches(path: str, text_field: str, bar: Any) -> Iterator[list[str]]:
    """Stream one file as lists of non-empty lines. Lines are decoded one by one so that a bad byte is
    reported with its offset instead of being silently replaced."""
    jsonl = path.endswith((".jsonl", ".jsonl.gz"))
    with open(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
        offset, done, batch = 0, 0, []
        try:
            for number, line in enumerate(stream, 1):
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise ValueError(f"{path} is not UTF-8 text (byte offset {offset + err.start}); re-encode it, "
                                     f"e.g. iconv -f latin1 -t utf-8 {path} > fixed.txt") from None
                offset += len(line)
                if jsonl and text.strip():
                    try:
                        record = json.loads(text)
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}, line {number}: invalid JSON ({err.msg}); a .jsonl file holds one JSON object per line") from None
                    text = record.get(text_field) if isinstance(record, dict) else None
                    if not isinstance(text, str):
                        raise ValueError(f"{path}, line {number}: no string field {text_field!r}; set --text-field")
                if text.strip():
                    batch.append(text)
                if len(batch) == _BATCH_LINES:
                    yield batch
                    batch = []
                    bar.update(raw.tell() - done)
                    done = raw.tell()
        except gzip.BadGzipFile:
            raise ValueError(f"{path} ends in .gz but is not gzip-compressed; rename or recompress it") from None
        if batch:
            yield batch
        bar.update(raw.tell() - done)


def _metaspace(backend: Any, prepend: str = "always") -> None:
    """SentencePiece's whitespace convention: a space becomes ``▁`` attached to the next word."""
    from tokenizers import decoders, pre_tokenizers

    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend)
    if backend.decoder is None:
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=prepend)


def _bert_template(backend: Any, tokens: dict[str, str]) -> None:
    """``[CLS] A [SEP] B [SEP]`` for callers that ask ``tokenizers`` itself to add special tokens."""
    from tokenizers import processors

    cls, sep = tokens["cls"], tokens["sep"]
    ids = [(t, backend.token_to_id(t)) for t in (cls, sep)]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1", special_tokens=ids)


def train_tokenizer(config: TokenizerTrainConfig) -> Path:
    """Train a Unigram tokenizer on ``config.input`` and save it into ``config.out``; returns the folder.

    Text streams through in batches (memory grows with the number of distinct words, not with the
    corpus), normalised with NFKC and whitespace collapsed, as SentencePiece's ``nmt_nfkc`` does."""
    from tokenizers import Regex, normalizers, trainers
    from tokenizers import Tokenizer as Backend
    from tokenizers.models import Unigram
    from tqdm.auto import tqdm

    for path in config.input:
        if Path(path).is_dir():
            raise ValueError(f"input {path} is a folder; pass the files in it, e.g. --input {path}/a.txt,{path}/b.txt")
        if not Path(path).is_file():
            raise FileNotFoundError(f"input file {path} not found; check the --input paths")
    backend = Backend(Unigram())
    steps = [normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    backend.normalizer = normalizers.Sequence(steps + ([normalizers.Lowercase()] if config.lowercase else []))
    _metaspace(backend)
    trainer = trainers.UnigramTrainer(
        vocab_size=config.vocab_size, special_tokens=list(SPECIAL_TOKENS), unk_token="[UNK]", show_progress=False,
        max_piece_length=config.max_piece_length, shrinking_factor=config.shrinking_factor,
        n_sub_iterations=config.n_sub_iterations)
    total = sum(Path(p).stat().st_size for p in config.input)
    with tqdm(total=total, unit="B", unit_scale=True, desc="reading", mininterval=0.5) as bar:
        batches = (b for path in config.input for b in _read_batches(path, config.text_field, bar))
        first = next(batches, None)
        if first is None:
            raise ValueError(f"no text in {', '.join(config.input)}: the input is empty or blank; pass a non-empty corpus")

        def stream() -> Iterator[list[str]]:
            yield first
            yield from batches
            bar.set_description("fitting the Unigram model")  # the long, silent part comes next
            bar.refresh()

        # No length hint: tokenizers' own progress bar is off, tqdm above counts bytes instead.
        backend.train_from_iterator(stream(), trainer=trainer)
    _canonical_order(backend)
    _bert_template(backend, dict(zip(ROLES, SPECIAL_TOKENS)))
    return Tokenizer(backend, dict(zip(ROLES, SPECIAL_TOKENS))).save(config.out)


def _canonical_order(backend: Any) -> None:
    """Make ids reproducible. The trainer sums in hash-map order, so scores differ in the last bits
    between runs, and it gives the characters it never scored ``min + k * 1e-4`` in hash-set order, so
    those swap ids. Re-deal that ladder in code-point order, round scores to float32 (what SentencePiece
    stores) and sort by (score, piece)."""
    from tokenizers.models import Unigram

    model = json.loads(backend.to_str())["model"]
    specials, rest = model["vocab"][:len(SPECIAL_TOKENS)], model["vocab"][len(SPECIAL_TOKENS):]
    low = min(s for _, s in rest)
    ladder = sorted(p for p, s in rest if len(p) == 1 and abs((s - low) / 1e-4 - round((s - low) / 1e-4)) < 1e-4)
    dealt = {p: low + k * 1e-4 for k, p in enumerate(ladder)}
    rest = sorted(((p, struct.unpack("<f", struct.pack("<f", dealt.get(p, s)))[0]) for p, s in rest), key=lambda x: (-x[1], x[0]))
    backend.model = Unigram([tuple(x) for x in specials] + rest, model["unk_id"], model.get("byte_fallback", False))


class Tokenizer:
    """Thin wrapper over ``tokenizers.Tokenizer`` that knows the ids of the five special roles."""

    def __init__(self, backend: Any, special_tokens: dict[str, str] | None = None) -> None:
        self.backend = backend
        self.special_tokens: dict[str, str] = {}
        for role in ROLES:
            names = ((special_tokens or {}).get(role),) if (special_tokens or {}).get(role) else _ALIASES[role]
            found = next((n for n in names if backend.token_to_id(n) is not None), None)
            if found is None:
                raise ValueError(f"the tokenizer has no {role} token ({' or '.join(names)}); tokenmix needs "
                                 f"{' '.join(SPECIAL_TOKENS)}: train one with `tokenmix tokenizer train`")
            self.special_tokens[role] = found
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            backend.token_to_id(self.special_tokens[r]) for r in ROLES)
        self.special_ids = {self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id}

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; no ``[CLS]``/``[SEP]`` (the data pipeline places those itself)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Like :meth:`encode` for many texts at once, in parallel in Rust."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save(self, directory: str | Path) -> Path:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` (special tokens and their ids, in the
        keys ``transformers`` reads); each file is replaced atomically."""
        from .utils import atomic_write

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast"}
        meta.update({f"{role}_token": token for role, token in self.special_tokens.items()})
        meta["special_token_ids"] = {role: self.backend.token_to_id(t) for role, t in self.special_tokens.items()}
        atomic_write(directory / "tokenizer.json", lambda tmp: self.backend.save(tmp))
        atomic_write(directory / "tokenizer_config.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """Load ``tokenizer.json`` from a folder (or a SentencePiece ``spiece.model`` / ``*.model`` if it has
        none, as the FNet checkpoints ship); a path to either file works too."""
        from tokenizers import Tokenizer as Backend

        path = Path(directory)
        if path.is_file():
            return cls.from_sentencepiece(path) if path.suffix == ".model" else cls(Backend.from_file(str(path)))
        if not path.is_dir():
            raise FileNotFoundError(f"tokenizer folder {path} does not exist; train one with `tokenmix tokenizer train`")
        if (path / "tokenizer.json").is_file():
            tokens = None
            if (path / "tokenizer_config.json").is_file():
                meta = json.loads((path / "tokenizer_config.json").read_text())
                tokens = {r: _content(meta.get(f"{r}_token")) for r in ROLES if meta.get(f"{r}_token")}
            return cls(Backend.from_file(str(path / "tokenizer.json")), tokens)
        models = [path / "spiece.model"] if (path / "spiece.model").is_file() else sorted(path.glob("*.model"))
        if models:
            return cls.from_sentencepiece(models[0])
        raise FileNotFoundError(f"no tokenizer.json (or SentencePiece .model) in {path}; train one with `tokenmix tokenizer train`")

    @classmethod
    def from_sentencepiece(cls, path: str | Path) -> Tokenizer:
        """Convert a SentencePiece Unigram ``.model``: same pieces, ids and scores, its precompiled
        normaliser, whitespace handling and byte fallback, so ids match ``sentencepiece``'s."""
        from tokenizers import AddedToken, Regex, decoders, normalizers
        from tokenizers import Tokenizer as Backend
        from tokenizers.models import Unigram

        try:
            proto = _protobuf(Path(path).read_bytes())
            pieces = [_protobuf(p) for p in proto.get(1, [])]
            trainer, norm = (_protobuf(proto[k][-1]) if k in proto else {} for k in (2, 3))
            vocab = [(p[1][-1].decode("utf-8"), struct.unpack("<f", p[2][-1])[0] if 2 in p else 0.0) for p in pieces]
            kinds = [p.get(3, [1])[-1] for p in pieces]  # 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
        except (IndexError, KeyError, TypeError, UnicodeDecodeError, struct.error):
            raise ValueError(f"{path} is not a valid SentencePiece model file") from None
        if trainer.get(3, [1])[-1] != 1 or not pieces:
            raise ValueError(f"{path} is not a SentencePiece Unigram model; only Unigram models can be converted")
        floor = min((s for (_, s), k in zip(vocab, kinds) if k == 1), default=0.0) - 100.0
        # sentencepiece never produces control or unused pieces from text; make them lose every tie here
        vocab = [(piece, floor if kind in (3, 5) else score) for (piece, score), kind in zip(vocab, kinds)]
        byte_fallback = 6 in kinds
        backend = Backend(Unigram(vocab, kinds.index(2) if 2 in kinds else 0, byte_fallback))
        steps = [normalizers.Precompiled(norm[2][-1])] if norm.get(2, [b""])[-1] else []
        if norm.get(4, [1])[-1]:  # remove_extra_whitespaces
            steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip()]
        backend.normalizer = normalizers.Sequence(steps)
        if byte_fallback:
            backend.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
        names = {piece: kind for (piece, _), kind in zip(vocab, kinds)}
        wrapper = cls(backend)
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in wrapper.special_tokens.values()])
        backend.add_tokens([AddedToken(t, normalized=False) for t, k in names.items() if k == 4 and t not in wrapper.special_tokens.values()])
        _metaspace(backend, "always" if norm.get(3, [1])[-1] else "never")
        _bert_template(backend, wrapper.special_tokens)
        return wrapper


def _content(token: Any) -> str:
    """``transformers`` stores special tokens either as strings or as serialised ``AddedToken`` dicts."""
    return token["content"] if isinstance(token, dict) else str(token)


def _protobuf(data: bytes) -> dict[int, list[Any]]:
    """Decode one protobuf message into {field number: [values]} (varints as int, the rest as bytes):
    enough of the wire format to read a SentencePiece ``ModelProto``. Raises IndexError if malformed."""
    fields: dict[int, list[Any]] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        key = varint()
        kind = key & 7
        if kind == 0:
            value: Any = varint()
        elif kind in (1, 2, 5):
            size = 8 if kind == 1 else 4 if kind == 5 else varint()
            value, i = data[i:i + size], i + size
            if i > len(data):
                raise IndexError("truncated field")
        else:
            raise IndexError(f"unsupported wire type {kind}")
        fields.setdefault(key >> 3, []).append(value)
    return fields
