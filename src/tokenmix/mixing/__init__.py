"""Token-mixing sublayers, one file per kind, each registered under the name used by ``ModelConfig.mixing``.

Every mixer is an ``nn.Module`` built from a :class:`~tokenmix.config.ModelConfig` whose
``forward(x, padding_mask)`` maps ``[batch, seq, hidden]`` to the same shape. ``padding_mask`` is a
bool ``[batch, seq]`` tensor (True = real token) or None when nothing is padded; mixers that honour it
set ``uses_padding_mask = True`` (only attention does: the official mixing layers mix padding too).
"""

from __future__ import annotations

from typing import Callable

from torch import nn

_MIXERS: dict[str, type[nn.Module]] = {}


def register_mixer(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MIXERS:
            raise ValueError(f"mixer {name!r} is already registered")
        _MIXERS[name] = cls
        return cls

    return decorate


def get_mixer(name: str) -> type[nn.Module]:
    try:
        return _MIXERS[name]
    except KeyError:
        raise ValueError(f"unknown mixing {name!r}; available: {', '.join(sorted(_MIXERS))}") from None


def list_mixers() -> list[str]:
    return sorted(_MIXERS)


# Importing the modules registers their mixers.
from . import attention, fourier, identity, linear, structured  # noqa: E402,F401

__all__ = ["get_mixer", "list_mixers", "register_mixer"]
