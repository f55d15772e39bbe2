"""Measured choice between equivalent implementations (``fourier_impl="auto"``), cached on disk.

Which of FFT and DFT-matmul is faster depends on the device, the sequence length, the hidden size and
the dtype (cuFFT vs tensor-core matmuls on GPUs, pocketfft vs MKL/oneDNN on CPUs), so ``auto`` never
guesses: the first call for a key times every candidate on the actual input (interleaved, best of a
few runs, after a warm-up that builds the DFT matrices and FFT plans) and keeps the fastest. The
answer is memoised in-process (a dict lookup per call afterwards) and stored in
``$TOKENMIX_CACHE/autotune.json`` (default ``~/.cache/tokenmix``), keyed with the device name, the
torch version and the candidates, so later processes skip the measurement. The forward pass alone is timed: the
transforms are self-adjoint, so the backward pass is the same computation.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tokenmix.devices import device_name, synchronize
from tokenmix.io.files import CACHE_ENV, cache_dir, write_json

REPEATS = 3

_choices: dict[tuple, str] = {}
timer: Callable[[], float] = time.perf_counter  # tests substitute a fake clock


def cache_file() -> Path:
    return cache_dir() / "autotune.json"


def fastest(kind: str, device: torch.device, seq_len: int, d: int, dtype: torch.dtype,
            candidates: Callable[[], dict[str, Callable[[], Any]]]) -> str:
    """Name of the fastest of ``candidates()`` (name -> zero-argument callable) for this key."""
    memo_key = (kind, device, seq_len, d, dtype)
    choice = _choices.get(memo_key)
    if choice is None:
        fns = candidates()
        key = (f"{kind} | {device_name(device)} | L={seq_len} d={d} | {str(dtype).removeprefix('torch.')} | "
               f"torch {torch.__version__} | {','.join(sorted(fns))}")
        choice = _load().get(key, {}).get("choice")
        if choice not in fns:
            ms = measure(fns, device)
            choice = min(ms, key=ms.__getitem__)
            _store(key, {"choice": choice, "ms": ms})
        _choices[memo_key] = choice
    return choice


def measure(fns: dict[str, Callable[[], Any]], device: torch.device, repeats: int = REPEATS) -> dict[str, float]:
    """Best-of-``repeats`` milliseconds per candidate, runs interleaved so that background load
    affects all of them alike."""
    best = dict.fromkeys(fns, float("inf"))
    with torch.no_grad():
        for fn in fns.values():
            fn()  # warm-up: matrices, FFT plans, kernel selection
        for _ in range(repeats):
            for name, fn in fns.items():
                synchronize(device)
                start = timer()
                fn()
                synchronize(device)
                best[name] = min(best[name], (timer() - start) * 1e3)
    return {name: round(ms, 4) for name, ms in best.items()}


def _load() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):  # no cache yet, or an unreadable one: measure again
        return {}
    return data if isinstance(data, dict) else {}


def _store(key: str, entry: dict[str, Any]) -> None:
    try:
        write_json(cache_file(), {**_load(), key: entry})  # merge: other processes may have added keys
    except OSError as err:
        warnings.warn(f"could not write the autotune cache {cache_file()} ({err}); the choice is kept in this "
                      f"process only. Set {CACHE_ENV} to a writable folder.", stacklevel=3)


def clear_memo() -> None:
    """Forget the in-process choices (the disk cache stays)."""
    _choices.clear()


def choices() -> dict[tuple, str]:
    """The choices made in this process: (kind, device, seq_len, d, dtype) -> implementation."""
    return dict(_choices)
