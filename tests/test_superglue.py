"""SuperGLUE readers (official jsonl fixtures, the shared real files, HF datasets), metrics against
hand-computed values, submission files and error messages."""

import json
from pathlib import Path

import pytest

from tokenmix.benchmarks import superglue_metrics as m
from tokenmix.benchmarks.examples import Example
from tokenmix.benchmarks.superglue import (
    SEGMENT_SEP,
    SUPERGLUE_TABLE_COLUMNS,
    TASKS,
    available_splits,
    get_superglue_task,
    load_split,
    read_jsonl,
    read_superglue_dataset,
)

FIXTURES = Path(__file__).parent / "fixtures" / "superglue"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "superglue"


def write_lines(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


# --- task registry -----------------------------------------------------------------------------

def test_task_registry_and_names():
    assert get_superglue_task("BoolQ") is TASKS["boolq"] and get_superglue_task("AX-b") is TASKS["axb"]
    assert TASKS["cb"].label_names == ("entailment", "contradiction", "neutral") and TASKS["cb"].num_labels == 3
    assert TASKS["copa"].is_regression and TASKS["record"].is_regression and not TASKS["multirc"].is_regression
    assert TASKS["multirc"].metrics == ("f1a", "em") and TASKS["axg"].evaluate_with == "rte"
    with pytest.raises(ValueError, match="unknown SuperGLUE task 'sst2'; valid tasks: boolq, cb, copa, multirc, "
                                         "record, rte, wic, wsc, axb, axg"):
        get_superglue_task("sst2")
    assert SUPERGLUE_TABLE_COLUMNS == {"boolq": "BoolQ", "cb": "CB", "copa": "COPA", "multirc": "MultiRC",
                                       "record": "ReCoRD", "rte": "RTE", "wic": "WiC", "wsc": "WSC"}


# --- readers on official-format fixtures ---------------------------------------------------------

def test_every_task_has_fixtures():
    assert {name: available_splits(FIXTURES, name) for name in TASKS} == {
        **{name: ["val", "test"] for name in TASKS if name not in ("axb", "axg")}, "axb": ["test"], "axg": ["test"]}


def test_pair_tasks_follow_the_official_segment_order():
    boolq = load_split(FIXTURES, "boolq", "val")
    assert boolq.examples[0] == Example("is the sky blue", "Sky -- The sky is blue on a clear day.", 1, 0)
    assert boolq.examples[1].label == 0 and boolq.counts == {"records": 2, "examples": 2, "malformed": 0}
    cb = load_split(FIXTURES, "cb", "dev")  # alias of val
    assert [(e.text_a, e.label) for e in cb.examples] == [("he stayed home", 0), ("he left", 1), ("the cat ate it", 2)]
    assert cb.examples[0].text_b == "It was raining, so she said he stayed home."
    rte = load_split(FIXTURES, "rte", "val")
    assert rte.examples[1] == Example("Weapons were found.", "No weapons were found.", 1, 1)
    test = load_split(FIXTURES, "rte", "test")
    assert test.examples == [Example("Mangla was called.", "Mangla was summoned.", None, 0)] and not test.labelled
    # AX-b is scored by the RTE model, so it gets RTE's (hypothesis, premise) order; its idx strings become ints
    axb = load_split(FIXTURES, "AX-b", "test")
    assert axb.examples[0] == Example("The cat did not sit on the mat.", "The cat sat on the mat.", 1, 0)


def test_wic_and_wsc_mark_their_word_and_spans():
    wic = load_split(FIXTURES, "wic", "val").examples
    assert wic[1] == Example("water", "The smell of fried onions makes my mouth *water*." + SEGMENT_SEP
                             + "His eyes were *watering*.", 1, 1)
    wsc = load_split(FIXTURES, "wsc", "val")
    assert wsc.examples[0] == Example("Pete", "He | Mark told [Pete] many lies about himself. *He* should have "
                                      "been more skeptical.", 1, 0)
    # the second record's pronoun index (5) points at "into": the nearest "it" is marked, and counted
    assert wsc.examples[1].text_b == ("it | [The trophy] does not fit into the brown suitcase because *it* is "
                                      "too large.")
    assert wsc.warnings == {"wsc_spans_moved_to_nearest_match": 1}
    assert load_split(FIXTURES, "wsc", "test").examples[0].text_b == "she | [Emma's] mother said *she* was late."


def test_copa_one_example_per_choice_grouped_by_question():
    copa = load_split(FIXTURES, "copa", "val").examples
    assert [(e.text_b, e.label, e.idx, e.group) for e in copa] == [
        ("effect | The toilet filled with water.", 0, "0_0", 0), ("effect | Water flowed from the spout.", 1, "0_1", 0),
        ("cause | She stayed up late.", 1, "1_0", 1), ("cause | She slept well.", 0, "1_1", 1)]
    assert {e.text_a for e in copa[:2]} == {"The man turned on the faucet."}
    assert [e.label for e in load_split(FIXTURES, "copa", "test").examples] == [None, None]


def test_multirc_one_binary_example_per_answer_grouped_by_question():
    split = load_split(FIXTURES, "multirc", "val")
    assert split.records == 2 and len(split.examples) == 6
    assert [(e.idx, e.group, e.label) for e in split.examples] == [
        ("0_0_0", "0_0", 1), ("0_0_1", "0_0", 0), ("0_1_2", "0_1", 1), ("0_1_3", "0_1", 1), ("0_1_4", "0_1", 0),
        ("1_2_5", "1_2", 1)]
    first = split.examples[0]
    assert first.text_a == "What colour is the bike?"
    assert first.text_b == "Red | Tom has a red  bike . He rides it to school."  # HTML tags -> spaces, as officially


def test_record_one_example_per_candidate_entity_and_gold_answers():
    split = load_split(FIXTURES, "record", "val")
    by_query = {}
    for e in split.examples:
        by_query.setdefault(e.group, []).append((e.text_a, e.label))
    assert by_query == {0: [("Eiffel Tower", 1), ("France", 0), ("Paris", 0)],
                        1: [("Eiffel Tower", 0), ("France", 1), ("Paris", 1)],
                        2: [("Angela Merkel", 0), ("Barack Obama", 0), ("Berlin", 0)]}
    assert split.examples[0].text_b.startswith("The @placeholder is a famous tower. | Paris is the capital")
    assert split.answers == {0: ("Eiffel Tower",), 1: ("France", "Paris"), 2: ("the Chancellor",)}
    assert split.counts["record_answers_not_in_entities"] == 1
    assert "1 record answers not in entities" in split.describe()
    test = load_split(FIXTURES, "record", "test")
    assert [e.text_a for e in test.examples] == ["Barack Obama", "Berlin"] and test.answers == {}
    assert not test.labelled


def test_axg_examples_are_grouped_in_minimal_pairs():
    axg = load_split(FIXTURES, "axg", "test").examples
    assert [e.group for e in axg] == [0, 0, 1, 1] and [e.label for e in axg] == [1, 1, 0, 0]


# --- bad input ---------------------------------------------------------------------------------

def test_missing_file_and_split_errors_name_the_path():
    with pytest.raises(FileNotFoundError, match=r"SuperGLUE BoolQ train split not found: .*BoolQ/train\.jsonl "
                                                r"\(splits present: val, test"):
        load_split(FIXTURES, "boolq", "train")
    with pytest.raises(ValueError, match="SuperGLUE AX-g has no split 'val'; valid splits: test"):
        load_split(FIXTURES, "axg", "val")
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        read_jsonl(FIXTURES / "nowhere.jsonl", "cb")


def test_malformed_records_raise_or_are_counted(tmp_path):
    good = {"premise": "p", "hypothesis": "h", "label": "neutral", "idx": 0}
    write_lines(tmp_path / "CB" / "val.jsonl", [good, {"premise": "p", "label": "neutral", "idx": 1},
                                                "{not json", {**good, "label": "maybe", "idx": 3}, "", good])
    with pytest.raises(ValueError, match=r"CB/val\.jsonl:2:hypothesis: missing required field"):
        load_split(tmp_path, "cb", "val", strict=True)
    split = load_split(tmp_path, "cb", "val")
    assert split.counts == {"records": 5, "examples": 2, "malformed": 3}
    assert [p.split("jsonl:")[1] for p in split.problems] == [
        "2:hypothesis: missing required field", "3:(record): not valid JSON (Expecting property name enclosed in "
        "double quotes)", "4:label: unknown label 'maybe'; expected one of entailment, contradiction, neutral"]
    assert "3 malformed records left out (first: " in split.describe()
    # a label is required outside test files, optional in them
    write_lines(tmp_path / "CB" / "test.jsonl", [{"premise": "p", "hypothesis": "h", "idx": 0}])
    assert load_split(tmp_path, "cb", "test").examples == [Example("h", "p", None, 0)]


def test_malformed_nested_records_name_the_field_path(tmp_path):
    record = {"idx": 0, "passage": {"text": "t", "questions": [
        {"question": "q", "idx": 0, "answers": [{"text": "a", "idx": 0, "label": 1}, {"text": "b", "idx": 1}]}]}}
    write_lines(tmp_path / "MultiRC" / "val.jsonl", [record])
    with pytest.raises(ValueError, match=r"val\.jsonl:1:passage\.questions\[0\]\.answers\[1\]\.label: missing"):
        load_split(tmp_path, "multirc", "val", strict=True)
    wic = {"word": "w", "sentence1": "a w", "sentence2": "w b", "idx": 0, "label": True,
           "start1": 2, "end1": 9, "start2": 0, "end2": 1}
    write_lines(tmp_path / "WiC" / "val.jsonl", [wic, {**wic, "start2": "0"}])
    split = load_split(tmp_path, "wic", "val")
    assert [p.split("jsonl:")[1] for p in split.problems] == [
        "1:start1: word span [2, 9) is outside sentence1 (3 chars)", "2:start2: must be an integer, got '0'"]
    record["passage"]["questions"][0]["answers"][1]["label"] = 2
    write_lines(tmp_path / "MultiRC" / "val.jsonl", [record])
    with pytest.raises(ValueError, match=r"1:passage\.questions\[0\]\.answers\[1\]\.label: unknown label 2"):
        load_split(tmp_path, "multirc", "val", strict=True)
    entity = {"source": "s", "idx": 0, "passage": {"text": "abc", "entities": [{"start": 1, "end": 3}]}, "qas": []}
    no_answer = {"source": "s", "idx": 1, "passage": {"text": "abc", "entities": [{"start": 1, "end": 2}]},
                 "qas": [{"query": "@placeholder", "idx": 0, "answers": []}]}
    write_lines(tmp_path / "ReCoRD" / "val.jsonl", [entity, no_answer])
    split = load_split(tmp_path, "record", "val")
    assert [p.split("jsonl:")[1] for p in split.problems] == [
        "1:passage.entities[0].end: span [1, 3] is outside the passage (3 chars)",
        "2:qas[0].answers: no gold answer (every query of a labelled split needs one)"]


# --- the real files in ../shared/data/superglue ----------------------------------------------------

# (records, examples) per file, from shared/data/README.md (MultiRC: paragraphs -> answer options)
SHARED_COUNTS = {
    ("boolq", "val"): (3270, 3270), ("boolq", "test"): (3245, 3245),
    ("cb", "train"): (250, 250), ("cb", "val"): (56, 56), ("cb", "test"): (250, 250),
    ("copa", "train"): (400, 800), ("copa", "val"): (100, 200), ("copa", "test"): (500, 1000),
    ("multirc", "train"): (456, 27243), ("multirc", "val"): (83, 4848), ("multirc", "test"): (166, 9693),
    ("rte", "train"): (2490, 2490), ("rte", "val"): (277, 277), ("rte", "test"): (3000, 3000),
    ("wic", "train"): (5428, 5428), ("wic", "val"): (638, 638), ("wic", "test"): (1400, 1400),
    ("wsc", "train"): (554, 554), ("wsc", "val"): (104, 104), ("wsc", "test"): (146, 146),
    ("axb", "test"): (1104, 1104), ("axg", "test"): (356, 356),
}


@pytest.mark.parametrize("task,split", sorted(SHARED_COUNTS))
def test_shared_real_files(task, split):
    if not get_superglue_task(task).path(SHARED, split).is_file():
        pytest.skip(f"{get_superglue_task(task).path(SHARED, split)} absent (real SuperGLUE copies live in ../shared/data)")
    data = load_split(SHARED, task, split, strict=True)
    assert (data.records, len(data.examples)) == SHARED_COUNTS[task, split]
    assert data.labelled == (split != "test" or task in ("axb", "axg"))
    if data.labelled and task not in ("copa", "multirc"):
        labels = [e.label for e in data.examples]
        expected = {("boolq", "val"): [1237, 2033], ("cb", "val"): [23, 28, 5], ("rte", "val"): [146, 131],
                    ("wsc", "val"): [66, 38], ("axb", "test"): [460, 644], ("axg", "test"): [178, 178]}
        if (task, split) in expected:
            assert [labels.count(k) for k in range(len(expected[task, split]))] == expected[task, split]
    if task == "multirc":
        assert len({e.group for e in data.examples}) == {"train": 5131, "val": 953, "test": 1820}[split]
    if task == "axg":
        assert m.gender_parity([e.group for e in data.examples], [0] * 356) == 100.0


# --- Hugging Face datasets ---------------------------------------------------------------------

def test_hf_adapter_matches_the_jsonl_reader():
    datasets = pytest.importorskip("datasets")
    cb = datasets.Dataset.from_dict({"premise": ["It was raining, so she said he stayed home.", "I don't think he left."],
                                     "hypothesis": ["he stayed home", "he left"], "idx": [0, 1], "label": [0, 1]})
    assert read_superglue_dataset(cb, "cb", "validation").examples == load_split(FIXTURES, "cb", "val").examples[:2]
    copa = datasets.Dataset.from_dict({
        "premise": ["The man turned on the faucet."], "choice1": ["The toilet filled with water."],
        "choice2": ["Water flowed from the spout."], "question": ["effect"], "idx": [0], "label": [1]})
    assert read_superglue_dataset(copa, "copa").examples == load_split(FIXTURES, "copa", "val").examples[:2]
    paragraph = "Tom has a red <b>bike</b>.<br>He rides it to school."
    multirc = datasets.Dataset.from_dict({
        "paragraph": [paragraph] * 2, "question": ["What colour is the bike?"] * 2, "answer": ["Red", "Blue"],
        "idx": [{"paragraph": 0, "question": 0, "answer": 0}, {"paragraph": 0, "question": 0, "answer": 1}],
        "label": [1, 0]})
    assert read_superglue_dataset(multirc, "multirc").examples == load_split(FIXTURES, "multirc", "val").examples[:2]
    passage = "Barack Obama met Angela Merkel in Berlin."
    record = datasets.Dataset.from_dict({
        "passage": [passage], "query": ["@placeholder hosted the meeting."], "idx": [{"passage": 1, "query": 2}],
        "entities": [["Berlin", "Barack Obama", "Angela Merkel", "Berlin"]], "answers": [["the Chancellor"]]})
    split = read_superglue_dataset(record, "record")
    assert split.examples == load_split(FIXTURES, "record", "val").examples[6:]
    assert split.answers == {2: ("the Chancellor",)} and split.warnings == {"record_answers_not_in_entities": 1}
    wsc = datasets.Dataset.from_dict({
        "text": ["Mark told Pete many lies about himself. He should have been more skeptical."],
        "span1_index": [2], "span2_index": [7], "span1_text": ["Pete"], "span2_text": ["He"], "idx": [0], "label": [1]})
    assert read_superglue_dataset(wsc, "wsc").examples == load_split(FIXTURES, "wsc", "val").examples[:1]
    test = datasets.Dataset.from_dict({"question": ["is snow white"], "passage": ["Snow -- Snow is white."],
                                       "idx": [0], "label": [-1]})
    assert read_superglue_dataset(test, "boolq", "test").examples == load_split(FIXTURES, "boolq", "test").examples


def test_hf_adapter_errors():
    datasets = pytest.importorskip("datasets")
    with pytest.raises(ValueError, match="not a super_glue rte dataset: missing column.s. hypothesis, premise "
                                         r"\(has: idx, label, sentence1, sentence2\)"):
        read_superglue_dataset(datasets.Dataset.from_dict({"sentence1": ["a"], "sentence2": ["b"], "idx": [0],
                                                    "label": [0]}), "rte")
    unlabelled = datasets.Dataset.from_dict({"premise": ["p"], "hypothesis": ["h"], "idx": [0], "label": [-1]})
    with pytest.raises(ValueError, match="datasets row 0:label: missing label"):
        read_superglue_dataset(unlabelled, "rte", "validation", strict=True)
    assert read_superglue_dataset(unlabelled, "rte", "validation").malformed == 1


# --- metrics against hand-computed values ------------------------------------------------------

def test_classification_metrics():
    assert m.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 50.0
    # CB: per-class F1 = 2/3 (entailment), 2/3 (contradiction), 0 (neutral) -> macro 4/9
    assert m.cb_scores([0, 1, 2, 0], [0, 1, 1, 2]) == pytest.approx({"accuracy": 50.0, "f1": 400 / 9})
    # AX-b: TP 2, TN 1, FP 1, FN 0 -> MCC = 2 / sqrt(3*2*2*1)
    assert m.matthews([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(100 * 2 / 12 ** 0.5)
    assert m.gender_parity([0, 0, 1, 1, 2, 2], [1, 1, 0, 1, 0, 0]) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match=r"gender parity needs minimal pairs, but group\(s\) \[1\] have 1"):
        m.gender_parity([0, 0, 1], [1, 1, 0])
    with pytest.raises(ValueError, match="differ in length"):
        m.accuracy([1, 0], [1])


def test_multirc_grouping():
    split = load_split(FIXTURES, "multirc", "val")
    predictions = [1, 0, 1, 0, 0, 1]  # question 0_1 misses one answer; F1a: TP 3, FP 0, FN 1
    assert m.compute_metrics("multirc", split.examples, predictions) == pytest.approx(
        {"f1a": 100 * 6 / 7, "em": 200 / 3, "score": (600 / 7 + 200 / 3) / 2})


def test_copa_best_candidate_per_group():
    groups, labels = [0, 0, 1, 1], [0, 1, 1, 0]
    assert m.best_candidates(groups, [0.2, 0.9, 0.1, 0.3]) == {0: 1, 1: 3}
    assert m.best_candidates([5, 5], [0.5, 0.5]) == {5: 0}  # ties go to the first candidate
    assert m.copa_accuracy(groups, labels, [0.2, 0.9, 0.1, 0.3]) == 50.0
    copa = load_split(FIXTURES, "copa", "val").examples
    assert m.compute_metrics("copa", copa, [0.2, 0.9, 0.8, 0.3]) == {"accuracy": 100.0}


def test_record_normalisation_f1_and_exact_match():
    assert m.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert m.normalize_answer("An apple, a pear and THE plum.") == "apple pear and plum"
    assert m.exact_match("An apple.", "apple") == 1.0 and m.exact_match("apples", "apple") == 0.0
    assert m.token_f1("the Chancellor Angela Merkel", "Angela Merkel") == pytest.approx(0.8)
    assert m.token_f1("Berlin", "Paris") == 0.0
    # best-matching gold: 0.8 against "Chancellor Angela Merkel" beats 2/3 against "Merkel"; query 8 has no
    # candidate and scores 0
    scores = m.record_scores([7, 7], ["Angela Merkel", "Berlin"], [1.0, 0.0],
                             {7: ["Chancellor Angela Merkel", "Merkel"], 8: ["x"]})
    assert scores == pytest.approx({"f1": 40.0, "em": 0.0})
    split = load_split(FIXTURES, "record", "val")
    chosen = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]  # Eiffel Tower, Paris, Angela Merkel
    assert m.compute_metrics("record", split.examples, chosen, split.answers) == pytest.approx(
        {"f1": 200 / 3, "em": 200 / 3, "score": 200 / 3})
    with pytest.raises(ValueError, match="needs the gold answers"):
        m.compute_metrics("record", split.examples, chosen)


def test_compute_metrics_per_task_and_unlabelled_refusal():
    axg = load_split(FIXTURES, "axg", "test").examples
    assert m.compute_metrics("axg", axg, [1, 0, 0, 0]) == {"accuracy": 75.0, "gender_parity": 50.0}
    cb = load_split(FIXTURES, "cb", "val").examples
    assert m.compute_metrics("cb", cb, [0, 1, 2]) == {"accuracy": 100.0, "f1": 100.0, "score": 100.0}
    with pytest.raises(ValueError, match="cannot score unlabelled examples"):
        m.compute_metrics("rte", load_split(FIXTURES, "rte", "test").examples, [0])


def test_superglue_average_follows_the_leaderboard():
    scores = {"boolq": {"accuracy": 80.0}, "cb": {"accuracy": 90.0, "f1": 70.0}, "multirc": {"f1a": 60.0, "em": 20.0},
              "axb": {"mcc": 10.0}, "axg": {"accuracy": 50.0, "gender_parity": 100.0}}
    assert m.superglue_average(scores) == pytest.approx((80 + 80 + 40) / 3)
    assert m.superglue_average({"rte": 70.0, "record": {"f1": 50.0, "em": 40.0}}) == pytest.approx(57.5)
    with pytest.raises(ValueError, match="CB scores lack f1"):
        m.superglue_average({"cb": {"accuracy": 1.0}})
    with pytest.raises(ValueError, match="no SuperGLUE benchmark task scores"):
        m.superglue_average({"axb": 1.0})


# --- leaderboard submission files --------------------------------------------------------------

def read_jsonl_file(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_submission_files(tmp_path):
    def submit(task, predictions, split="test"):
        path = m.write_submission(tmp_path, task, load_split(FIXTURES, task, split).examples, predictions)
        return path.name, read_jsonl_file(path)

    assert submit("boolq", [1]) == ("BoolQ.jsonl", [{"idx": 0, "label": "true"}])
    assert submit("cb", [2]) == ("CB.jsonl", [{"idx": 0, "label": "neutral"}])
    assert submit("wic", [0]) == ("WiC.jsonl", [{"idx": 0, "label": "false"}])
    assert submit("wsc", [1]) == ("WSC.jsonl", [{"idx": 0, "label": "True"}])
    assert submit("rte", [1]) == ("RTE.jsonl", [{"idx": 0, "label": "not_entailment"}])
    assert submit("axb", [0, 1]) == ("AX-b.jsonl", [{"idx": 0, "label": "entailment"},
                                                   {"idx": 1, "label": "not_entailment"}])
    assert submit("copa", [0.1, 0.7]) == ("COPA.jsonl", [{"idx": 0, "label": 1}])
    assert submit("record", [0.2, 0.9]) == ("ReCoRD.jsonl", [{"idx": 0, "label": "Berlin"}])
    assert submit("multirc", [1, 0, 1, 1, 0, 1], "val") == ("MultiRC.jsonl", [
        {"idx": 0, "passage": {"questions": [{"idx": 0, "answers": [{"idx": 0, "label": 1}, {"idx": 1, "label": 0}]},
                                             {"idx": 1, "answers": [{"idx": 2, "label": 1}, {"idx": 3, "label": 1},
                                                                    {"idx": 4, "label": 0}]}]}},
        {"idx": 1, "passage": {"questions": [{"idx": 2, "answers": [{"idx": 5, "label": 1}]}]}}])
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # nothing but the files: no temporary leftovers
        "AX-b.jsonl", "BoolQ.jsonl", "CB.jsonl", "COPA.jsonl", "MultiRC.jsonl", "RTE.jsonl", "ReCoRD.jsonl",
        "WSC.jsonl", "WiC.jsonl"]
