"""GLUE: readers on every task's file format, metrics against hand-computed values, the padding
policy (a prediction does not depend on batch-mates), fine-tuning end to end, predict."""

import itertools
import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from tokenmix.benchmarks.examples import Example
from tokenmix.benchmarks.glue import (
    GLUE_TABLE_COLUMNS,
    TASKS,
    column_title,
    get_glue_task,
    read_glue_dataset,
    read_split,
)
from tokenmix.benchmarks.glue_metrics import compute, constant_baseline, constant_baselines, glue_average
from tokenmix.benchmarks.tasks import get_benchmark_task
from tokenmix.cli.main import main
from tokenmix.models.mixing.registry import is_length_dependent
from tokenmix.text.pairs import PairBatches, encode, predict_logits, truncate_pair

FIXTURES = Path(__file__).parent / "fixtures" / "glue"
SHARED_GLUE = Path(__file__).parents[2] / "shared" / "data" / "glue"


def test_metrics_match_hand_computed_values():
    preds, gold = [1, 0, 1, 1, 0], [1, 0, 0, 1, 1]
    m = compute(("accuracy", "f1", "mcc"), preds, gold)
    assert m["accuracy"] == pytest.approx(60.0)
    assert m["f1"] == pytest.approx(100 * 4 / 6)  # TP 2, FP 1, FN 1
    assert m["mcc"] == pytest.approx(100 * (2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2))
    c = compute(("pearson", "spearman"), [1.0, 2.0, 3.0], [2.0, 4.0, 7.0])
    assert c["pearson"] == pytest.approx(100 * 5 / math.sqrt(2 * (49 / 9 + 1 / 9 + 64 / 9)))
    assert c["spearman"] == pytest.approx(100.0)
    assert compute(("pearson",), [1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["pearson"] == 0.0  # constant output: failed run
    with pytest.raises(ValueError, match="as many predictions as labels"):
        compute(("accuracy",), [1, 0], [1])


def test_glue_average_follows_the_paper():
    from tokenmix.reporting import paper

    bert = dict(zip(paper.GLUE_COLUMNS, paper.GLUE["bert-base"]))
    assert round(glue_average(bert), 1) == paper.GLUE_AVERAGE["bert-base"]  # MNLI-m and -mm count twice
    ff_only = dict(zip(paper.GLUE_COLUMNS, paper.GLUE["ff_only-base"]))
    assert glue_average({**ff_only, "stsb": float("nan")}) == pytest.approx(paper.GLUE_AVERAGE["ff_only-base"], abs=0.06)
    assert glue_average({"rte": 60.0, "wnli": 10.0}) == 60.0  # WNLI left out


@pytest.mark.parametrize("task", sorted(TASKS))
def test_reader_reads_every_task_format(task):
    spec = TASKS[task]
    splits = ([] if spec.name == "qnli" else ["train"]) + list(spec.eval_splits)
    for name in splits:
        split = read_split(FIXTURES, task, name)
        assert split.labelled and split.examples
        for example in split.examples:
            assert example.text_a and (example.text_b is None) == (spec.text_b is None)
            if spec.is_regression:
                assert isinstance(example.label, float)
            else:
                assert example.label in range(spec.num_labels)


def test_reader_details():
    sst = read_split(FIXTURES, "sst2", "dev")
    assert [e.text_a for e in sst.examples] == ['"a great film ', "a dull mess ", 'a joy " to watch ']  # quotes kept
    assert [e.label for e in sst.examples] == [1, 0, 1]
    assert sst.skipped == [(4, "3 fields instead of 2")] and "skipped 1 malformed row" in sst.describe_skipped()
    cola = read_split(FIXTURES, "cola", "train")  # no header
    assert cola.examples[2].text_a == 'She said "hello" to him.' and cola.examples[1].label == 0
    mrpc = read_split(FIXTURES, "mrpc", "dev")  # the header starts with a BOM
    assert mrpc.examples[0].text_b == "Prices went up."
    mnli = read_split(FIXTURES, "mnli", "dev_matched")  # official order: hypothesis first
    assert (mnli.examples[1].text_a, mnli.examples[1].text_b) == ("No dogs play.", "Two dogs play.")
    assert mnli.examples[1].label == TASKS["mnli"].labels.index("contradiction")
    assert read_split(FIXTURES, "stsb", "dev").examples[2].label == pytest.approx(3.8)
    test = read_split(FIXTURES, "qnli", "test")
    assert test.examples[0].label is None and test.examples[0].idx == "0"


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="valid tasks: cola, sst2"):
        get_glue_task("glu")
    with pytest.raises(FileNotFoundError, match="no SST-2/ folder"):
        read_split(tmp_path, "sst2", "train")
    with pytest.raises(FileNotFoundError, match=r"missing split .*train.tsv \(present: dev, test\)"):
        read_split(FIXTURES, "qnli", "train")
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match=r"dev.tsv:2: label 'maybe' is not a rte label \(valid: entailment, not_entailment\)"):
        read_split(tmp_path, "rte", "dev")


def test_the_input_ignored_baseline_is_the_majority_class_scored_by_the_task_metric(tmp_path):
    def write(folder: str, header: str, rows: list[str]) -> None:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "dev.tsv").write_text("".join(f"{line}\n" for line in [header, *rows]) if header else
                                                    "".join(f"{line}\n" for line in rows))

    write("SST-2", "sentence\tlabel", ["good\t1", "fine\t1", "great\t1", "bad\t0"])
    write("MRPC", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", ["1\t1\t2\ta\tb", "1\t3\t4\tc\td", "0\t5\t6\te\tf"])
    write("CoLA", "", ["gj04\t0\t*\tBarked dog.", "gj04\t0\t*\tDog the.", "gj04\t1\t\tThe dog barked."])
    assert constant_baseline(tmp_path, "sst2") == pytest.approx(75.0)  # always 'positive'
    assert constant_baseline(tmp_path, "mrpc") == pytest.approx(80.0)  # F1 of all-positive: precision 2/3, recall 1
    assert constant_baseline(tmp_path, "cola") == 0.0  # MCC of a constant answer
    assert constant_baseline(FIXTURES, "stsb") == 0.0  # a constant score has no correlation
    assert 0.0 < constant_baseline(FIXTURES, "mnli-mm") <= 100.0
    with pytest.raises(FileNotFoundError):
        constant_baseline(tmp_path, "rte")


def test_one_table_of_folder_names_heads_every_glue_table():
    from tokenmix.reporting import paper

    assert GLUE_TABLE_COLUMNS == {"mnli-m": "MNLI-m", "mnli-mm": "MNLI-mm", "qqp": "QQP", "qnli": "QNLI", "sst2": "SST-2",
                                  "cola": "CoLA", "stsb": "STS-B", "mrpc": "MRPC", "rte": "RTE", "wnli": "WNLI"}
    assert tuple(GLUE_TABLE_COLUMNS)[:-1] == paper.GLUE_COLUMNS  # the paper's order; it has no WNLI column
    assert [column_title(c) for c in ("mnli-mm", "mnli", "stsb", "boolq")] == ["MNLI-mm", "MNLI", "STS-B", "boolq"]
    assert get_benchmark_task("glue", "STS-B") is TASKS["stsb"]
    assert get_benchmark_task("superglue", "AX-b").dirname == "AX-b"
    with pytest.raises(ValueError, match="unknown benchmark 'glu'; choose one of glue, superglue"):
        get_benchmark_task("glu", "cola")
    with pytest.raises(ValueError, match="unknown GLUE task 'boolq'"):
        get_benchmark_task("glue", "boolq")


def test_hugging_face_adapter_maps_labels_by_name():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
                                  "idx": datasets.Value("int32")})
    data = datasets.Dataset.from_dict({"premise": ["P0", "P1", "P2"], "hypothesis": ["H0", "H1", "H2"],
                                       "label": [0, 2, 1], "idx": [5, 6, 7]}, features=features)
    split = read_glue_dataset(data, "mnli", "validation_matched")
    names = [TASKS["mnli"].labels[e.label] for e in split.examples]
    assert names == ["entailment", "contradiction", "neutral"]
    assert (split.examples[0].text_a, split.examples[0].text_b, split.examples[0].idx) == ("H0", "P0", 5)
    test = datasets.Dataset.from_dict({"sentence": ["x"], "label": [-1], "idx": [0]})
    assert read_glue_dataset(test, "sst2", "test").examples[0].label is None
    with pytest.raises(ValueError, match="no column"):
        read_glue_dataset(test, "rte")


class _Chars:
    """A character tokenizer for encoding tests."""

    pad_id, cls_id, sep_id, vocab_size = 0, 2, 3, 101

    def encode_batch(self, texts):
        return [[5 + ord(c) % 90 for c in t] for t in texts]


def test_encode_truncates_longest_first_and_counts():
    data = encode(_Chars(), [Example("abcdefgh", "xy"), Example("ab", None)], max_len=8)
    assert data.truncated == 1
    assert data.input_ids[0] == [2, *_Chars().encode_batch(["abc"])[0], 3, *_Chars().encode_batch(["xy"])[0], 3]
    assert data.token_type_ids[0] == [0] * 5 + [1] * 3
    assert data.input_ids[1] == [2, 5 + ord("a") % 90, 5 + ord("b") % 90, 3]


def test_truncate_pair_is_longest_first_for_lists_and_arrays():
    """The closed form equals dropping the last token of the longer segment (A on ties) one at a time."""
    def one_at_a_time(a: list, b: list, budget: int) -> tuple[list, list]:
        a, b = list(a), list(b)
        while len(a) + len(b) > budget:
            (a if len(a) >= len(b) else b).pop()
        return a, b

    for len_a, len_b, budget in itertools.product(range(7), range(7), range(1, 14)):
        a, b = list(range(len_a)), list(range(100, 100 + len_b))
        expected = one_at_a_time(a, b, budget)
        assert truncate_pair(a, b, budget) == expected
        x, y = truncate_pair(np.array(a), np.array(b), budget)
        assert (x.tolist(), y.tolist()) == expected


@pytest.mark.parametrize("variant", ["fnet", "bert"])
def test_prediction_does_not_depend_on_batch_mates(variant):
    """Mixing models are padded to one fixed length, attention models honour the padding mask."""
    from tokenmix.models.factory import create_model

    model = create_model(variant, "tiny", head="classification", num_labels=3, vocab_size=101,
                         max_position_embeddings=32).eval()
    fixed = 32 if is_length_dependent(model.config) else None
    examples = [Example("short"), Example("a much longer sentence here", "with a pair")]
    batch = predict_logits(model, PairBatches(encode(_Chars(), examples, 32), 8, 0, fixed))
    alone = predict_logits(model, PairBatches(encode(_Chars(), examples[:1], 32), 8, 0, fixed))
    torch.testing.assert_close(alone[0], batch[0], atol=1e-5, rtol=1e-5)
    if fixed:  # without the fixed length the same sentence would get another prediction
        shorter = predict_logits(model, PairBatches(encode(_Chars(), examples[:1], 32), 8, 0, None))
        assert not torch.allclose(shorter[0], batch[0], atol=1e-4)


def _agree(out: Path, task: str, split: str, data_dir: Path = FIXTURES) -> None:
    """The predictions file and metrics.json tell the same story."""
    spec = TASKS[task]
    rows = [line.split("\t") for line in (out / f"{split}_predictions.tsv").read_text().splitlines()[1:]]
    gold = read_split(data_dir, task, split).examples
    assert [r[0] for r in rows] == [str(e.idx) for e in gold]
    values = [float(r[1]) if spec.is_regression else spec.labels.index(r[1]) for r in rows]
    recomputed = compute(spec.metrics, values, [e.label for e in gold])
    saved = json.loads((out / "metrics.json").read_text())["splits"][split]
    for name, value in recomputed.items():
        assert saved[name] == pytest.approx(value, abs=1e-9)


def test_finetune_cli_sweep_predictions_and_predict(tmp_path, tokenizer_dir, capsys):
    out = tmp_path / "mrpc"
    args = ["finetune", "--task", "mrpc", "--init", "scratch", "--model", "fnet", "--preset", "tiny", "--tokenizer",
            tokenizer_dir, "--data-dir", str(FIXTURES), "--out", str(out), "--lr", "1e-3,1e-4", "--epochs", "2",
            "--batch-size", "2", "--max-seq-len", "16", "--device", "cpu"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["sweep"]) == {"0.001", "0.0001"} and metrics["fixed_length"] is None  # issue 18: buckets
    assert metrics["length_buckets"] == list(range(1, 17))
    assert metrics["truncated"]["train"] >= 1  # the fixture's pairs exceed 16 tokens
    assert metrics["score"] == metrics["splits"]["dev"]["f1"]
    best_run = out / f"lr_{metrics['best_lr']:g}"
    assert [json.loads(x)["split"] for x in (best_run / "metrics.jsonl").read_text().splitlines()].count("eval") == 2
    _agree(out, "mrpc", "dev")
    assert {"config.json", "model.safetensors", "task.json", "tokenizer.json"} <= {p.name for p in (out / "best").iterdir()}
    assert main(args) == 1 and "already holds a finished run" in capsys.readouterr().err

    capsys.readouterr()
    assert main(["predict", "--model", str(out), "Prices rose.", "Prices went up."]) == 0
    label, probs = capsys.readouterr().out.strip().split("\t")
    assert label in ("0", "1") and probs.startswith("0=")
    from tokenmix.text.classifier import TextClassifier

    classifier = TextClassifier.from_pretrained(out / "best", device="cpu")
    single = classifier.predict([("Prices rose.", "Prices went up.")])[0]
    batch = classifier.predict([("It snowed.", "He ate lunch."), ("Prices rose.", "Prices went up.")])
    assert single["label"] == label and sum(single["probabilities"].values()) == pytest.approx(1.0)
    assert batch[1]["probabilities"] == pytest.approx(single["probabilities"], abs=1e-5)
    inputs = tmp_path / "inputs.tsv"
    inputs.write_text("Prices rose.\tPrices went up.\nIt snowed.\tHe ate lunch.\n")
    assert main(["predict", "--model", str(out), "--file", str(inputs), "--json", str(tmp_path / "p.json")]) == 0
    assert len(json.loads((tmp_path / "p.json").read_text())) == 2


def test_glue_command_writes_table_submissions_and_resumes(tmp_path, tokenizer_dir):
    out = tmp_path / "glue"
    args = ["glue", "--init", "scratch", "--model", "bert", "--preset", "tiny", "--tokenizer", tokenizer_dir,
            "--data-dir", str(FIXTURES), "--out", str(out), "--tasks", "stsb,mnli,qnli", "--train-from-dev", "0.5",
            "--lr", "1e-3", "--epochs", "1", "--batch-size", "2", "--max-seq-len", "24", "--device", "cpu"]
    assert main(args) == 0
    result = json.loads((out / "glue.json").read_text())
    assert set(result["scores"]) == {"stsb", "mnli-m", "mnli-mm", "qnli"}
    assert result["average"] == pytest.approx(sum(result["scores"].values()) / 4)
    assert "trained on 2 examples (50%) of dev" in result["tasks"]["qnli"]["protocol"]
    assert "| model | MNLI-m | MNLI-mm | QNLI | STS-B | avg |" in (out / "glue.md").read_text()
    floor = constant_baselines(FIXTURES, ["mnli-m", "mnli-mm", "qnli", "stsb"])
    assert result["input_ignored"] == floor and floor["stsb"] == 0.0
    assert (f"| input ignored (majority class) | {floor['mnli-m']:.1f} | {floor['mnli-mm']:.1f} | {floor['qnli']:.1f} | 0.0 |"
            in (out / "glue.md").read_text())
    assert sorted(p.name for p in (out / "submission").iterdir()) == ["MNLI-m.tsv", "QNLI.tsv", "STS-B.tsv"]
    assert (out / "submission" / "QNLI.tsv").read_text().splitlines()[1].split("\t")[1] in TASKS["qnli"].labels
    _agree(out / "stsb", "stsb", "dev")
    stamp = (out / "stsb" / "metrics.json").stat().st_mtime_ns
    assert main([*args, "--resume"]) == 0
    assert (out / "stsb" / "metrics.json").stat().st_mtime_ns == stamp  # finished tasks are not redone


def test_glue_refuses_repeated_tasks_and_taken_task_folders_before_training(tmp_path, capsys):
    """--tasks sst2,sst2 trained sst2, then was refused at its second run; a later task's folder holding a
    run was refused only after the tasks before it had trained; --out or --data-dir a file was unclear."""
    taken = tmp_path / "glue" / "rte"
    taken.mkdir(parents=True)
    (taken / "fit_summary.json").write_text("{}\n")
    (tmp_path / "file.txt").write_text("keep me")
    args = ["glue", "--init", "scratch", "--preset", "tiny", "--data-dir", str(FIXTURES), "--device", "cpu"]
    cases = [(["--tasks", "sst2,SST-2", "--out", str(tmp_path / "g")], "--tasks names sst2 twice; give each task once"),
             (["--tasks", "mrpc,rte", "--out", str(tmp_path / "glue")], f"{taken} already holds a finished run"),
             (["--tasks", "rte", "--out", str(tmp_path / "file.txt")], f"--out {tmp_path / 'file.txt'} is a file"),
             (["--data-dir", str(tmp_path / "file.txt"), "--out", str(tmp_path / "g")],
              f"--data-dir {tmp_path / 'file.txt'} is a file; point it at a folder")]
    for extra, expected in cases:
        assert main([*args, *extra]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "g").exists() and not (tmp_path / "glue" / "mrpc" / "metrics.json").exists()
    assert sorted(p.name for p in taken.iterdir()) == ["fit_summary.json"]
    assert (tmp_path / "file.txt").read_text() == "keep me"


def test_finetune_from_a_pretrained_folder_keeps_the_encoder(tmp_path, tokenizer_dir):
    from tokenmix.io.checkpoint import save_pretrained
    from tokenmix.models.factory import create_model
    from tokenmix.text.tokenizer import Tokenizer
    from tokenmix.train.configs import FinetuneConfig
    from tokenmix.train.finetune import build_task_model

    vocab = Tokenizer.load(tokenizer_dir).vocab_size
    pretrained = create_model("fnet", "tiny", head="pretraining", vocab_size=vocab)
    save_pretrained(pretrained, tmp_path / "run" / "final")
    Tokenizer.load(tokenizer_dir).save(tmp_path / "run")
    config = FinetuneConfig(task="rte", init=str(tmp_path / "run"), data_dir=str(FIXTURES), out=str(tmp_path / "o"))
    model = build_task_model(config, 2, False, vocab, 0)
    for name, tensor in pretrained.encoder.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[name], tensor)
    from tokenmix.train.finetune import find_tokenizer

    assert find_tokenizer(str(tmp_path / "run")).vocab_size == vocab
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_task_model(FinetuneConfig(task="rte", init=str(tmp_path / "notamodel"), data_dir="d", out="o"), 2, False, vocab, 0)


def test_fit_resumes_exactly_after_a_signal(tmp_path):
    """SIGINT mid-run saves a checkpoint; --resume ends with the weights of an uninterrupted run."""
    from tokenmix.models.factory import create_model
    from tokenmix.train.configs import FitConfig
    from tokenmix.train.supervised import fit

    data = encode(_Chars(), [Example(t) for t in ("abc", "defg", "hi", "jklmn", "op", "qrs")], 16)
    data.labels = [0, 1, 0, 1, 0, 1]
    batches = PairBatches(data, 2, 0, 16, seed=3)

    def interrupted(epoch):
        for i, batch in enumerate(batches(epoch)):
            if epoch == 1 and i == 1:
                os.kill(os.getpid(), signal.SIGINT)
            yield batch

    def run(out, source, resume=False):
        torch.manual_seed(0)
        model = create_model("fnet", "tiny", head="classification", num_labels=2, vocab_size=101,
                             max_position_embeddings=16)
        config = FitConfig(lr=(1e-3,), batch_size=2, epochs=3, device="cpu", resume=resume)
        return model, fit(model, source, 3, lambda m: {"acc": 0.0}, config, out, metric="acc")

    reference, _ = run(tmp_path / "a", batches)
    with pytest.raises(KeyboardInterrupt, match="continue with --resume"):
        run(tmp_path / "b", interrupted)
    resumed, summary = run(tmp_path / "b", batches, resume=True)
    assert summary["steps"] == 9
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor)


@pytest.mark.real_data
def test_tiny_finetune_beats_chance_on_real_sst2(tmp_path, sst2_tokenizer):
    from tokenmix.train.configs import FinetuneConfig
    from tokenmix.train.finetune import run_finetune

    metrics = run_finetune(FinetuneConfig(task="sst2", init="scratch", model="fnet", preset="tiny", tokenizer=sst2_tokenizer,
                                          data_dir=str(SHARED_GLUE), out=str(tmp_path / "out"), lr=(3e-3,), epochs=2,
                                          batch_size=32, max_seq_len=32, max_train_examples=4000, device="cpu"))
    labels = [e.label for e in read_split(SHARED_GLUE, "sst2", "dev").examples]
    majority = 100 * max(labels.count(0), labels.count(1)) / len(labels)  # 50.9%
    assert metrics["splits"]["dev"]["accuracy"] > majority + 5
    _agree(tmp_path / "out", "sst2", "dev", SHARED_GLUE)


def test_finetune_from_a_converted_hugging_face_fnet(tmp_path, tokenizer_dir):
    """HF FNet folder (weights + tokenizer) -> `convert from-hf` -> `finetune --init`."""
    transformers = pytest.importorskip("transformers")
    from tokenmix.text.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(tokenizer_dir)
    config = transformers.FNetConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                     intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_id)
    transformers.FNetForPreTraining(config).save_pretrained(tmp_path / "hf")
    tokenizer.save(tmp_path / "hf")  # the tokenizer files travel with the checkpoint, as on the hub
    assert main(["convert", "from-hf", str(tmp_path / "hf"), str(tmp_path / "converted")]) == 0
    out = tmp_path / "rte"
    assert main(["finetune", "--task", "rte", "--init", str(tmp_path / "converted"), "--data-dir", str(FIXTURES),
                 "--out", str(out), "--lr", "1e-3", "--epochs", "1", "--batch-size", "2", "--max-seq-len", "32",
                 "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "fnet" and metrics["length_buckets"] == list(range(1, 33))  # issue 18: buckets
    _agree(out, "rte", "dev")
