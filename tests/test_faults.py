"""Fault injection (issue 19): every bad input and every fault ends in one ``tokenmix: error:`` line with
nothing lost, and every interrupted run resumes exactly.

Cases: numbers out of range and flags a mode ignores (refused as the command line is parsed), existing
outputs (refused unless --overwrite), unreadable inputs of every reader, concurrent runs (a lock),
a run killed at each stage of a checkpoint save, checkpoints damaged afterwards, a full disk, resumes
with other settings, kill -9 at random steps with exact resume (pretraining and fine-tuning; set
``TOKENMIX_FAULT_KILLS=5`` for five points each), and one held-out set whatever the number of processes.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import time
import typing
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import test_pretrain as pre
import tokenmix
from tokenmix.cli.commands import COMMANDS
from tokenmix.cli.main import main
from tokenmix.io.files import LOCK_NAME, FolderLock
from tokenmix.options import RANGES
from tokenmix.text.configs import DataPrepareConfig, TokenizerTrainConfig
from tokenmix.text.prepare import data_tokenizer, prepare_data
from tokenmix.text.tokenizer import train_tokenizer
from tokenmix.train import state as state_module
from tokenmix.train.pretrain import run_pretraining

corpus = pre.corpus  # the prepared corpus of the pretraining tests (a module-scoped fixture)
FIXTURES = Path(__file__).parent / "fixtures" / "glue"
KILLS = int(os.environ.get("TOKENMIX_FAULT_KILLS", "1"))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: 'nothing lost' = no file changed or gone."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI in this process; it must fail with exactly one error line and no traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("tokenmix: error:")]
    assert code != 0 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def same_weights(a: Path, b: Path) -> bool:
    x, y = weights(a), weights(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# --- parse time: one table of ranges, flags a mode ignores ---------------------------------------------

def numeric_fields() -> set[str]:
    names = set()
    for command in COMMANDS:
        hints = typing.get_type_hints(command.config)
        for f in dataclasses.fields(command.config):
            kinds = set(typing.get_args(hints[f.name])) | {hints[f.name]}
            if kinds & {int, float}:
                names.add(f.name)
    return names


def test_every_numeric_flag_has_a_range():
    assert numeric_fields() - set(RANGES) == set()


OUT_OF_RANGE = [  # (command, argv): refused by the parser, before any work
    ("predict", ["predict", "--model", "m", "--batch-size", "0", "x"]),
    ("predict", ["predict", "--model", "m", "--batch-size", "-1", "x"]),
    ("pretrain", ["pretrain", "--max-time", "-5"]),
    ("pretrain", ["pretrain", "--keep-checkpoints", "-1"]),
    ("pretrain", ["pretrain", "--learning-rate", "nan"]),
    ("pretrain", ["pretrain", "--mlm-probability", "0"]),
    ("pretrain", ["pretrain", "--max-steps", "0"]),  # 0 means "use --epochs" in finetune; pretrain has no epochs
    ("demo", ["demo", "--train-size", "0"]),  # 0 means "the published size" in lra run, nothing in the demo
    ("finetune", ["finetune", "--warmup-ratio", "1.5"]),
    ("finetune", ["finetune", "--lr", "1e-4,-1"]),
    ("finetune", ["finetune", "--lr", "-1e-3"]),  # exponent form: argparse took it for a flag ("expected one argument")
    ("finetune", ["finetune", "--lr", "-1e-3,1e-4"]),
    ("pretrain", ["pretrain", "--learning-rate", "-5E-4"]),
    ("glue", ["glue", "--max-seq-len", "0"]),
    ("superglue", ["superglue", "--batch-size", "0"]),
    ("distill", ["distill", "--temperature", "0"]),
    ("distill", ["distill", "--alpha", "1.5"]),
    ("lra run", ["lra", "run", "--max-steps", "-1"]),
    ("lra eval", ["lra", "eval", "--val-size", "-1"]),
    ("lra speed", ["lra", "speed", "--time-budget", "0"]),
    ("bench speed", ["bench", "speed", "--seq-lens", "128,0"]),
    ("bench scaling", ["bench", "scaling", "--batch-sizes", "0"]),
    ("bench moe", ["bench", "moe", "--repeats", "0"]),
    ("export onnx", ["export", "onnx", "m", "o.onnx", "--opset", "0"]),
    ("data prepare", ["data", "prepare", "--heldout-fraction", "1"]),
    ("tokenizer train", ["tokenizer", "train", "--vocab-size", "0"]),
    ("demo", ["demo", "--seconds", "inf"]),
    ("convert from-official", ["convert", "from-official", "a", "b", "--seed", "-1"]),
    ("reproduce", ["reproduce", "--seed", "-1"]),
]


@pytest.mark.parametrize(("command", "argv"), OUT_OF_RANGE, ids=[" ".join(a[1]) for a in OUT_OF_RANGE])
def test_numbers_out_of_range_are_refused_at_parse_time(capsys, command, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "must be" in err and f"tokenmix {command} --help" in err


def test_flags_a_mode_ignores_are_refused(capsys, tmp_path):
    base = ["--task", "mrpc", "--data-dir", str(FIXTURES), "--out", str(tmp_path / "o")]
    line = one_error(capsys, ["finetune", "--init", str(tmp_path), "--model", "bert", *base])
    assert "--model/--preset choose the architecture only with --init scratch" in line
    line = one_error(capsys, ["distill", "--model", "bert", "--teacher", str(tmp_path), *base])
    assert "--student bert" in line
    assert not (tmp_path / "o").exists()


BAD_CHOICES = [  # (argv, the flag named): refused before data is generated or read (generation takes minutes)
    (["lra", "run", "pathfinder32", "--difficulty", "medium"], "--difficulty 'medium'"),
    (["lra", "run", "listops", "--on-overflow", "drop"], "--on-overflow 'drop'"),
    (["lra", "run", "listops", "--pooling", "max"], "--pooling 'max'"),
    (["lra", "eval", "pathfinder32", "--checkpoint", "c", "--difficulty", "medium"], "--difficulty 'medium'"),
]


@pytest.mark.parametrize(("argv", "named"), BAD_CHOICES, ids=[" ".join(a[0]) for a in BAD_CHOICES])
def test_bad_choices_are_refused_before_any_data(capsys, tmp_path, monkeypatch, argv, named):
    monkeypatch.chdir(tmp_path)
    line = one_error(capsys, argv)
    assert named in line and "choose one of" in line
    assert list(tmp_path.iterdir()) == []  # nothing generated, nothing cached


# --- existing outputs ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpus) -> Path:
    """A finished tiny pretraining run (its checkpoint is a model folder) and its tokenizer."""
    root = tmp_path_factory.mktemp("model")
    run_pretraining(pre.config(corpus, root / "run", max_steps=2, eval_every=100))
    folder = sorted((root / "run" / "checkpoints").iterdir())[-1]
    shutil.copy(corpus.parent / "tok" / "tokenizer.json", folder / "tokenizer.json")
    return folder


def test_existing_outputs_are_refused_before_any_work(capsys, tmp_path, model_dir, corpus):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "config.json").write_text('{"a fine-tuned": "model"}')
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    before = snapshot(tmp_path)
    text = str(corpus.parent / "corpus.txt")
    cases = {  # command: (argv, what the line says)
        "convert to-hf": (["convert", "to-hf", str(model_dir), str(taken)], "already exists; pass --overwrite"),
        "convert from-hf": (["convert", "from-hf", str(model_dir), str(taken)], "already exists; pass --overwrite"),
        "convert from-official": (["convert", "from-official", text, str(taken)], "already exists; pass --overwrite"),
        "tokenizer train": (["tokenizer", "train", "--input", text, "--out", str(taken), "--vocab-size", "60"],
                            "already exists; pass --overwrite"),
        "tokenizer train (file)": (["tokenizer", "train", "--input", text, "--out", str(a_file), "--vocab-size", "60"],
                                   "is a file"),
        "pretrain (file)": (pre.tiny_args(corpus, a_file, "--device", "cpu"), f"{a_file} is a file; give a folder"),
        "models --json (folder)": (["models", "--json", str(taken)], "is a folder"),
        "predict --json (folder)": (["predict", "--model", str(model_dir), "--json", str(taken), "x"], "is a folder"),
        "lra eval --json (folder)": (["lra", "eval", "listops", "--checkpoint", str(taken), "--json", str(taken)], "is a folder"),
    }
    for name, (argv, expected) in cases.items():
        assert expected in one_error(capsys, argv), name
    assert snapshot(tmp_path) == before


def test_a_taken_sweep_folder_is_refused_before_the_data_is_read(capsys, tmp_path):
    """A sweep over other rates would train, then be refused at a rate run before, or replace best/ and
    metrics.json; the training file named here does not exist, so the --out check came first."""
    out = tmp_path / "sweep"
    (out / "lr_0.001").mkdir(parents=True)
    for name in ("metrics.jsonl", "fit_summary.json"):
        (out / "lr_0.001" / name).write_text("{}\n")
    (out / "metrics.json").write_text("{}\n")
    (tmp_path / "file.txt").write_text("keep me")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    args = ["finetune", "--train-file", str(tmp_path / "missing.csv"), "--validation-file", str(tmp_path / "missing.csv"),
            "--text-column", "text", "--init", "scratch", "--lr", "1e-4,5e-5", "--out"]
    assert "sweep already holds a finished run; pass --resume" in one_error(capsys, [*args, str(out)])
    (out / "lr_0.001" / "fit_summary.json").unlink()
    assert "sweep already holds a started run" in one_error(capsys, [*args, str(out)])
    assert "data already holds other files (notes.txt); choose another folder" in one_error(
        capsys, [*args, str(tmp_path / "data")])
    assert "file.txt is a file; give a folder" in one_error(capsys, [*args, str(tmp_path / "file.txt")])
    assert "missing.csv does not exist" in one_error(capsys, [*args, str(out), "--resume"])  # then the data
    before.pop("sweep/lr_0.001/fit_summary.json")
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_a_converted_model(capsys, tmp_path, model_dir):
    pytest.importorskip("transformers")
    out = tmp_path / "hf"
    assert main(["convert", "to-hf", str(model_dir), str(out)]) == 0
    assert main(["convert", "to-hf", str(model_dir), str(out), "--overwrite"]) == 0


# --- readers of damaged inputs -------------------------------------------------------------------------

def test_damaged_inputs_give_one_line_naming_the_file(capsys, tmp_path, model_dir, corpus):
    def damaged(name: str, change) -> Path:
        folder = tmp_path / name
        shutil.copytree(model_dir, folder)
        change(folder)
        return folder

    models = {
        "config.json not JSON": (damaged("bad_json", lambda f: (f / "config.json").write_text("{oops")), "not valid JSON"),
        "unknown variant": (damaged("variant", lambda f: (f / "config.json").write_text(
            (f / "config.json").read_text().replace('"variant": "fnet"', '"variant": "fnot"'))), "'fnot'"),
        "truncated weights": (damaged("cut", lambda f: (f / "model.safetensors").write_bytes(
            (f / "model.safetensors").read_bytes()[:100])), "not a readable safetensors"),
    }
    for name, (folder, expected) in models.items():
        line = one_error(capsys, ["convert", "to-hf", str(folder), str(tmp_path / f"out_{folder.name}")])
        assert expected in line and str(folder) in line, name
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_text('{"truncated": ')
    line = one_error(capsys, ["data", "prepare", "--input", str(corpus.parent / "corpus.txt"), "--tokenizer", str(tok),
                              "--out", str(tmp_path / "data")])
    assert "not a readable tokenizer" in line and str(tok / "tokenizer.json") in line
    data = tmp_path / "baddata"
    shutil.copytree(corpus, data)
    (data / "meta.json").write_text("{")
    line = one_error(capsys, pre.tiny_args(data, tmp_path / "run", "--device", "cpu", "--max-steps", "1"))
    assert f"{data / 'meta.json'} is not valid JSON (Expecting" in line and "make it again with the command" in line


@pytest.mark.parametrize(("score", "expected"), [("nan", "outside the stsb range"), ("7.5", "outside the stsb range"),
                                                 ("high", "is not a number")])
def test_bad_stsb_scores_are_refused_with_their_line(capsys, tmp_path, tokenizer_dir, score, expected):
    data = tmp_path / "glue"
    shutil.copytree(FIXTURES / "STS-B", data / "STS-B")
    lines = (data / "STS-B" / "train.tsv").read_text().splitlines()
    lines[2] = "\t".join(lines[2].split("\t")[:-1] + [score])
    (data / "STS-B" / "train.tsv").write_text("\n".join(lines) + "\n")
    line = one_error(capsys, ["finetune", "--task", "stsb", "--init", "scratch", "--preset", "tiny", "--tokenizer",
                              tokenizer_dir, "--data-dir", str(data), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert expected in line and "train.tsv" in line and ":3" in line


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(capsys, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("MKL FFT error: Inconsistent configuration parameters\nmore details")

    monkeypatch.setattr("tokenmix.reporting.tables.render_table", broken)
    line = one_error(capsys, ["models"])
    assert "RuntimeError: MKL FFT error: Inconsistent configuration parameters" in line and "--debug" in line
    with pytest.raises(RuntimeError):
        main(["models", "--debug"])
    monkeypatch.setenv("TOKENMIX_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["models"])


def test_predict_file_errors_name_the_real_line(tmp_path):
    from tokenmix.text.classifier import read_inputs

    (tmp_path / "in.txt").write_text("first\n\n\nsecond\tpair\n\nthird\ta\tb\n")
    with pytest.raises(ValueError, match=r"in.txt: line 6 has 3 tab-separated fields"):
        read_inputs(str(tmp_path / "in.txt"))
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"--file .*blank.txt holds no text; give one text"):
        read_inputs(str(tmp_path / "blank.txt"))
    with pytest.raises(ValueError, match=r"--file .* is a folder"):
        read_inputs(str(tmp_path))
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt is not UTF-8 text"):
        read_inputs(str(tmp_path / "latin1.txt"))
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfhello\n")
    assert read_inputs(str(tmp_path / "bom.txt")) == [("hello",)]


def test_an_input_refused_as_it_is_read_is_one_line_without_a_progress_bar(capsys, tmp_path):
    import gzip

    (tmp_path / "cut.gz").write_bytes(gzip.compress(b"a short corpus\n" * 100)[:30])  # a gzip file cut short
    assert main(["tokenizer", "train", "--input", str(tmp_path / "cut.gz"), "--out", str(tmp_path / "tok")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"tokenmix: error: {tmp_path / 'cut.gz'}: not a valid gzip file (Compressed file ended before the end-of-stream "
        f"marker was reached); decompress it or fix the file"]


def test_a_progress_bar_waits_out_its_delay_ends_its_line_and_is_wiped_by_an_error():
    """Else the next message (an error line) is glued onto a bar that set_postfix had printed early."""
    import io

    from tokenmix.progress import Progress

    now = [0.0]

    def bar(at: float) -> tuple[Progress, io.StringIO]:
        out = io.StringIO()
        progress = Progress(total=2, file=out, mininterval=0)
        progress.start_t, progress.last_print_t, progress._time = 0.0, 0.0, lambda: now[0]
        now[0] = at
        return progress, out

    progress, out = bar(0.1)  # refreshed and closed within the delay: no line at all
    progress.set_postfix_str("fnet L=16")
    progress.close()
    assert out.getvalue() == ""
    progress, out = bar(0.6)  # shown by a refresh only, then closed (an error stops the job)
    progress.set_postfix_str("fnet L=16")
    progress.close()
    assert "fnet L=16" in out.getvalue() and out.getvalue().endswith("\n")
    progress, out = bar(0.6)  # shown, then an error stops the job it serves: the bar is wiped
    with pytest.raises(ValueError), progress:
        progress.update()
        raise ValueError("corrupt input")
    assert out.getvalue().endswith("\r") and out.getvalue().rsplit("\r", 2)[-2].strip() == ""
    progress, out = bar(0.6)  # Ctrl-C keeps the bar: it says how far the run got
    with pytest.raises(KeyboardInterrupt), progress:
        progress.update()
        raise KeyboardInterrupt
    assert "1/2" in out.getvalue().splitlines()[-1] and out.getvalue().endswith("\n")


def test_predict_file_dash_reads_standard_input(monkeypatch):
    import io
    import types

    from tokenmix.text.classifier import read_inputs

    def stdin(data: bytes) -> None:
        monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))

    stdin(b"\xef\xbb\xbfa film\n\npremise\thypothesis\n")
    assert read_inputs("-") == [("a film",), ("premise", "hypothesis")]
    stdin("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"^standard input is not UTF-8 text .*; pipe it through `iconv"):
        read_inputs("-")
    stdin(b"")
    with pytest.raises(ValueError, match=r"--file - holds no text"):
        read_inputs("-")


@pytest.mark.parametrize("variant", ["fnet", "bert"])
def test_an_empty_batch_is_a_clear_error(variant):
    model = tokenmix.create_model(variant, "tiny", vocab_size=50, max_position_embeddings=16).eval()
    with pytest.raises(ValueError, match=r"empty batch \[0, 8\]"):
        model(torch.zeros(0, 8, dtype=torch.long))


# --- locks -----------------------------------------------------------------------------------------------

def test_a_live_lock_is_refused_and_a_stale_one_taken_over(capsys, tmp_path, corpus):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (out / LOCK_NAME).write_text(f"{holder.pid}\n")
        before = snapshot(tmp_path)
        line = one_error(capsys, pre.tiny_args(corpus, out, "--device", "cpu", "--max-steps", "1"))
        assert f"in use by process {holder.pid}" in line and snapshot(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()
    assert main(pre.tiny_args(corpus, out, "--device", "cpu", "--max-steps", "1")) == 0
    assert f"taking over the stale lock {out / LOCK_NAME} of process {holder.pid}" in capsys.readouterr().err
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_the_lock_is_reentrant_in_a_process_and_released(tmp_path):
    with FolderLock(tmp_path / "x") as outer:
        with FolderLock(tmp_path / "x"):
            assert outer.path.read_text().strip() == str(os.getpid())
        assert outer.path.exists()
    assert not outer.path.exists()


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_runs(corpus, tmp_path):
    out = tmp_path / "run"
    first = pre.cli(*pre.tiny_args(corpus, out, "--max-steps", "100000", "--save-every", "100000", "--device", "cpu"))
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists():
        assert time.time() < deadline and first.poll() is None, "the first run did not start"
        time.sleep(0.05)
    second = pre.cli(*pre.tiny_args(corpus, out, "--max-steps", "3", "--device", "cpu", "--overwrite"))
    assert second.wait(timeout=120) == 1
    err = second.stderr.read()
    assert err.count("tokenmix: error:") == 1 and f"in use by process {first.pid}" in err
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 130
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1))  # one run's records only, none interleaved


# --- checkpoints: a save cut short at each stage, damage afterwards, a full disk ---------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus) -> Path:
    """An uninterrupted 6-step run with checkpoints at steps 2, 4 and 6."""
    run = tmp_path_factory.mktemp("reference") / "run"
    run_pretraining(pre.config(corpus, run, max_steps=6, save_every=2, eval_every=100, keep_checkpoints=5))
    return run


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs, no cleanup (not an Exception)."""


SAVE_STAGES = {  # where a save dies: the function patched in tokenmix.train.state
    "writing the weights": "save_weights",
    "writing the optimizer state": "torch.save",
    "writing the manifest": "write_json",
    "renaming into place": "os.replace",
}


@pytest.mark.parametrize("stage", SAVE_STAGES)
def test_a_save_cut_short_at_any_stage_resumes_exactly(capsys, monkeypatch, tmp_path, corpus, reference, stage):
    target = SAVE_STAGES[stage]
    owner, name = (state_module, target) if "." not in target else (getattr(state_module, target.split(".")[0]),
                                                                    target.split(".")[1])
    original = getattr(owner, name)

    def dies_at_step_4(*args, **kwargs):
        if any("step_00000004" in str(a) for a in args):
            raise Killed
        return original(*args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(owner, name, dies_at_step_4)
    with pytest.raises(Killed):
        run_pretraining(pre.config(corpus, run, max_steps=6, save_every=2, eval_every=100, keep_checkpoints=5))
    monkeypatch.setattr(owner, name, original)
    assert [p.name for p in (run / "checkpoints").glob("step_*")] == ["step_00000002"]
    run_pretraining(pre.config(corpus, run, max_steps=6, save_every=2, eval_every=100, keep_checkpoints=5, resume=True))
    assert not list((run / "checkpoints").glob(".step_*"))  # the orphaned temporary is gone
    assert same_weights(reference / "checkpoints" / "step_00000006", run / "checkpoints" / "step_00000006")


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {  # what happened to the newest checkpoint (step 6) after it was saved: (damage, reason in the note)
    "training state truncated": (lambda c: _cut(c / "training_state.pt"), "training_state.pt has"),
    "weights truncated": (lambda c: _cut(c / "model.safetensors"), "model.safetensors has"),
    "weights altered, same size": (lambda c: _flip(c / "model.safetensors"), "does not match its checksum"),
    "a file missing": (lambda c: (c / "config.json").unlink(), "config.json is missing"),
    "manifest damaged": (lambda c: (c / "manifest.json").write_text("{"), "manifest.json is damaged"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_resume_skips_a_damaged_newest_checkpoint(capsys, tmp_path, corpus, reference, damage):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / "summary.json").unlink()  # killed after its last save
    spoil, reason = DAMAGE[damage]
    spoil(run / "checkpoints" / "step_00000006")
    (run / "checkpoints" / ".step_00000008.tmp-99999").mkdir()  # a save that never finished
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 7, "split": "tr')  # torn by the kill
    capsys.readouterr()
    run_pretraining(pre.config(corpus, run, max_steps=6, save_every=2, eval_every=100, keep_checkpoints=5, resume=True))
    err = capsys.readouterr().err
    assert f"skipped checkpoint {run / 'checkpoints' / 'step_00000006'}" in err and reason in err
    assert "resuming from step_00000004" in err
    assert same_weights(reference / "checkpoints" / "step_00000006", run / "checkpoints" / "step_00000006")
    assert not (run / "checkpoints" / ".step_00000008.tmp-99999").exists()
    ours, theirs = pre.records(run), pre.records(reference)
    assert [r["step"] for r in ours] == [r["step"] for r in theirs]
    assert [r["loss"] for r in ours] == pytest.approx([r["loss"] for r in theirs], abs=1e-6)


def test_a_damaged_metrics_line_before_the_end_is_named(capsys, tmp_path, corpus, reference):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / "summary.json").unlink()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1] = lines[1][:10]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    before = snapshot(run)
    line = one_error(capsys, pre.tiny_args(corpus, run, "--max-steps", "6", "--save-every", "2", "--eval-every", "100",
                                           "--keep-checkpoints", "5", "--device", "cpu", "--resume"))
    assert f"{run / 'metrics.jsonl'}:2 is not a JSON record" in line
    assert {k: v for k, v in snapshot(run).items() if k != "train_config.json"} == \
        {k: v for k, v in before.items() if k != "train_config.json"}


@pytest.mark.parametrize("failure", ["torch: file write failed", "ENOSPC"])
def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(capsys, monkeypatch, tmp_path, corpus, failure):
    original = torch.save

    def full(obj, path, *args, **kwargs):
        if "step_00000004" in str(path):
            if failure == "ENOSPC":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                               "data/0: file write failed")
        return original(obj, path, *args, **kwargs)

    monkeypatch.setattr(state_module.torch, "save", full)
    run = tmp_path / "run"
    line = one_error(capsys, pre.tiny_args(corpus, run, "--max-steps", "6", "--save-every", "2", "--eval-every", "100",
                                           "--device", "cpu"))
    assert "cannot write the checkpoint of step 4" in line and "--resume" in line
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000002"]
    assert state_module.checkpoint_problem(run / "checkpoints" / "step_00000002") is None


# --- resume: changed settings, a finished run, warnings and messages --------------------------------------

def test_resume_refuses_changed_settings_and_leaves_a_finished_run_alone(capsys, tmp_path, corpus):
    run = tmp_path / "run"
    common = ["--save-every", "1", "--eval-every", "100", "--device", "cpu"]
    assert main(pre.tiny_args(corpus, run, "--max-steps", "2", *common)) == 0
    assert "--warmup-steps 2 is longer than --max-steps" not in capsys.readouterr().err
    (run / "summary.json").rename(run / "unfinished")  # as if killed before the end
    before = snapshot(run)
    for flag, value, field in (("--max-seq-len", "24", "max_seq_len: 32 -> 24"), ("--batch-size", "2", "batch_size: 4 -> 2"),
                               ("--max-steps", "3", "max_steps: 2 -> 3")):
        args = pre.tiny_args(corpus, run, "--max-steps", "2", *common, "--resume")
        args[args.index(flag) + 1] = value
        assert field in one_error(capsys, args)
    assert snapshot(run) == before
    (run / "unfinished").rename(run / "summary.json")
    before = snapshot(run)
    assert main(pre.tiny_args(corpus, run, "--max-steps", "2", *common, "--resume")) == 0
    assert "has finished; nothing to resume" in capsys.readouterr().err and snapshot(run) == before


def test_resume_of_a_run_that_died_before_its_first_checkpoint_says_to_start_again(capsys, tmp_path, corpus):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 4.0}\n')
    line = one_error(capsys, pre.tiny_args(corpus, run, "--device", "cpu", "--resume"))
    assert "died before its first checkpoint: start again with --overwrite" in line
    assert "already holds a started run" in one_error(capsys, pre.tiny_args(corpus, run, "--device", "cpu"))


@pytest.mark.parametrize("finished", ["summary.json", "fit_summary.json"])
def test_a_run_started_over_loses_its_finished_summary_before_its_first_step(tmp_path, finished):
    """Else a run killed after --overwrite would leave the old summary, and --resume would take the new,
    unfinished run for finished."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 4.0}\n')
    (run / finished).write_text("{}")
    assert state_module.run_state(run, finished) == "finished"
    with pytest.raises(ValueError, match="already holds a finished run"):
        state_module.prepare_run_dir(run, False, False, {}, finished=finished)
    state_module.prepare_run_dir(run, False, True, {"lr": 1e-3}, finished=finished)
    assert state_module.run_state(run, finished) is None and sorted(p.name for p in run.iterdir()) == ["train_config.json"]


def test_warmup_longer_than_the_run_is_a_warning(capsys, tmp_path, corpus):
    args = pre.tiny_args(corpus, tmp_path / "run", "--max-steps", "2", "--device", "cpu", "--eval-every", "100")
    args[args.index("--warmup-steps") + 1] = "10000"
    assert main(args) == 0
    assert "warning: --warmup-steps 10000 is longer than --max-steps 2" in capsys.readouterr().err


def test_a_diverged_run_without_a_checkpoint_does_not_name_one(capsys, tmp_path, corpus):
    args = pre.tiny_args(corpus, tmp_path / "run", "--max-steps", "5", "--device", "cpu", "--eval-every", "100")
    args[args.index("--learning-rate") + 1], args[args.index("--warmup-steps") + 1] = "1e30", "0"
    line = one_error(capsys, args)
    assert "No checkpoint was saved yet" in line and "--overwrite" in line and "last good checkpoint" not in line


# --- the tokenizer of prepared data and of runs ------------------------------------------------------------

def test_a_replaced_tokenizer_is_an_error_naming_both(tmp_path, corpus, monkeypatch):
    text = corpus.parent / "corpus.txt"
    tok = train_tokenizer(TokenizerTrainConfig(input=(str(text),), vocab_size=60, out=str(tmp_path / "tok")))
    monkeypatch.chdir(tmp_path)
    data = prepare_data(DataPrepareConfig(input=(str(text),), tokenizer="tok", out="data", heldout_fraction=0.1))
    monkeypatch.chdir(corpus.parent)  # another folder: the recorded path is absolute
    assert data_tokenizer(tmp_path / data) == tok.resolve()
    train_tokenizer(TokenizerTrainConfig(input=(str(text),), vocab_size=30, out=str(tok), overwrite=True))
    with pytest.raises(ValueError, match=r"tokenizer .*tok \(sha256 \w+\) is not the one .* \(sha256 \w+\)"):
        data_tokenizer(tmp_path / data)


# --- held-out evaluation: one fixed set whatever the number of processes -----------------------------------

def test_heldout_metrics_do_not_depend_on_the_number_of_processes(corpus, tmp_path):
    common = ("--max-steps", "2", "--eval-every", "2", "--save-every", "100", "--override", "dropout=0.0",
              "--device", "cpu")
    args = pre.tiny_args(corpus, tmp_path / "one", *common)
    args[args.index("--batch-size") + 1] = "16"
    one = pre.cli(*args)
    assert one.wait(timeout=240) == 0, one.stderr.read()
    args = pre.tiny_args(corpus, tmp_path / "two", *common)
    args[args.index("--batch-size") + 1] = "8"
    two = pre.torchrun_two_processes(args)
    assert two.returncode == 0, pre.worker_errors(two.stderr)
    a, b = pre.records(tmp_path / "one", "heldout"), pre.records(tmp_path / "two", "heldout")
    assert len(a) == len(b) >= 1
    for x, y in zip(a, b):  # the weights agree to float rounding (different reduction orders), so do these;
        for name in ("loss", "mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"):  # other examples: ~1e-2 off
            assert x[name] == pytest.approx(y[name], abs=2e-4), name


# --- kill -9 at random steps, then --resume: bit-identical -------------------------------------------------

def kill_at(args: list[str], out: Path, step: int) -> None:
    """Start ``tokenmix *args`` and SIGKILL it once ``metrics.jsonl`` under ``out`` reaches ``step``."""
    process = pre.cli(*args)
    deadline = time.time() + 240
    while True:
        lines = [line for f in out.rglob("metrics.jsonl") for line in f.read_text().splitlines()]
        if any(json.loads(line).get("step", 0) >= step for line in lines if line.endswith("}")):
            break
        assert time.time() < deadline and process.poll() is None, "the run ended before the kill"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


POINTS = random.Random(19).sample(range(4, 12), 5)[:KILLS]  # after the first checkpoint (step 3), of 12 steps


@pytest.mark.parametrize("step", POINTS)
def test_kill_9_during_pretraining_then_resume_is_bit_identical(corpus, tmp_path, step):
    common = ("--max-steps", "12", "--save-every", "3", "--eval-every", "100", "--device", "cpu")
    reference = pre.cli(*pre.tiny_args(corpus, tmp_path / "ref", *common))
    assert reference.wait(timeout=240) == 0, reference.stderr.read()
    kill_at(pre.tiny_args(corpus, tmp_path / "run", *common), tmp_path / "run", step)
    resumed = pre.cli(*pre.tiny_args(corpus, tmp_path / "run", *common, "--resume"))
    assert resumed.wait(timeout=240) == 0, resumed.stderr.read()
    final = Path("checkpoints/step_00000012")
    assert same_weights(tmp_path / "ref" / final, tmp_path / "run" / final)


@pytest.mark.parametrize("step", POINTS)
def test_kill_9_during_finetuning_then_resume_is_bit_identical(tokenizer_dir, tmp_path, step):
    def args(out: str, *extra: str) -> list[str]:
        return ["finetune", "--task", "rte", "--init", "scratch", "--preset", "tiny", "--tokenizer", tokenizer_dir,
                "--data-dir", str(FIXTURES), "--out", str(tmp_path / out), "--lr", "1e-3", "--max-steps", "12",
                "--eval-every", "3", "--batch-size", "2", "--max-seq-len", "16", "--log-every", "1", "--device", "cpu",
                *extra]

    reference = pre.cli(*args("ref"))
    assert reference.wait(timeout=240) == 0, reference.stderr.read()
    kill_at(args("run"), tmp_path / "run", step)
    resumed = pre.cli(*args("run", "--resume"))
    assert resumed.wait(timeout=240) == 0, resumed.stderr.read()
    assert same_weights(tmp_path / "ref" / "checkpoints" / "step_00000012", tmp_path / "run" / "checkpoints" / "step_00000012")
    assert same_weights(tmp_path / "ref" / "best", tmp_path / "run" / "best")


def test_resume_refuses_another_time_budget_under_the_budget_schedule(tmp_path):
    """`--schedule budget` decays the learning rate to zero at --max-time, so a resume with another budget
    would not continue the run exactly; with the step schedule the budget is free to change."""
    from tokenmix.train.state import refuse_changed_settings

    (tmp_path / "train_config.json").write_text(json.dumps({"schedule": "budget", "max_time": 60.0}))
    with pytest.raises(ValueError, match="max_time: 60.0 -> 90.0"):
        refuse_changed_settings(tmp_path, {"schedule": "budget", "max_time": 90.0})
    (tmp_path / "train_config.json").write_text(json.dumps({"schedule": "linear", "max_time": 60.0}))
    refuse_changed_settings(tmp_path, {"schedule": "linear", "max_time": 90.0})
