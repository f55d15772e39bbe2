"""Token-mixing sublayers, one file per kind, each registered under the name used by ``ModelConfig.mixing``.

Every mixer is an ``nn.Module`` built from a :class:`~tokenmix.models.config.ModelConfig` whose
``forward(x, padding_mask)`` maps ``[batch, seq, hidden]`` to the same shape. ``padding_mask`` is a
bool ``[batch, seq]`` tensor (True = real token) or None when nothing is padded; mixers that honour it
set ``uses_padding_mask = True`` (only attention does: the official mixing layers mix padding too).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from torch import nn

_MIXERS: dict[str, type[nn.Module]] = {}


def register_mixer(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MIXERS:
            raise ValueError(f"mixer {name!r} is already registered")
        _MIXERS[name] = cls
        return cls

    return decorate


def _discover() -> None:
    """Import every module of this package once: each registers its mixers when imported, so a new
    mixing is one new file, with no import list to edit."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name != "registry":
            importlib.import_module(f"tokenmix.models.mixing.{module.name}")


def get_mixer(name: str) -> type[nn.Module]:
    if name not in _MIXERS:
        _discover()
    try:
        return _MIXERS[name]
    except KeyError:
        raise ValueError(f"unknown mixing {name!r}; available: {', '.join(sorted(_MIXERS))}") from None


def list_mixers() -> list[str]:
    _discover()
    return sorted(_MIXERS)


__all__ = ["get_mixer", "list_mixers", "register_mixer"]
