"""Benchmarks: peers of the same size, FLOP counting and device peaks, the scaling sweep and its fits,
isolation with memory/time caps, and clear errors for bad devices and output paths. No timing is
asserted: speed figures are printed by the commands, never checked by tests."""

import json
import os
import signal
import sys
import time
import types
from pathlib import Path

import pytest
import torch

from tokenmix.bench import speed
from tokenmix.bench.configs import ScalingBenchConfig, SpeedBenchConfig
from tokenmix.bench.flops import count_matmul_flops, matmul_precision, peak_tflops
from tokenmix.bench.measure import WorkerDied, enable_tf32, fit_exponent, report_progress, resource_error, run_isolated
from tokenmix.bench.peers import build_peer, hf_batch, hf_config
from tokenmix.bench.scaling import fit_growth, run_scaling_benchmark
from tokenmix.bench.speed import format_peer_table, pool_rounds, run_speed_benchmark
from tokenmix.cli.main import main
from tokenmix.devices import resolve_device
from tokenmix.models.registry import make_config

TINY = dict(preset="tiny", batch_size=2, warmup=0, repeats=1, isolate=False)


def _allocate(n: int) -> int:
    return int(torch.ones(n, dtype=torch.uint8).sum())


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _fail(message: str) -> None:
    raise ValueError(message)


def _exit(code: int) -> None:
    os._exit(code)


def _kill_self(signal_number: int) -> None:
    os.kill(os.getpid(), signal_number)


def _count(n: int) -> int:
    for i in range(n):
        report_progress(i)
    return n


# --- peers -------------------------------------------------------------------------------------

def test_peer_configs_copy_the_size_and_regularisation():
    config = make_config("bert", "mini", dropout=0.2, attention_dropout=0.15, max_position_embeddings=1024)
    bert = hf_config("hf_bert", config)
    assert (bert.hidden_size, bert.num_hidden_layers, bert.num_attention_heads, bert.intermediate_size) == (256, 4, 4, 1024)
    assert (bert.vocab_size, bert.max_position_embeddings, bert.type_vocab_size) == (32000, 1024, config.type_vocab_size)
    assert (bert.hidden_dropout_prob, bert.attention_probs_dropout_prob, bert.layer_norm_eps) == (0.2, 0.15, 1e-12)
    assert bert._attn_implementation == "sdpa" and bert.hidden_act == "gelu_pytorch_tanh"
    fnet = hf_config("hf_fnet", make_config("fnet", "mini"))
    assert (fnet.hidden_size, fnet.num_hidden_layers, fnet.intermediate_size) == (256, 4, 1024)
    assert fnet.use_tpu_fourier_optimizations is False


def test_peer_batch_puts_the_masked_labels_where_transformers_expects_them():
    batch = speed.make_batch("pretrain", 50, 2, 20, "cpu", torch.Generator().manual_seed(0))
    hf = hf_batch("pretrain", batch)
    labels = hf["labels"]
    assert (labels != -100).sum() == batch["masked_positions"].numel()
    assert torch.equal(labels.gather(1, batch["masked_positions"]), batch["masked_labels"])
    assert torch.equal(hf["next_sentence_label"], batch["next_sentence_labels"])


@pytest.mark.parametrize("name, variant", [("hf_fnet", "fnet"), ("hf_bert", "bert")])
def test_peers_have_about_our_parameter_count_and_train(name, variant):
    config = make_config(variant, "tiny", head="pretraining")
    batch = speed.make_batch("pretrain", config.vocab_size, 2, 16, "cpu", torch.Generator().manual_seed(0))
    model, forward = build_peer(name, config, "pretrain", batch)
    ours = speed.build(variant, "pretrain", 16, SpeedBenchConfig(models=(variant,), **TINY), "cpu", torch.Generator())[0]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(count(model) / count(ours) - 1) < 0.05  # same sizes; small differences in heads/embeddings
    loss = forward(model).loss
    loss.backward()
    assert torch.isfinite(loss) and 8 < loss.item() < 14  # ~ln(32000) + ln(2) at initialisation


def test_transformers_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    with pytest.raises(ValueError, match="pip install transformers"):
        run_speed_benchmark(SpeedBenchConfig(models=("fnet",), seq_lens=(8,), compare=("hf",), **TINY))


def test_compare_hf_measures_peers_in_the_same_run(tmp_path):
    config = SpeedBenchConfig(models=("fnet", "bert"), seq_lens=(16,), mode=("pretrain", "inference"), compare=("hf",),
                              json=str(tmp_path / "out" / "b.json"), markdown=str(tmp_path / "b.md"), **TINY)
    records = run_speed_benchmark(config)
    assert [(r["model"], r["mode"]) for r in records] == [
        (m, mode) for mode in ("pretrain", "inference") for m in ("fnet", "bert", "hf_fnet", "hf_bert")]
    for r in records:
        assert r["ms_per_step"] > 0 and r["dense_gflop_per_step"] > 0 and r["peak_tflops"] is None
        assert r["fused_adamw"] is (True if r["mode"] == "pretrain" else None)
    assert json.loads((tmp_path / "out" / "b.json").read_text())["results"] == records
    table = format_peer_table(records)
    assert "hf_fnet ÷ model" in table and "hf_bert ÷ model" in table
    markdown = (tmp_path / "b.md").read_text()
    assert markdown.count("| fnet | 16 |") == 2 and "| pretrain | 16 | bert |" in markdown


def test_threads_option_sets_torch_threads(monkeypatch):
    threads = torch.get_num_threads()
    try:
        (record,) = run_speed_benchmark(SpeedBenchConfig(models=("ff_only",), seq_lens=(8,), threads=1, **TINY))
        assert record["device"] == "cpu (1 threads)"
    finally:
        torch.set_num_threads(threads)


def test_unknown_compare_rejected():
    with pytest.raises(ValueError, match="unknown --compare"):
        SpeedBenchConfig(compare=("tf",))


@pytest.mark.parametrize("argv, needle", [
    (["bench", "speed", "--models", ""], "--models is empty; give at least one value, e.g. --models fnet,"),
    (["bench", "speed", "--mode", ""], "--mode is empty"),
    (["bench", "speed", "--models", "fnet,bert,fnet", "--seq-lens", "8"], "--models names fnet twice; give each value once"),
    (["bench", "speed", "--models", "fnet", "--seq-lens", "8,8"], "--seq-lens names 8 twice"),
    (["bench", "moe", "--mode", ""], "--mode is empty; give at least one value, e.g. --mode train,inference"),
    (["bench", "speed", "--preset", "huge"], "unknown preset 'huge'; choose one of tiny"),
    (["bench", "speed", "--fourier-impl", "fast"], "--fourier-impl 'fast' is not valid; choose one of auto, fft, matmul"),
    (["bench", "speed", "--models", "fnet", "--baseline", "bret"], "--baseline bret is not measured: add it to --models"),
    (["bench", "scaling", "--preset", "huge"], "unknown preset 'huge'"),
])
def test_bad_bench_settings_are_refused_before_any_measurement(capsys, tmp_path, monkeypatch, argv, needle):
    """An empty list measured nothing and exited 0; a bad preset or --fourier-impl failed only at the first
    measurement, under its progress bar; an unmeasured --baseline left its columns empty."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tokenmix: error: ") and needle in err
    assert list(tmp_path.iterdir()) == []  # no output folder made, nothing measured


# --- FLOPs, peaks, TF32, compile -------------------------------------------------------------------

def test_flop_counter_counts_matmuls_exactly():
    layer = torch.nn.Linear(32, 16)
    x = torch.randn(4, 32, requires_grad=True)
    assert count_matmul_flops(lambda: layer(x)) == 2 * 4 * 32 * 16
    assert count_matmul_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 4 * 32 * 16  # + grad input and weight


def test_attention_has_more_dense_flops_than_fourier_mixing():
    def flops(name):
        config = SpeedBenchConfig(models=(name,), fourier_impl="fft", **TINY)  # FFT: no matmul FLOPs
        model, forward = speed.build(name, "inference", 32, config, torch.device("cpu"), torch.Generator())
        return count_matmul_flops(lambda: forward(model.eval()))

    fnet, bert = flops("fnet"), flops("bert")
    d, layers, batch, length = 64, 2, 2, 32
    attention_only = layers * batch * length * (2 * 3 * d * d + 2 * d * d + 2 * 2 * length * d)
    assert bert - fnet == attention_only  # q/k/v + output projections + scores and values (fused CPU kernel)


def test_attention_backward_flops_are_counted():
    q = torch.randn(1, 2, 8, 4, requires_grad=True)
    forward = 2 * 2 * (2 * 8 * 8 * 4)  # 2 heads x (scores + values), 2*8*8*4 FLOP each
    assert count_matmul_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q)) == forward
    assert count_matmul_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()) == 3.5 * forward  # backward recomputes the scores: 5 products


@pytest.mark.parametrize("device, precision, expected", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.4), ("NVIDIA H100 PCIe", "tf32", 378.0), ("NVIDIA H200", "fp32", 67.0),
    ("NVIDIA A100-SXM4-80GB", "tf32", 156.0), ("NVIDIA L4", "fp16", 121.0), ("NVIDIA L40S", "bf16", 362.1),
    ("Tesla V100-SXM2-16GB", "bf16", None), ("NVIDIA A10G", "fp32", None), ("cpu (2 threads)", "fp32", None),
])
def test_peak_table(device, precision, expected):
    assert peak_tflops(device, precision) == expected


def test_matmul_precision():
    assert [matmul_precision("bf16", True), matmul_precision("none", True), matmul_precision("none", False)] == \
        ["bf16", "tf32", "fp32"]


def test_tf32_only_on_ampere_or_newer_cuda(monkeypatch):
    assert enable_tf32(torch.device("cpu")) is False
    before = torch.get_float32_matmul_precision()
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert enable_tf32(torch.device("cuda")) is False and torch.get_float32_matmul_precision() == before
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    try:
        assert enable_tf32(torch.device("cuda")) is True and torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)
        torch.backends.cudnn.allow_tf32 = True


def test_compile_option_compiles_every_model(monkeypatch):
    compiled = []
    real = torch.compile

    def fake_compile(model, **kwargs):  # the eager backend: the same tracing, no C++ build
        compiled.append(type(model).__name__)
        return real(model, backend="eager")

    monkeypatch.setattr(torch, "compile", fake_compile)
    records = run_speed_benchmark(SpeedBenchConfig(models=("fnet",), seq_lens=(8,), mode=("train",), compile=True, **TINY))
    assert compiled == ["TokenMixForSequenceClassification"]
    assert records[0]["compile"] is True and records[0]["ms_per_step"] > 0


# --- rounds, out of memory, time limits ----------------------------------------------------------

def test_rounds_pool_every_timed_step():
    base = dict(model="fnet", seq_len=8, batch_size=2, dense_gflop_per_step=1.0, peak_tflops=None)
    pooled = pool_rounds([{**base, "times_ms": [1.0, 9.0], "peak_mem_bytes": 5},
                          {**base, "times_ms": [3.0], "peak_mem_bytes": 7}])
    assert (pooled["ms_per_step"], pooled["ms_min"], pooled["peak_mem_bytes"], pooled["rounds"]) == (3.0, 1.0, 7, 2)
    assert pooled["dense_tflops"] == round(1.0 / 3.0, 4)
    assert pool_rounds([{**base, "times_ms": [1.0]}, {**base, "error": "out of memory"}])["error"] == "out of memory"


def test_out_of_memory_configuration_is_reported_and_the_run_goes_on(monkeypatch, tmp_path, capsys):
    real = speed.measure

    def measure(name, seq_len, mode, precision, config):
        if seq_len == 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")
        return real(name, seq_len, mode, precision, config)

    monkeypatch.setattr(speed, "measure", measure)
    out = tmp_path / "b.json"
    code = main(["bench", "speed", "--models", "fnet", "--preset", "tiny", "--seq-lens", "16,32", "--batch-size", "2",
                 "--repeats", "1", "--warmup", "0", "--no-isolate", "--json", str(out)])
    assert code == 0
    records = json.loads(out.read_text())["results"]
    assert records[0]["ms_per_step"] > 0 and records[1]["error"] == "out of memory"
    assert "out of memory" in capsys.readouterr().out


def test_real_errors_are_not_mistaken_for_out_of_memory(monkeypatch):
    monkeypatch.setattr(speed, "measure", lambda *args: (_ for _ in ()).throw(ValueError("bad shape")))
    with pytest.raises(ValueError, match="bad shape"):
        run_speed_benchmark(SpeedBenchConfig(models=("fnet",), seq_lens=(8,), **TINY))


def test_isolated_process_memory_cap_and_time_limit():
    with pytest.raises(RuntimeError) as err:
        run_isolated(_allocate, 2**32, memory_limit=2**28)
    assert resource_error(err.value) == "out of memory"
    assert run_isolated(_allocate, 1000, memory_limit=2**28) == 1000
    with pytest.raises(TimeoutError) as err:
        run_isolated(_sleep, 30, timeout=0.5)
    assert resource_error(err.value) == "time budget"


def _progress_bar() -> int:
    from tokenmix.progress import Progress

    with Progress(total=3, delay=0) as bar:
        bar.update(3)
    return 3


def test_a_progress_bar_in_the_isolated_process_leaks_no_semaphore(tmp_path):
    """tqdm's process-shared lock, made in a spawned child, used to outlive it: every `tokenmix demo` ended
    with the resource tracker's 'leaked semaphore objects' warning."""
    import subprocess

    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_bench; "
            f"from tokenmix.bench.measure import run_isolated; print(run_isolated(test_bench._progress_bar))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "3", done.stderr
    assert "3/3" in done.stderr and "leaked" not in done.stderr


def test_isolated_process_errors_are_errors_not_out_of_memory(monkeypatch):
    with pytest.raises(ValueError, match="bad shape") as err:
        run_isolated(_fail, "bad shape")
    assert resource_error(err.value) is None
    # A function the child cannot import (a module that exists in this process only) fails while the
    # child unpickles it: an error with the child's message, not "out of memory".
    ghost = types.ModuleType("tokenmix_test_ghost")
    exec("def work():\n    return 1\n", ghost.__dict__)
    monkeypatch.setitem(sys.modules, ghost.__name__, ghost)
    with pytest.raises(ModuleNotFoundError, match="No module named 'tokenmix_test_ghost'") as err:
        run_isolated(ghost.work)
    assert resource_error(err.value) is None
    with pytest.raises(WorkerDied, match="exit code 3") as err:
        run_isolated(_exit, 3)
    assert resource_error(err.value) is None
    with pytest.raises(WorkerDied, match="killed") as err:  # what the kernel's OOM killer does
        run_isolated(_kill_self, signal.SIGKILL)
    assert resource_error(err.value) == "out of memory"


def test_isolated_process_reports_progress():
    seen = []
    assert run_isolated(_count, 3, on_progress=seen.append) == 3 and seen == [0, 1, 2]


# --- bad devices and output paths ------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device, message", [("cuda", "no CUDA GPU is visible"), ("cuda:3", "no CUDA GPU is visible"),
                                             ("mps", "MPS is not available"), ("xpu", "not available"),
                                             ("gpu7", "unknown device")])
def test_missing_device_is_a_clear_error(device, message, capsys):
    with pytest.raises(ValueError, match=message):
        resolve_device(device)
    assert main(["bench", "speed", "--models", "fnet", "--preset", "tiny", "--device", device]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--json", "--markdown"])
def test_unwritable_output_fails_before_measuring(tmp_path, capsys, monkeypatch, flag):
    monkeypatch.setattr(speed, "measure", lambda *a: pytest.fail("measured before checking the output path"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["bench", "speed", "--models", "fnet", "--preset", "tiny", flag, str(blocker / "out.json")])
    assert code == 1 and f"{flag} {blocker / 'out.json'}" in capsys.readouterr().err
    assert main(["bench", "speed", "--models", "fnet", "--preset", "tiny", flag, str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


# --- scaling --------------------------------------------------------------------------------------

def test_fit_exponent_recovers_power_laws():
    lengths = [128, 256, 512, 1024]
    assert fit_exponent(lengths, [3 * n**2 for n in lengths]) == 2.0
    assert fit_exponent(lengths, [5 * n**1.5 for n in lengths]) == 1.5
    assert fit_exponent([128], [1.0]) is None


def test_fit_growth_groups_by_model_and_reports_where_a_sweep_stopped():
    records = [{"model": "bert", "batch_size": 2, "seq_len": n, "ms_per_step": n**2 / 100, "peak_mem_bytes": 7 * n}
               for n in (128, 256, 512)]
    records.append({"model": "bert", "batch_size": 2, "seq_len": 1024, "error": "OOM"})
    records += [{"model": "fnet", "batch_size": 2, "seq_len": n, "ms_per_step": 0.5 * n, "peak_mem_bytes": n**1.5}
                for n in (128, 256, 512, 1024)]
    bert, fnet = fit_growth(records)
    assert (bert["model"], bert["time_exponent"], bert["memory_exponent"]) == ("bert", 2.0, 1.0)
    assert bert["lengths"] == [128, 256, 512] and bert["stopped"] == "OOM at 1024"
    assert (fnet["time_exponent"], fnet["memory_exponent_longest3"], fnet["stopped"]) == (1.0, 1.5, None)


def fake_measure(costs):
    """A stand-in for speed.measure_or_fail: time and memory grow as the given power of L."""
    def measure_or_fail(name, seq_len, mode, precision, config):
        k_time, k_mem, oom_at = costs[name]
        base = {"model": name, "seq_len": seq_len, "batch_size": config.batch_size, "mode": mode}
        if oom_at and seq_len >= oom_at:
            return {**base, "ms_per_step": None, "peak_mem_bytes": None, "error": "out of memory"}
        return {**base, "ms_per_step": 0.01 * seq_len**k_time * config.batch_size, "device": "fake",
                "peak_mem_bytes": 1000 * seq_len**k_mem}
    return measure_or_fail


def test_scaling_fits_stops_after_oom_and_writes_every_output(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(speed, "measure_or_fail", fake_measure({"fnet": (1.0, 1.0, None), "bert": (2.0, 2.0, 1024)}))
    code = main(["bench", "scaling", "--models", "fnet,bert", "--seq-lens", "128,256,512,1024,2048",
                 "--batch-sizes", "1,2", "--out", str(tmp_path / "s"), "--time-budget-s", "1e6"])
    assert code == 0
    result = json.loads((tmp_path / "s" / "scaling.json").read_text())
    fits = {(f["model"], f["batch_size"]): f for f in result["fits"]}
    assert fits["fnet", 1]["time_exponent"] == 1.0 and fits["fnet", 2]["memory_exponent_longest3"] == 1.0
    assert fits["bert", 2]["time_exponent"] == 2.0 and fits["bert", 1]["lengths"] == [128, 256, 512]
    assert fits["bert", 1]["stopped"] == "out of memory at 1024"
    bert_2048 = [r for r in result["results"] if r["model"] == "bert" and r["seq_len"] == 2048]
    assert [r["error"] for r in bert_2048] == ["skipped after out of memory at 1024"] * 2
    for name in ("scaling.md", "scaling.png", "scaling.svg"):
        assert (tmp_path / "s" / name).stat().st_size > 1000
    assert "<svg" in (tmp_path / "s" / "scaling.svg").read_text()[:500]
    assert "| bert | 1 | 2.00 | 2.00 |" in (tmp_path / "s" / "scaling.md").read_text()
    assert "out of memory" in capsys.readouterr().out


def test_scaling_skips_lengths_predicted_over_the_time_budget(monkeypatch, tmp_path):
    monkeypatch.setattr(speed, "measure_or_fail", fake_measure({"bert": (2.0, 2.0, None)}))
    # 0.01 * L^2 ms per step, 5 steps: L=1024 takes 52 s, L=2048 would take 210 s > 100 s.
    result = run_scaling_benchmark(ScalingBenchConfig(models=("bert",), seq_lens=(256, 512, 1024, 2048, 4096),
                                                      warmup=1, repeats=3, batch_sizes=(1,), time_budget_s=100,
                                                      out=str(tmp_path)))
    errors = [r.get("error") for r in result["results"]]
    assert errors[:3] == [None, None, None] and all("predicted over the 100 s budget" in e for e in errors[3:])


def test_scaling_measures_real_models_in_isolated_processes(tmp_path):
    result = run_scaling_benchmark(ScalingBenchConfig(models=("fnet",), preset="tiny", seq_lens=(16, 32), batch_sizes=(2,),
                                                      warmup=0, repeats=1, out=str(tmp_path)))
    assert [r["seq_len"] for r in result["results"]] == [16, 32]
    assert all(r["ms_per_step"] > 0 and r["peak_mem_bytes"] > 0 for r in result["results"])
    assert result["fits"][0]["time_exponent"] is not None


@pytest.mark.parametrize("argv, message", [
    (["--seq-lens", "512,128"], "ascending"), (["--mode", "fly"], "unknown mode"), (["--batch-sizes", "0"], "--batch-sizes"),
    (["--models", "nope"], "unknown model"), (["--time-budget-s", "0"], "--time-budget-s"),
])
def test_scaling_bad_arguments(argv, message, capsys):
    try:
        code = main(["bench", "scaling", *argv])
    except SystemExit as refused:  # numbers out of range: by the parser (exit 2), issue 19
        code = refused.code
    assert code in (1, 2)
    assert message in capsys.readouterr().err


def test_scaling_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["bench", "scaling", "--out", str(blocker / "dir")]) == 1
    assert "--out" in capsys.readouterr().err

