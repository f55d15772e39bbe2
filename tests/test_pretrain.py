"""Pretraining: end to end, exact resume after SIGKILL, DDP == one process, NaN stop, bad runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tokenmix
from tokenmix.cli.main import main
from tokenmix.text.configs import DataPrepareConfig, TokenizerTrainConfig
from tokenmix.text.prepare import prepare_data
from tokenmix.text.pretraining import PretrainingDataset
from tokenmix.text.tokenizer import train_tokenizer
from tokenmix.train.configs import PretrainConfig
from tokenmix.train.pretrain import learning_rate_schedule, run_pretraining

WORDS = ["the", "a", "river", "mountain", "city", "old", "new", "quick", "slow", "red", "green", "blue", "bird", "fish", "tree", "stone", "light", "dark", "sings", "runs"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A small prepared corpus: 60 documents of 3-6 generated sentences each."""
    root = tmp_path_factory.mktemp("corpus")
    rng = torch.Generator().manual_seed(0)
    docs = []
    for d in range(60):
        lines = []
        for s in range(3 + d % 4):
            words = [WORDS[int(i)] for i in torch.randint(0, len(WORDS), (6 + s,), generator=rng)]
            lines.append(" ".join(words) + " .")
        docs.append("\n".join(lines))
    text = root / "corpus.txt"
    text.write_text("\n\n".join(docs) + "\n")
    train_tokenizer(TokenizerTrainConfig(input=(str(text),), vocab_size=60, out=str(root / "tok")))
    prepare_data(DataPrepareConfig(input=(str(text),), tokenizer=str(root / "tok"), out=str(root / "data"), heldout_fraction=0.1))
    return root / "data"


def tiny_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--model", "fnet", "--preset", "tiny", "--data", str(corpus), "--out", str(out),
            "--max-seq-len", "32", "--max-predictions-per-seq", "5", "--batch-size", "4", "--warmup-steps", "2",
            "--learning-rate", "1e-3", "--eval-batches", "2", "--log-every", "1", "--precision", "fp32", *extra]


def config(corpus: Path, out: Path, **overrides) -> PretrainConfig:
    base = dict(model="fnet", preset="tiny", data=str(corpus), out=str(out), max_seq_len=32, max_predictions_per_seq=5,
                batch_size=4, warmup_steps=2, learning_rate=1e-3, eval_batches=2, log_every=1, device="cpu",
                precision="fp32")  # exact comparisons (accumulation, DDP, resume) need float32
    return PretrainConfig(**{**base, **overrides})


def records(run: Path, split: str = "train") -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["split"] == split]


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tokenmix", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_end_to_end_run_writes_metrics_summary_and_a_loadable_model(corpus, tmp_path):
    run = tmp_path / "run"
    summary = run_pretraining(config(corpus, run, max_steps=30, eval_every=10, save_every=10, keep_checkpoints=2))
    assert summary["steps"] == 30 and summary["stop_reason"] == "max_steps"
    assert json.loads((run / "summary.json").read_text())["heldout"] == summary["heldout"]
    train = records(run)
    assert len(train) == 30 and {"loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "tokens_per_s", "lr"} <= set(train[0])
    assert sum(r["loss"] for r in train[-5:]) < sum(r["loss"] for r in train[:5])  # it learns
    assert len(records(run, "heldout")) == 4  # steps 10, 20, 30 and the final evaluation
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000020", "step_00000030"]
    model = tokenmix.load_pretrained(run)
    assert model.config.head == "pretraining"
    assert model.config.vocab_size == json.loads((corpus / "meta.json").read_text())["vocab_size"]


def test_max_time_ends_the_run_on_the_clock_with_a_checkpoint(corpus, tmp_path):
    summary = run_pretraining(config(corpus, tmp_path / "run", max_steps=10**6, max_time=1.0, save_every=10**6))
    assert summary["stop_reason"] == "max_time" and 0 < summary["steps"] < 10**6
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == [f"step_{summary['steps']:08d}"]


def test_gradient_accumulation_matches_a_larger_batch(corpus, tmp_path):
    run_pretraining(config(corpus, tmp_path / "big", batch_size=4, max_steps=3, override=("dropout=0.0",)))
    run_pretraining(config(corpus, tmp_path / "accum", batch_size=2, grad_accum=2, max_steps=3, override=("dropout=0.0",)))
    for a, b in zip(records(tmp_path / "big"), records(tmp_path / "accum")):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)


def test_sigkill_then_resume_ends_with_identical_weights(corpus, tmp_path):
    common = ("--max-steps", "12", "--save-every", "4", "--eval-every", "100", "--device", "cpu")
    reference = cli(*tiny_args(corpus, tmp_path / "ref", *common))
    assert reference.wait(timeout=240) == 0, reference.stderr.read()
    killed = cli(*tiny_args(corpus, tmp_path / "run", *common))
    deadline = time.time() + 240
    while not (tmp_path / "run" / "checkpoints" / "step_00000004").exists():
        assert time.time() < deadline and killed.poll() is None, "run ended before its first checkpoint"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = cli(*tiny_args(corpus, tmp_path / "run", *common, "--resume"))
    assert resumed.wait(timeout=240) == 0, resumed.stderr.read()
    final = "checkpoints/step_00000012/model.safetensors"
    a, b = load_file(tmp_path / "ref" / final), load_file(tmp_path / "run" / final)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_a_checkpoint_and_exits_nonzero(corpus, tmp_path):
    run = cli(*tiny_args(corpus, tmp_path / "run", "--max-steps", "100000", "--save-every", "100000", "--device", "cpu"))
    deadline = time.time() + 120
    while not (tmp_path / "run" / "metrics.jsonl").exists() or not records(tmp_path / "run"):
        assert time.time() < deadline and run.poll() is None
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) != 0
    assert "--resume" in run.stderr.read()
    assert list((tmp_path / "run" / "checkpoints").glob("step_*"))


def torchrun_two_processes(args: list[str]) -> subprocess.CompletedProcess:
    """``torchrun --standalone`` (a free rendezvous port, so parallel runs never collide), in its own process
    group so that a timeout kills the workers too (a normal run takes ~20 s)."""
    command = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", "2", "-m", "tokenmix", *args]
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        try:  # torchrun's workers may sit in sessions of their own and keep the pipes open: do not wait on them
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out, err = "", ""
        err += "\n(timed out after 240 s)"
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def worker_errors(stderr: str) -> str:
    """The workers' own messages: what precedes torchrun's ChildFailedError report, which would hide them."""
    return stderr.split("ChildFailedError")[0][-4000:]


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_processes_match_one_process_with_twice_the_batch(corpus, tmp_path, sharding):
    common = ("--max-steps", "4", "--eval-every", "100", "--save-every", "2", "--override", "dropout=0.0", "--device", "cpu")
    one = cli(*tiny_args(corpus, tmp_path / "one", *common))
    assert one.wait(timeout=240) == 0, one.stderr.read()
    args = tiny_args(corpus, tmp_path / "two", *common, *(["--fsdp"] if sharding == "fsdp" else []))
    args[args.index("--batch-size") + 1] = "2"
    two = torchrun_two_processes(args)
    assert two.returncode == 0, worker_errors(two.stderr)
    for a, b in zip(records(tmp_path / "one"), records(tmp_path / "two"), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["tokens_per_s"] > 0 and b["tokens_per_s"] > 0
    final = "checkpoints/step_00000004/model.safetensors"
    a, b = load_file(tmp_path / "one" / final), load_file(tmp_path / "two" / final)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # full (unsharded) weights saved


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path, monkeypatch):
    import tokenmix.train.pretrain as pretrain

    original, calls = pretrain.pretraining_sums, {"n": 0}

    def poisoned(out, batch, nsp=True):
        calls["n"] += 1
        sums = original(out, batch, nsp)
        return {name: value * float("nan") for name, value in sums.items()} if calls["n"] > 6 else sums

    monkeypatch.setattr(pretrain, "pretraining_sums", poisoned)
    with pytest.raises(FloatingPointError, match="step 7.*last good checkpoint is step 5"):
        run_pretraining(config(corpus, tmp_path / "run", max_steps=20, save_every=5, eval_every=100))
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_00000005"]


def test_refusals(corpus, tmp_path):
    run = tmp_path / "run"
    run_pretraining(config(corpus, run, max_steps=2, eval_every=100))
    with pytest.raises(ValueError, match="already holds a finished run"):
        run_pretraining(config(corpus, run, max_steps=2))
    with pytest.raises(ValueError, match="other settings.*override: \\[\\] -> \\['hidden_size=32'\\]; max_steps: 2 -> 4"):
        run_pretraining(config(corpus, run, max_steps=4, resume=True, override=("hidden_size=32",)))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_pretraining(config(corpus, tmp_path / "empty", resume=True))
    summary = run_pretraining(config(corpus, run, max_steps=2, overwrite=True))
    assert summary["steps"] == 2


def test_cli_errors_are_one_line(corpus, tmp_path):
    done = cli(*tiny_args(corpus, tmp_path / "run", "--max-steps", "1", "--device", "cpu"))
    assert done.wait(timeout=120) == 0
    again = cli(*tiny_args(corpus, tmp_path / "run", "--max-steps", "1", "--device", "cpu"))
    assert again.wait(timeout=120) != 0
    err = again.stderr.read()
    assert err.count("\n") == 1 and "already holds a finished run" in err


def test_eval_every_0_evaluates_only_at_the_end(corpus, tmp_path):
    """No epochs to fall back on (finetune's 0): 0 means no evaluation on a schedule, only the final one."""
    run_pretraining(config(corpus, tmp_path / "run", max_steps=3, eval_every=0))
    assert [r["step"] for r in records(tmp_path / "run", "heldout")] == [3]
    with pytest.raises(ValueError, match="^--max-steps must be >= 1, got 0$"):  # the command line's words (exit 2 there)
        config(corpus, tmp_path / "run", max_steps=0)


def _notes(tmp_path: Path) -> Path:
    """A folder holding a file no run wrote."""
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("x")
    return out


def test_a_folder_of_other_files_is_refused_before_the_data_is_read(tmp_path):
    """As finetune: --out holding files no run wrote is refused unless --overwrite, before --data is opened
    (here it was never prepared); a run's own lock and settings (a run that stopped in its set-up) do not count."""
    out, unprepared = _notes(tmp_path), tmp_path / "unprepared"
    with pytest.raises(ValueError, match=r"--out .*notes already holds other files \(todo.txt\); choose another folder, "
                                         r"or pass --overwrite to write there anyway"):
        run_pretraining(config(unprepared, out))
    with pytest.raises(FileNotFoundError, match="meta.json not found"):  # past the folder: the data is read
        run_pretraining(config(unprepared, out, overwrite=True))
    (out / "todo.txt").unlink()
    (out / "train_config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="meta.json not found"):
        run_pretraining(config(unprepared, out))
    assert sorted(p.name for p in out.iterdir()) == ["train_config.json"]  # the lock released


def test_under_torchrun_rank_0_decides_and_every_rank_reports_it(tmp_path):
    two = torchrun_two_processes(tiny_args(tmp_path / "unprepared", _notes(tmp_path), "--device", "cpu"))
    assert two.returncode != 0 and "timed out" not in two.stderr
    assert worker_errors(two.stderr).count("already holds other files (todo.txt)") == 2, worker_errors(two.stderr)


def test_moe_auxiliary_losses_are_added_and_logged(corpus, tmp_path):
    run = tmp_path / "run"
    summary = run_pretraining(config(corpus, run, model="sparse_mixer", max_steps=3, eval_every=100))
    assert summary["steps"] == 3
    train = records(run)
    assert all(r["aux_loss"] > 0 for r in train)  # router z-loss (experts-choose has no balancing loss)
    assert all(r["aux_loss"] < 0.01 for r in train)  # 1e-4 x sum of z-losses: small next to MLM + NSP


def heldout_kl(student_dir: Path, teacher_dir: Path, corpus: Path) -> float:
    """Mean KL(teacher ‖ student) at temperature 1 over the masked positions of two held-out batches."""
    from tokenmix.text.pretraining import PretrainingDataset
    from tokenmix.train.configs import PretrainingDataConfig
    from tokenmix.train.distill import soft_kl

    data, data_config = PretrainingDataset(corpus, "heldout"), PretrainingDataConfig(max_seq_len=32, max_predictions_per_seq=5)
    student, teacher = tokenmix.load_pretrained(student_dir).eval(), tokenmix.load_pretrained(teacher_dir).eval()
    total = count = 0.0
    with torch.no_grad():
        for index in range(2):
            batch = data.batch(index, 8, data_config)
            inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask", "masked_positions")}
            kl = soft_kl(student(**inputs).mlm_logits, teacher(**inputs).mlm_logits, 1.0)
            total += float((kl * batch["masked_weights"]).sum())
            count += float(batch["masked_weights"].sum())
    return total / count


def test_pretraining_distillation_pulls_the_student_toward_the_teacher(corpus, tmp_path):
    run_pretraining(config(corpus, tmp_path / "teacher", model="bert", max_steps=60, save_every=60))
    student = dict(max_steps=25, save_every=25, learning_rate=3e-3, override=("dropout=0.0",))
    run_pretraining(config(corpus, tmp_path / "plain", **student))
    run_pretraining(config(corpus, tmp_path / "taught", teacher=str(tmp_path / "teacher"), distill_alpha=1.0,
                           distill_temperature=1.0, **student))
    logged = [r["distill_kl"] for r in records(tmp_path / "taught")]
    assert sum(logged[-5:]) < sum(logged[:5])
    assert "distill_kl" not in records(tmp_path / "plain")[0]
    taught, plain = (heldout_kl(tmp_path / name, tmp_path / "teacher", corpus) for name in ("taught", "plain"))
    assert taught < plain


def test_pretraining_distillation_refuses_a_teacher_it_cannot_learn_from(corpus, tmp_path, tokenizer_dir):
    run_pretraining(config(corpus, tmp_path / "teacher", max_steps=2, save_every=2))
    foreign = tmp_path / "foreign"
    tokenmix.save_pretrained(tokenmix.load_pretrained(tmp_path / "teacher"), foreign)
    shutil.copy(Path(tokenizer_dir) / "tokenizer.json", foreign / "tokenizer.json")
    with pytest.raises(ValueError, match="another tokenizer than --data"):
        run_pretraining(config(corpus, tmp_path / "a", teacher=str(foreign), max_steps=1))
    classifier = tmp_path / "classifier"
    tokenmix.save_pretrained(tokenmix.load_pretrained(tmp_path / "teacher", head="classification", num_labels=2), classifier)
    with pytest.raises(ValueError, match="'classification' head"):
        run_pretraining(config(corpus, tmp_path / "b", teacher=str(classifier), max_steps=1))
    with pytest.raises(ValueError, match="--distill-alpha must be in"):
        config(corpus, tmp_path / "c", teacher=str(foreign), distill_alpha=1.5)


def test_mlm_only_pretraining_logs_and_summarises_no_nsp(corpus, tmp_path):
    run = tmp_path / "run"
    summary = run_pretraining(config(corpus, run, nsp="none", max_steps=4, eval_every=2))
    assert set(summary["heldout"]) == {"loss", "mlm_loss", "mlm_accuracy"}
    assert summary["heldout"]["loss"] == pytest.approx(summary["heldout"]["mlm_loss"])
    train = records(run)
    assert all("nsp_accuracy" not in r and "nsp_loss" not in r and r["loss"] == pytest.approx(r["mlm_loss"]) for r in train)
    data, cfg = PretrainingDataset(str(corpus), "train"), config(corpus, run, nsp="none")
    assert int(data.batch(0, 8, cfg)["next_sentence_labels"].sum()) == 0  # no task, every pair in order


def test_the_training_clock_survives_a_resume_for_the_time_budget_schedule(corpus, tmp_path):
    """--schedule budget decays over training seconds: a checkpoint records them and a resumed run
    continues from them (held-out records carry the clock, so learning curves against time are whole)."""
    run = tmp_path / "run"
    common = dict(schedule="budget", max_steps=6, save_every=3, eval_every=3, max_time=1e6)
    run_pretraining(config(corpus, run, **common))
    shutil.rmtree(run / "checkpoints" / "step_00000006")  # as if killed after the checkpoint of step 3
    (run / "summary.json").unlink()
    saved = torch.load(run / "checkpoints" / "step_00000003" / "training_state.pt", weights_only=True)["train_seconds"]
    summary = run_pretraining(config(corpus, run, resume=True, **common))
    heldout = records(run, "heldout")
    assert [r["step"] for r in heldout] == [3, 6, 6]
    assert saved > 0 and heldout[0]["train_seconds"] == saved and heldout[1]["train_seconds"] > saved
    assert summary["train_seconds"] == pytest.approx(heldout[-1]["train_seconds"])
    schedule = learning_rate_schedule(config(corpus, run, warmup_steps=2, schedule="budget", max_time=100.0))
    assert schedule(0, 0.0) == 0.5 and schedule(10, 50.0) == 0.5 and schedule(10, 100.0) == 0.0


def test_mlm_only_run_prints_its_summary_line_without_nsp(corpus, tmp_path, capsys):
    assert main(tiny_args(corpus, tmp_path / "run", "--max-steps", "2", "--nsp", "none", "--device", "cpu")) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "held-out MLM loss" in line and "NSP" not in line and line.endswith("summary.json")
