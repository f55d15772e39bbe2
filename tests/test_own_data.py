"""Your own data (issue 18): CSV/TSV/JSONL tables and datasets for fine-tuning and predict, every bad
input as one clear error, and the length rule of parameter-free mixings (a prediction depends only on
the example: identical alone, in any batch, in any order)."""

import csv
import json
import random

import pytest
import torch

from tokenmix.benchmarks.custom import TableAdapter, TableColumns
from tokenmix.benchmarks.examples import Example
from tokenmix.cli.main import main
from tokenmix.models.factory import create_model
from tokenmix.models.mixing.registry import mixes_any_length
from tokenmix.text.classifier import TextClassifier
from tokenmix.text.configs import PredictConfig, parse_length_buckets
from tokenmix.text.pairs import PairBatches, bucket_length, encode, padding_policy, predict_logits
from tokenmix.text.tables import read_table, write_table
from tokenmix.train.configs import FinetuneConfig

POSITIVE = ["a great film", "wonderful acting and a moving story", "I loved it", "brilliant", "a joy to watch",
            "superb and touching", "funny and smart", "beautifully made"]
NEGATIVE = ["a dull film", "boring and far too long", "I hated it", "awful", "a waste of time", "tedious and flat",
            "badly acted", "nothing works"]


class _Chars:
    """A character tokenizer for batching tests."""

    pad_id, cls_id, sep_id, vocab_size = 0, 2, 3, 101

    def encode_batch(self, texts):
        return [[5 + ord(c) % 90 for c in t] for t in texts]


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _reviews(tmp_path):
    rows = [[t, "pos"] for t in POSITIVE] + [[t, "neg"] for t in NEGATIVE]
    train = _write_csv(tmp_path / "train.csv", ["review", "sentiment"], rows * 2)
    dev = _write_csv(tmp_path / "dev.csv", ["review", "sentiment"], rows[::3])
    return train, dev


def test_tables_read_every_format_and_write_back(tmp_path):
    _write_csv(tmp_path / "a.csv", ["text", "label"], [["hello, world", "x"], ['say "hi"', "y"]])
    (tmp_path / "a.tsv").write_text("text\tlabel\nhello, world\tx\n\"say \"\"hi\"\"\"\ty\n")
    (tmp_path / "a.jsonl").write_text('{"text": "hello, world", "label": "x"}\n\n{"text": "say \\"hi\\"", "label": "y"}\n')
    for name in ("a.csv", "a.tsv", "a.jsonl"):
        columns, rows = read_table(tmp_path / name)
        assert columns == ["text", "label"] and [r["text"] for r in rows] == ["hello, world", 'say "hi"']
    rows = [{"text": "t", "label": "x", "probabilities": {"x": 0.25}}]
    write_table(tmp_path / "out.jsonl", ["text"], rows)
    assert json.loads((tmp_path / "out.jsonl").read_text()) == rows[0]
    write_table(tmp_path / "out.csv", ["text", "label"], [{"text": "a,b", "label": "x"}])
    assert read_table(tmp_path / "out.csv")[1] == [{"text": "a,b", "label": "x"}]


@pytest.mark.parametrize("content, match", [
    ("", "no data rows"),
    ("text,label\n", "no data rows"),
    ("text,label\na,b,c\n", "3 fields but the header has 2"),
])
def test_table_errors(tmp_path, content, match):
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(ValueError, match=match):
        read_table(tmp_path / "t.csv")
    with pytest.raises(ValueError, match="name the file .csv, .tsv or .jsonl"):
        read_table(tmp_path / "t.txt")
    (tmp_path / "t.jsonl").write_text('{"text": "a"}\n[1]\n')
    with pytest.raises(ValueError, match="t.jsonl:2: a JSON list, not an object"):
        read_table(tmp_path / "t.jsonl")


def test_a_folder_or_another_encoding_is_one_clear_error(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(ValueError, match="folder.csv is a folder; give the name of a file"):
        read_table(tmp_path / "folder.csv")
    train, dev = _reviews(tmp_path)
    with pytest.raises(ValueError, match="--validation-file .*folder.csv is a folder"):
        TableAdapter(TableColumns("review", "sentiment"), {"train": train, "validation": str(tmp_path / "folder.csv")})
    (tmp_path / "latin1.tsv").write_bytes("text\tlabel\ncaf\u00e9 cr\u00e8me\tpos\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.tsv is not UTF-8 text \(it holds the byte 0xe9\); save it as UTF-8"):
        read_table(tmp_path / "latin1.tsv")
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbftext,label\r\n\"a, b\r\nc\",pos\r\n")
    assert read_table(tmp_path / "bom.csv") == (["text", "label"], [{"text": "a, b\r\nc", "label": "pos"}])


def test_adapter_labels_names_and_metrics(tmp_path):
    train, dev = _reviews(tmp_path)
    adapter = TableAdapter(TableColumns("review", "sentiment"), {"train": train, "validation": dev})
    assert adapter.labels == ["neg", "pos"] and adapter.num_labels == 2 and adapter.eval_splits == ("validation",)
    split = adapter.read(None, "validation")
    assert split.examples[0] == Example("a great film", None, 1, 0)
    assert adapter.metrics(split, [e.label for e in split.examples])["accuracy"] == 100.0
    path = adapter.write_predictions(tmp_path / "out", split, [0] * len(split.examples))
    assert read_table(path)[1][0] == {"review": "a great film", "sentiment": "pos", "prediction": "neg"}
    numbers = _write_csv(tmp_path / "n.csv", ["t", "y"], [["a", "10"], ["b", "2"], ["c", "2"]])
    assert TableAdapter(TableColumns("t", "y"), {"train": numbers, "validation": numbers}).labels == ["2", "10"]


def test_adapter_reads_datasets_and_regression():
    datasets = pytest.importorskip("datasets")
    data = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"a": ["x", "y", "z"], "b": ["p", "q", "r"], "score": [0.5, 1, 4.25]}),
        "validation": datasets.Dataset.from_dict({"a": ["x"], "b": ["p"], "score": [2.0]}),
    })
    adapter = TableAdapter(TableColumns("a", "score", "b", regression=True), {s: data[s] for s in data})
    assert adapter.labels is None and adapter.num_labels == 1 and adapter.score_metric == "pearson"
    assert adapter.read(None, "train").examples[2] == Example("z", "r", 4.25, 2)


def test_every_bad_input_is_one_clear_error(tmp_path):
    train, dev = _reviews(tmp_path)
    columns = TableColumns("review", "sentiment")

    def error(cols, sources):
        with pytest.raises(ValueError) as err:
            TableAdapter(cols, sources)
        return str(err.value)

    assert "no column 'text' (--text-column); its columns are: review, sentiment" in error(
        TableColumns("text", "sentiment"), {"train": train, "validation": dev})
    unseen = _write_csv(tmp_path / "unseen.csv", ["review", "sentiment"], [["meh", "neutral"]])
    assert "label 'neutral' never occurs in the training split (its labels: neg, pos)" in error(
        columns, {"train": train, "validation": unseen})
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"review": "a", "sentiment": 1}\n{"review": "b", "sentiment": "pos"}\n')
    assert "mixes label types (integer, string)" in error(columns, {"train": str(mixed), "validation": str(mixed)})
    assert "regression target 'pos' in column 'sentiment' is not a number" in error(
        TableColumns("review", "sentiment", regression=True), {"train": train, "validation": dev})
    with pytest.raises(FileNotFoundError, match="--validation-file .*nope.csv does not exist"):
        TableAdapter(columns, {"train": train, "validation": str(tmp_path / "nope.csv")})
    empty = tmp_path / "empty.csv"
    empty.write_text("review,sentiment\n")
    assert "has no data rows" in error(columns, {"train": str(empty), "validation": dev})
    with pytest.raises(ValueError, match="--task .* or --train-file .*, not both"):
        FinetuneConfig(task="sst2", train_file=train, text_column="review", init="scratch", out="o")
    with pytest.raises(ValueError, match="missing --text-column"):
        FinetuneConfig(train_file=train, init="scratch", out="o")
    with pytest.raises(ValueError, match="--length-buckets 'some' is not auto"):
        FinetuneConfig(train_file=train, text_column="review", init="scratch", out="o", length_buckets="some")
    with pytest.raises(ValueError, match="--input and --output go together"):
        PredictConfig(model="m", input="in.csv")
    with pytest.raises(ValueError, match="out.parquet: unknown table format '.parquet'"):
        PredictConfig(model="m", input="in.csv", output="out.parquet")  # before the model is loaded and run


def test_rows_without_a_text_or_a_label_are_named(tmp_path):
    """An empty cell is not a class '' nor an empty text; a test label column left empty is only predicted."""
    train, dev = _reviews(tmp_path)
    columns = TableColumns("review", "sentiment")
    rows = [[t, "pos"] for t in POSITIVE[:2]] + [[t, "neg"] for t in NEGATIVE[:2]]
    cases = {
        "no_label.csv": (rows + [["fine", ""]], "no_label.csv row 5: no label in column 'sentiment'; fill it in"),
        "no_text.csv": (rows + [["  ", "pos"]], "no_text.csv row 5: column 'review' is empty; every row needs a text"),
    }
    for name, (content, message) in cases.items():
        path = _write_csv(tmp_path / name, ["review", "sentiment"], content)
        with pytest.raises(ValueError, match=message):
            TableAdapter(columns, {"train": path, "validation": dev})
    null = tmp_path / "null.jsonl"
    null.write_text('{"review": "a", "sentiment": 1}\n{"review": "b"}\n')
    with pytest.raises(ValueError, match="null.jsonl row 2: no label in column 'sentiment'"):
        TableAdapter(columns, {"train": str(null), "validation": dev})
    half = _write_csv(tmp_path / "half.csv", ["review", "sentiment"], [["a great film", "pos"], ["awful", ""]])
    with pytest.raises(ValueError, match="half.csv row 2: no label in column 'sentiment'"):
        TableAdapter(columns, {"train": train, "validation": dev, "test": half})
    unlabelled = _write_csv(tmp_path / "new.csv", ["id", "review", "sentiment"], [[1, "a great film", ""], [2, "awful", ""]])
    adapter = TableAdapter(columns, {"train": train, "validation": dev, "test": unlabelled})
    assert adapter.eval_splits == ("validation",) and adapter.test_splits == ("test",)
    assert [e.label for e in adapter.read(None, "test").examples] == [None, None]
    with pytest.raises(ValueError, match="an empty text"):
        PredictConfig(model="m", texts=("",))
    from types import SimpleNamespace

    from tokenmix.text.classifier import table_inputs
    blank = _write_csv(tmp_path / "blank.csv", ["review"], [["fine"], [""]])
    config = PredictConfig(model="m", input=blank, output=str(tmp_path / "out.csv"))
    with pytest.raises(ValueError, match="blank.csv row 2: no text in column"):
        table_inputs(config, SimpleNamespace(columns={"text": "review"}))


def _jsonl(path, labels):
    path.write_text("".join(json.dumps({"review": f"text {i}", "sentiment": v}) + "\n" for i, v in enumerate(labels)))
    return str(path)


def test_label_types_mean_the_same_in_csv_and_jsonl(tmp_path):
    """JSON booleans are the classes false/true (0/1, as the CSV strings are); 1.0 is the integer class 1 in
    both formats; a fraction asks for --regression; regression reads numbers from both formats."""
    columns = TableColumns("review", "sentiment")
    boolq = _jsonl(tmp_path / "b.jsonl", [True, False, True])
    adapter = TableAdapter(columns, {"train": boolq, "validation": boolq})
    assert adapter.labels == ["false", "true"] and [e.label for e in adapter.read(None, "validation").examples] == [1, 0, 1]
    csv_bools = _write_csv(tmp_path / "b.csv", ["review", "sentiment"], [["a", "true"], ["b", "false"]])
    assert [e.label for e in TableAdapter(columns, {"train": boolq, "validation": csv_bools}).read(
        None, "validation").examples] == [1, 0]
    written = adapter.write_predictions(tmp_path / "out", adapter.read(None, "validation"), [0, 1, 1])
    assert [r["prediction"] for r in read_table(written)[1]] == [False, True, True]  # JSON booleans, as read
    floats_csv = _write_csv(tmp_path / "f.csv", ["review", "sentiment"], [["a", "1.0"], ["b", "0.0"], ["c", "2"]])
    floats_jsonl = _jsonl(tmp_path / "f.jsonl", [1.0, 0.0, 2])
    for path in (floats_csv, floats_jsonl):
        adapter = TableAdapter(columns, {"train": path, "validation": floats_csv})
        assert adapter.labels == ["0", "1", "2"] and [e.label for e in adapter.read(None, "validation").examples] == [1, 0, 2]
        assert adapter.label_type == "integer" and adapter.prediction(2) == 2
    fraction_csv = _write_csv(tmp_path / "q.csv", ["review", "sentiment"], [["a", "1"], ["b", "0.5"]])
    fraction_jsonl = _jsonl(tmp_path / "q.jsonl", [1, 0.5])
    for path in (fraction_csv, fraction_jsonl):
        with pytest.raises(ValueError, match=r"row 2: label .*0\.5.* is not a whole number; pass --regression"):
            TableAdapter(columns, {"train": path, "validation": path})
        regression = TableAdapter(TableColumns("review", "sentiment", regression=True), {"train": path, "validation": path})
        assert [e.label for e in regression.read(None, "train").examples] == [1.0, 0.5]
    with pytest.raises(ValueError, match="mixes label types \\(boolean, integer\\)"):
        TableAdapter(columns, {"train": _jsonl(tmp_path / "m.jsonl", [True, 1]), "validation": boolq})
    nan = _write_csv(tmp_path / "nan.csv", ["review", "sentiment"], [["a", "1"], ["b", "nan"]])
    with pytest.raises(ValueError, match="regression target 'nan' in column 'sentiment' is not a number"):
        TableAdapter(TableColumns("review", "sentiment", regression=True), {"train": nan, "validation": nan})


def test_length_buckets_and_policy():
    assert parse_length_buckets("auto", 128)[:33] == (*range(1, 33), 34)
    assert parse_length_buckets("auto", 128)[-3:] == (120, 124, 128)
    assert parse_length_buckets("16,64", 128) == (16, 64, 128) and parse_length_buckets("exact", 128) == ()
    assert parse_length_buckets("fixed", 128) is None
    assert [bucket_length(n, (16, 64, 128)) for n in (1, 16, 17, 128)] == [16, 16, 64, 128]
    assert bucket_length(37, ()) == 37
    fnet, linear, bert = (create_model(v, "tiny", vocab_size=101, max_position_embeddings=32) for v in ("fnet", "linear", "bert"))
    assert mixes_any_length(fnet.config) and not mixes_any_length(linear.config)
    assert padding_policy(fnet.config, 32) == (None, parse_length_buckets("auto", 32))
    assert padding_policy(fnet.config, 32, "fixed") == (32, None)
    assert padding_policy(linear.config, 32) == (32, None) and padding_policy(bert.config, 32) == (None, None)


def test_batches_hold_one_length_and_cover_every_example():
    rng = random.Random(0)
    examples = [Example("x" * rng.randint(1, 40)) for _ in range(200)]
    batches = PairBatches(encode(_Chars(), examples, 48), 8, 0, None, seed=3, buckets=(8, 16, 24, 48))
    seen = []
    epoch = list(batches(0))
    assert len(epoch) == len(batches)
    for batch in epoch:
        lengths = batch["attention_mask"].sum(1)
        width = batch["input_ids"].shape[1]
        assert width in (8, 16, 24, 48) and all(bucket_length(int(n), (8, 16, 24, 48)) == width for n in lengths)
        seen += lengths.tolist()
    assert sorted(seen) == sorted(len(x) for x in batches.data.input_ids)


@pytest.mark.parametrize("variant, mixing, spec", [("fnet", "fourier", "auto"), ("fnet", "fourier", "exact"),
                                                   ("fnet", "hartley", "8,16"), ("hybrid", None, "auto"),
                                                   ("linear", None, "auto")])
def test_prediction_depends_only_on_the_example(variant, mixing, spec):
    """Identical alone, in any batch, in any order, with the rule padding_policy picks."""
    extra = {"mixing": mixing} if mixing else {}
    model = create_model(variant, "tiny", head="classification", num_labels=3, vocab_size=101,
                         max_position_embeddings=32, **extra).eval()
    fixed, buckets = padding_policy(model.config, 32, spec)
    texts = ["short", "a much longer sentence", "mid size one", "tiny", "the longest one of all of them"]
    examples = [Example(t) for t in texts]

    def logits(batch_examples, size):
        return predict_logits(model, PairBatches(encode(_Chars(), batch_examples, 32), size, 0, fixed, buckets=buckets))

    alone = torch.stack([logits([e], 1)[0] for e in examples])
    for size in (2, 5):
        torch.testing.assert_close(logits(examples, size), alone, atol=1e-5, rtol=1e-5)
    order = [4, 2, 0, 3, 1]
    torch.testing.assert_close(logits([examples[i] for i in order], 3), alone[order], atol=1e-5, rtol=1e-5)


def test_finetune_and_predict_a_csv_end_to_end(tmp_path, tokenizer_dir, capsys):
    train, dev = _reviews(tmp_path)
    test = _write_csv(tmp_path / "new.csv", ["id", "review"], [[7, "a great film"], [8, "tedious and flat"]])
    out = tmp_path / "run"
    args = ["finetune", "--train-file", train, "--validation-file", dev, "--test-file", test, "--text-column", "review",
            "--label-column", "sentiment", "--init", "scratch", "--preset", "tiny", "--tokenizer", tokenizer_dir,
            "--out", str(out), "--lr", "1e-3,3e-4", "--epochs", "2", "--batch-size", "4", "--max-seq-len", "32",
            "--device", "cpu"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["benchmark"] == "custom" and set(metrics["sweep"]) == {"0.001", "0.0003"}
    assert metrics["fixed_length"] is None and metrics["length_buckets"] == list(range(1, 33))
    predictions = read_table(out / "validation_predictions.csv")[1]
    values = [int(r["prediction"] == "pos") for r in predictions]
    gold = [int(r["sentiment"] == "pos") for r in predictions]
    assert metrics["splits"]["validation"]["accuracy"] == pytest.approx(100 * sum(v == g for v, g in zip(values, gold)) / len(gold))
    assert [r["id"] for r in read_table(out / "test_predictions.csv")[1]] == ["7", "8"]
    task = json.loads((out / "best" / "task.json").read_text())
    assert task["labels"] == ["neg", "pos"] and task["columns"]["text"] == "review"

    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--input", test, "--output", str(tmp_path / "p.csv"), "--device", "cpu"]) == 0
    assert "wrote 2 predictions" in capsys.readouterr().out
    rows = read_table(tmp_path / "p.csv")[1]
    assert list(rows[0]) == ["id", "review", "label", "p_neg", "p_pos"] and rows[0]["label"] in ("neg", "pos")
    assert float(rows[0]["p_neg"]) + float(rows[0]["p_pos"]) == pytest.approx(1.0, abs=1e-6)
    assert main(["predict", "--model", str(out), "--input", test, "--output", str(tmp_path / "p.jsonl"), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[1])
    assert record["review"] == "tedious and flat" and set(record["probabilities"]) == {"neg", "pos"}
    assert main(["predict", "--model", str(out), "--input", dev, "--output", str(tmp_path / "d.csv"), "--device", "cpu"]) == 0
    scored = read_table(tmp_path / "d.csv")
    assert scored[0] == ["review", "sentiment", "label", "p_neg", "p_pos"] and scored[1][0]["sentiment"] == "pos"
    ragged = tmp_path / "ragged.jsonl"  # a key only a later row holds is a column of the CSV too, not dropped
    ragged.write_text('{"review": "awful"}\n{"review": "brilliant", "id": 9}\n')
    assert main(["predict", "--model", str(out), "--input", str(ragged), "--output", str(tmp_path / "r.csv"), "--device", "cpu"]) == 0
    columns, rows = read_table(tmp_path / "r.csv")
    assert columns == ["review", "id", "label", "p_neg", "p_pos"] and [r["id"] for r in rows] == ["", "9"]
    assert [r["label"] for r in scored[1]] == [r["prediction"] for r in predictions]  # predict agrees with finetune
    assert main(["predict", "--model", str(out), "tedious and flat", "--device", "cpu"]) == 0
    label, probs = capsys.readouterr().out.strip().splitlines()[-1].split("\t")
    assert label == record["label"] and probs.startswith("neg=")
    missing = _write_csv(tmp_path / "other.csv", ["sentence"], [["x"]])
    assert main(["predict", "--model", str(out), "--input", missing, "--output", str(tmp_path / "q.csv")]) == 1
    assert "no column 'review' (--text-column); its columns are: sentence" in capsys.readouterr().err
    assert not (tmp_path / "q.csv").exists()


def test_finetune_on_a_dataset_dict_through_the_python_api(tmp_path, tokenizer_dir):
    datasets = pytest.importorskip("datasets")
    from tokenmix.train.finetune import run_finetune

    texts = POSITIVE + NEGATIVE
    split = datasets.Dataset.from_dict({"text": texts, "label": [1] * 8 + [0] * 8})
    config = FinetuneConfig(text_column="text", label_column="label", init="scratch", preset="tiny",
                            tokenizer=tokenizer_dir, out=str(tmp_path / "run"), lr=(1e-3,), epochs=1, batch_size=8,
                            max_seq_len=32, device="cpu")
    metrics = run_finetune(config, dataset=datasets.DatasetDict({"train": split, "validation": split}))
    assert metrics["task"] == "custom" and set(metrics["splits"]["validation"]) == {"accuracy", "f1"}
    task = json.loads((tmp_path / "run" / "best" / "task.json").read_text())
    assert task["labels"] == ["0", "1"] and task["label_type"] == "integer"
    (result,) = TextClassifier.from_pretrained(tmp_path / "run", device="cpu").predict([texts[0]])
    assert result["label"] in (0, 1) and set(result["probabilities"]) == {"0", "1"}  # the label as the data had it


def test_onnx_graph_of_a_bucket_length_reproduces_predict(tmp_path, capsys):
    """A bucketed classifier exports as before; the graph at length L matches predict for L's bucket."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = create_model("fnet", "tiny", head="classification", num_labels=2, vocab_size=101,
                         max_position_embeddings=32).eval()
    folder = model.save_pretrained(tmp_path / "clf")
    (folder / "task.json").write_text(json.dumps({"length_buckets": [8, 16, 32]}))
    data = encode(_Chars(), [Example("a longish text")], 32)  # 16 tokens with [CLS] and [SEP]: bucket 16
    expected = predict_logits(model, PairBatches(data, 1, 0, None, buckets=(8, 16, 32)))
    assert main(["export", "onnx", str(folder), str(tmp_path / "m.onnx"), "--seq-len", "16"]) == 0
    assert "fine-tuned with length buckets" in capsys.readouterr().out
    ids = torch.tensor(data.input_ids)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input_ids": ids.numpy(), "token_type_ids": (0 * ids).numpy(),
                                   "attention_mask": (0 * ids + 1).numpy()})
    torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=1e-4)


def test_predict_output_never_overwrites_an_input_column():
    from tokenmix.text.classifier import output_rows

    rows = output_rows(["text", "label"], [{"text": "t", "label": "gold"}],
                       [{"label": "neg", "probabilities": {"neg": 0.75, "pos": 0.25}}], flat=True)
    assert rows == [{"text": "t", "label": "gold", "predicted_label": "neg", "p_neg": 0.75, "p_pos": 0.25}]
