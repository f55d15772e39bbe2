"""Training checkpoints: model folder (loadable by ``tokenmix.load_pretrained``) + optimizer, step and
RNG states, written to a hidden temporary directory and renamed into place, keeping the last k.

State dicts go through ``torch.distributed.checkpoint.state_dict``, which gives the same full,
unwrapped dicts for a plain model, DDP and FSDP; the training state is read back with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_state_dict,
)

from tokenmix.io.checkpoint import read_config, read_safetensors, save_weights
from tokenmix.io.files import write_json
from tokenmix.models.config import ModelConfig

CHECKPOINTS = "checkpoints"
STATE_NAME = "training_state.pt"
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
    save_weights(config, model_state, tmp)
    torch.save({"step": step, "optimizer": optimizer_state, "rng": rng_states(), **extra}, tmp / STATE_NAME)
    if final.exists():  # the same step saved again after a resume: replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, expected: ModelConfig) -> dict[str, Any]:
    """Load weights + optimizer into (possibly wrapped) ``model``; returns the training state."""
    saved = read_config(path)
    if saved != expected:
        diff = [f"{k}: checkpoint {v!r} vs now {getattr(expected, k)!r}" for k, v in saved.to_dict().items()
                if getattr(expected, k) != v]
        raise ValueError(f"cannot resume from {path}: the model config differs ({'; '.join(diff)}); "
                         f"use the same --model/--preset/--override settings or a new --out directory")
    state = torch.load(path / STATE_NAME, map_location="cpu", weights_only=True)
    weights: dict[str, Any] = read_safetensors(path / "model.safetensors")
    set_state_dict(model, optimizer, model_state_dict=weights,

                   optim_state_dict=state["optimizer"], options=StateDictOptions(full_state_dict=True))
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


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool, record: dict[str, Any], is_main: bool = True) -> Path:
    """Check ``run_dir`` against --resume/--overwrite (never silently reuse or wipe a run), then
    record the run's settings in ``train_config.json``."""
    finished = (run_dir / "summary.json").exists()
    started = bool(checkpoint_dirs(run_dir)) if run_dir.exists() else False
    if resume and not started:
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / CHECKPOINTS}; start without --resume")
    if not resume and (finished or started):
        if not overwrite:
            state = "finished" if finished else "started"
            raise ValueError(f"{run_dir} already holds a {state} run; pass --resume to continue it or --overwrite to start over")
        if is_main:
            shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
            for name in ("metrics.jsonl", "summary.json"):
                (run_dir / name).unlink(missing_ok=True)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "train_config.json", record)
    return run_dir
