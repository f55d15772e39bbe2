"""--precision fp32|bf16|auto: the one resolver, the flag in every command that runs a model, the
bench's side-by-side table, and the chunked cross-entropy that keeps bf16 pretraining fast."""

import json

import pytest
import torch
import torch.nn.functional as F

from tokenmix import devices
from tokenmix.bench.configs import MoEBenchConfig, ScalingBenchConfig, SpeedBenchConfig
from tokenmix.bench.speed import format_precision_table, run_speed_benchmark
from tokenmix.cli.main import main
from tokenmix.devices import autocast, bf16_native, precision_name, resolve_precision
from tokenmix.lra.configs import LRAEvalConfig, LRARunConfig, LRASpeedConfig
from tokenmix.models import losses
from tokenmix.models.factory import build_model
from tokenmix.models.losses import cross_entropy
from tokenmix.models.registry import make_config
from tokenmix.reproduce.configs import ReproduceConfig
from tokenmix.text.configs import PredictConfig
from tokenmix.train.configs import DemoConfig, GlueConfig, PretrainConfig
from tokenmix.train.distributed import DistributedContext
from tokenmix.train.engine import Engine, MeanLoss, TrainSettings

CPU = torch.device("cpu")


@pytest.fixture
def cpu_flags(monkeypatch):
    """Pretend the CPU has the given /proc/cpuinfo flags."""
    def set_flags(*flags):
        monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset(flags))
    return set_flags


def test_auto_is_bf16_only_on_cpus_with_native_bf16(cpu_flags):
    cpu_flags("avx2", "avx512f")
    assert not bf16_native(CPU) and resolve_precision("auto", CPU) is None
    cpu_flags("avx512f", "avx512_bf16")
    assert resolve_precision("auto", CPU) is torch.bfloat16
    cpu_flags("amx_tile", "amx_bf16")
    assert resolve_precision("auto", CPU) is torch.bfloat16


def test_explicit_precisions_resolve_whatever_the_cpu(cpu_flags):
    cpu_flags()
    assert resolve_precision("fp32", CPU) is None and resolve_precision("bf16", CPU) is torch.bfloat16
    assert [precision_name(d) for d in (None, torch.bfloat16, torch.float16)] == ["fp32", "bf16", "fp16"]


def test_cuda_auto_follows_bf16_support(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda) is torch.bfloat16 and resolve_precision("fp16", cuda) is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", cuda) is None


@pytest.mark.parametrize("precision, message", [("fp16", "fp16 needs a CUDA device"), ("half", "choose one of")])
def test_bad_precisions_are_one_line_errors(precision, message):
    with pytest.raises(ValueError, match=message):
        resolve_precision(precision, CPU)


def test_autocast_context_follows_the_precision():
    linear = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast("bf16", CPU):
        assert linear(x).dtype is torch.bfloat16
    with autocast("fp32", CPU):
        assert linear(x).dtype is torch.float32


@pytest.mark.parametrize("make", [
    lambda p: PretrainConfig(data="d", out="o", precision=p),
    lambda p: GlueConfig(init="i", tokenizer="t", data_dir="d", out="o", precision=p),
    lambda p: LRARunConfig(task="listops", precision=p),
    lambda p: LRAEvalConfig(task="listops", checkpoint="c", precision=p),
    lambda p: LRASpeedConfig(precision=p),
    lambda p: PredictConfig(model="m", texts=("a",), precision=p),
    lambda p: DemoConfig(precision=p),
    lambda p: ReproduceConfig(scale="tiny", budget="1h", precision=p),
    lambda p: ScalingBenchConfig(precision=p),
    lambda p: MoEBenchConfig(precision=p),
    lambda p: SpeedBenchConfig(precision=(p,)),
])
def test_every_command_that_runs_a_model_takes_precision_and_defaults_to_auto(make):
    assert make("auto").precision in ("auto", ("auto",))
    with pytest.raises(ValueError, match="precision 'fp64' is not valid"):
        make("fp64")


def test_training_engines_without_a_scaler_refuse_fp16():
    with pytest.raises(ValueError, match="choose one of auto, fp32, bf16"):
        PretrainConfig(data="d", out="o", precision="fp16")
    SpeedBenchConfig(precision=("fp16",))  # the bench has a gradient scaler (and checks the device itself)


def test_cli_precision_flag_is_parsed_and_validated(capsys):
    assert main(["pretrain", "--data", "d", "--out", "o", "--precision", "fp64"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "precision 'fp64' is not valid" in err[0]


def test_engine_runs_the_step_under_the_resolved_autocast():
    seen = []

    def loss_fn(model, batch):
        out = model(**batch)
        seen.append(out.logits.dtype)
        return out.loss

    batch = {"input_ids": torch.randint(0, 100, (4, 8)), "labels": torch.tensor([0, 1, 1, 0])}
    for precision in ("fp32", "bf16"):
        model = build_model(make_config("fnet", "tiny", head="classification", num_labels=2))
        settings = TrainSettings(learning_rate=1e-3, schedule=lambda step, seconds: 1.0, max_steps=1, precision=precision,
                                 evaluate_at_stop=False)
        Engine(model, settings, DistributedContext.single(CPU)).run(lambda step: [batch], MeanLoss(loss_fn))
    assert seen == [torch.float32, torch.bfloat16]


# --- the chunked cross-entropy --------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [2**17, 64])  # one chunk, and many chunks (the last one partial)
def test_chunked_cross_entropy_matches_the_float32_loss_and_gradient(monkeypatch, chunk):
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", chunk)
    generator = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(37, 50, generator=generator)).bfloat16().requires_grad_()
    labels = torch.randint(0, 50, (37,), generator=generator)
    weights = torch.rand(37, generator=generator)
    expected = F.cross_entropy(logits.float(), labels, reduction="none")
    (expected * weights).sum().backward()
    expected_grad, logits.grad = logits.grad, None
    got = cross_entropy(logits, labels)
    (got * weights).sum().backward()
    assert got.dtype is torch.float32 and logits.grad.dtype is torch.bfloat16
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(logits.grad.float(), expected_grad.float(), rtol=0, atol=1e-2)  # bf16 rounding
    assert (logits.grad.float() - expected_grad.float()).abs().max() <= expected_grad.float().abs().max() / 128


def test_float32_cross_entropy_is_untouched():
    logits = torch.randn(5, 7, requires_grad=True)
    labels = torch.tensor([0, 6, 3, 3, 1])
    assert torch.equal(cross_entropy(logits, labels), F.cross_entropy(logits, labels, reduction="none"))


def test_pretraining_loss_under_bf16_matches_fp32():
    torch.manual_seed(0)
    model = build_model(make_config("fnet", "tiny", head="pretraining", dropout=0.0)).eval()
    batch = dict(input_ids=torch.randint(0, 100, (2, 16)), masked_positions=torch.tensor([[1, 5], [2, 9]]),
                 masked_labels=torch.tensor([[3, 4], [5, 6]]), next_sentence_labels=torch.tensor([0, 1]))
    with torch.no_grad():
        fp32 = model(**batch).loss
    with autocast("bf16", CPU):
        bf16 = model(**batch).loss
    assert bf16.dtype is torch.float32 and abs(bf16.item() - fp32.item()) < 0.05 * fp32.item()


# --- bench: fp32 and bf16 side by side ------------------------------------------------------------

def test_bench_measures_each_precision_side_by_side(tmp_path):
    config = SpeedBenchConfig(models=("fnet",), preset="tiny", seq_lens=(8,), batch_size=2, mode=("pretrain",),
                              precision=("fp32", "bf16"), warmup=0, repeats=1, isolate=False,
                              markdown=str(tmp_path / "t.md"), json=str(tmp_path / "t.json"))
    records = run_speed_benchmark(config)
    assert [r["precision"] for r in records] == ["fp32", "bf16"] and all(r["ms_per_step"] > 0 for r in records)
    assert json.loads((tmp_path / "t.json").read_text())["results"][1]["precision"] == "bf16"
    assert "fp32 ÷ precision" in (tmp_path / "t.md").read_text()


def test_bench_refuses_fp16_on_cpu_before_measuring(tmp_path):
    config = SpeedBenchConfig(models=("fnet",), preset="tiny", seq_lens=(8,), precision=("fp16",), device="cpu",
                              json=str(tmp_path / "t.json"))
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        run_speed_benchmark(config)
    assert not (tmp_path / "t.json").exists()


def test_precision_table_divides_fp32_by_bf16_per_configuration():
    base = {"seq_len": 128, "mode": "pretrain"}
    records = [{**base, "model": "fnet", "precision": "fp32", "ms_per_step": 800.0},
               {**base, "model": "fnet", "precision": "bf16", "ms_per_step": 400.0},
               {**base, "model": "bert", "precision": "fp32", "ms_per_step": 900.0},
               {**base, "model": "bert", "precision": "bf16", "ms_per_step": None, "error": "out of memory"}]
    rows = format_precision_table(records).splitlines()[2:]
    assert rows[0].split() == ["fnet", "128", "pretrain", "800.0", "bf16", "400.0", "2.00x"]
    assert rows[1].split() == ["bert", "128", "pretrain", "900.0", "bf16", "out", "of", "memory", "-"]
