"""Circulant and Toeplitz mixing: learned, structured versions of Linear mixing, computed with FFTs.

Sparse Mixers (Lee-Thorp & Ainslie, 2022) ablate the mixing sublayer between FNet's fixed DFT and
dense learned matrices: here W_seq and W_hid of ``Y = W_seq X W_hid`` are learned but constrained to
be circulant or Toeplitz, so each is a vector (O(n) parameters instead of O(n^2)) and a product with
it is a convolution. A circulant product is a circular convolution, i.e. a pointwise product of
spectra, O(n log n) with the FFT; a Toeplitz matrix is the leading block of a circulant twice as
large, so it reuses the same FFT product on zero-padded input. No dense matrix is ever built.

Conventions (per example, X: [L, d], same sides as :class:`~tokenmix.models.mixing.linear.LinearMixing`)::

    Y = W_seq @ X @ W_hid
    circulant: W[i, j] = c[(i - j) mod n]     c: n entries
    toeplitz:  W[i, j] = t[i - j + n - 1]     t: 2n - 1 entries, t[n - 1] on the diagonal

The official JAX code convolves the hidden axis from the left instead (``X @ W_hid.T``); that is
this map with the hidden vector reversed, an equally distributed reparameterisation at init.

The sequence vectors are sized for ``max_position_embeddings``. A shorter input (L < max) uses
``c[:L]`` (circulant: again a circulant, wrapping at L, so not the leading block of the full-length
matrix) and the central ``2L - 1`` entries of t, offsets -(L-1)..(L-1) (Toeplitz: exactly the
leading [L, L] block of the full matrix, as Linear mixing slices its matrix).

Like Fourier mixing, the transform runs in float32 even under bf16/fp16 autocast (half-precision
FFTs are restricted to power-of-two sizes on CUDA and lose precision over long sums) and is cast
back to the input dtype; float64 stays float64. Padding is mixed like any token, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from tokenmix.models.config import ModelConfig
from tokenmix.models.mixing.registry import Mixer, register_mixer
from tokenmix.models.tracing import is_tracing


def fast_fft_size(minimum: int) -> int:
    """Smallest 2^a 3^b 5^c >= ``minimum``: lengths pocketfft (CPU) and cuFFT transform fastest.
    (Such numbers are dense, so the search takes a few steps; no cache, which Dynamo would warn about.)"""
    size = max(minimum, 1)
    while True:
        rest = size
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return size
        size += 1


def _fft_product(x: torch.Tensor, column: torch.Tensor, transpose: bool):
    """The product along the last axis; also returns the two spectra (what the backward needs)."""
    n, size = column.shape[-1], x.shape[-1]
    x_spectrum, c_spectrum = torch.fft.rfft(x, n=n), torch.fft.rfft(column)
    if transpose:  # circ(c).T = circ(c[-k mod n]), whose spectrum is the conjugate for real c
        c_spectrum = c_spectrum.conj()
    return torch.fft.irfft(x_spectrum * c_spectrum, n=n)[..., :size], x_spectrum, c_spectrum


class _CirculantProduct(torch.autograd.Function):
    """Hand-written backward: autograd's rfft backward runs a full complex FFT (twice the work of a
    real one); here the input gradient is the transposed product and the column gradient a
    correlation, from one real FFT of the incoming gradient and the saved spectra (20-30% faster
    forward+backward on CPU)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, column: torch.Tensor, transpose: bool) -> torch.Tensor:
        y, x_spectrum, c_spectrum = _fft_product(x, column, transpose)
        ctx.save_for_backward(x_spectrum, c_spectrum)
        ctx.n, ctx.size, ctx.transpose = column.shape[-1], x.shape[-1], transpose
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x_spectrum, c_spectrum = ctx.saved_tensors
        grad_spectrum = torch.fft.rfft(grad.contiguous(), n=ctx.n)
        grad_x = grad_column = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.fft.irfft(grad_spectrum * c_spectrum.conj(), n=ctx.n)[..., : ctx.size]
        if ctx.needs_input_grad[1]:  # dL/dc[k] = sum_i g[i] x[i - k] (or x[i + k] when transposed)
            cross = (grad_spectrum * x_spectrum.conj()).reshape(-1, grad_spectrum.shape[-1]).sum(0)
            grad_column = torch.fft.irfft(cross.conj() if ctx.transpose else cross, n=ctx.n)
        return grad_x, grad_column, None


def circulant_matmul(x: torch.Tensor, column: torch.Tensor, dim: int = -1, transpose: bool = False) -> torch.Tensor:
    """``circ(column) @ x`` along axis ``dim`` of ``x`` via the FFT (``circ(column).T @ x`` if ``transpose``).

    ``circ(c)[i, j] = c[(i - j) mod n]`` with ``n = len(column) >= x.shape[dim]``. When n is larger,
    ``x`` is zero-padded to n along ``dim`` and the result cropped back, which multiplies by the
    leading [size, size] block of circ(c).
    """
    n, size = column.shape[-1], x.shape[dim]
    if n < size:
        raise ValueError(f"circulant of size {n} cannot multiply an axis of length {size}")
    # pocketfft is about twice as slow along a strided axis as along a contiguous one.
    x = x.movedim(dim, -1).contiguous()
    if torch.is_grad_enabled() and (x.requires_grad or column.requires_grad) and not is_tracing():
        y = _CirculantProduct.apply(x, column, transpose)
    else:  # plain ops: inference, and what a tracer (compile, export) should see
        y = _fft_product(x, column, transpose)[0]
    return y.movedim(-1, dim)


def toeplitz_matmul(x: torch.Tensor, diagonals: torch.Tensor, dim: int = -1, transpose: bool = False) -> torch.Tensor:
    """``T @ x`` along axis ``dim`` (``T.T @ x`` if ``transpose``), ``T[i, j] = diagonals[i - j + n - 1]``,
    n = x.shape[dim]; ``diagonals`` has 2n - 1 entries or more, of which the central 2n - 1 are used.

    T is the leading [n, n] block of the circulant of size N >= 2n - 1 whose first column holds
    offsets 0..n-1, then zeros, then offsets -(n-1)..-1 (wrapped to the end).
    """
    n = x.shape[dim]
    center = (diagonals.shape[-1] - 1) // 2
    if center < n - 1:
        raise ValueError(f"{diagonals.shape[-1]} diagonals cannot form a Toeplitz matrix of size {n}")
    t = diagonals[center - (n - 1) : center + n]
    zeros = t.new_zeros(fast_fft_size(2 * n - 1) - (2 * n - 1))
    return circulant_matmul(x, torch.cat([t[n - 1 :], zeros, t[: n - 1]]), dim, transpose)


class _StructuredMixing(Mixer):
    """``Y = W_seq X W_hid`` for x [batch, seq, hidden], with W_seq, W_hid given by the vectors
    ``seq_kernel``, ``hidden_kernel``."""

    onnx_exportable = False  # FFTs of learned vectors: ONNX has no complex tensors

    def __init__(self, config: ModelConfig, seq_params: int, hidden_params: int) -> None:
        super().__init__(config)
        self.max_len, self.hidden_size = config.max_position_embeddings, config.hidden_size
        self.seq_kernel = nn.Parameter(torch.empty(seq_params).normal_(0.0, config.initializer_range))
        self.hidden_kernel = nn.Parameter(torch.empty(hidden_params).normal_(0.0, config.initializer_range))

    def _matmul(self, x: torch.Tensor, kernel: torch.Tensor, dim: int, transpose: bool) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        seq_len, hidden = x.shape[-2:]
        if seq_len > self.max_len or hidden != self.hidden_size:
            raise ValueError(f"input of shape {tuple(x.shape)} does not fit a mixer built for at most "
                             f"{self.max_len} positions of width {self.hidden_size}")
        with torch.autocast(x.device.type, enabled=False):
            dtype = torch.promote_types(x.dtype, torch.float32)  # half -> float32; float64 stays
            # X W_hid = (W_hid^T X^T)^T: the hidden product is a transposed one along the last axis.
            # The hidden (contiguous) axis goes first: then only one transposed copy is made.
            y = self._matmul(x.to(dtype), self.hidden_kernel.to(dtype), -1, True)
            y = self._matmul(y, self.seq_kernel.to(dtype), -2, False)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, hidden_size={self.hidden_size}"


@register_mixer("circulant")
class CirculantMixing(_StructuredMixing):
    """Learned circulant W_seq (``max_position_embeddings`` entries) and W_hid (``hidden_size``)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, config.max_position_embeddings, config.hidden_size)

    def _matmul(self, x: torch.Tensor, kernel: torch.Tensor, dim: int, transpose: bool) -> torch.Tensor:
        return circulant_matmul(x, kernel[: x.shape[dim]], dim, transpose)


@register_mixer("toeplitz")
class ToeplitzMixing(_StructuredMixing):
    """Learned Toeplitz W_seq (2 * ``max_position_embeddings`` - 1 entries) and W_hid (2 * ``hidden_size`` - 1)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, 2 * config.max_position_embeddings - 1, 2 * config.hidden_size - 1)

    def _matmul(self, x: torch.Tensor, kernel: torch.Tensor, dim: int, transpose: bool) -> torch.Tensor:
        return toeplitz_matmul(x, kernel, dim, transpose)
