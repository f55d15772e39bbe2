"""Tokenizer training and loading: special ids, round trips, input formats, errors, determinism and
SentencePiece conversion. Everything trains on a few hundred generated lines (vocab ~200), so the
whole file runs in seconds."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

import pytest

pytest.importorskip("tokenizers")

from tokenmix.text.configs import SPECIAL_TOKENS, TokenizerTrainConfig  # noqa: E402
from tokenmix.text.tokenizer import Tokenizer, train_tokenizer  # noqa: E402

WORDS = ["the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from", "his", "her", "it", "an", "were", "are", "which", "this", "be", "or", "has", "had", "not", "but", "tokenizer", "mixing", "fourier", "transform", "encoder", "attention", "sequence", "hidden", "layer", "token", "model", "training", "sparse", "mixer", "expert", "router", "capacity"]


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))).capitalize() + rng.choice(".,;!?")
            for _ in range(n)]


def write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train(tmp: Path, inputs: list[Path], name: str = "tok", **kw) -> Path:
    return train_tokenizer(TokenizerTrainConfig(input=tuple(map(str, inputs)), out=str(tmp / name), vocab_size=kw.pop("vocab_size", 200), **kw))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("tok")
    return train(tmp, [write_text(tmp / "corpus.txt", corpus())])


def test_special_token_ids_and_config(trained: Path) -> None:
    tok = Tokenizer.load(trained)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.special_ids == {0, 1, 2, 3, 4}
    assert [tok.backend.id_to_token(i) for i in range(5)] == list(SPECIAL_TOKENS)
    assert 50 < tok.vocab_size <= 200
    meta = json.loads((trained / "tokenizer_config.json").read_text())
    assert meta["mask_token"] == "[MASK]" and meta["special_token_ids"] == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert not list(trained.glob("*.tmp"))  # atomic writes leave no temporaries behind


def test_encode_decode_round_trip(trained: Path) -> None:
    tok = Tokenizer.load(trained)
    text = "The encoder mixing sequence was a fourier transform, and the router had capacity."
    ids = tok.encode(text)
    assert ids and not set(ids) & tok.special_ids  # no [CLS]/[SEP] added, nothing unknown
    assert tok.decode(ids) == text
    assert tok.encode("  the\tmodel \n") == tok.encode("the model")  # whitespace collapsed as SentencePiece does
    assert tok.encode("the [MASK] model").count(tok.mask_id) == 1  # special tokens in text are kept whole
    assert tok.decode(tok.encode("the [MASK] model")) == "the model"
    texts = ["the token", "Sparse mixer expert.", ""]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


def test_tokenizer_json_loads_in_tokenizers(trained: Path) -> None:
    from tokenizers import Tokenizer as Backend

    backend = Backend.from_file(str(trained / "tokenizer.json"))
    text = "the hidden layer of the model"
    assert backend.encode(text, add_special_tokens=False).ids == Tokenizer.load(trained).encode(text)
    assert backend.encode(text, "a token").tokens[0] == "[CLS]"  # BERT template for tokenizers users


def test_jsonl_and_gz_inputs_give_the_same_tokenizer(tmp_path: Path) -> None:
    lines = corpus(300, seed=1)
    plain = train(tmp_path, [write_text(tmp_path / "c.txt", lines)], "plain")
    with gzip.open(tmp_path / "c.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    records = "".join(json.dumps({"id": i, "text": t}) + "\n" + ("\n" if i % 7 == 0 else "") for i, t in enumerate(lines))
    (tmp_path / "c.jsonl").write_text(records, encoding="utf-8")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(records)
    expected = (plain / "tokenizer.json").read_text()
    for name in ("c.txt.gz", "c.jsonl", "c.jsonl.gz"):
        out = train(tmp_path, [tmp_path / name], name.replace(".", "_"))
        assert (out / "tokenizer.json").read_text() == expected, name
    (tmp_path / "bad.jsonl").write_text('{"body": "no text field"}\n')
    with pytest.raises(ValueError, match='line 1 has no string "text" field'):
        train(tmp_path, [tmp_path / "bad.jsonl"], "bad")


def test_training_is_deterministic(tmp_path: Path) -> None:
    path = write_text(tmp_path / "c.txt", corpus(500, seed=2))
    first, second = (train(tmp_path, [path], name) for name in ("one", "two"))
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    assert Tokenizer.load(first).backend.get_vocab() == Tokenizer.load(second).backend.get_vocab()


def test_lowercase_option(tmp_path: Path) -> None:
    out = train(tmp_path, [write_text(tmp_path / "c.txt", corpus())], lowercase=True)
    tok = Tokenizer.load(out)
    assert tok.encode("THE Model") == tok.encode("the model")
    assert "▁The" not in tok.backend.get_vocab()


def test_missing_input_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input file .*nope.txt not found"):
        train(tmp_path, [tmp_path / "nope.txt"])
    with pytest.raises(ValueError, match="is a folder; pass the files in it"):
        train(tmp_path, [tmp_path])
    write_text(tmp_path / "c.txt", corpus(10))
    with pytest.raises(ValueError, match="--input names .*c.txt twice; give each file once"):  # counted twice before
        train(tmp_path, [tmp_path / "c.txt", tmp_path / "c.txt"])
    write_text(tmp_path / "plain.txt.gz", corpus(10))
    with pytest.raises(ValueError, match="not a valid gzip file"):
        train(tmp_path, [tmp_path / "plain.txt.gz"])


def test_empty_input(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n  \n\t\n")
    with pytest.raises(ValueError, match="no text in"):
        train(tmp_path, [tmp_path / "empty.txt", tmp_path / "blank.txt"])


def test_non_utf8_input_names_the_byte_offset(tmp_path: Path) -> None:
    head = ("\n".join(corpus(1500)) + "\n").encode("utf-8")  # past the first batch: the error surfaces mid-training
    (tmp_path / "latin1.txt").write_bytes(head + "caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt: line \d+ is not valid UTF-8 .*iconv"):
        train(tmp_path, [tmp_path / "latin1.txt"])


def test_a_corpus_too_small_for_the_vocabulary_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "small.txt").write_text("a cat sat on a mat\n")
    tokenizer = Tokenizer.load(train(tmp_path, [tmp_path / "small.txt"], vocab_size=32000))
    assert tokenizer.vocab_size < 100
    assert f"the corpus gave {tokenizer.vocab_size} pieces, fewer than --vocab-size 32000" in capsys.readouterr().err


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="--vocab-size 5 is too small"):
        TokenizerTrainConfig(input=("a.txt",), out="tok", vocab_size=5)
    with pytest.raises(ValueError, match="no --input files given"):
        TokenizerTrainConfig(out="tok")
    with pytest.raises(ValueError, match="missing --out"):
        TokenizerTrainConfig(input=("a.txt",))
    assert TokenizerTrainConfig(input="a.txt", out="tok").input == ("a.txt",)  # type: ignore[arg-type]


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"no tokenizer.json (or SentencePiece .model) in {tmp_path}")):
        Tokenizer.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Tokenizer.load(tmp_path / "missing")
    from tokenizers import Tokenizer as Backend
    from tokenizers.models import WordLevel

    backend = Backend(WordLevel({"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "x": 4}, unk_token="[UNK]"))
    backend.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match=r"no mask token \(\[MASK\] or <mask>\)"):
        Tokenizer.load(tmp_path)
    (tmp_path / "fake.model").write_bytes(b"\xff" * 10)
    with pytest.raises(ValueError, match="not a valid SentencePiece model"):
        Tokenizer.from_sentencepiece(tmp_path / "fake.model")


def test_save_and_reload(trained: Path, tmp_path: Path) -> None:
    tok = Tokenizer.load(trained)
    again = Tokenizer.load(tok.save(tmp_path / "copy"))
    assert again.encode("the sparse mixer") == tok.encode("the sparse mixer")
    assert again.special_tokens == tok.special_tokens


@pytest.mark.parametrize("byte_fallback", [False, True])
def test_sentencepiece_model_matches_sentencepiece(tmp_path: Path, byte_fallback: bool) -> None:
    spm = pytest.importorskip("sentencepiece", reason="pip install sentencepiece to test the .model conversion")
    import io

    model = io.BytesIO()
    # Laid out like FNet's spiece.model: <pad> at 3, [CLS] [SEP] [MASK] as control symbols.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(400, seed=3)), model_writer=model, vocab_size=120 + 256 * byte_fallback, model_type="unigram",
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, control_symbols="[CLS],[SEP],[MASK]", byte_fallback=byte_fallback,
        minloglevel=2)
    (tmp_path / "spiece.model").write_bytes(model.getvalue())
    reference = spm.SentencePieceProcessor(model_proto=model.getvalue())
    tok = Tokenizer.load(tmp_path)
    assert tok.pad_id == 3 and tok.unk_id == 0
    assert (tok.cls_id, tok.sep_id, tok.mask_id) == tuple(reference.piece_to_id(p) for p in ("[CLS]", "[SEP]", "[MASK]"))
    assert tok.vocab_size == reference.get_piece_size()
    texts = ["The encoder mixing sequence was a fourier transform.", "  hidden   layer  ", "Mixer, router; expert!",
             "an attention token with Zebra quirks é ☃"]
    for text in texts:
        assert tok.encode(text) == reference.encode(text), text
    for text in texts[:3] + texts[3:] * byte_fallback:  # unknown pieces decode differently (dropped vs " ⁇ ")
        assert tok.decode(tok.encode(text)) == reference.decode(reference.encode(text)), text
    if byte_fallback:
        assert tok.decode(tok.encode("é ☃")) == "é ☃"
    assert tok.encode("the [MASK] model").count(tok.mask_id) == 1
