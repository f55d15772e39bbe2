"""SuperGLUE fine-tuning end to end, and distillation: the loss by hand, the teacher cache, refusals,
and a real-data run where the distilled student ends closer to its teacher."""

import json
import math
from pathlib import Path

import pytest
import torch

from tokenmix.cli.main import main
from tokenmix.train.distill import distillation_loss

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_GLUE = Path(__file__).parents[2] / "shared" / "data" / "glue"


def test_distillation_loss_matches_hand_computed_values():
    student, teacher, hard = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]]), torch.tensor(0.5)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # teacher (3/4, 1/4) vs student (1/2, 1/2)
    assert distillation_loss(student, teacher, hard, 1.0, 1.0, False).item() == pytest.approx(kl, rel=1e-5)
    assert distillation_loss(student, teacher, hard, 0.25, 1.0, False).item() == pytest.approx(0.25 * kl + 0.75 * 0.5, rel=1e-5)
    p = math.sqrt(3) / (math.sqrt(3) + 1)  # T = 2 softens the teacher to softmax(log(3)/2, 0)
    kl2 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    assert distillation_loss(student, teacher, hard, 1.0, 2.0, False).item() == pytest.approx(4 * kl2, rel=1e-5)
    mse = distillation_loss(torch.tensor([[1.0], [2.0]]), torch.tensor([[2.0], [4.0]]), hard, 1.0, 3.0, True)
    assert mse.item() == pytest.approx((1 + 4) / 2)


def test_superglue_command_scores_tasks_and_diagnostics(tmp_path, tokenizer_dir):
    out = tmp_path / "sg"
    args = ["superglue", "--init", "scratch", "--model", "bert", "--preset", "tiny", "--tokenizer", tokenizer_dir,
            "--data-dir", str(FIXTURES / "superglue"), "--out", str(out), "--tasks", "cb,copa,multirc,rte",
            "--train-from-dev", "0.5", "--lr", "1e-3", "--epochs", "1", "--batch-size", "2", "--max-seq-len", "48",
            "--device", "cpu"]
    assert main(args) == 0
    result = json.loads((out / "superglue.json").read_text())
    assert set(result["scores"]) == {"cb", "copa", "multirc", "rte"}
    assert result["average"] == pytest.approx(sum(result["scores"].values()) / 4)
    assert set(result["tasks"]["multirc"]["metrics"]["val"]) == {"f1a", "em", "score"}
    assert set(result["diagnostics"]) == {"axb", "axg"} and "gender_parity" in result["diagnostics"]["axg"]
    submitted = sorted(p.name for p in (out / "submission").iterdir())
    assert submitted == ["AX-b.jsonl", "AX-g.jsonl", "CB.jsonl", "COPA.jsonl", "MultiRC.jsonl", "RTE.jsonl"]
    copa = [json.loads(line) for line in (out / "copa" / "val_predictions.jsonl").read_text().splitlines()]
    assert all(r["label"] in (0, 1) for r in copa)
    assert "| model | CB | COPA | MultiRC | RTE | avg |" in (out / "superglue.md").read_text()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tokenizer_dir):
    out = tmp_path_factory.mktemp("teacher") / "mrpc"
    assert main(["finetune", "--task", "mrpc", "--init", "scratch", "--model", "bert", "--preset", "tiny", "--tokenizer",
                 tokenizer_dir, "--data-dir", str(FIXTURES / "glue"), "--out", str(out), "--lr", "1e-3",
                 "--epochs", "2", "--batch-size", "2", "--device", "cpu"]) == 0
    return out


def test_distill_writes_both_sides_and_caches_the_teacher(tmp_path, teacher, capsys):
    args = ["distill", "--teacher", str(teacher), "--student", "fnet", "--preset", "tiny", "--task", "mrpc",
            "--data-dir", str(FIXTURES / "glue"), "--epochs", "1", "--batch-size", "2", "--max-seq-len", "24",
            "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    result = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert result["teacher"]["model"] == "bert" and result["student"]["model"] == "fnet"
    assert result["speedup"] > 0 and result["student"]["params"] > 0
    cache = teacher / "best" / "distill_cache" / "glue-mrpc.safetensors"
    stamp = cache.stat().st_mtime_ns
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert cache.stat().st_mtime_ns == stamp  # the teacher did not run again
    assert "is stale" not in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "c"), "--max-train-examples", "1"]) == 0  # other data: new key
    assert "is stale" in capsys.readouterr().err


def test_distill_refuses_mismatched_pairs(tmp_path, teacher, capsys):
    base = ["distill", "--teacher", str(teacher), "--data-dir", str(FIXTURES / "glue"), "--out", str(tmp_path / "x")]
    assert main([*base, "--task", "rte"]) == 1
    assert "fine-tuned on glue 'mrpc', not glue 'rte'" in capsys.readouterr().err
    other = tmp_path / "othertok"
    (other / "corpus.txt").parent.mkdir()
    (other / "corpus.txt").write_text("completely different words\n\nand more words here\n")
    from tokenmix.text.configs import TokenizerTrainConfig
    from tokenmix.text.tokenizer import train_tokenizer

    tok = train_tokenizer(TokenizerTrainConfig(input=(str(other / "corpus.txt"),), out=str(other / "tok"), vocab_size=40))
    assert main([*base, "--task", "mrpc", "--tokenizer", str(tok)]) == 1
    assert "different tokenizers" in capsys.readouterr().err


@pytest.mark.real_data
def test_distilled_student_ends_closer_to_its_teacher_on_real_sst2(tmp_path, sst2_tokenizer):
    from tokenmix.benchmarks.glue import read_split
    from tokenmix.text.classifier import TextClassifier
    from tokenmix.train.configs import DistillConfig, FinetuneConfig
    from tokenmix.train.distill import run_distill
    from tokenmix.train.finetune import run_finetune

    common = dict(task="sst2", data_dir=str(SHARED_GLUE), epochs=1, batch_size=32, max_seq_len=32,
                  max_train_examples=3000, device="cpu")
    run_finetune(FinetuneConfig(init="scratch", model="bert", preset="tiny", tokenizer=sst2_tokenizer, lr=(2e-3,),
                                out=str(tmp_path / "teacher"), **{**common, "epochs": 2}))
    run_distill(DistillConfig(teacher=str(tmp_path / "teacher"), student="fnet", preset="tiny", lr=(3e-3,),
                              alpha=0.9, out=str(tmp_path / "distilled"), **common))
    run_finetune(FinetuneConfig(init="scratch", model="fnet", preset="tiny", tokenizer=sst2_tokenizer, lr=(3e-3,),
                                out=str(tmp_path / "plain"), **common))
    dev = [(e.text_a,) for e in read_split(SHARED_GLUE, "sst2", "dev").examples]

    def probabilities(path):
        return torch.tensor([[p["probabilities"]["1"]] for p in TextClassifier.from_pretrained(path, "cpu").predict(dev)])

    target = probabilities(tmp_path / "teacher")
    gap_distilled = (probabilities(tmp_path / "distilled") - target).abs().mean()
    gap_plain = (probabilities(tmp_path / "plain") - target).abs().mean()
    assert gap_distilled < gap_plain
