"""The Fourier mixing: both implementations against numpy, gradients, precision, autocast, compile."""

import numpy as np
import pytest
import torch

from conftest import random_ids, tiny
from tokenmix.mixing import fourier
from tokenmix.mixing.fourier import fourier_transform, resolve_impl


@pytest.mark.parametrize("impl", ["fft", "matmul"])
@pytest.mark.parametrize("shape", [(2, 16, 64), (1, 7, 9), (3, 33, 10), (2, 1, 1), (1, 5, 2)])
def test_matches_numpy_real_fft2(impl, shape):
    x = torch.randn(*shape, dtype=torch.float64)
    expected = np.fft.fft2(x.numpy(), axes=(-2, -1)).real
    np.testing.assert_allclose(fourier_transform(x, impl).numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("impl", ["fft", "matmul"])
@pytest.mark.parametrize("shape", [(2, 16, 64), (1, 7, 9), (3, 5, 2)])
def test_hartley_matches_numpy(impl, shape):
    x = torch.randn(*shape, dtype=torch.float64)
    spectrum = np.fft.fft2(x.numpy(), axes=(-2, -1))
    np.testing.assert_allclose(fourier_transform(x, impl, "hartley").numpy(), spectrum.real - spectrum.imag, atol=1e-10)


@pytest.mark.parametrize("transform", ["fourier", "hartley"])
@pytest.mark.parametrize("impl", ["fft", "matmul"])
def test_gradient_is_exact(impl, transform):
    x = torch.randn(2, 6, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fourier_transform(t, impl, transform), (x,))


def test_float32_precision_at_long_lengths():
    x = torch.randn(1, 2048, 32)
    expected = np.fft.fft2(x.double().numpy(), axes=(-2, -1)).real
    scale = np.abs(expected).max()
    for impl in ("fft", "matmul"):
        err = np.abs(fourier_transform(x, impl).double().numpy() - expected).max() / scale
        assert err < 1e-5, (impl, err)


def test_matrices_are_cached_per_length_dtype_device():
    fourier._sequence_matrices.cache_clear()
    x = torch.randn(1, 12, 8)
    fourier_transform(x, "matmul")
    fourier_transform(x, "matmul")
    fourier_transform(torch.randn(1, 13, 8), "matmul")
    info = fourier._sequence_matrices.cache_info()
    assert (info.hits, info.misses) == (1, 2)


@pytest.mark.parametrize("impl", ["fft", "matmul"])
def test_bf16_autocast_runs_the_transform_in_float32(impl):
    model = tiny("fnet", fourier_impl=impl)
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
    assert torch.allclose(out.float(), fourier_transform(x.float(), "fft"), rtol=1e-2, atol=0.5)


def test_auto_uses_fft_eagerly_and_matmul_under_compile():
    assert resolve_impl("auto", torch.device("cpu")) == "fft"
    assert resolve_impl("auto", torch.device("meta")) == "matmul"  # no native FFT guaranteed
    seen = []

    def spy(x):
        seen.append(resolve_impl("auto"))
        return fourier_transform(x, "auto")

    x = torch.randn(2, 8, 6)
    compiled = torch.compile(spy, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(x), fourier_transform(x, "fft"), atol=1e-4)
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
    assert torch.allclose(fourier_transform(x, "matmul"), fourier_transform(x, "fft"), atol=1e-3)
