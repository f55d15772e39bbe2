"""The command line: help, models, bench speed, and one-line errors for bad input."""

import argparse
import json
import subprocess
import sys

import pytest

from tokenmix.cli.main import build_parser, main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_exactly_the_commands():
    result = subprocess.run([sys.executable, "-m", "tokenmix", "--help"], capture_output=True, text=True, check=True)
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(commands.choices) == ["demo", "tokenizer", "data", "pretrain", "finetune", "glue", "superglue", "distill",
                                      "predict", "bench", "lra", "export", "report", "reproduce", "models", "convert"]
    for name in commands.choices:
        assert f"\n    {name}" in result.stdout  # each with its help line
    subcommands = {name: sorted(action.choices) for name, sub in commands.choices.items()
                   for action in sub._actions if isinstance(action, argparse._SubParsersAction)}
    assert subcommands["bench"] == ["moe", "scaling", "speed"]
    assert subcommands["lra"] == ["eval", "run", "speed", "table"]
    assert subcommands["convert"] == ["from-hf", "from-official", "to-hf"]
    assert subcommands["tokenizer"] == ["train"] and subcommands["data"] == ["prepare"]
    assert subcommands["export"] == ["onnx"]


def test_bench_help_lists_config_fields(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "speed", "--help"])
    out = capsys.readouterr().out
    for flag in ("--models", "--preset", "--seq-lens", "--batch-size", "--mode", "--json", "--repeats", "--warmup"):
        assert flag in out


def test_models_lists_variants_with_parameter_counts(capsys, tmp_path):
    code, out, _ = run(capsys, "models", "--json", str(tmp_path / "m.json"))
    assert code == 0
    for name in ("fnet", "linear", "random", "ff_only", "hybrid", "bert"):
        assert name in out
    records = {r["model"]: r for r in json.loads((tmp_path / "m.json").read_text())}
    # BERT-Base-sized encoder (no heads): 12 layers of attention + FF on top of 32k x 768 embeddings
    assert 105e6 < records["bert"]["params"]["base"] < 115e6
    assert records["fnet"]["params"]["base"] < records["bert"]["params"]["base"]


def test_bench_speed_writes_records(capsys, tmp_path):
    out_file = tmp_path / "bench.json"
    code, out, _ = run(capsys, "bench", "speed", "--models", "fnet,bert", "--preset", "tiny", "--seq-lens", "16,32",
                       "--batch-size", "2", "--mode", "train,inference,pretrain", "--warmup", "0", "--repeats", "1",
                       "--no-isolate", "--json", str(out_file))
    assert code == 0
    records = json.loads(out_file.read_text())["results"]
    assert len(records) == 2 * 2 * 3
    for record in records:
        assert {"model", "seq_len", "batch_size", "mode", "ms_per_step", "tokens_per_s", "peak_mem_bytes", "device"} <= set(record)
        assert record["ms_per_step"] > 0 and record["tokens_per_s"] > 0
    assert "speed-up vs bert" in out


def test_bench_isolated_process_measures_memory(capsys):
    from tokenmix.bench.configs import SpeedBenchConfig
    from tokenmix.bench.speed import run_speed_benchmark

    (record,) = run_speed_benchmark(SpeedBenchConfig(models=("fnet",), preset="tiny", seq_lens=(64,), batch_size=2,
                                                     warmup=0, repeats=1))
    assert record["peak_mem_bytes"] > 0


@pytest.mark.parametrize("argv,needle", [
    (["bench", "speed", "--models", "nope"], "unknown model 'nope'"),
    (["bench", "speed", "--mode", "fly"], "unknown mode fly"),
    (["convert", "from-hf", "/does/not/exist", "/tmp/x"], "/does/not/exist"),
    (["convert", "to-hf", "/does/not/exist", "/tmp/x"], "/does/not/exist"),
])
def test_bad_input_is_one_line_and_nonzero(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("tokenmix: error:") and needle in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv,needle", [
    (["bench", "speed", "--seq-lens", "12,abc"], "--seq-lens"),
    (["bench", "speed", "--seq-lens", "128,,512"], "empty item in '128,,512'; separate the values with single commas, "
                                                   "e.g. 128,512"),
    (["bench", "speed", "--models", "fnet,"], "empty item in 'fnet,'"),
    (["fly"], "invalid choice"),
    (["convert", "from-hf"], "required"),
])
def test_usage_errors_are_one_line(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("tokenmix: error:") and needle in err


@pytest.mark.parametrize("command,flags", [
    (["pretrain"], ["--model", "--data", "--out", "--resume", "--max-time", "--grad-accum", "--precision", "--fsdp"]),
    (["data", "prepare"], ["--input", "--tokenizer", "--out", "--heldout-fraction"]),
    (["tokenizer", "train"], ["--input", "--vocab-size", "--out"]),
    (["bench", "moe"], ["--model", "--preset", "--router"]),
])
def test_pipeline_commands_expose_their_config_fields(capsys, command, flags):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    for flag in flags:
        assert flag in out
