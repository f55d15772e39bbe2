"""Timing and peak-memory measurement shared by the demo and the benchmarks, and the one harness
that runs a measurement in a fresh process (:func:`run_isolated`).

Peak memory on CUDA comes from the caching allocator (``torch.cuda.max_memory_allocated``). On CPU
there is no allocator counter, so we read the process's peak resident set size and subtract the
size at the start of the measurement; that is only meaningful in a fresh process, which is why
:func:`run_isolated` runs a measurement in a newly spawned interpreter. That process can also be
given a time limit and an address-space cap, so a configuration that is too large fails on its own
(classified by :func:`resource_error` as "out of memory" / "time budget") instead of stalling the
run or waking the kernel's OOM killer on a shared machine. Any other failure of the child is an
error, reported with the child's own message.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import resource
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from tokenmix.devices import synchronize


def enable_tf32(device: torch.device) -> bool:
    """Let float32 matmuls and convolutions use TF32 tensor cores (Ampere and newer GPUs); returns
    whether TF32 is in effect. Left alone on other devices (on CPU the setting may select bf16
    kernels, which would change what is measured)."""
    if device.type != "cuda" or torch.cuda.get_device_capability(device)[0] < 8:
        return False
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    return True


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


def fit_exponent(lengths: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of log(value) against log(length), to 3 decimals: value ~ length^slope
    (~1 for memory linear in the length, ~2 for quadratic attention). None with fewer than two points."""
    if len(lengths) < 2:
        return None
    slope, _ = np.polyfit(np.log(lengths), np.log(values), 1)
    return round(float(slope), 3)


# --- the isolated process --------------------------------------------------------------------------

class WorkerDied(RuntimeError):
    """The measurement process ended without an answer. Killed by SIGKILL it was, on Linux, almost
    certainly the kernel's OOM killer; any other death is an error (see the child's output above)."""

    def __init__(self, exitcode: int | None) -> None:
        self.killed = exitcode == -signal.SIGKILL
        cause = "it was killed, most likely by the kernel's OOM killer" if self.killed else "see its error output above"
        super().__init__(f"the measurement process died (exit code {exitcode}) without a result; {cause}")


OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "bad_alloc")


def resource_error(err: BaseException) -> str | None:
    """"out of memory" or "time budget" when ``err`` says a configuration was too large for the
    machine (benchmarks record it and go on), None for a real error."""
    if isinstance(err, TimeoutError):
        return "time budget"
    if isinstance(err, WorkerDied):
        return "out of memory" if err.killed else None
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)) or any(m in str(err).lower() for m in OOM_MESSAGES):
        return "out of memory"
    return None


def run_isolated(fn: Callable[..., Any], *args: Any, timeout: float | None = None, memory_limit: int | None = None,
                 on_progress: Callable[[Any], None] | None = None, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in a freshly spawned Python process and return its result.

    ``fn`` must be importable (a module-level function); its exceptions are re-raised here, and so is
    one raised while the child imports ``fn`` and unpickles the arguments. ``timeout`` (seconds, from
    the start): the process is killed and TimeoutError raised. ``memory_limit`` (bytes): the child's
    address space may grow by at most this much (Linux), so allocations beyond it fail in the child.
    ``on_progress`` receives every value the child passes to :func:`report_progress`. A child that
    dies without answering raises :class:`WorkerDied`. The child dies with this process."""
    payload = pickle.dumps((fn, args, kwargs))
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, os.getpid(), payload, memory_limit), daemon=True)
    process.start()
    sender.close()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not receiver.poll(left):  # poll also returns at once when the child is gone (end of file)
                raise TimeoutError(f"{getattr(fn, '__name__', 'measurement')} did not finish within {timeout:g} s")
            try:
                kind, value = receiver.recv()
            except EOFError:
                process.join()
                raise WorkerDied(process.exitcode) from None
            if kind != "progress":
                break
            if on_progress is not None:
                on_progress(value)
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    if kind == "ok":
        return value
    raise value


_to_parent: Connection | None = None  # set in an isolated child only


def report_progress(value: Any) -> None:
    """Pass ``value`` (e.g. a step's duration) to the parent's ``on_progress``, which still has it if
    the run then goes over its time budget; a no-op outside :func:`run_isolated`."""
    if _to_parent is not None:
        _to_parent.send(("progress", value))


def die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this process when its parent dies, even by SIGKILL (``daemon=True``
    only covers a parent that exits normally), so no orphan keeps measuring and skews later runs."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: nothing to arm
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _cap_address_space(limit: int) -> None:
    """Let the address space grow by at most ``limit`` bytes from here (no /proc, e.g. macOS: no cap)."""
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (used + limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (OSError, ValueError):
        pass


def _portable(err: BaseException) -> BaseException:
    """``err`` if it survives pickling (the parent re-raises it as is), else a RuntimeError with its message."""
    try:
        return pickle.loads(pickle.dumps(err))
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")


def _child(conn: Connection, parent: int, payload: bytes, memory_limit: int | None) -> None:
    global _to_parent
    die_with_parent(parent)
    # A spawned child's multiprocessing objects are of the spawn kind, which the parent's resource tracker
    # follows: the process-shared lock tqdm would make for a progress bar here outlives the child's exit,
    # and the parent ends with "resource_tracker: ... leaked semaphore objects". Bars in this one process
    # need only a thread lock.
    tqdm.set_lock(threading.RLock())
    try:
        fn, args, kwargs = pickle.loads(payload)  # imports fn's module (and torch) before the cap
        if memory_limit:
            _cap_address_space(memory_limit)
        _to_parent = conn
        result: tuple[str, Any] = ("ok", fn(*args, **kwargs))
    except BaseException as err:  # sent to the parent, which re-raises it
        result = ("error", _portable(err))
    try:
        conn.send(result)
    except Exception as err:  # an unpicklable result
        conn.send(("error", RuntimeError(f"the result of the measurement cannot be sent back: {err}")))
    conn.close()
