"""One way every command claims its outputs, one table of ranges for every config (issue 19).

Every config field that names an output says what it is (``output="file"``, ``"folder"`` or ``"run"``);
every command's implementation claims its file and folder outputs before any work (an existing one is
refused unless ``--overwrite``), so the command line and the Python API behave alike. Every config checks its numbers against :data:`tokenmix.options.RANGES`, so the
Python API refuses what the command line refuses, in the same words.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path

import pytest

from test_faults import one_error, snapshot
from tokenmix.bench.configs import SpeedBenchConfig
from tokenmix.bench.speed import run_speed_benchmark
from tokenmix.cli.commands import COMMANDS
from tokenmix.cli.main import main
from tokenmix.io.files import claim_outputs
from tokenmix.lra.configs import LRARunConfig
from tokenmix.options import OUTPUT_KINDS, OVERWRITE_HELP, RANGES, flag, range_problem
from tokenmix.reporting.configs import ReportConfig
from tokenmix.reporting.report import build_report
from tokenmix.train.configs import PretrainConfig

FIXTURES = Path(__file__).parent / "fixtures" / "glue"
OUTPUT_NAMES = {"json", "markdown", "out", "output", "dst"}
BENCH = ["bench", "speed", "--models", "fnet", "--preset", "tiny", "--seq-lens", "16", "--batch-size", "2",
         "--warmup", "0", "--repeats", "1", "--no-isolate", "--device", "cpu"]


def outputs(cls: type) -> dict[str, str]:
    return {f.name: f.metadata["output"] for f in dataclasses.fields(cls) if "output" in f.metadata}


# --- output metadata -------------------------------------------------------------------------------------

def test_every_output_field_says_what_it_is():
    for command in COMMANDS:
        name = " ".join(command.path)
        fields = {f.name: f for f in dataclasses.fields(command.config)}
        for field in fields.values():
            if field.name in OUTPUT_NAMES or "output" in field.metadata:
                assert field.metadata.get("output") in OUTPUT_KINDS, f"{name} --{field.name}"
        if set(outputs(command.config).values()) & {"file", "folder"}:
            overwrite = fields.get("overwrite")
            assert overwrite is not None and overwrite.default is False, name
            assert overwrite.metadata["help"] == OVERWRITE_HELP, name


def test_report_outputs_are_claimed_and_runs_are_left_to_their_commands(tmp_path):
    existing = tmp_path / "b.json"
    existing.write_text("{}")
    with pytest.raises(ValueError, match=f"--json {re.escape(str(existing))} already exists; pass --overwrite"):
        claim_outputs(SpeedBenchConfig(json=str(existing)))
    claim_outputs(SpeedBenchConfig(json=str(existing), overwrite=True))
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    claim_outputs(PretrainConfig(data="d", out=str(run)))  # "run": pretrain resumes or refuses it itself
    assert existing.read_text() == "{}" and outputs(PretrainConfig) == {"out": "run"}


def test_two_outputs_on_one_path_are_refused(capsys, tmp_path):
    """``--json r.md --markdown r.md`` wrote the JSON, then replaced it with the markdown, and exited 0."""
    same = str(tmp_path / "r.md")
    line = one_error(capsys, ["bench", "speed", "--models", "fnet", "--preset", "tiny", "--seq-lens", "8",
                              "--json", same, "--markdown", same])
    assert line == f"tokenmix: error: --json and --markdown are both {same}; give each its own file"
    assert list(tmp_path.iterdir()) == []


# --- through the command line ----------------------------------------------------------------------------

def refused(capsys: pytest.CaptureFixture[str], argv: list[str], path: Path) -> None:
    """``argv`` must fail with one line naming ``path`` and --overwrite, and leave ``path`` as it was."""
    root = path.parent
    before = snapshot(root)
    line = one_error(capsys, argv)
    assert str(path) in line and "--overwrite" in line, line
    assert snapshot(root) == before


# Every command with a file or folder output, with its other arguments: the claim comes before any of them is used.
CLAIMING = {
    "models": lambda f, d: ["models", "--json", f],
    "demo": lambda f, d: ["demo", "--json", f],
    "predict": lambda f, d: ["predict", "--model", d, "--json", f, "a text"],
    "bench speed": lambda f, d: ["bench", "speed", "--json", f],
    "bench scaling": lambda f, d: ["bench", "scaling", "--out", d],
    "bench moe": lambda f, d: ["bench", "moe", "--json", f],
    "lra eval": lambda f, d: ["lra", "eval", "listops", "--checkpoint", d, "--json", f],
    "lra table": lambda f, d: ["lra", "table", "--json", f],
    "lra speed": lambda f, d: ["lra", "speed", "--out", d],
    "report": lambda f, d: ["report", d, "--out", d],
}


def test_every_command_with_a_file_or_folder_output_is_listed_here():
    claiming = {" ".join(c.path) for c in COMMANDS if set(outputs(c.config).values()) & {"file", "folder"}}
    assert claiming == set(CLAIMING)


@pytest.mark.parametrize("command", sorted(CLAIMING))
def test_every_command_refuses_an_existing_output_before_any_work(capsys, tmp_path, command):
    taken, folder = tmp_path / "taken.json", tmp_path / "taken"
    taken.write_text("{}")
    folder.mkdir()
    (folder / "kept.md").write_text("earlier")
    argv = CLAIMING[command](str(taken), str(folder))
    refused(capsys, argv, taken if str(taken) in argv else folder)


def test_bench_and_report_refuse_existing_outputs_unless_overwrite(capsys, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    result = runs / "bench.json"
    result.write_text('{"keep": "me"}')
    refused(capsys, [*BENCH, "--json", str(result)], result)
    assert main([*BENCH, "--json", str(result), "--overwrite"]) == 0
    assert json.loads(result.read_text())["results"][0]["model"] == "fnet"

    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("an earlier report")
    refused(capsys, ["report", str(runs), "--out", str(report)], report)
    assert main(["report", str(runs), "--out", str(report), "--overwrite"]) == 0
    assert "Speed benchmarks" in (report / "report.md").read_text()


def test_models_json_is_refused_unless_overwrite(capsys, tmp_path):
    table = tmp_path / "models.json"
    table.write_text("[]")
    refused(capsys, ["models", "--json", str(table)], table)
    assert main(["models", "--json", str(table), "--overwrite"]) == 0
    assert {r["model"] for r in json.loads(table.read_text())} >= {"fnet", "bert"}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, tokenizer_dir) -> Path:
    """A tiny SST-2 model fine-tuned for one step on the fixtures."""
    out = tmp_path_factory.mktemp("sst2") / "run"
    assert main(["finetune", "--task", "sst2", "--init", "scratch", "--preset", "tiny", "--tokenizer", tokenizer_dir,
                 "--data-dir", str(FIXTURES), "--out", str(out), "--lr", "1e-3", "--max-steps", "1", "--batch-size", "2",
                 "--max-seq-len", "16", "--device", "cpu"]) == 0
    return out


def test_predict_output_is_refused_unless_overwrite(capsys, tmp_path, classifier):
    table = tmp_path / "in.csv"
    table.write_text("text\na great film\n")
    predictions = tmp_path / "out.csv"
    predictions.write_text("earlier predictions\n")
    argv = ["predict", "--model", str(classifier), "--input", str(table), "--output", str(predictions), "--device", "cpu"]
    refused(capsys, argv, predictions)
    assert main([*argv, "--overwrite"]) == 0
    assert predictions.read_text().splitlines()[0].startswith("text,label,")


# --- one table of ranges ---------------------------------------------------------------------------------

REQUIRED = {  # the least each command's config needs to be valid, besides its numbers
    "tokenizer train": {"input": ("corpus.txt",), "out": "tok"},
    "pretrain": {"data": "d", "out": "o"},
    "finetune": {"init": "scratch", "task": "mrpc", "data_dir": "d", "out": "o"},
    "glue": {"init": "scratch", "data_dir": "d", "out": "o"},
    "superglue": {"init": "scratch", "data_dir": "d", "out": "o"},
    "distill": {"teacher": "t", "task": "mrpc", "data_dir": "d", "out": "o"},
    "predict": {"model": "m", "texts": ("a text",)},
    "lra run": {"task": "listops"},
    "lra eval": {"task": "listops", "checkpoint": "c"},
    "export onnx": {"model_dir": "m", "out": "m.onnx"},
    "report": {"runs_dir": "r"},
    "convert from-official": {"src": "s", "dst": "d"},
    "convert from-hf": {"src": "s", "dst": "d"},
    "convert to-hf": {"src": "s", "dst": "d"},
}


def ranged_fields(cls: type) -> dict[str, tuple[type, bool]]:
    """Numeric fields with a range: name -> (int or float, whether the field is a tuple of them)."""
    found = {}
    for name, hint in typing.get_type_hints(cls).items():
        is_tuple = typing.get_origin(hint) is tuple
        if is_tuple or typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if hint in (int, float) and name in RANGES:
            found[name] = (hint, is_tuple)
    return found


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c.path) for c in COMMANDS])
def test_every_config_refuses_numbers_out_of_range_like_the_command_line(command):
    required = REQUIRED.get(" ".join(command.path), {})
    command.config(**required)  # valid as it is
    for name, (kind, is_tuple) in ranged_fields(command.config).items():
        low = RANGES[name].low
        assert low is not None
        bad = kind(low - 2)  # below every range, and away from the sentinels 0 and -1 (e.g. lra run)
        with pytest.raises(ValueError, match=f"^{re.escape(flag(name))} must be "):
            command.config(**required, **{name: (bad,) if is_tuple else bad})


def test_the_api_and_the_command_line_say_the_same(capsys):
    with pytest.raises(ValueError) as api:
        SpeedBenchConfig(batch_size=0)
    with pytest.raises(SystemExit):
        main(["bench", "speed", "--batch-size", "0"])
    assert str(api.value) == f"--batch-size {range_problem('batch_size', 0)}" == "--batch-size must be >= 1, got 0"
    assert "--batch-size: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^--seq-lens must be >= 1, got 0$"):
        SpeedBenchConfig(seq_lens=(128, 0))
    with pytest.raises(ValueError, match=r"^--learning-rate must be a finite number, got nan$"):
        PretrainConfig(data="d", out="o", learning_rate=float("nan"))


def test_sentinel_defaults_still_mean_the_task_default():
    config = LRARunConfig(task="listops")  # lr (0,), batch size 0, weight decay -1: the task's official values
    assert config.lr[0] > 0 and config.batch_size > 0 and config.weight_decay >= 0


def test_the_python_api_refuses_an_existing_output_before_any_work(tmp_path):
    taken = tmp_path / "speed.json"
    taken.write_text("[]")
    with pytest.raises(ValueError, match=rf"--json {re.escape(str(taken))} already exists; pass --overwrite"):
        run_speed_benchmark(SpeedBenchConfig(models=("fnet",), preset="tiny", seq_lens=(8,), json=str(taken)))
    assert taken.read_text() == "[]"
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("mine")
    with pytest.raises(ValueError, match="--out .* already exists"):
        build_report(ReportConfig(runs_dir=str(tmp_path), out=str(report)))
    assert (report / "report.md").read_text() == "mine"
