"""Subword tokenizer: train a SentencePiece-style Unigram model, or load one (``tokenizer.json`` or a
SentencePiece ``.model``).

Training uses Hugging Face ``tokenizers`` (Rust, multi-threaded), which implements SentencePiece's
Unigram algorithm and writes one portable ``tokenizer.json`` that ``tokenizers``, ``transformers`` and
this module read. The FNet checkpoints ship a SentencePiece ``spiece.model`` instead;
:meth:`Tokenizer.from_sentencepiece` reads its protobuf directly, so neither ``sentencepiece`` nor
``protobuf`` is needed. The command's settings, :class:`~tokenmix.text.configs.TokenizerTrainConfig`,
live in the torch-free :mod:`tokenmix.text.configs`.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as Backend
from tokenizers.models import Unigram

from tokenmix.io.files import atomic_write, claim_output, read_json, write_json
from tokenmix.progress import Progress
from tokenmix.text.configs import SPECIAL_TOKENS, TokenizerTrainConfig
from tokenmix.text.corpus import check_inputs, read_documents

ROLES = ("pad", "unk", "cls", "sep", "mask")
_ALIASES = {role: (token, f"<{role}>") for role, token in zip(ROLES, SPECIAL_TOKENS)}  # <pad>, <unk>: SentencePiece names
_BATCH_LINES = 1000  # lines per hand-over to Rust, to amortise the call


def _read_batches(path: str, text_field: str, bar: Any) -> Iterator[list[str]]:
    """Stream one file as lists of about ``_BATCH_LINES`` non-empty lines, advancing ``bar`` by the
    bytes read. The shared corpus reader rejects bad bytes, JSON and gzip with the file and line."""
    batch: list[str] = []
    for document in read_documents(path, text_field, advance=bar.update):
        batch.extend(document)
        if len(batch) >= _BATCH_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


def _sentencepiece_style(backend: Any, tokens: dict[str, str] | None, prepend: str = "always") -> None:
    """Spaces become ``▁`` attached to the next word (SentencePiece's convention); once the special
    tokens exist, a ``[CLS] A [SEP] B [SEP]`` template for callers who let ``tokenizers`` add them.
    (Also splitting words between letters, digits and punctuation, as SentencePiece's trainer does,
    made the ``tokenizers`` trainer keep ``▁`` apart from words: 1.61 instead of 1.30 tokens per
    Wikipedia word at 32k, so pieces like ``E.`` are left possible.)"""
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend)
    backend.decoder = backend.decoder or decoders.Metaspace(replacement="▁", prepend_scheme=prepend)
    if tokens:
        cls, sep = tokens["cls"], tokens["sep"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(t, backend.token_to_id(t)) for t in (cls, sep)])


def train_tokenizer(config: TokenizerTrainConfig) -> Path:
    """Train a Unigram tokenizer on ``config.input`` and save it into ``config.out``; returns the folder.

    Text is streamed (memory grows with the number of distinct words, not with the corpus) and
    normalised as SentencePiece's ``nmt_nfkc`` does: NFKC, whitespace runs collapsed and trimmed."""
    check_inputs(config.input)
    claim_output(config.out, config.overwrite)
    backend = Backend(Unigram())
    steps = [normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    backend.normalizer = normalizers.Sequence(steps + [normalizers.Lowercase()] * config.lowercase)
    _sentencepiece_style(backend, None)
    trainer = trainers.UnigramTrainer(  # type: ignore[call-arg]  # the stub lacks seed_size; the trainer takes it
        vocab_size=config.vocab_size, special_tokens=list(SPECIAL_TOKENS), unk_token="[UNK]", show_progress=False,
        max_piece_length=config.max_piece_length, seed_size=config.seed_size,
        shrinking_factor=config.shrinking_factor, n_sub_iterations=config.n_sub_iterations)
    total = sum(Path(p).stat().st_size for p in config.input)
    with Progress(total=total, unit="B", unit_scale=True, desc="reading", mininterval=0.5) as bar:
        batches = (b for path in config.input for b in _read_batches(path, config.text_field, bar))
        first = next(batches, None)
        if first is None:
            raise ValueError(f"no text in {', '.join(config.input)}: the input is empty or blank; pass a non-empty corpus")

        def stream() -> Iterator[list[str]]:
            yield first
            yield from batches
            bar.set_description("fitting the Unigram model")  # the long part; tqdm shows its time on close
            bar.refresh()

        # tqdm counts bytes, so tokenizers' own progress bar (what a length hint would feed) stays off
        backend.train_from_iterator(stream(), trainer=trainer)
    _canonical_order(backend)
    tokens = dict(zip(ROLES, SPECIAL_TOKENS))
    _sentencepiece_style(backend, tokens)
    tokenizer = Tokenizer(backend, tokens)
    if tokenizer.vocab_size < config.vocab_size:  # a model sized by --vocab-size would carry unused rows
        print(f"tokenmix: note: the corpus gave {tokenizer.vocab_size} pieces, fewer than --vocab-size "
              f"{config.vocab_size}: train on more text, or size models by the tokenizer's vocabulary",
              file=sys.stderr)
    return tokenizer.save(config.out)


def _canonical_order(backend: Any) -> None:
    """Make training reproducible. The trainer sums in hash-map order, so scores differ in the last
    bits between runs, and gives the characters it never scored ``min + k * 1e-4`` in hash-set order,
    so those swap ids. Re-deal that ladder in code-point order, round scores to float32 (as
    SentencePiece stores them) and sort by (score, piece)."""
    model = json.loads(backend.to_str())["model"]
    specials, rest = model["vocab"][:len(SPECIAL_TOKENS)], model["vocab"][len(SPECIAL_TOKENS):]
    low = min(s for _, s in rest)
    ladder = sorted(p for p, s in rest if len(p) == 1 and abs((s - low) / 1e-4 - round((s - low) / 1e-4)) < 1e-4)
    score = {p: low + k * 1e-4 for k, p in enumerate(ladder)}
    rest = sorted(((p, struct.unpack("<f", struct.pack("<f", score.get(p, s)))[0]) for p, s in rest), key=lambda x: (-x[1], x[0]))
    backend.model = Unigram([tuple(x) for x in specials] + rest, model["unk_id"], model.get("byte_fallback", False))


def tokenizer_sha256(source: Path) -> str:
    """sha256 over the files a tokenizer is loaded from (tokenizer.json and its config, or a .model)."""
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file() and (
        p.name in ("tokenizer.json", "tokenizer_config.json") or p.suffix == ".model"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def check_tokenizer(path: Path, expected: str, owner: str, fix: str) -> None:
    """Refuse a tokenizer other than the one ``owner`` recorded (by sha256): a replaced tokenizer gives
    the token ids other meanings, which nothing downstream would notice."""
    found = tokenizer_sha256(path)
    if found != expected:
        raise ValueError(f"the tokenizer {path} (sha256 {found[:12]}) is not the one {owner} (sha256 {expected[:12]}); "
                         f"{fix}")


def _read_backend(path: Path) -> Backend:
    """A ``tokenizer.json``; one that the tokenizers library cannot parse is an error naming it."""
    try:
        return Backend.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception for malformed files
        raise ValueError(f"{path} is not a readable tokenizer ({err}); it is damaged: train or copy it again") from None


class Tokenizer:
    """Thin wrapper over ``tokenizers.Tokenizer`` that knows the ids of the five special roles."""

    def __init__(self, backend: Any, special_tokens: dict[str, str] | None = None) -> None:
        self.backend, self.special_tokens = backend, {}
        for role in ROLES:
            given = (special_tokens or {}).get(role)
            names = (given,) if given else _ALIASES[role]
            found = [n for n in names if backend.token_to_id(n) is not None]
            if not found:
                raise ValueError(f"the tokenizer has no {role} token ({' or '.join(names)}); tokenmix needs "
                                 f"{' '.join(SPECIAL_TOKENS)}: train one with `tokenmix tokenizer train`")
            self.special_tokens[role] = found[0]
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            backend.token_to_id(self.special_tokens[r]) for r in ROLES)
        self.special_ids = {self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id}

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without ``[CLS]``/``[SEP]`` (the data pipeline places those)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """:meth:`encode` for many texts, in parallel in Rust."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save(self, directory: str | Path) -> Path:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` (the special tokens under the keys
        ``transformers`` reads, and their ids), each replaced atomically; returns the folder."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast"}
        meta.update({f"{role}_token": token for role, token in self.special_tokens.items()})
        meta["special_token_ids"] = {role: self.backend.token_to_id(t) for role, t in self.special_tokens.items()}
        atomic_write(directory / "tokenizer.json", lambda tmp: self.backend.save(tmp))
        write_json(directory / "tokenizer_config.json", meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """Load a folder's ``tokenizer.json``, or if it has none its SentencePiece ``spiece.model`` (or
        other ``*.model``), as the FNet checkpoints ship; a path to either file works too."""
        path = Path(directory)
        if path.is_file():
            return cls.from_sentencepiece(path) if path.suffix == ".model" else cls(_read_backend(path))
        if not path.is_dir():
            raise FileNotFoundError(f"tokenizer folder {path} does not exist; train one with `tokenmix tokenizer train`")
        if (path / "tokenizer.json").is_file():
            meta = read_json(path / "tokenizer_config.json") if (path / "tokenizer_config.json").is_file() else {}
            names = {r: meta[f"{r}_token"] for r in ROLES if meta.get(f"{r}_token")}  # transformers may store dicts
            tokens = {r: t["content"] if isinstance(t, dict) else str(t) for r, t in names.items()}
            return cls(_read_backend(path / "tokenizer.json"), tokens)
        models = [path / "spiece.model"] if (path / "spiece.model").is_file() else sorted(path.glob("*.model"))
        if models:
            return cls.from_sentencepiece(models[0])
        raise FileNotFoundError(f"no tokenizer.json (or SentencePiece .model) in {path}; train one with `tokenmix tokenizer train`")

    @classmethod
    def from_sentencepiece(cls, path: str | Path) -> Tokenizer:
        """Convert a SentencePiece Unigram ``.model``: same pieces, ids and scores, its precompiled
        normaliser, whitespace handling and byte fallback, so ids match ``sentencepiece``'s."""
        try:  # ModelProto: 1 pieces {1 piece, 2 score, 3 type}, 2 trainer_spec, 3 normalizer_spec
            proto = _protobuf(Path(path).read_bytes())
            pieces = [_protobuf(p) for p in proto.get(1, [])]
            trainer, norm = (_protobuf(proto[k][-1]) if k in proto else {} for k in (2, 3))
            vocab = [(p[1][-1].decode("utf-8"), struct.unpack("<f", p[2][-1])[0] if 2 in p else 0.0) for p in pieces]
            kinds = [p.get(3, [1])[-1] for p in pieces]  # 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
        except (IndexError, KeyError, TypeError, UnicodeDecodeError, struct.error):
            raise ValueError(f"{path} is not a valid SentencePiece model file") from None
        if trainer.get(3, [1])[-1] != 1 or not pieces:  # trainer_spec.model_type 1 = Unigram
            raise ValueError(f"{path} is not a SentencePiece Unigram model; only Unigram models can be converted")
        # sentencepiece never emits control or unused pieces for text: make them lose every comparison
        floor = min((s for (_, s), k in zip(vocab, kinds) if k == 1), default=0.0) - 100.0
        vocab = [(piece, floor if kind in (3, 5) else score) for (piece, score), kind in zip(vocab, kinds)]
        backend = Backend(Unigram(vocab, kinds.index(2) if 2 in kinds else 0, 6 in kinds))
        steps: list[normalizers.Normalizer] = [normalizers.Precompiled(norm[2][-1])] if norm.get(2, [b""])[-1] else []
        if norm.get(4, [1])[-1]:  # normalizer_spec.remove_extra_whitespaces
            steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip()]
        backend.normalizer = normalizers.Sequence(steps)
        if 6 in kinds:  # byte fallback: <0xE2><0x98><0x83> decodes to ☃
            backend.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
        wrapper = cls(backend)
        specials = set(wrapper.special_tokens.values())
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in sorted(specials)])
        backend.add_tokens([AddedToken(p, normalized=False) for (p, _), k in zip(vocab, kinds) if k == 4 and p not in specials])
        _sentencepiece_style(backend, wrapper.special_tokens, "always" if norm.get(3, [1])[-1] else "never")  # add_dummy_prefix
        return wrapper


def _protobuf(data: bytes) -> dict[int, list[Any]]:
    """Decode one protobuf message into {field number: [values]}, varints as ints and the rest as
    bytes: enough of the wire format to read a SentencePiece model. IndexError if malformed."""
    fields: dict[int, list[Any]] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while data[i] & 0x80:
            value, shift, i = value | (data[i] & 0x7F) << shift, shift + 7, i + 1
        value, i = value | data[i] << shift, i + 1
        return value

    while i < len(data):
        key = varint()
        if key & 7 == 0:
            value: Any = varint()
        elif key & 7 in (1, 2, 5):
            size = {1: 8, 5: 4}.get(key & 7) or varint()
            value, i = data[i:i + size], i + size
            if i > len(data):
                raise IndexError("truncated field")
        else:
            raise IndexError(f"unsupported wire type {key & 7}")
        fields.setdefault(key >> 3, []).append(value)
    return fields
