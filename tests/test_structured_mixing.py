"""Circulant and Toeplitz mixing against dense float64 references, gradients, autocast, save/load.

Convention under test (per example, X: [L, d], as Linear mixing): Y = W_seq @ X @ W_hid with
circulant W[i, j] = c[(i - j) mod n] and Toeplitz W[i, j] = t[i - j + n - 1].
"""

import pytest
import torch

import tokenmix
from tokenmix.models.config import ModelConfig
from tokenmix.models.mixing import structured
from tokenmix.models.mixing.registry import get_mixer
from tokenmix.models.mixing.structured import CirculantMixing, ToeplitzMixing, circulant_matmul, fast_fft_size

MIXERS = ["circulant", "toeplitz"]


def dense_circulant(c: torch.Tensor) -> torch.Tensor:
    n = c.shape[0]
    i, j = torch.arange(n).unsqueeze(1), torch.arange(n).unsqueeze(0)
    return c[(i - j) % n]


def dense_toeplitz(t: torch.Tensor, n: int) -> torch.Tensor:
    """[n, n] Toeplitz matrix from the central 2n - 1 entries of t (offsets -(n-1)..n-1)."""
    center = (t.shape[0] - 1) // 2
    i, j = torch.arange(n).unsqueeze(1), torch.arange(n).unsqueeze(0)
    return t[i - j + center]


def dense_matrices(mixer, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_seq, W_hid) in float64 for an input of length ``seq_len``, per the documented slicing."""
    seq, hid = mixer.seq_kernel.detach().double(), mixer.hidden_kernel.detach().double()
    if isinstance(mixer, CirculantMixing):
        return dense_circulant(seq[:seq_len]), dense_circulant(hid)
    return dense_toeplitz(seq, seq_len), dense_toeplitz(hid, mixer.hidden_size)


def make_mixer(name: str, max_len: int, hidden: int, unit_scale: bool = True):
    config = ModelConfig(mixing=name, hidden_size=hidden, max_position_embeddings=max_len)
    mixer = get_mixer(name)(config)
    if unit_scale:  # O(1) entries so that atol=1e-8 is a strict test
        with torch.no_grad():
            for p in mixer.parameters():
                p.normal_()
    return mixer


def test_dense_builders_follow_the_stated_convention():
    a, b, c = 1.0, 2.0, 3.0
    assert torch.equal(dense_circulant(torch.tensor([a, b, c])),
                       torch.tensor([[a, c, b], [b, a, c], [c, b, a]]))
    t = torch.arange(5.0)  # offsets -2..2; t[2] is the diagonal
    assert torch.equal(dense_toeplitz(t, 3), torch.tensor([[2.0, 1, 0], [3, 2, 1], [4, 3, 2]]))
    assert torch.equal(dense_toeplitz(t, 2), torch.tensor([[2.0, 1], [3, 2]]))  # central entries


def test_parameters_shapes_and_init():
    config = ModelConfig(hidden_size=64, max_position_embeddings=128, initializer_range=0.5)
    circ, toep = CirculantMixing(config), ToeplitzMixing(config)
    assert circ.seq_kernel.shape == (128,) and circ.hidden_kernel.shape == (64,)
    assert toep.seq_kernel.shape == (255,) and toep.hidden_kernel.shape == (127,)
    assert abs(toep.seq_kernel.std().item() - 0.5) < 0.1
    assert not circ.uses_padding_mask and not toep.uses_padding_mask


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("max_len,hidden", [(16, 8), (15, 7), (12, 9), (1, 1)])
@pytest.mark.parametrize("shorter", [0, 1, 4])
def test_matches_dense_reference(name, max_len, hidden, shorter):
    seq_len = max(max_len - shorter, 1)
    mixer = make_mixer(name, max_len, hidden)
    x = torch.randn(3, seq_len, hidden, dtype=torch.float64)
    w_seq, w_hid = dense_matrices(mixer, seq_len)
    expected = w_seq @ x @ w_hid
    out = mixer(x)
    assert out.dtype == torch.float64 and out.shape == x.shape
    torch.testing.assert_close(out, expected, atol=1e-8, rtol=0)


def test_hidden_matrix_multiplies_from_the_right():
    """A non-symmetric W_hid: X @ W_hid differs from X @ W_hid.T, so the side is pinned down."""
    mixer = make_mixer("circulant", 4, 5)
    with torch.no_grad():
        mixer.seq_kernel.zero_()[0] = 1.0  # W_seq = I
        mixer.hidden_kernel.copy_(torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]))  # W[i, j] = 1 iff i = j + 1
    x = torch.arange(20, dtype=torch.float64).reshape(1, 4, 5)
    # (X @ W)[:, j] = X[:, j + 1] (the last column wraps to 0): a left shift along the hidden axis
    torch.testing.assert_close(mixer(x), torch.roll(x, -1, dims=-1), atol=1e-12, rtol=0)


def test_shorter_toeplitz_is_the_leading_block_and_circulant_wraps():
    toep, circ = make_mixer("toeplitz", 10, 6), make_mixer("circulant", 10, 6)
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    w_full = dense_toeplitz(toep.seq_kernel.detach().double(), 10)
    _, w_hid = dense_matrices(toep, 10)
    torch.testing.assert_close(toep(x), w_full[:7, :7] @ x @ w_hid, atol=1e-8, rtol=0)
    w_full = dense_circulant(circ.seq_kernel.detach().double())
    _, w_hid = dense_matrices(circ, 10)
    assert not torch.allclose(circ(x), w_full[:7, :7] @ x @ w_hid)


@pytest.mark.parametrize("name", MIXERS)
def test_too_long_or_wrong_width_input_raises(name):
    mixer = make_mixer(name, 8, 4)
    with pytest.raises(ValueError, match="at most 8 positions"):
        mixer(torch.randn(1, 9, 4))
    with pytest.raises(ValueError, match="width 4"):
        mixer(torch.randn(1, 8, 5))


@pytest.mark.parametrize("name", MIXERS)
def test_gradients_reach_both_kernels_and_are_exact(name):
    mixer = make_mixer(name, 6, 5).double()
    x = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    mixer(x).square().sum().backward()
    for p in (mixer.seq_kernel, mixer.hidden_kernel, x):
        assert p.grad is not None and p.grad.abs().sum() > 0
    seq, hid = mixer.seq_kernel.detach().clone(), mixer.hidden_kernel.detach().clone()

    def f(inp, s, h):
        return torch.func.functional_call(mixer, {"seq_kernel": s, "hidden_kernel": h}, (inp,))

    assert torch.autograd.gradcheck(f, (x.detach().requires_grad_(), seq.requires_grad_(), hid.requires_grad_()))


@pytest.mark.parametrize("dim", [-1, -2, 0])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("n", [5, 8])
def test_circulant_helper_gradient_matches_plain_autograd(dim, transpose, n):
    """The hand-written backward against gradcheck and against autograd through the plain FFT ops."""
    x = torch.randn(5, 5, 5, dtype=torch.float64, requires_grad=True)
    c = torch.randn(n, dtype=torch.float64, requires_grad=True)
    w = dense_circulant(c.detach())[:5, :5]
    w = w.T if transpose else w
    torch.testing.assert_close(circulant_matmul(x, c, dim, transpose),
                               torch.movedim(w @ torch.movedim(x.detach(), dim, -2), -2, dim), atol=1e-10, rtol=0)
    assert torch.autograd.gradcheck(lambda x, c: circulant_matmul(x, c, dim, transpose), (x, c))
    g = torch.randn(5, 5, 5, dtype=torch.float64)
    custom = torch.autograd.grad(circulant_matmul(x, c, dim, transpose), (x, c), g)
    plain = structured._fft_product(x.movedim(dim, -1), c, transpose)[0].movedim(-1, dim)
    torch.testing.assert_close(custom, torch.autograd.grad(plain, (x, c), g), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bf16_autocast_runs_in_float32_and_keeps_input_dtype(name, dtype):
    mixer = make_mixer(name, 16, 8, unit_scale=False)
    x = torch.randn(2, 12, 8).to(dtype).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mixer(x)
    assert out.dtype == dtype and torch.isfinite(out).all()
    reference = mixer(x.detach().float())
    torch.testing.assert_close(out.float(), reference.to(dtype).float(), atol=1e-5, rtol=0)
    out.float().sum().backward()
    assert torch.isfinite(mixer.seq_kernel.grad).all() and torch.isfinite(mixer.hidden_kernel.grad).all()
    assert x.grad.dtype == dtype


def test_fast_fft_size():
    assert [fast_fft_size(n) for n in (1, 7, 11, 1023, 1025)] == [1, 8, 12, 1024, 1080]


@pytest.mark.parametrize("name", MIXERS)
def test_model_trains_and_round_trips(name, tmp_path):
    model = tokenmix.create_model("fnet", "tiny", mixing=name, vocab_size=50, max_position_embeddings=16)
    ids = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(0))
    model.train()
    model(ids).last_hidden_state.sum().backward()
    kernels = [p for n, p in model.named_parameters() if n.endswith(("seq_kernel", "hidden_kernel"))]
    assert len(kernels) == 2 * model.config.num_layers
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in kernels)

    model.eval()
    tokenmix.save_pretrained(model, tmp_path / "model")
    loaded = tokenmix.load_pretrained(tmp_path / "model").eval()
    assert loaded.config.mixing == name
    for length in (16, 9):
        with torch.no_grad():
            assert torch.equal(model(ids[:, :length]).last_hidden_state, loaded(ids[:, :length]).last_hidden_state)
