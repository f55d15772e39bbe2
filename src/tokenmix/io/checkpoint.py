"""Saving and loading models: ``config.json`` + ``model.safetensors``.

Weights only travel as safetensors (or, for foreign files, ``torch.load(weights_only=True)``), so
loading never runs code from a file. Files are written to a temporary name and renamed, so an
interrupted save never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tokenmix.io.files import atomic_write, read_json
from tokenmix.models.config import ModelConfig
from tokenmix.models.registry import list_models
from tokenmix.version import __version__

M = TypeVar("M", bound=nn.Module)
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Where later pipelines put a model inside a run directory, in order of preference.
_RUN_SUBDIRS = ("model", "best", "final")


def save_pretrained(model: nn.Module, directory: str | Path) -> Path:
    """Save a model that has a ``config`` (a :class:`ModelConfig`)."""
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise TypeError(f"save_pretrained needs a tokenmix model (with a ModelConfig `config`), got {type(model).__name__}")
    return save_weights(config, model.state_dict(), directory)


def save_weights(config: ModelConfig, state: dict[str, torch.Tensor], directory: str | Path) -> Path:
    """Write a model folder from a config and a (full, unwrapped) state dict."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt", "tokenmix": __version__}))
    payload = {"format": "tokenmix", "tokenmix_version": __version__, **config.to_dict()}
    atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2) + "\n"))
    return directory


def find_model_dir(path: str | Path) -> Path:
    """The directory holding config.json + model.safetensors: ``path`` itself, or inside a run
    directory ``model/``, ``best/``, ``final/`` or the newest ``checkpoints/*`` / ``checkpoint-*``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such model directory: {path}")
    if path.is_file():
        raise ValueError(f"{path} is a file; pass the directory that holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    if (path / CONFIG_NAME).is_file():
        return path
    candidates = [path / name for name in _RUN_SUBDIRS]
    # Step-numbered names (zero-padded) sort by step; names starting with "." are unfinished writes.
    candidates += sorted((p for p in (*path.glob("checkpoints/*"), *path.glob("checkpoint-*")) if not p.name.startswith(".")),
                         key=lambda p: p.name, reverse=True)
    for candidate in candidates:
        if (candidate / CONFIG_NAME).is_file() and (candidate / WEIGHTS_NAME).is_file():
            return candidate
    hugging_face = (path / "pytorch_model.bin").exists() or (path / "flax_model.msgpack").exists()
    raise FileNotFoundError(f"no {CONFIG_NAME} in {path} (nor in a run subdirectory); {_model_folder_fix(path, hugging_face)}")


def _model_folder_fix(path: Path, hugging_face: bool) -> str:
    """What to do about a folder that holds no tokenmix model, in commands: convert a Hugging Face folder,
    else name a folder that a tokenmix command wrote (or convert a checkpoint into one)."""
    if hugging_face:
        return f"it looks like a Hugging Face folder: convert it with `tokenmix convert from-hf {path} DST` and pass DST"
    return ("give a folder written by `tokenmix pretrain`, `tokenmix finetune` or `tokenmix distill` (or its run folder), "
            "or convert a checkpoint into one with `tokenmix convert from-hf` or `tokenmix convert from-official`")


def read_config(directory: Path) -> ModelConfig:
    data = read_json(directory / CONFIG_NAME, fix="re-save the model")
    if data.pop("format", None) != "tokenmix":
        raise ValueError(f"{directory / CONFIG_NAME} is not a tokenmix config; "
                         f"{_model_folder_fix(directory, 'model_type' in data)}")
    data.pop("tokenmix_version", None)
    config = ModelConfig.from_dict(data)
    if config.variant not in list_models():  # another tokenmix's variant, or an edited file: not this model
        raise ValueError(f"{directory / CONFIG_NAME} names the variant {config.variant!r}, which this tokenmix does not "
                         f"know (known: {', '.join(list_models())}); use the tokenmix that wrote it, or register it")
    return config


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"missing weights file {path}")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt headers/data
        raise ValueError(f"{path} is not a readable safetensors file ({err}); it is corrupt, truncated or "
                         f"foreign: write it again with the command that made it (`tokenmix pretrain`, `finetune`, "
                         f"`distill` or `convert`)") from None


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, required: str = "") -> None:
    """Copy ``state`` into ``model`` after checking names and shapes; errors name every mismatch.
    Every tensor whose name starts with ``required`` must be present (default: all of them); the
    others keep their initialisation."""
    expected = model.state_dict()
    mismatched = [f"{name}: checkpoint {tuple(state[name].shape)} vs model {tuple(t.shape)}"
                  for name, t in expected.items() if name in state and state[name].shape != t.shape]
    if mismatched:
        raise ValueError(f"shape mismatch loading {source}: " + "; ".join(mismatched[:5])
                         + (f" (+{len(mismatched) - 5} more)" if len(mismatched) > 5 else "")
                         + "; the checkpoint was saved with a different size configuration")
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(name for name in set(expected) - set(state) if name.startswith(required))
    if unexpected or missing:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing[:5])}" + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
        if unexpected:
            problems.append(f"unexpected {', '.join(unexpected[:5])}" + (f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else ""))
        raise ValueError(f"{source} does not match the model: {'; '.join(problems)}")
    model.load_state_dict(state, strict=False)


def load_model(path: str | Path, build: Callable[[ModelConfig], M], variant: str | None = None,
               **overrides: object) -> M:
    """Read the model folder at ``path`` (or a run directory's model) into ``build(config)``.

    ``variant`` checks the saved variant (e.g. refuse a BERT checkpoint where FNet was expected).
    ``overrides`` change config fields; ``head=`` swaps the task head: the encoder is loaded and a new
    head is initialised (e.g. a pretraining checkpoint into ``head="classification"``).
    """
    directory = find_model_dir(path)
    saved = read_config(directory)
    if variant is not None and variant != saved.variant:
        raise ValueError(f"{directory} holds a {saved.variant!r} model, not {variant!r}; "
                         f"load it without variant= or pick a {variant!r} checkpoint")
    config = saved.replace(**overrides)
    model = build(config)
    state = read_safetensors(directory / WEIGHTS_NAME)
    if config.head != saved.head:  # keep the encoder, drop the old head, initialise the new one
        state = {name: t for name, t in state.items() if name.startswith("encoder.")}
        load_weights(model, state, str(directory), required="encoder.")
    else:
        load_weights(model, state, str(directory))
    return model
