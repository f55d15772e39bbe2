"""The Fourier mixing: every implementation against the one-line reference definition (itself checked
against numpy once), gradients, precision, autocast, compile."""

import json

import numpy as np
import pytest
import torch

import tokenmix
from conftest import random_ids, tiny
from tokenmix.models.config import ModelConfig
from tokenmix.models.mixing import autotune, fourier
from tokenmix.models.mixing.fourier import (
    FourierMixing,
    HartleyMixing,
    fourier_reference,
    fourier_transform,
    hartley_reference,
    resolve_impl,
)


def test_references_are_the_real_2d_dft_and_its_hartley_variant():
    x = torch.randn(2, 7, 9, dtype=torch.float64)
    spectrum = np.fft.fft2(x.numpy(), axes=(-2, -1))
    np.testing.assert_allclose(fourier_reference(x).numpy(), spectrum.real, atol=1e-10)
    np.testing.assert_allclose(hartley_reference(x).numpy(), spectrum.real - spectrum.imag, atol=1e-10)


@pytest.mark.parametrize("impl", ["fft", "matmul", "fft_1thread"])
@pytest.mark.parametrize("shape", [(2, 16, 64), (1, 7, 9), (3, 33, 10), (2, 1, 1), (1, 5, 2), (2, 8, 3)])
def test_matches_the_reference(impl, shape):
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(fourier._IMPLS["fourier"][impl](x), fourier_reference(x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("impl", ["fft", "matmul", "fft_1thread"])
@pytest.mark.parametrize("shape", [(2, 16, 64), (1, 7, 9), (3, 5, 2), (2, 1, 1)])
def test_hartley_matches_the_reference(impl, shape):
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(fourier._IMPLS["hartley"][impl](x), hartley_reference(x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("mixer, reference", [(FourierMixing, fourier_reference), (HartleyMixing, hartley_reference)])
@pytest.mark.parametrize("impl", ["auto", "fft", "matmul"])
def test_mixing_sublayers_compute_the_reference(mixer, reference, impl):
    x = torch.randn(2, 12, 10)
    out = mixer(ModelConfig(fourier_impl=impl))(x)
    torch.testing.assert_close(out, reference(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("transform", ["fourier", "hartley"])
@pytest.mark.parametrize("impl", ["fft", "matmul"])
def test_gradient_is_exact(impl, transform):
    x = torch.randn(2, 6, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fourier_transform(t, impl, transform), (x,))


def test_float32_precision_at_long_lengths():
    x = torch.randn(1, 2048, 32)
    expected = fourier_reference(x.double())  # float64: the float32 implementations' error shows
    scale = expected.abs().max()
    for impl in ("fft", "matmul"):
        err = (fourier_transform(x, impl).double() - expected).abs().max() / scale
        assert err < 1e-5, (impl, err)


def test_matrices_are_cached_per_length_dtype_device():
    fourier._sequence_matrices.cache_clear()
    x = torch.randn(1, 12, 8)
    fourier_transform(x, "matmul")
    fourier_transform(x, "matmul")
    fourier_transform(torch.randn(1, 13, 8), "matmul")
    info = fourier._sequence_matrices.cache_info()
    assert (info.hits, info.misses) == (1, 2)


@pytest.mark.parametrize("overrides", [dict(fourier_impl="fft"), dict(fourier_impl="matmul"), dict(mixing="hartley"),
                                       dict(mixing="circulant"), dict(mixing="toeplitz")], ids=lambda o: str(*o.values()))
def test_bf16_autocast_runs_the_transform_in_float32(overrides):
    """Fourier (both implementations) and the extra FFT mixings: only the feed-forward sees bf16."""
    model = tiny("fnet", **overrides)
    ids = random_ids()
    reference = model(ids).last_hidden_state
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids).last_hidden_state
    assert torch.isfinite(out).all()
    assert (out.float() - reference).abs().max() < 0.15  # bf16 feed-forward error only


def test_half_precision_model_casts_back():
    x = torch.randn(2, 10, 12).to(torch.bfloat16)
    out = fourier_transform(x, "fft")
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), fourier_reference(x.float()), rtol=1e-2, atol=0.5)


def test_auto_is_measured_eagerly_and_matmul_under_compile():
    assert resolve_impl("auto", torch.device("cpu")) == "auto"  # decided per shape by measurement
    assert resolve_impl("auto", torch.device("meta")) == "matmul"  # no native FFT guaranteed
    seen = []

    def spy(x):
        seen.append(resolve_impl("auto"))
        return fourier_transform(x, "auto")

    x = torch.randn(2, 8, 6)
    compiled = torch.compile(spy, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(x), fourier_reference(x), atol=1e-4)
    assert "matmul" in seen


def test_unknown_impl_rejected():
    with pytest.raises(ValueError, match="fourier_impl"):
        fourier_transform(torch.randn(1, 2, 2), "fast")


def test_tracing_never_poisons_the_matrix_cache():
    fourier._sequence_matrices.cache_clear()
    model = tiny("fnet")
    ids = random_ids(2, 12)
    torch.export.export(model, (ids,))  # builds matrices as fake tensors inside the trace
    assert fourier._sequence_matrices.cache_info().currsize == 0
    x = torch.randn(2, 12, 64)
    assert torch.allclose(fourier_transform(x, "matmul"), fourier_reference(x), atol=1e-3)


class FakeClock:
    """A clock under which every call of ``fft`` takes ``fft_ms`` and ``matmul`` takes ``matmul_ms``."""

    def __init__(self, monkeypatch, fft_ms: float, matmul_ms: float) -> None:
        self.now, self.reads = 0.0, 0
        self.cost = {"fft": fft_ms / 1e3, "matmul": matmul_ms / 1e3, "fft_1thread": 1.0}
        monkeypatch.setattr(autotune, "timer", self)
        for name in self.cost:
            real = fourier._IMPLS["fourier"][name]
            monkeypatch.setitem(fourier._IMPLS["fourier"], name, self.wrap(real, name))

    def wrap(self, real, name):
        def run(x):
            self.now += self.cost[name]
            return real(x)
        return run

    def __call__(self) -> float:
        self.reads += 1
        return self.now


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENMIX_CACHE", str(tmp_path / "cache"))
    autotune.clear_memo()
    yield tmp_path / "cache" / "autotune.json"
    autotune.clear_memo()


@pytest.mark.parametrize("fft_ms, matmul_ms, expected", [(5.0, 2.0, "matmul"), (1.0, 3.0, "fft")])
def test_auto_picks_the_measured_fastest_and_caches_it(cache, monkeypatch, fft_ms, matmul_ms, expected):
    clock = FakeClock(monkeypatch, fft_ms, matmul_ms)
    x = torch.randn(2, 24, 16)
    out = fourier_transform(x, "auto")
    assert torch.allclose(out, fourier_reference(x), atol=1e-4)
    assert autotune.choices() == {("fourier", torch.device("cpu"), 24, 16, torch.float32): expected}
    (entry,) = json.loads(cache.read_text()).values()
    assert entry["choice"] == expected
    assert {k: entry["ms"][k] for k in ("fft", "matmul")} == {"fft": fft_ms, "matmul": matmul_ms}
    reads = clock.reads
    fourier_transform(torch.randn(5, 24, 16), "auto")  # same key (batch size is not part of it): no timing
    assert clock.reads == reads
    autotune.clear_memo()  # a new process: reads the disk cache, measures nothing
    fourier_transform(x, "auto")
    assert clock.reads == reads
    fourier_transform(torch.randn(2, 25, 16), "auto")  # a new length is measured
    assert clock.reads > reads and len(json.loads(cache.read_text())) == 2


def test_auto_cache_key_has_dtype_and_transform(cache, monkeypatch):
    FakeClock(monkeypatch, 1.0, 2.0)
    fourier_transform(torch.randn(1, 8, 4, dtype=torch.float64), "auto")
    fourier_transform(torch.randn(1, 8, 4).to(torch.bfloat16), "auto")  # computed in float32
    fourier_transform(torch.randn(1, 8, 4), "auto", "hartley")
    assert {(k[0], k[4]) for k in autotune.choices()} == {
        ("fourier", torch.float32), ("fourier", torch.float64), ("hartley", torch.float32)}


def test_unwritable_cache_warns_and_keeps_the_choice_in_process(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TOKENMIX_CACHE", str(blocker / "cache"))
    autotune.clear_memo()
    clock = FakeClock(monkeypatch, 3.0, 1.0)
    with pytest.warns(UserWarning, match="TOKENMIX_CACHE"):
        fourier_transform(torch.randn(1, 6, 4), "auto")
    reads = clock.reads
    fourier_transform(torch.randn(1, 6, 4), "auto")
    assert clock.reads == reads
    autotune.clear_memo()


def test_corrupt_cache_is_measured_again(cache, monkeypatch):
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    FakeClock(monkeypatch, 1.0, 2.0)
    fourier_transform(torch.randn(1, 6, 4), "auto")
    assert list(json.loads(cache.read_text()).values())[0]["choice"] == "fft"


@pytest.mark.parametrize("name", [n for n in tokenmix.list_models()])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_every_variant_trains_under_half_precision_autocast(name, dtype):
    """The CUDA autocast path, exercised on CPU: forward, loss and backward stay finite for every
    variant, the Fourier transforms run in float32 and the loss is close to the float32 one."""
    model = tiny(name, head="pretraining", dropout=0.0, attention_dropout=0.0, expert_dropout=0.0).train()
    ids = random_ids(2, 16)
    batch = dict(masked_positions=torch.tensor([[1, 3], [2, 5]]), masked_labels=torch.tensor([[4, 7], [9, 1]]),
                 next_sentence_labels=torch.tensor([0, 1]))
    reference = model(ids, **batch).loss
    with torch.autocast("cpu", dtype=dtype):
        loss = model(ids, **batch).loss
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert abs(loss.item() - reference.item()) < 0.05 * reference.item()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_single_threaded_fft_restores_the_thread_count():
    threads = torch.get_num_threads()
    fourier._IMPLS["fourier"]["fft_1thread"](torch.randn(1, 4, 4))
    assert torch.get_num_threads() == threads


def test_internal_variants_are_not_user_choices():
    with pytest.raises(ValueError, match="fourier_impl"):
        fourier_transform(torch.randn(1, 2, 2), "fft_1thread")
