"""Token-mixing sublayers: the :class:`Mixer` base class (with the traits every mixer declares) and the
registry that maps ``ModelConfig.mixing`` names to mixer classes.

Adding a mixing is one new file in this package, ``@register_mixer("name") class MyMixing(Mixer)``,
plus one ``register_variant`` line in :mod:`tokenmix.models.registry` if it deserves a named model. No
import list to edit (:func:`_discover` imports every module of the package), and no special cases
elsewhere: the encoder, fine-tuning and ONNX export read the class traits instead of testing names.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

import torch
from torch import nn

from tokenmix.models.config import ModelConfig


class Mixer(nn.Module):
    """Base of every token-mixing sublayer: built from a :class:`ModelConfig`, ``forward(x, padding_mask)``
    maps ``x`` [batch, seq, hidden] to the same shape; ``padding_mask`` is a bool [batch, seq] tensor
    (True = real token) or None when nothing is padded.

    Traits, class attributes that callers read instead of testing mixing names (the defaults are the
    safe choices for a transform that mixes whole sequences):

    ``uses_padding_mask`` (False)
        ``forward`` honours ``padding_mask`` (attention masks padded keys). Mixers that ignore it mix
        padding like any token, as the official FNet code does; ``pad_mixing="zero"`` then zeroes the
        padded positions before them.
    ``length_dependent`` (True)
        The output depends on how far the input is padded: a fixed transform over the whole length (a
        DFT, an [L, L] matrix) is a different function at another length. Models with such a layer are
        fed one fixed length (fine-tuning, prediction) and exported to ONNX for one length.
    ``length_sized_parameters`` (True)
        Its weights are sized by the sequence length (an [L, L] matrix, a length-L kernel), so it is
        trained for one length. False (Fourier, Hartley: the same parameter-free transform at any
        length) lets fine-tuning and prediction mix each example at its own bucketed length.
    ``onnx_exportable`` (True)
        The exporter can express it; False makes ``tokenmix export onnx`` refuse the model up front.
    ``options`` (none)
        The :class:`ModelConfig` fields that configure this mixer alone (shown by ``repr``).
    """

    uses_padding_mask: ClassVar[bool] = False
    length_dependent: ClassVar[bool] = True
    length_sized_parameters: ClassVar[bool] = True
    onnx_exportable: ClassVar[bool] = True
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.option_values = {name: getattr(config, name) for name in self.options}

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.option_values.items())


M = TypeVar("M", bound=Mixer)
_MIXERS: dict[str, type[Mixer]] = {}


def register_mixer(name: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: make ``mixing=name`` build this :class:`Mixer`."""

    def decorate(cls: type[M]) -> type[M]:
        if not (isinstance(cls, type) and issubclass(cls, Mixer)):
            raise TypeError(f"mixer {name!r} must be a subclass of tokenmix.models.mixing.registry.Mixer")
        if name in _MIXERS:
            raise ValueError(f"mixer {name!r} is already registered")
        _MIXERS[name] = cls
        return cls

    return decorate


def _discover() -> None:
    """Import every module of this package once: each registers its mixers when imported."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name != "registry":
            importlib.import_module(f"tokenmix.models.mixing.{module.name}")


def get_mixer(name: str) -> type[Mixer]:
    if name not in _MIXERS:
        _discover()
    try:
        return _MIXERS[name]
    except KeyError:
        raise ValueError(f"unknown mixing {name!r}; available: {', '.join(sorted(_MIXERS))}") from None


def list_mixers() -> list[str]:
    _discover()
    return sorted(_MIXERS)


def layer_mixers(config: ModelConfig) -> list[type[Mixer]]:
    """The mixer class of each encoder block, first to last."""
    return [get_mixer(name) for name in config.layer_mixing()]


def is_length_dependent(config: ModelConfig) -> bool:
    """True when some block's mixer is :attr:`~Mixer.length_dependent`: such a model is fed one fixed
    padded length, since an example's output depends on how far it is padded."""
    return any(mixer.length_dependent for mixer in layer_mixers(config))


def mixes_any_length(config: ModelConfig) -> bool:
    """True when no block's mixer has :attr:`~Mixer.length_sized_parameters`: the model is the same
    function at every length, so each example may be mixed at a length that depends on it alone."""
    return not any(mixer.length_dependent and mixer.length_sized_parameters for mixer in layer_mixers(config))


__all__ = ["Mixer", "get_mixer", "is_length_dependent", "layer_mixers", "list_mixers", "mixes_any_length",
           "register_mixer"]
