"""FNet's Fourier mixing is, by definition, the real part of a 2D DFT over the sequence and hidden axes:

    torch.fft.fftn(x, dim=(-2, -1)).real

:func:`fourier_reference` is exactly that line and :class:`FourierMixing` the sublayer; the Hartley
variant (Re - Im of the same DFT, ablated by the Sparse Mixers paper) comes with them. Everything after
them computes the same functions faster, and the tests compare each implementation with the references.

In matrix form, with C, S the cosine and sine DFT matrices:

    Re(F_seq X F_hid) = C_seq X C_hid - S_seq X S_hid

Two implementations compute it:

* ``fft``: ``torch.fft.rfftn`` over the last two axes, the other half of the spectrum filled in by
  conjugate symmetry (half the work of the complex ``fftn`` the official code and transformers use);
  O(L d log(L d)).
* ``matmul``: the identity above in real arithmetic with cached cosine/sine matrices. No complex
  tensors, so it runs under ``torch.compile``, ONNX export and on backends without FFT. It uses the
  conjugate symmetry of a real signal's spectrum to touch only the d//2+1 non-redundant hidden
  frequencies, which halves its FLOPs.

``auto`` picks ``matmul`` while compiling/exporting (no complex tensors there) and on devices other
than CPU and CUDA. Otherwise it *measures*: the first call for a (device, sequence length, hidden
size, dtype, transform) key times the implementations on that input (on a multi-threaded CPU also
``fft`` on one thread, see :func:`_single_threaded`; details in :mod:`.autotune`), and the fastest is
used from then on, remembered in-process and in a JSON file on disk so later runs skip the
measurement. All run in float32 even under bf16/fp16 autocast (cuFFT half precision only
handles power-of-two sizes, and a sum over L*d terms in half precision loses the low-order bits),
then cast back to the input dtype.

The map is linear and symmetric (C and S are symmetric matrices), so its gradient is the same
transform applied to the incoming gradient: a custom autograd function uses that and saves nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any, ClassVar

import torch

from tokenmix.models.config import ModelConfig
from tokenmix.models.mixing.autotune import fastest
from tokenmix.models.mixing.registry import Mixer, register_mixer
from tokenmix.models.tracing import is_tracing


def fourier_reference(x: torch.Tensor) -> torch.Tensor:
    """Re(DFT2(x)) over the last two axes, [..., seq, hidden] -> same shape: the definition."""
    return torch.fft.fftn(x, dim=(-2, -1)).real


def hartley_reference(x: torch.Tensor) -> torch.Tensor:
    """Re - Im of the same 2D DFT: the Hartley variant's definition."""
    spectrum = torch.fft.fftn(x, dim=(-2, -1))
    return spectrum.real - spectrum.imag


@register_mixer("fourier")
class FourierMixing(Mixer):
    """Parameter-free FNet mixing sublayer (the official code's ``FourierTransform``): x [batch, seq,
    hidden] -> ``fourier_reference(x)``, computed by :func:`fourier_transform` with ``fourier_impl``."""

    options = ("fourier_impl",)
    length_sized_parameters = False  # the same transform at any length
    transform: ClassVar[str] = "fourier"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.impl = config.fourier_impl

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return fourier_transform(x, self.impl, self.transform)


@register_mixer("hartley")
class HartleyMixing(FourierMixing):
    """Hartley mixing, ablated in the Sparse Mixers paper: x -> ``hartley_reference(x)`` (a real
    transform that, unlike Re alone, is invertible)."""

    transform = "hartley"


def fourier_transform(x: torch.Tensor, impl: str = "auto", transform: str = "fourier") -> torch.Tensor:
    """Re(DFT2(x)) (``transform="fourier"``) or Re - Im of it (``"hartley"``) over the last two axes,
    computed in float32 (or float64) and returned in ``x.dtype``."""
    resolve_impl(impl)  # reject unknown names before any work
    with torch.autocast(x.device.type, enabled=False):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # half -> float32; float64 stays
        fn = _IMPLS[transform][choose_impl(impl, xf.detach(), transform)]
        if torch.is_grad_enabled() and xf.requires_grad and not is_tracing():
            out = _SymmetricLinearMap.apply(xf, fn)
        else:  # plain ops: what a tracer (compile, ONNX) should see
            out = fn(xf)
    return out.to(x.dtype)


# --- The fast implementations: the same functions, computed faster -----------------------------

def _cache_unless_tracing(build: Callable[..., Any]) -> Callable[..., Any]:
    """Memoise a matrix builder in eager mode. While tracing (torch.export/compile/ONNX) the tensors
    built are graph values (fake tensors), which must never leak into the eager cache, so the
    builder runs uncached and its result becomes a constant of the traced graph."""
    cached = lru_cache(maxsize=32)(build)

    @functools.wraps(build)
    def get(*args: Any) -> Any:
        return build(*args) if is_tracing() else cached(*args)

    get.cache_info, get.cache_clear = cached.cache_info, cached.cache_clear  # type: ignore[attr-defined]
    return get


# rfftn + gather: half the spectrum, laid out as the full one in one gather.

@_cache_unless_tracing
def _spectrum_index(n: int, d: int, device: torch.device) -> torch.Tensor:
    """Flat index into ``view_as_real`` of the half spectrum ([n, h, 2], h = d//2+1) that assembles
    the [n, d] real part: column k > d/2 is column d-k of sequence frequency -j (conjugate symmetry
    of a real signal's spectrum: X[j, k] = conj(X[-j mod n, d-k]))."""
    h = d // 2 + 1
    j = torch.arange(n).unsqueeze(1)
    k = torch.arange(d).unsqueeze(0)
    return (2 * torch.where(k < h, j * h + k, ((-j) % n) * h + (d - k))).flatten().to(device)


def _gather(half: torch.Tensor, d: int, offset: int = 0) -> torch.Tensor:
    """Re (``offset=0``) or Im (``offset=1``) of the half spectrum, laid out as the full [n, d] one,
    as one gather: no slicing, flipping and concatenating, which cost more than the FFT on a small
    CPU. (On mirrored columns Im changes sign; :func:`_hartley_fft` corrects that.)"""
    n = half.shape[-2]
    flat = torch.view_as_real(half).flatten(-3)  # a view: [..., n * h * 2], re/im interleaved
    return flat.index_select(-1, _spectrum_index(n, d, flat.device) + offset).unflatten(-1, (n, d))


def _fft(x: torch.Tensor) -> torch.Tensor:
    # Half the spectrum (rfftn): half the work of the complex fftn of the official code and transformers.
    return _gather(torch.fft.rfftn(x, dim=(-2, -1)), x.shape[-1])


def _hartley_fft(x: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1]
    half = torch.fft.rfftn(x, dim=(-2, -1))
    imag = _gather(half, d, 1)
    mirrored = torch.arange(d, device=x.device) > d // 2  # Im X[j, k] = -Im X[-j, d-k] there
    return _gather(half, d) - torch.where(mirrored, -imag, imag)


# DFT as matrix products (no complex tensors: compile, ONNX, devices without FFT).

@_cache_unless_tracing
def _cos_sin(n: int, cols: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of 2*pi*j*k/n for j < n, k < cols; the product j*k is reduced mod n in exact
    integer arithmetic first so long sequences keep full precision."""
    j = torch.arange(n, dtype=torch.int64).unsqueeze(1)
    k = torch.arange(cols, dtype=torch.int64).unsqueeze(0)
    angle = (j * k % n).to(torch.float64) * (2 * math.pi / n)
    return torch.cos(angle).to(device, dtype), torch.sin(angle).to(device, dtype)


@_cache_unless_tracing
def _hidden_matrix(d: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[d, 2h] = [cos | sin] over the h = d//2+1 non-redundant hidden frequencies."""
    cos, sin = _cos_sin(d, d // 2 + 1, device, dtype)
    return torch.cat([cos, sin], dim=1).contiguous()


@_cache_unless_tracing
def _sequence_matrices(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[2, n, n] stack of the cosine and sine DFT matrices over the sequence axis."""
    return torch.stack(_cos_sin(n, n, device, dtype)).contiguous()


def _dft_matmul(x: torch.Tensor) -> torch.Tensor:
    seq_len, d = x.shape[-2:]
    h = d // 2 + 1
    # A = X C_hid and B = X S_hid for the first h frequencies, as one matmul: [..., 2, L, h].
    ab = (x @ _hidden_matrix(d, x.device, x.dtype)).unflatten(-1, (2, h)).transpose(-3, -2)
    p, q = (_sequence_matrices(seq_len, x.device, x.dtype) @ ab).unbind(-3)  # C_seq A, S_seq B
    # Column k > d/2 equals C_seq A[:, d-k] + S_seq B[:, d-k] (cos is even, sin odd in k).
    return torch.cat([p - q, (p + q)[..., 1 : d - h + 1].flip(-1)], dim=-1)


def _hartley_matmul(x: torch.Tensor) -> torch.Tensor:
    seq_len, d = x.shape[-2:]
    cos, sin = _cos_sin(d, d, x.device, x.dtype)
    a, b = x @ cos, x @ sin
    # Re - Im of F_seq X F_hid = C_seq (A + B) + S_seq (A - B)
    return (_sequence_matrices(seq_len, x.device, x.dtype) @ torch.stack([a + b, a - b], dim=-3)).sum(dim=-3)


def _single_threaded(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn`` with torch's intra-op thread pool set to one thread: on small shared CPUs the threaded
    MKL FFT can be 10-20x slower than a single thread (measured on 2 cores: 23 ms vs 1 ms at
    8x128x256). A candidate of ``auto`` on CPU, chosen only when it measures faster."""

    @functools.wraps(fn)
    def run(x: torch.Tensor) -> torch.Tensor:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(x)
        finally:
            torch.set_num_threads(threads)

    return run


IMPLS = ("fft", "matmul")  # the names users choose from; auto also measures the internal variants
# transform -> implementation -> function; all are symmetric linear maps of the last two axes.
_IMPLS = {
    "fourier": {"fft": _fft, "matmul": _dft_matmul, "fft_1thread": _single_threaded(_fft)},
    "hartley": {"fft": _hartley_fft, "matmul": _hartley_matmul, "fft_1thread": _single_threaded(_hartley_fft)},
}


def _candidates(transform: str, device: torch.device) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    single = device.type == "cpu" and torch.get_num_threads() > 1
    return {name: fn for name, fn in _IMPLS[transform].items() if name in IMPLS or single}


class _SymmetricLinearMap(torch.autograd.Function):
    """Autograd for a self-adjoint linear map: backward applies the same map to the gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.fn = fn
        return fn(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.fn(grad.contiguous()), None


# Which implementation: fixed by the user, or measured (autotune).

def resolve_impl(impl: str, device: torch.device | None = None) -> str:
    """The implementation ``impl`` stands for on ``device`` before any input is seen: a fixed choice,
    ``matmul`` for ``auto`` under tracing or without native FFT, else ``auto`` (measured per shape,
    see :func:`choose_impl`)."""
    if impl == "auto":
        native_fft = device is None or device.type in ("cpu", "cuda")
        return "auto" if native_fft and not is_tracing() else "matmul"
    if impl not in IMPLS:
        raise ValueError(f"fourier_impl={impl!r} is not valid; choose one of auto, {', '.join(IMPLS)}")
    return impl


def choose_impl(impl: str, x: torch.Tensor, transform: str = "fourier") -> str:
    """The concrete implementation for input ``x`` (already in its compute dtype)."""
    resolved = resolve_impl(impl, x.device)
    if resolved != "auto":
        return resolved
    seq_len, d = x.shape[-2:]
    return fastest(transform, x.device, seq_len, d, x.dtype,
                   lambda: {name: functools.partial(fn, x) for name, fn in _candidates(transform, x.device).items()})
