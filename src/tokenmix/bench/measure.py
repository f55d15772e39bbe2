"""Timing and peak-memory measurement shared by the demo and the benchmarks.

Peak memory on CUDA comes from the caching allocator (``torch.cuda.max_memory_allocated``). On CPU
there is no allocator counter, so we read the process's peak resident set size and subtract the
size at the start of the measurement; that is only meaningful in a fresh process, which is why
:func:`run_isolated` runs a measurement in a newly spawned interpreter. That process can also be
given a time limit and an address-space cap, so a configuration that is too large fails on its own
(reported as "out of memory" / "time budget") instead of stalling the run or waking the kernel's
OOM killer on a shared machine.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if visible, else cpu; anything else must exist on this machine."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} requested but no CUDA GPU is visible; use --device cpu")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {device} requested but only {count} CUDA GPU(s) are visible "
                             f"(cuda:0..cuda:{count - 1}); pick one of those or --device cpu")
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device} requested but Apple MPS is not available; use --device cpu")
    elif resolved.type != "cpu":
        backend = getattr(torch, resolved.type, None)
        if backend is None or not getattr(backend, "is_available", lambda: False)():
            raise ValueError(f"device {device} is not available on this machine; use --device cpu or cuda")
    return resolved


def enable_tf32(device: torch.device) -> bool:
    """Let float32 matmuls and convolutions use TF32 tensor cores (Ampere and newer GPUs); returns
    whether TF32 is in effect. Left alone on other devices (on CPU the setting may select bf16
    kernels, which would change what is measured)."""
    if device.type != "cuda" or torch.cuda.get_device_capability(device)[0] < 8:
        return False
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    return True


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def _current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


class PeakMemory:
    """``with PeakMemory(device) as mem: ...`` then ``mem.bytes``: the peak memory the block added."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = _current_rss() if os.path.exists("/proc/self/statm") else _peak_rss()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self.bytes = max(_peak_rss() - self._base, 0)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Run ``step`` ``warmup`` times untimed, then ``repeats`` times; return milliseconds per run."""
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


class WorkerDied(RuntimeError):
    """The measurement process ended without an answer (on Linux: usually killed by the OOM killer)."""


def resource_error(err: BaseException) -> str | None:
    """"out of memory" or "time budget" when ``err`` says a configuration was too large for the
    machine (benchmarks record it and go on), None for a real error."""
    if isinstance(err, TimeoutError):
        return "time budget"
    text = str(err).lower()
    if isinstance(err, (torch.OutOfMemoryError, MemoryError, WorkerDied)) or "out of memory" in text \
            or "can't allocate memory" in text or "cannot allocate memory" in text:
        return "out of memory"
    return None


def run_isolated(fn: Callable[..., Any], *args: Any, timeout: float | None = None, memory_limit: int | None = None,
                 **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in a freshly spawned Python process and return its result.
    ``fn`` must be importable (a module-level function); its exceptions are re-raised here.
    ``timeout`` (seconds): the process is killed and TimeoutError raised. ``memory_limit`` (bytes):
    the child's address space may grow by at most this much (Linux), so allocations beyond it raise
    an out-of-memory error in the child. A child that dies without answering raises WorkerDied."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, fn, args, kwargs, memory_limit), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise TimeoutError(f"{getattr(fn, '__name__', 'measurement')} did not finish within {timeout:g} s")
        try:
            ok, value = receiver.recv()
        except EOFError:
            process.join()
            raise WorkerDied(f"the measurement process died (exit code {process.exitcode}) without a result; "
                             "most likely it ran out of memory") from None
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    if ok:
        return value
    raise value


def _child(conn: Any, fn: Callable[..., Any], args: tuple, kwargs: dict, memory_limit: int | None) -> None:
    try:
        if memory_limit:
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (used + memory_limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        result = (True, fn(*args, **kwargs))
    except BaseException as err:  # sent to the parent, which re-raises it
        result = (False, err)
    try:
        conn.send(result)
    except Exception:  # an unpicklable result or exception
        conn.send((False, RuntimeError(f"{type(result[1]).__name__}: {result[1]}")))
    conn.close()
