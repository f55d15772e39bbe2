"""Pretraining data: sharding (tokenmix.text.prepare) and MLM + NSP batches (tokenmix.text.pretraining)."""

import gzip
import json
import random
import re
import shlex
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tokenmix.cli.main import main
from tokenmix.options import flag
from tokenmix.text.configs import DataPrepareConfig
from tokenmix.text.prepare import KINDS, prepare_data
from tokenmix.text.pretraining import HELDOUT_BATCH, PretrainingDataset, eval_batches
from tokenmix.train.configs import PretrainingDataConfig

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"d{k}" for k in range(200)] + [f"l{j}" for j in range(50)] + [f"w{i}" for i in range(50)]
VOCAB = {token: i for i, token in enumerate(SPECIALS + WORDS)}
INVERSE = {i: token for token, i in VOCAB.items()}
PAD, UNK, CLS, SEP, MASK = range(5)


def make_tokenizer(directory: Path, vocab: dict = VOCAB) -> Path:
    """A word-level tokenizer with the project's special tokens at ids 0..4, built directly with the
    `tokenizers` library so that these tests do not depend on tokenizer training."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    tokenizer = HFTokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    tokenizer.add_special_tokens(SPECIALS)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


def make_corpus(n_docs: int, seed: int = 0, lines: tuple[int, int] = (2, 8), words: tuple[int, int] = (1, 5)) -> list[list[str]]:
    """Every line is `d<doc> l<line> w.. w..`, so where a token came from can be read off the batch."""
    rng = random.Random(seed)
    return [[" ".join([f"d{k}", f"l{j}"] + [f"w{rng.randrange(50)}" for _ in range(rng.randint(*words))])
             for j in range(rng.randint(*lines))] for k in range(n_docs)]


def write_text(path: Path, docs: list[list[str]]) -> Path:
    text = "".join("\n".join(doc) + ("\n\n" if k % 3 else "\n \n\n") for k, doc in enumerate(docs))
    with (gzip.open(path, "wt", encoding="utf-8") if path.name.endswith(".gz") else open(path, "w")) as f:
        f.write(text)
    return path


def write_jsonl(path: Path, docs: list[list[str]]) -> Path:
    text = "".join(json.dumps({"id": k, "text": "\n".join(doc)}) + "\n" for k, doc in enumerate(docs))
    with (gzip.open(path, "wt", encoding="utf-8") if path.name.endswith(".gz") else open(path, "w")) as f:
        f.write(text)
    return path


def read_split(out: Path, split: str) -> list[list[list[int]]]:
    """Documents (as lists of lines of token ids) of one split, read back from the shards."""
    docs = []
    for path in sorted((out / split).glob("shard_*.tokens.npy")):
        tokens, lines, starts = (np.load(str(path).replace(".tokens.", f".{kind}.")) for kind in KINDS)
        assert lines[0] == 0 and lines[-1] == len(tokens) and starts[0] == 0 and starts[-1] == len(lines) - 1
        docs += [[tokens[lines[j]:lines[j + 1]].tolist() for j in range(starts[i], starts[i + 1])] for i in range(len(starts) - 1)]
    return docs


def encoded(docs: list[list[str]]) -> list[list[list[int]]]:
    return [[[VOCAB[w] for w in line.split()] for line in doc] for doc in docs]


def prepare(tmp_path: Path, inputs, **overrides) -> Path:
    config = DataPrepareConfig(input=tuple(map(str, inputs)), tokenizer=str(overrides.pop("tokenizer", tmp_path / "tok")),
                               out=str(overrides.pop("out", tmp_path / "out")), **overrides)
    return prepare_data(config)


@pytest.fixture
def tok(tmp_path):
    return make_tokenizer(tmp_path / "tok")


# --------------------------------------------------------------------------------------------- prepare


def test_shard_layout_and_meta_totals(tmp_path, tok):
    docs = make_corpus(120)
    out = prepare(tmp_path, [write_text(tmp_path / "a.txt", docs)], shard_tokens=300, heldout_fraction=0.1, batch_lines=50)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["vocab_size"] == len(VOCAB) and meta["dtype"] == "uint16"
    assert meta["special_ids"] == {"pad": PAD, "unk": UNK, "cls": CLS, "sep": SEP, "mask": MASK}
    assert not (out / "fingerprint.json").exists()
    expected = encoded(docs)
    found = {}
    for split in ("train", "heldout"):
        split_docs = read_split(out, split)
        totals = meta["splits"][split]
        assert totals["documents"] == len(split_docs)
        assert totals["lines"] == sum(map(len, split_docs))
        assert totals["tokens"] == sum(len(line) for doc in split_docs for line in doc)
        assert totals["shards"] == len(list((out / split).glob("shard_*.tokens.npy")))
        for path in (out / split).glob("shard_*.tokens.npy"):
            assert np.load(path, mmap_mode="r").dtype == np.uint16
            assert len(np.load(path)) <= 300 or len(np.load(str(path).replace(".tokens.", ".docs."))) == 2
        found.update({split + str(INVERSE[doc[0][0]]): doc for doc in split_docs})
    assert meta["splits"]["train"]["shards"] > 1 and 1 <= meta["splits"]["heldout"]["documents"] < 40
    # every document exactly once, in one split, with its lines intact
    assert len(found) == len(docs)
    assert sorted(found.values()) == sorted(expected)
    assert sum(meta["splits"][s]["tokens"] for s in ("train", "heldout")) == sum(len(line) for d in expected for line in d)


def test_output_does_not_depend_on_batch_lines_and_heldout_minimum(tmp_path, tok):
    docs = make_corpus(30)
    path = write_text(tmp_path / "a.txt", docs)
    one = prepare(tmp_path, [path], out=tmp_path / "one", batch_lines=1, shard_tokens=200)
    two = prepare(tmp_path, [path], out=tmp_path / "two", batch_lines=10_000, shard_tokens=200)
    for split in ("train", "heldout"):
        assert read_split(one, split) == read_split(two, split)
    # two documents and a tiny fraction: one is still held out; with 0 none are
    small = write_text(tmp_path / "small.txt", docs[:2])
    meta = json.loads((prepare(tmp_path, [small], out=tmp_path / "s", heldout_fraction=1e-9) / "meta.json").read_text())
    assert meta["splits"]["heldout"]["documents"] == 1 and meta["splits"]["train"]["documents"] == 1
    meta = json.loads((prepare(tmp_path, [small], out=tmp_path / "z", heldout_fraction=0.0) / "meta.json").read_text())
    assert meta["splits"]["heldout"]["documents"] == 0 and meta["splits"]["train"]["documents"] == 2


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_rerun_skips_resumes_and_refuses_other_inputs(tmp_path, tok, monkeypatch):
    import tokenmix.text.prepare as prepare_module

    path = write_text(tmp_path / "a.txt", make_corpus(80))
    reference = prepare(tmp_path, [path], shard_tokens=250, out=tmp_path / "reference")
    expected = {name: (reference / name).read_bytes() for name in _mtimes(reference)}
    # interrupt a run after its first six .npy files (two shards)
    save, calls = prepare_module.atomic_write, []

    def failing_save(target, write):
        if str(target).endswith(".npy"):
            calls.append(target)
            if len(calls) > 6:
                raise KeyboardInterrupt
        return save(target, write)

    monkeypatch.setattr(prepare_module, "atomic_write", failing_save)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path, [path], shard_tokens=250)
    monkeypatch.setattr(prepare_module, "atomic_write", save)
    out = tmp_path / "out"
    assert (out / "fingerprint.json").is_file() and not (out / "meta.json").exists()
    assert not list(out.rglob("*.tmp"))
    before = _mtimes(out)
    assert sum(name.endswith(".npy") for name in before) == 6
    time.sleep(0.01)
    prepare(tmp_path, [path], shard_tokens=250)  # resumes: shards already written are left untouched
    after = _mtimes(out)
    assert all(after[name] == before[name] for name in before if name.endswith(".npy"))
    assert {name: (out / name).read_bytes() for name in after} == {**expected, "meta.json": (out / "meta.json").read_bytes()}
    assert json.loads((out / "meta.json").read_text())["splits"] == json.loads(expected["meta.json"])["splits"]
    # a finished output: a rerun writes nothing; a lost shard is restored, the others are kept
    time.sleep(0.01)
    assert prepare(tmp_path, [path], shard_tokens=250, batch_lines=7) == out
    assert _mtimes(out) == after
    for kind in KINDS:
        (out / "train" / f"shard_00001.{kind}.npy").unlink()
    prepare(tmp_path, [path], shard_tokens=250)
    restored = _mtimes(out)
    assert all(restored[n] == after[n] for n in after if "train/shard_00001" not in n and n != "meta.json")
    assert (out / "train" / "shard_00001.tokens.npy").read_bytes() == expected["train/shard_00001.tokens.npy"]
    # other inputs, tokenizer or settings are refused
    with open(path, "a") as f:
        f.write("\nd1 l1 w1\n")
    with pytest.raises(ValueError, match="different inputs.*remove that folder"):
        prepare(tmp_path, [path], shard_tokens=250)
    other = write_text(tmp_path / "b.txt", make_corpus(5))
    with pytest.raises(ValueError, match="different inputs"):
        prepare(tmp_path, [other], shard_tokens=250)
    (out / "meta.json").unlink()
    with pytest.raises(ValueError, match="unknown origin"):
        prepare(tmp_path, [other], shard_tokens=250)


def test_refuses_other_tokenizer_or_settings(tmp_path, tok):
    path = write_text(tmp_path / "a.txt", make_corpus(20))
    prepare(tmp_path, [path])
    with pytest.raises(ValueError, match="different settings"):
        prepare(tmp_path, [path], seed=1)
    make_tokenizer(tmp_path / "tok2", {**VOCAB, "extra": len(VOCAB)})
    with pytest.raises(ValueError, match="different tokenizer"):
        prepare(tmp_path, [path], tokenizer=tmp_path / "tok2")


def test_gzip_and_jsonl_inputs_give_the_same_shards(tmp_path, tok):
    docs = make_corpus(40)
    outs = [prepare(tmp_path, [write(tmp_path / name, docs)], out=tmp_path / name.replace(".", "_"))
            for name, write in (("a.txt", write_text), ("a.txt.gz", write_text), ("a.jsonl", write_jsonl),
                                ("a.jsonl.gz", write_jsonl))]
    for split in ("train", "heldout"):
        reference = read_split(outs[0], split)
        assert reference and all(read_split(out, split) == reference for out in outs[1:])
    # several files: documents never span files and are counted in order
    out = prepare(tmp_path, [write_text(tmp_path / "x.txt", docs[:25]), write_jsonl(tmp_path / "y.jsonl", docs[25:])],
                  out=tmp_path / "multi")
    for split in ("train", "heldout"):
        assert read_split(out, split) == read_split(outs[0], split)


def test_large_vocabulary_uses_uint32(tmp_path):
    vocab = {**VOCAB, **{f"x{i}": len(VOCAB) + i for i in range(66_000)}}
    make_tokenizer(tmp_path / "tok", vocab)
    docs = [["d0 l0 x65999 w1", "d0 l1 x3"], ["d1 l0 w2", "d1 l1 x70000"]]
    out = prepare(tmp_path, [write_text(tmp_path / "a.txt", docs)])
    assert json.loads((out / "meta.json").read_text())["dtype"] == "uint32"
    found = sorted(read_split(out, "train") + read_split(out, "heldout"))
    assert found == [[[VOCAB["d0"], VOCAB["l0"], vocab["x65999"], VOCAB["w1"]], [VOCAB["d0"], VOCAB["l1"], vocab["x3"]]],
                     [[VOCAB["d1"], VOCAB["l0"], VOCAB["w2"]], [VOCAB["d1"], VOCAB["l1"], UNK]]]
    assert np.load(next((out / "train").glob("*.tokens.npy"))).dtype == np.uint32


def test_prepare_errors(tmp_path, tok):
    good = write_text(tmp_path / "a.txt", make_corpus(5))
    with pytest.raises(FileNotFoundError, match="input file .*missing.txt not found; check the --input paths"):
        prepare(tmp_path, [good, tmp_path / "missing.txt"])
    # a file given twice put copies of its documents in both splits; a folder was "missing"; a file as --out
    # failed after tokenizing with "out.txt/train: Not a directory"
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match=r"--input names .*a.txt twice \(again as .*sub/../a.txt\); give each file once"):
        prepare(tmp_path, [good, tmp_path / "sub" / ".." / "a.txt"], out=tmp_path / "o0")
    with pytest.raises(ValueError, match="is a folder; pass the files in it"):
        prepare(tmp_path, [tmp_path], out=tmp_path / "o0")
    (tmp_path / "out.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"--out .*out.txt is a file; give a folder"):
        prepare(tmp_path, [good], out=tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text() == "keep me" and not (tmp_path / "o0").exists()
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    for name in ("empty.txt", "blank.txt"):
        with pytest.raises(ValueError, match="no documents"):
            prepare(tmp_path, [tmp_path / name], out=tmp_path / f"out_{name}")
        assert not (tmp_path / f"out_{name}" / "train").exists()
    (tmp_path / "latin1.txt").write_bytes("d1 l0 w1\ncaf\u00e9 w2\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt: line 2 is not valid UTF-8"):
        prepare(tmp_path, [tmp_path / "latin1.txt"], out=tmp_path / "o1")
    (tmp_path / "bad.jsonl").write_text('{"text": "d1 l0"}\n{"body": "x"}\n')
    with pytest.raises(ValueError, match='line 2 has no string "text" field'):
        prepare(tmp_path, [tmp_path / "bad.jsonl"], out=tmp_path / "o2")
    (tmp_path / "notjson.jsonl").write_text("d1 l0\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        prepare(tmp_path, [tmp_path / "notjson.jsonl"], out=tmp_path / "o3")
    (tmp_path / "notok").mkdir()
    with pytest.raises((FileNotFoundError, ValueError), match="tokenizer.json"):
        prepare(tmp_path, [good], tokenizer=tmp_path / "notok", out=tmp_path / "o4")
    with pytest.raises(ValueError, match="no input given"):
        prepare_data(DataPrepareConfig(tokenizer=str(tok), out=str(tmp_path / "o5")))
    for bad in (dict(heldout_fraction=1.0), dict(heldout_fraction=-0.1), dict(shard_tokens=0), dict(batch_lines=0),
                dict(seed=-1)):
        with pytest.raises(ValueError, match=flag(next(iter(bad)))):
            DataPrepareConfig(**bad)


# ----------------------------------------------------------------------------------------- pretraining


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretraining")
    make_tokenizer(root / "tok")
    path = write_text(root / "corpus.txt", make_corpus(200, lines=(2, 12), words=(1, 6)))
    return prepare(root, [path], shard_tokens=1500, heldout_fraction=0.1)


CFG = PretrainingDataConfig(max_seq_len=48, max_predictions_per_seq=10)


def restore(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The input ids before masking: labels written back at the predicted positions."""
    ids = batch["input_ids"].clone()
    rows, slots = torch.nonzero(batch["masked_weights"] > 0, as_tuple=True)
    ids[rows, batch["masked_positions"][rows, slots]] = batch["masked_labels"][rows, slots]
    return ids


def segments(row: list[int]) -> tuple[list[int], list[int]]:
    first = row.index(SEP)
    second = row.index(SEP, first + 1)
    return row[1:first], row[first + 1:second]


def lines_of(segment: list[int]) -> list[tuple[int, int, list[int]]]:
    """Split a segment at its `d<k>` tokens into (doc, line, tokens) for each whole line."""
    starts = [i for i, t in enumerate(segment) if INVERSE[t].startswith("d")]
    assert starts and starts[0] == 0, "a segment of a multi-line chunk starts at a line boundary"
    return [(int(INVERSE[segment[a]][1:]), int(INVERSE[segment[a + 1]][1:]), segment[a:b])
            for a, b in zip(starts, starts[1:] + [len(segment)])]


def test_batch_shapes_dtypes_and_layout(corpus_dir):
    data = PretrainingDataset(corpus_dir)
    assert data.vocab_size == len(VOCAB) and data.num_documents == data.meta["splits"]["train"]["documents"]
    assert data.num_tokens == data.meta["splits"]["train"]["tokens"]
    batch = data.batch(0, 32, CFG)
    B, L, P = 32, CFG.max_seq_len, CFG.max_predictions_per_seq
    expected = {"input_ids": ((B, L), torch.int64), "token_type_ids": ((B, L), torch.int64),
                "attention_mask": ((B, L), torch.int64), "masked_positions": ((B, P), torch.int64),
                "masked_labels": ((B, P), torch.int64), "masked_weights": ((B, P), torch.float32),
                "next_sentence_labels": ((B,), torch.int64)}
    assert {k: (tuple(v.shape), v.dtype) for k, v in batch.items()} == expected
    for i in range(B):
        ids, types_, mask = (batch[k][i].tolist() for k in ("input_ids", "token_type_ids", "attention_mask"))
        n = sum(mask)
        assert mask == [1] * n + [0] * (L - n) and ids[n:] == [PAD] * (L - n) and PAD not in ids[:n]
        assert ids[0] == CLS and ids[n - 1] == SEP and ids[:n].count(SEP) == 2 and CLS not in ids[1:]
        first = ids.index(SEP)
        assert 1 < first < n - 1
        assert types_ == [0] * (first + 1) + [1] * (n - first - 1) + [0] * (L - n)


def test_batches_are_pure_functions_of_seed_step_and_index(corpus_dir):
    data = PretrainingDataset(corpus_dir)
    a, b = data.batch(3, 8, CFG), PretrainingDataset(corpus_dir).batch(3, 8, CFG)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = data.batch(4, 8, CFG)
    d = data.batch(3, 8, PretrainingDataConfig(max_seq_len=48, max_predictions_per_seq=10, seed=1))
    assert not torch.equal(a["input_ids"], c["input_ids"]) and not torch.equal(a["input_ids"], d["input_ids"])
    full = data.batch(5, 4, CFG)
    halves = [data.batch(5, 2, CFG, offset=0), data.batch(5, 2, CFG, offset=2)]
    assert all(torch.equal(full[k], torch.cat([h[k] for h in halves])) for k in full)
    held = PretrainingDataset(corpus_dir, "heldout")
    assert not torch.equal(held.batch(3, 8, CFG)["input_ids"], a["input_ids"])
    first = [b for b, counted in eval_batches(held, 3, 8, CFG) if counted]
    assert len(first) == 3 * HELDOUT_BATCH // 8
    whole = torch.cat([held.batch(s, HELDOUT_BATCH, CFG)["input_ids"] for s in range(3)])
    assert torch.equal(torch.cat([b["input_ids"] for b in first]), whole)
    # the same examples in other batch sizes and over 3 ranks (each rank as many chunks; extras not counted)
    ranks = [list(eval_batches(held, 3, 5, CFG, rank, 3)) for rank in range(3)]
    assert len({len(r) for r in ranks}) == 1
    rows = sorted(tuple(row) for r in ranks for b, c in r if c for row in b["input_ids"].tolist())
    assert rows == sorted(tuple(row) for row in whole.tolist())
    with pytest.raises(ValueError, match="offset"):
        data.batch(0, 2, CFG, offset=-1)


def test_mlm_statistics(corpus_dir):
    data = PretrainingDataset(corpus_dir)
    config = PretrainingDataConfig(max_seq_len=64, max_predictions_per_seq=20)
    batches = [data.batch(s, 64, config) for s in range(30)]
    ids, original = torch.cat([b["input_ids"] for b in batches]), torch.cat([restore(b) for b in batches])
    positions, labels, weights = (torch.cat([b[k] for b in batches]) for k in ("masked_positions", "masked_labels", "masked_weights"))
    lengths = torch.cat([b["attention_mask"] for b in batches]).sum(1)
    special = torch.tensor([PAD, UNK, CLS, SEP, MASK])
    real = weights > 0
    # padded slots are zero; real slots come first, sorted, inside the real tokens, never on a special token
    assert torch.equal(real, torch.arange(20) < real.sum(1, keepdim=True))
    assert (positions[~real] == 0).all() and (labels[~real] == 0).all()
    assert (positions[real] < lengths.unsqueeze(1).expand_as(positions)[real]).all()
    assert all(torch.equal(p[r], p[r].sort().values) for p, r in zip(positions, real))
    assert not torch.isin(labels[real], special).any()
    rows = torch.arange(len(ids)).unsqueeze(1).expand_as(positions)
    assert torch.equal(original[rows[real], positions[real]], labels[real])
    # only predicted positions differ from the original
    changed = torch.zeros_like(ids, dtype=torch.bool)
    changed[rows[real], positions[real]] = True
    assert torch.equal(ids[~changed], original[~changed])
    normal = ~torch.isin(original, special) & (torch.arange(64) < lengths.unsqueeze(1))
    assert abs(real.sum().item() / normal.sum().item() - 0.15) < 0.01
    predicted = ids[rows[real], positions[real]]
    masked = (predicted == MASK).float().mean().item()
    kept = (predicted == labels[real]).float().mean().item()
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(1 - masked - kept - 0.1) < 0.02
    assert not torch.isin(predicted[predicted != MASK], special).any()  # random replacements are normal tokens


def test_nsp_swap_labels_mean_swapped_segments(corpus_dir):
    data = PretrainingDataset(corpus_dir)
    labels = []
    for step in range(16):
        batch = data.batch(step, 64, CFG)
        for row, label in zip(restore(batch).tolist(), batch["next_sentence_labels"].tolist()):
            a, b = (lines_of(segment) for segment in segments(row))
            assert len({doc for doc, _, _ in a + b}) == 1
            for part in (a, b):
                assert [line for _, line, _ in part] == list(range(part[0][1], part[0][1] + len(part)))
            first, second = (a, b) if label == 0 else (b, a)
            assert first[-1][1] + 1 == second[0][1]  # adjacent lines, order given by the label
            labels.append(label)
    assert abs(statistics.mean(labels) - 0.5) < 0.05


def test_chunks_match_the_corpus_lines(corpus_dir):
    """Every line in an example is exactly a corpus line (masking restored from the labels)."""
    corpus = {(int(ws[0][1:]), int(ws[1][1:])): [VOCAB[w] for w in ws] for doc in
              make_corpus(200, lines=(2, 12), words=(1, 6)) for ws in (line.split() for line in doc)}
    data = PretrainingDataset(corpus_dir)
    batch = data.batch(0, 64, CFG)
    for row in restore(batch).tolist():
        for segment in segments(row):
            for doc, line, tokens in lines_of(segment):
                assert corpus[doc, line] == tokens


def test_nsp_random_draws_second_segment_from_another_document(corpus_dir):
    data = PretrainingDataset(corpus_dir)
    config = PretrainingDataConfig(max_seq_len=48, max_predictions_per_seq=10, nsp="random")
    labels = []
    for step in range(16):
        batch = data.batch(step, 64, config)
        for row, label in zip(restore(batch).tolist(), batch["next_sentence_labels"].tolist()):
            a, b = (lines_of(segment) for segment in segments(row))
            assert len({doc for doc, _, _ in a}) == 1 and len({doc for doc, _, _ in b}) == 1
            if label == 0:
                assert a[0][0] == b[0][0] and a[-1][1] + 1 == b[0][1]
            else:
                assert a[0][0] != b[0][0]
            labels.append(label)
    assert abs(statistics.mean(labels) - 0.5) < 0.05


def test_single_line_documents_are_split_inside_the_line(tmp_path, tok):
    docs = [[" ".join([f"d{k}"] + [f"w{i % 50}" for i in range(90)])] for k in range(6)]
    out = prepare(tmp_path, [write_text(tmp_path / "one.txt", docs)], heldout_fraction=0.0)
    data = PretrainingDataset(out)
    config = PretrainingDataConfig(max_seq_len=32, max_predictions_per_seq=5)
    batch = data.batch(0, 64, config)
    line = {k: [VOCAB[w] for w in doc[0].split()] for k, doc in enumerate(docs)}
    swapped = 0
    for row, label, mask in zip(restore(batch).tolist(), batch["next_sentence_labels"].tolist(), batch["attention_mask"]):
        assert mask.sum() == 32  # long lines fill the example
        a, b = segments(row)
        assert a and b
        first, second = (a, b) if label == 0 else (b, a)
        window = first + second
        hits = [k for k, tokens in line.items() if any(tokens[i:i + len(window)] == window for i in range(91 - len(window) + 1))]
        assert hits, "the two segments are one contiguous window of a line, in the order the label says"
        swapped += label
    assert 10 < swapped < 54
    with pytest.raises(ValueError, match="no heldout documents"):
        PretrainingDataset(out, "heldout")


def test_dataset_errors_give_the_prepare_command(tmp_path, tok):
    """A folder never prepared names `tokenmix data prepare`; a lost shard names the very command that made the
    folder, which rewrites it (the CLI user has no Python function to call)."""
    with pytest.raises(FileNotFoundError, match=re.escape(f"prepare it first with `tokenmix data prepare --input "
                                                          f"FILE[,FILE...] --tokenizer DIR --out {tmp_path}`")):
        PretrainingDataset(tmp_path)
    out = prepare(tmp_path, [write_text(tmp_path / "a.txt", make_corpus(10))], heldout_fraction=0.2, seed=3)
    shard = out / "train" / "shard_00000.tokens.npy"
    before = shard.read_bytes()
    shard.unlink()
    with pytest.raises(FileNotFoundError, match="shard_00000.tokens.npy is missing; restore it with `tokenmix data") as err:
        PretrainingDataset(out)
    command = re.search("`tokenmix (.*)`$", str(err.value)).group(1)
    assert main(shlex.split(command)) == 0 and shard.read_bytes() == before


def test_dataset_errors_and_config_validation(tmp_path, corpus_dir):
    with pytest.raises(FileNotFoundError, match="meta.json not found"):
        PretrainingDataset(tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        PretrainingDataset(corpus_dir, "validation")
    for bad in (dict(max_seq_len=4), dict(max_predictions_per_seq=0), dict(max_predictions_per_seq=46),
                dict(mlm_probability=0.0), dict(nsp="next"), dict(seed=-1)):
        with pytest.raises(ValueError, match=flag(next(iter(bad)))):
            PretrainingDataConfig(**{"max_seq_len": 48, **bad})


def test_batch_feeds_the_pretraining_model(corpus_dir):
    import tokenmix

    data = PretrainingDataset(corpus_dir)
    model = tokenmix.create_model("fnet", "tiny", head="pretraining", vocab_size=data.vocab_size,
                                  max_position_embeddings=CFG.max_seq_len)
    out = model(**data.batch(0, 4, CFG))
    assert torch.isfinite(out.loss) and out.mlm_logits.shape == (4, CFG.max_predictions_per_seq, data.vocab_size)
