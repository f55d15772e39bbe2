"""Mixers register themselves and carry their traits: adding a mixing is one class and one
``register_variant`` line, proved with a throw-away mixer defined here that goes through build,
forward, save/load, export and the generic model tests of every variant."""

import dataclasses

import pytest
import torch
from torch import nn

import test_checkpoint
import test_fourier
import test_models
import tokenmix
from tokenmix.models import registry as variants
from tokenmix.models.config import ModelConfig
from tokenmix.models.mixing import registry
from tokenmix.models.mixing.registry import Mixer, get_mixer, is_length_dependent, list_mixers, register_mixer


class MeanMixing(Mixer):
    """Every token gets a learned map of the mean of the real tokens: it honours the padding mask, so an
    example's output does not depend on how far it is padded."""

    uses_padding_mask = True
    length_dependent = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        weights = x.new_ones(x.shape[:-1]) if padding_mask is None else padding_mask.to(x.dtype)
        mean = (x * weights.unsqueeze(-1)).sum(1, keepdim=True) / weights.sum(1).view(-1, 1, 1)
        return self.proj(mean).expand_as(x)


@pytest.fixture
def mean_mixer(monkeypatch):
    """The variant ``mean_mixer`` (mixing ``mean``), registered for one test only."""
    list_mixers()  # import every mixer module first, so the copy below holds them all
    monkeypatch.setattr(registry, "_MIXERS", dict(registry._MIXERS))
    monkeypatch.setattr(variants, "_VARIANTS", dict(variants._VARIANTS))
    register_mixer("mean")(MeanMixing)
    tokenmix.register_variant("mean_mixer", "Mean mixing: a throw-away mixer of the tests", mixing="mean")
    yield "mean_mixer"
    monkeypatch.undo()
    assert "mean_mixer" not in tokenmix.list_models() and "mean" not in list_mixers()


@pytest.mark.parametrize("check", [test_models.test_forward_shapes_and_finite,
                                   test_models.test_every_parameter_gets_a_gradient,
                                   test_models.test_deterministic_construction_and_eval], ids=lambda f: f.__name__)
def test_new_mixing_passes_the_generic_model_tests(mean_mixer, check):
    check(mean_mixer)


def test_new_mixing_saves_and_loads_exactly(mean_mixer, tmp_path):
    test_checkpoint.test_round_trip_is_exact(mean_mixer, tmp_path)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_new_mixing_trains_under_half_precision_autocast(mean_mixer, dtype):
    test_fourier.test_every_variant_trains_under_half_precision_autocast(mean_mixer, dtype)


def test_new_mixing_traits_are_read_by_the_model(mean_mixer):
    model = test_models.tiny(mean_mixer)
    assert type(model.encoder.layers[0].mixing) is MeanMixing
    assert model.encoder.needs_padding_mask  # uses_padding_mask: the encoder passes the mask on
    assert not is_length_dependent(model.config)  # so fine-tuning need not pad to one length
    ids = test_models.random_ids(1, 8)
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 8), torch.zeros(1, 4)], dim=1).long()
    torch.testing.assert_close(model(padded, attention_mask=mask).last_hidden_state[:, :8],
                               model(ids).last_hidden_state, atol=1e-5, rtol=0)


def test_new_mixing_exports_to_onnx_with_a_dynamic_length(mean_mixer, tmp_path):
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    from tokenmix.io.configs import OnnxExportConfig
    from tokenmix.io.onnx import export_onnx

    test_models.tiny(mean_mixer).save_pretrained(tmp_path / "model")
    result = export_onnx(OnnxExportConfig(str(tmp_path / "model"), str(tmp_path / "m.onnx"), check_batch_sizes=(1,)))
    assert result["inputs"]["input_ids"] == ["batch", "seq_len"] and result["max_abs_diff"] <= 1e-4


def test_length_dependence_comes_from_the_traits():
    """Fourier, linear... layers fix the input length; attention and identity do not. A hybrid
    depends on its Fourier layers, unless attention replaces all of them (2 of the 2 tiny layers)."""
    fixed = {name for name in tokenmix.list_models() if is_length_dependent(tokenmix.make_config(name, "mini"))}
    assert fixed == set(tokenmix.list_models()) - {"bert", "ff_only"}
    assert not is_length_dependent(tokenmix.make_config("hybrid", "tiny"))
    assert {name for name in list_mixers() if not get_mixer(name).length_dependent} == {"attention", "identity"}
    assert {name for name in list_mixers() if get_mixer(name).uses_padding_mask} == {"attention"}
    assert {name for name in list_mixers() if not get_mixer(name).onnx_exportable} == {"circulant", "toeplitz"}


def test_options_are_config_fields_and_shown_in_repr():
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for name in list_mixers():
        assert set(get_mixer(name).options) <= fields, name
    assert repr(get_mixer("fourier")(ModelConfig(fourier_impl="matmul"))) == "FourierMixing(fourier_impl=matmul)"


def test_mixing_help_lists_every_registered_mixer():
    (mixing,) = [f for f in dataclasses.fields(ModelConfig) if f.name == "mixing"]
    assert mixing.metadata["help"] == f"token-mixing sublayer: {', '.join(list_mixers())}"


def test_registration_is_checked():
    with pytest.raises(TypeError, match="subclass of .*Mixer"):
        register_mixer("plain")(nn.Identity)
    with pytest.raises(ValueError, match="'fourier' is already registered"):
        register_mixer("fourier")(MeanMixing)
    with pytest.raises(ValueError, match="unknown mixing 'nope'; available: attention, circulant"):
        get_mixer("nope")
