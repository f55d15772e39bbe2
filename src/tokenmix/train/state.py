"""Training checkpoints: model folder (loadable by ``tokenmix.load_pretrained``) + optimizer, step and
RNG states, written to a hidden temporary directory and renamed into place, keeping the last k.

Every checkpoint carries ``manifest.json`` (size and sha256 of each file, written last): a resume takes
the newest checkpoint that still matches it and says which newer ones it skipped and why (a disk that
filled up, a copy cut short), and removes the temporaries of saves that never finished.

State dicts go through ``torch.distributed.checkpoint.state_dict``, which gives the same full,
unwrapped dicts for a plain model, DDP and FSDP; the training state is read back with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from tokenmix.io.checkpoint import read_config, read_safetensors, save_weights
from tokenmix.io.files import LOCK_NAME, ensure_writable, file_sha256, read_json, write_json
from tokenmix.models.config import ModelConfig
from tokenmix.text.prepare import recorded_path

CHECKPOINTS = "checkpoints"
RECORD = "train_config.json"  # a run's settings, written before its first step
SUMMARY = "summary.json"  # a finished pretraining run's
STATE_NAME = "training_state.pt"
MANIFEST = "manifest.json"
# Settings a resumed run may change: they decide where and how often things are written or how long it
# runs now, never what the weights of a step are.
RESUMABLE_CHANGES = frozenset({"resume", "overwrite", "out", "device", "max_time", "keep_checkpoints", "save_every",
                               "log_every", "eval_every", "eval_batches", "eval_batch_size", "compile"})
# The way out of a diverged run (resume from the last good checkpoint with a lower learning rate or
# clipping): accepted on resume, with a note that the run now differs from an uninterrupted one.
RECOVERY_CHANGES = frozenset({"learning_rate", "clip_grad_norm"})
_OPTIONS = StateDictOptions(full_state_dict=True, cpu_offload=True)


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    return sorted(p for p in (run_dir / CHECKPOINTS).glob("step_*") if (p / STATE_NAME).is_file())


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def gather_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full model and optimizer state dicts (collective under FSDP: call on every rank)."""
    return get_state_dict(model, optimizer, options=_OPTIONS)


def save_checkpoint(run_dir: Path, config: ModelConfig, model_state: dict, optimizer_state: dict, step: int,
                    extra: dict[str, Any], keep: int) -> Path:
    final = run_dir / CHECKPOINTS / f"step_{step:08d}"
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_weights(config, model_state, tmp)
        torch.save({"step": step, "optimizer": optimizer_state, "rng": rng_states(), **extra}, tmp / STATE_NAME)
        write_json(tmp / MANIFEST, {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
                                    for p in sorted(tmp.iterdir()) if p.is_file()})
    except (OSError, RuntimeError) as err:  # torch reports a full disk as RuntimeError("... file write failed")
        shutil.rmtree(tmp, ignore_errors=True)
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip().splitlines()[-1]
        raise OSError(getattr(err, "errno", None) or errno.EIO,
                      f"cannot write the checkpoint of step {step} ({reason}); is the disk full? The previous "
                      f"checkpoints are intact: free space, then continue with --resume", str(final)) from err
    if final.exists():  # the same step saved again after a resume: replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint ``path`` cannot be trusted (a missing, resized or altered file), or None. One
    without a manifest was saved by an older tokenmix (a save now renames it into place only after the
    manifest is written) and is taken as it is."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{MANIFEST} is damaged"
    for name, entry in manifest.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != entry["bytes"]:
            return f"{name} has {file.stat().st_size} bytes, {entry['bytes']} were written"
        if file_sha256(file) != entry["sha256"]:
            return f"{name} does not match its checksum"
    return None


def newest_sound_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint that verifies against its manifest; each newer one skipped is named, with
    the reason, on stderr."""
    skipped: list[str] = []
    for path in reversed(checkpoint_dirs(run_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            for note in skipped:
                print(f"tokenmix: note: skipped checkpoint {note}; resuming from {path.name}", file=sys.stderr)
            return path
        skipped.append(f"{path} ({problem})")
    raise FileNotFoundError(f"--resume: no intact checkpoint in {run_dir / CHECKPOINTS} "
                            f"({'; '.join(skipped) or 'none saved'}); start again with --overwrite")


def remove_orphans(run_dir: Path) -> list[Path]:
    """Delete the temporary folders of checkpoint saves that never finished (their process died);
    the caller holds the run's lock, so no save is in progress."""
    orphans = sorted((run_dir / CHECKPOINTS).glob(".step_*.tmp-*"))
    for orphan in orphans:
        shutil.rmtree(orphan, ignore_errors=True)
    return orphans


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, expected: ModelConfig) -> dict[str, Any]:
    """Load weights + optimizer into (possibly wrapped) ``model``; returns the training state."""
    saved = read_config(path)
    if saved != expected:
        diff = [f"{k}: checkpoint {v!r} vs now {getattr(expected, k)!r}" for k, v in saved.to_dict().items()
                if getattr(expected, k) != v]
        raise ValueError(f"cannot resume from {path}: the model config differs ({'; '.join(diff)}); "
                         f"use the same --model/--preset/--override settings or a new --out directory")
    try:
        state = torch.load(path / STATE_NAME, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError) as err:  # a checkpoint from before manifests, damaged since
        raise ValueError(f"{path / STATE_NAME} is unreadable ({str(err).strip().splitlines()[0]}); delete {path} to "
                         f"resume from the checkpoint before it") from None
    weights: dict[str, Any] = read_safetensors(path / "model.safetensors")
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True))
    # AdamW creates a parameter's state at its first gradient, so a parameter that has had none yet (an
    # expert no token was routed to, a pooler the loss does not use) was saved without state. Loading is
    # therefore not strict, and the zero state the loader makes up for it is dropped again: its first
    # gradient must start Adam's bias correction at step 1, as in a run that was never interrupted.
    set_optimizer_state_dict(model, optimizer, state["optimizer"],
                             options=StateDictOptions(full_state_dict=True, strict=False))
    with_state = state["optimizer"]["state"]
    for name, parameter in model.named_parameters():
        if name.removeprefix("module.").replace("_orig_mod.", "") not in with_state:
            optimizer.state.pop(parameter, None)
    return state


class StopSignal:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the end of the step and stops."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def refuse_changed_settings(run_dir: Path, record: dict[str, Any]) -> None:
    """Refuse to resume with settings that differ from the run's ``train_config.json`` where that would
    make the resumed run differ from an uninterrupted one; the error lists them as ``name: before -> now``."""
    path = run_dir / RECORD
    try:
        before = json.loads(path.read_text())
    except FileNotFoundError:
        return
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is damaged ({err}); start again with --overwrite") from None
    now = json.loads(json.dumps(record))  # tuples as lists, as they were written
    if before.get("data"):  # older runs recorded --data as given: compare where it points
        before["data"] = str(recorded_path(before["data"], run_dir).resolve())
    # Under the time-budget schedule the budget shapes the learning rate, so it must stay as it was.
    free = RESUMABLE_CHANGES - {"max_time"} if before.get("schedule") == "budget" else RESUMABLE_CHANGES
    changed = [f"{name}: {before[name]!r} -> {value!r}" for name, value in now.items()
               if name in before and name not in free and before[name] != value]  # new fields: not recorded
    recovery = [change for change in changed if change.split(":")[0] in RECOVERY_CHANGES]
    if recovery:
        print(f"tokenmix: note: resuming with {'; '.join(recovery)}: from here on the run differs from an "
              f"uninterrupted one", file=sys.stderr)
        changed = [change for change in changed if change not in recovery]
    if changed:
        raise ValueError(f"--resume with other settings than the run in {run_dir} ({'; '.join(changed)}) would not "
                         f"continue it exactly; use its settings, or a new --out")


def finished_summary(run_dir: Path, resume: bool, record: dict[str, Any], name: str = SUMMARY) -> dict[str, Any] | None:
    """With ``--resume`` (and the run's settings), the summary of a run that already finished: it is
    left untouched (not run, not rewritten), and a note says so."""
    path = run_dir / name
    if not resume or not path.is_file():
        return None
    refuse_changed_settings(run_dir, record)
    print(f"tokenmix: note: the run in {run_dir} has finished; nothing to resume (its {name} is kept as it is)",
          file=sys.stderr)
    summary: dict[str, Any] = read_json(path)
    return summary


def run_state(run_dir: Path, finished: str = SUMMARY) -> str | None:
    """``"finished"`` (its ``finished`` summary is written), ``"started"`` (it logged a step or saved a
    checkpoint: a run that died before its first checkpoint too) or None (no run there)."""
    if (run_dir / finished).is_file():
        return "finished"
    return "started" if (run_dir / "metrics.jsonl").exists() or checkpoint_dirs(run_dir) else None


def _holds_run(folder: Path, state: str) -> ValueError:
    return ValueError(f"{folder} already holds a {state} run; pass --resume to continue it or --overwrite to start "
                      f"over, or choose another --out")


def claim_run_folder(out: str | Path, resume: bool, overwrite: bool, finished: str,
                     run_dirs: Callable[[Path], Iterable[Path]] = lambda out: (out,)) -> Path:
    """Check ``--out`` before any data is read or model built: a file, or (without --resume or --overwrite)
    a folder holding anything, is refused -- a started or ``finished`` run in one of ``run_dirs(out)``, or
    files a tokenmix run did not write, which a run would mix its own with -- and so is an unwritable
    folder. The lock and the settings of a run that stopped before its first step do not count."""
    out = Path(out)
    taken = sorted(p.name for p in out.iterdir() if p.name not in (LOCK_NAME, RECORD)) if out.is_dir() else []
    if taken and not (resume or overwrite):
        states = {state for d in run_dirs(out) if (state := run_state(d, finished))}
        if not states:
            raise ValueError(f"--out {out} already holds other files ({', '.join(taken[:3])}{', ...' if len(taken) > 3 else ''}); "
                             f"choose another folder, or pass --overwrite to write there anyway")
        raise _holds_run(out, "finished" if states == {"finished"} else "started")
    return ensure_writable(out, directory=True, flag="--out")


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool, record: dict[str, Any], is_main: bool = True,
                    finished: str = SUMMARY) -> Path:
    """Check ``run_dir`` against --resume/--overwrite (never silently reuse or wipe a run; a resumed
    run keeps every setting that decides its weights), then record the run's settings in
    ``train_config.json``. A run started over loses its ``finished`` summary first, so that one killed
    before its end is never taken for finished. The caller holds the folder's
    :class:`~tokenmix.io.files.FolderLock`."""
    state = run_state(run_dir, finished)
    if resume and not checkpoint_dirs(run_dir):
        fix = "it died before its first checkpoint: start again with --overwrite" if state else "start without --resume"
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / CHECKPOINTS}; {fix}")
    if resume:
        refuse_changed_settings(run_dir, record)
    if is_main and run_dir.exists():
        remove_orphans(run_dir)
    if not resume and state:
        if not overwrite:
            raise _holds_run(run_dir, state)
        if is_main:
            shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
            for name in ("metrics.jsonl", finished):
                (run_dir / name).unlink(missing_ok=True)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / RECORD, record)
    return run_dir
