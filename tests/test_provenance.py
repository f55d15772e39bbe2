"""Provenance (issue 19): fine-tuned folders and pretraining runs record their tokenizer's sha256 and
whether the model reads text pairs; a replaced tokenizer or inputs of the wrong kind are one clear
error, older folders without the records work as before, and a run's recorded data path works from
any working directory."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

import test_pretrain as pre
from test_faults import one_error
from tokenmix.cli.main import main
from tokenmix.text.classifier import TextClassifier
from tokenmix.text.configs import TokenizerTrainConfig
from tokenmix.text.tokenizer import Tokenizer, tokenizer_sha256, train_tokenizer
from tokenmix.train.finetune import find_tokenizer
from tokenmix.train.pretrain import run_pretraining
from tokenmix.train.state import refuse_changed_settings

corpus = pre.corpus  # the prepared corpus of the pretraining tests (a module-scoped fixture)
GLUE = Path(__file__).parent / "fixtures" / "glue"
TRAIN = ["--lr", "1e-3", "--epochs", "1", "--batch-size", "4", "--max-seq-len", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tokenizer_dir) -> dict[str, Path]:
    """Tiny fine-tuned folders: sst2 (single texts), rte (pairs) and own data with --text-pair-column."""
    root = tmp_path_factory.mktemp("tuned")
    rows = "a\tb\tlabel\n" + "".join(f"{a}\t{b}\t{label}\n" for a, b, label in [
        ("it rains", "the street is wet", "yes"), ("it rains", "the sun shines", "no")] * 4)
    (root / "pairs.tsv").write_text(rows)
    tasks = {"sst2": ["--task", "sst2", "--data-dir", str(GLUE)], "rte": ["--task", "rte", "--data-dir", str(GLUE)],
             "own": ["--train-file", str(root / "pairs.tsv"), "--validation-file", str(root / "pairs.tsv"),
                     "--text-column", "a", "--text-pair-column", "b", "--label-column", "label"]}
    for name, args in tasks.items():
        assert main(["finetune", *args, "--init", "scratch", "--preset", "tiny", *TRAIN, "--tokenizer", tokenizer_dir,
                     "--out", str(root / name)]) == 0
    return {name: root / name / "best" for name in tasks}


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.parent.name))


def test_task_json_records_the_tokenizer_and_whether_inputs_are_pairs(tuned):
    tasks = {name: json.loads((folder / "task.json").read_text()) for name, folder in tuned.items()}
    assert {name: task["pair"] for name, task in tasks.items()} == {"sst2": False, "rte": True, "own": True}
    for name, task in tasks.items():
        assert task["tokenizer_sha256"] == tokenizer_sha256(tuned[name]), name


def test_a_replaced_tokenizer_is_refused_naming_both(tmp_path, tuned, capsys):
    folder = copy_of(tuned["sst2"], tmp_path)
    text = tmp_path / "other.txt"
    text.write_text("another corpus entirely\n\nwith other words in it\n")
    other = train_tokenizer(TokenizerTrainConfig(input=(str(text),), out=str(tmp_path / "other"), vocab_size=30))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(other / name, folder / name)
    recorded = json.loads((folder / "task.json").read_text())["tokenizer_sha256"]
    found = tokenizer_sha256(folder)
    expected = (f"the tokenizer {folder} (sha256 {found[:12]}) is not the one the model in {folder} was fine-tuned "
                f"with (sha256 {recorded[:12]}); put back the tokenizer.json")
    with pytest.raises(ValueError) as error:
        TextClassifier.from_pretrained(folder, device="cpu")
    assert str(error.value).startswith(expected)
    assert expected in one_error(capsys, ["predict", "--model", str(folder), "a film", "--device", "cpu"])
    with pytest.raises(ValueError, match="was fine-tuned with"):
        find_tokenizer(str(folder))  # finetune --init of that folder


@pytest.mark.parametrize("model, inputs, expected", [
    ("rte", [("it rains",)], "fine-tuned on text pairs (rte); give two texts per example"),
    ("own", [("it rains", "the street is wet"), ("it rains",)], "fine-tuned on text pairs (custom)"),
    ("sst2", [("a great film", "a second text")], "fine-tuned on single texts (sst2); give one text per example"),
])
def test_inputs_of_the_other_kind_are_refused(tuned, capsys, model, inputs, expected):
    classifier = TextClassifier.from_pretrained(tuned[model], device="cpu")
    with pytest.raises(ValueError, match=rf"{re.escape(expected)}.*input {len(inputs)} has"):
        classifier.predict(inputs)
    line = one_error(capsys, ["predict", "--model", str(tuned[model]), *inputs[-1], "--device", "cpu"])
    assert expected in line and line.endswith(f"input 1 has {'one' if len(inputs[-1]) == 1 else 'two'}")


def test_pairs_and_single_texts_of_the_right_kind_predict(tuned, tmp_path, capsys):
    assert main(["predict", "--model", str(tuned["rte"]), "it rains", "the street is wet", "--device", "cpu"]) == 0
    assert main(["predict", "--model", str(tuned["sst2"]), "a great film", "--device", "cpu"]) == 0
    (tmp_path / "mixed.tsv").write_text("it rains\tthe street is wet\nit rains\n")
    line = one_error(capsys, ["predict", "--model", str(tuned["rte"]), "--file", str(tmp_path / "mixed.tsv"),
                              "--device", "cpu"])
    assert "input 2 has one" in line


def test_an_older_folder_without_the_records_predicts_as_before(tmp_path, tuned):
    folder = copy_of(tuned["rte"], tmp_path)
    task = json.loads((folder / "task.json").read_text())
    del task["pair"], task["tokenizer_sha256"]
    (folder / "task.json").write_text(json.dumps(task))
    pairs = [("it rains", "the street is wet")]
    before = TextClassifier.from_pretrained(tuned["rte"], device="cpu").predict(pairs)
    old = TextClassifier.from_pretrained(folder, device="cpu")
    assert old.predict(pairs)[0]["probabilities"] == pytest.approx(before[0]["probabilities"], abs=1e-6)
    assert set(old.predict(["it rains"])[0]["probabilities"]) == {"entailment", "not_entailment"}


@pytest.fixture(scope="module")
def run_dir(corpus, tmp_path_factory) -> Path:
    """A tiny pretraining run started with a relative --data."""
    root = tmp_path_factory.mktemp("pretrained")
    cwd = Path.cwd()
    os.chdir(corpus.parent)
    try:
        run_pretraining(pre.config(Path(corpus.name), root / "run", max_steps=1, eval_every=100))
    finally:
        os.chdir(cwd)
    return root / "run"


def test_finetune_init_run_finds_the_tokenizer_from_another_folder(run_dir, corpus, tmp_path, monkeypatch):
    record = json.loads((run_dir / "train_config.json").read_text())
    assert record["data"] == str(corpus.resolve())
    assert record["tokenizer_sha256"] == tokenizer_sha256(corpus.parent / "tok")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sst2"
    assert main(["finetune", "--task", "sst2", "--data-dir", str(GLUE), *TRAIN, "--init", str(run_dir),
                 "--out", str(out)]) == 0
    vocab = Tokenizer.load(corpus.parent / "tok").backend.get_vocab()
    assert Tokenizer.load(out / "best").backend.get_vocab() == vocab  # the run's tokenizer, saved with the model


def test_an_older_run_with_a_relative_data_path_is_read_against_the_run_folder_then_cwd(run_dir, corpus, tmp_path,
                                                                                       monkeypatch):
    old = Path(shutil.copytree(run_dir, tmp_path / "old"))
    record = json.loads((old / "train_config.json").read_text())
    del record["tokenizer_sha256"]
    vocab = Tokenizer.load(corpus.parent / "tok").vocab_size
    for data, cwd in ((os.path.relpath(corpus, old), tmp_path), (corpus.name, corpus.parent)):
        (old / "train_config.json").write_text(json.dumps({**record, "data": data}))
        monkeypatch.chdir(cwd)
        assert find_tokenizer(str(old)).vocab_size == vocab, data


def test_a_run_whose_data_has_another_tokenizer_now_is_refused(run_dir, corpus, tmp_path):
    old = Path(shutil.copytree(run_dir, tmp_path / "run"))
    record = json.loads((old / "train_config.json").read_text())
    (old / "train_config.json").write_text(json.dumps({**record, "tokenizer_sha256": "0" * 64}))
    with pytest.raises(ValueError, match=rf"the tokenizer {corpus.parent / 'tok'} \(sha256 \w+\) is not the one the "
                                         rf"run in {old} was pretrained with \(sha256 000000000000\)"):
        find_tokenizer(str(old))


def test_resuming_an_older_run_with_a_relative_data_path_compares_where_it_points(run_dir, corpus, tmp_path,
                                                                                  monkeypatch):
    old = Path(shutil.copytree(run_dir, tmp_path / "old"))
    record = json.loads((old / "train_config.json").read_text())
    (old / "train_config.json").write_text(json.dumps({**record, "data": corpus.name}))
    monkeypatch.chdir(corpus.parent)
    refuse_changed_settings(old, record)  # the same folder, now recorded absolute: not a change
    with pytest.raises(ValueError, match="data: "):
        refuse_changed_settings(old, {**record, "data": str(tmp_path)})
