"""Every registered variant: shapes, gradients, masks, determinism, heads, bad input."""

import pytest
import torch

import tokenmix
from conftest import VOCAB, random_ids, tiny

VARIANTS = tokenmix.list_models()


def test_registry_lists_every_paper_variant():
    assert set(VARIANTS) >= {"fnet", "linear", "random", "ff_only", "hybrid", "bert"}
    assert tokenmix.list_models("f*") == ["fnet", "ff_only", "fast_sparse_mixer"]
    assert tokenmix.get_variant("hybrid").fields["num_attention_layers"] == 2


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_shapes_and_finite(name):
    model = tiny(name)
    out = model(random_ids(3, 10), attention_mask=torch.ones(3, 10, dtype=torch.long))
    assert out.last_hidden_state.shape == (3, 10, 64)
    assert out.pooler_output.shape == (3, 64)
    assert torch.isfinite(out.last_hidden_state).all()
    assert out.pooler_output.abs().max() <= 1  # tanh pooler


@pytest.mark.parametrize("name", VARIANTS)
def test_every_parameter_gets_a_gradient(name):
    model = tiny(name, head="pretraining").train()
    ids = random_ids(2, 12)
    out = model(ids, token_type_ids=torch.randint(0, 2, ids.shape), masked_positions=torch.tensor([[1, 3], [2, 5]]),
                masked_labels=torch.tensor([[4, 5], [6, 7]]), next_sentence_labels=torch.tensor([0, 1]))
    out.loss.backward()
    # position rows beyond the input length are legitimately untouched; check the tensors exist
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == [], missing


@pytest.mark.parametrize("name", VARIANTS)
def test_deterministic_construction_and_eval(name):
    torch.manual_seed(123)
    a = tiny(name)
    torch.manual_seed(123)
    b = tiny(name)
    ids = random_ids()
    assert torch.equal(a(ids).last_hidden_state, b(ids).last_hidden_state)
    assert torch.equal(a(ids).last_hidden_state, a(ids).last_hidden_state)


def test_dropout_only_in_training():
    model = tiny("bert").train()
    ids = random_ids()
    assert not torch.equal(model(ids).last_hidden_state, model(ids).last_hidden_state)
    model.eval()
    assert torch.equal(model(ids).last_hidden_state, model(ids).last_hidden_state)


def test_hybrid_places_attention_in_the_last_layers():
    model = tokenmix.create_model("hybrid", "base", vocab_size=10)
    kinds = [type(layer.mixing).__name__ for layer in model.encoder.layers]
    assert kinds == ["FourierMixing"] * 10 + ["SelfAttention"] * 2


@pytest.mark.parametrize("layout,expected", [
    ("top", {10, 11}), ("bottom", {0, 1}), ("middle", {5, 6}), ("mixed", {0, 6}),
])
def test_hybrid_layouts_follow_the_official_formulas(layout, expected):
    config = tokenmix.make_config("hybrid", "base", attention_layout=layout)
    assert config.attention_layers() == frozenset(expected)


def test_ff_only_block_is_layernorm_of_2x_then_ff():
    model = tiny("ff_only")
    block = model.encoder.layers[0]
    x = torch.randn(2, 5, 64)
    y = block.mixing_norm(x + x)
    assert torch.allclose(block(x, None)[0], block.output_norm(y + block.ff(y)))


# --- padding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bert"])
def test_attention_ignores_padding(name):
    model = tiny(name)
    ids = random_ids(1, 8)
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 8), torch.zeros(1, 4)], dim=1).long()
    alone = model(ids).last_hidden_state
    with_pad = model(padded, attention_mask=mask).last_hidden_state[:, :8]
    assert torch.allclose(alone, with_pad, atol=1e-5)


@pytest.mark.parametrize("name", ["fnet", "linear", "random"])
def test_pad_mixing_zero_makes_padded_content_irrelevant(name):
    ids = random_ids(1, 12)
    other = ids.clone()
    other[:, 8:] = (other[:, 8:] + 1) % VOCAB  # different tokens at padded positions
    mask = torch.ones(1, 12, dtype=torch.long)
    mask[:, 8:] = 0
    official = tiny(name)
    a, b = (official(x, attention_mask=mask).last_hidden_state[:, :8] for x in (ids, other))
    assert not torch.allclose(a, b, atol=1e-4)  # official: padding is mixed into real tokens
    zero = tiny(name, pad_mixing="zero")
    zero.load_state_dict(official.state_dict())
    a, b = (zero(x, attention_mask=mask).last_hidden_state[:, :8] for x in (ids, other))
    assert torch.allclose(a, b, atol=1e-5)


def test_all_padding_row_is_rejected():
    with pytest.raises(ValueError, match="no real token"):
        tiny("bert")(random_ids(2, 4), attention_mask=torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]))


# --- heads -----------------------------------------------------------------------------------

def test_mlm_logits_only_at_masked_positions_and_tied():
    model = tiny("fnet", head="pretraining")
    ids = random_ids(2, 12)
    positions = torch.tensor([[0, 5, 7], [1, 2, 11]])
    out = model(ids, masked_positions=positions)
    assert out.mlm_logits.shape == (2, 3, VOCAB)
    hidden = out.last_hidden_state[torch.arange(2)[:, None], positions]
    full = model.mlm(hidden, model.encoder.embeddings.word.weight)
    assert torch.allclose(out.mlm_logits, full)
    assert "mlm.weight" not in dict(model.named_parameters())  # decoder is the input embedding


def test_pretraining_loss_is_weighted_mlm_plus_nsp():
    model = tiny("fnet", head="pretraining")
    ids = random_ids(2, 12)
    pos, labels = torch.tensor([[1, 2], [3, 0]]), torch.tensor([[5, 6], [7, 0]])
    weights = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    out = model(ids, masked_positions=pos, masked_labels=labels, masked_weights=weights,
                next_sentence_labels=torch.tensor([0, 1]))
    ce = torch.nn.functional.cross_entropy(out.mlm_logits.flatten(0, 1), labels.flatten(), reduction="none")
    assert torch.allclose(out.mlm_loss, ce[:3].mean())
    assert torch.allclose(out.loss, out.mlm_loss + out.nsp_loss)


def test_classification_and_regression_heads():
    ids = random_ids(4, 6)
    cls = tiny("fnet", head="classification", num_labels=3)
    out = cls(ids, labels=torch.tensor([0, 1, 2, 1]))
    assert out.logits.shape == (4, 3) and out.loss.ndim == 0
    reg = tiny("bert", head="regression")
    assert reg.config.num_labels == 1
    out = reg(ids, labels=torch.tensor([0.5, 1.0, 2.0, 4.5]))
    assert torch.allclose(out.loss, ((out.logits[:, 0] - torch.tensor([0.5, 1.0, 2.0, 4.5])) ** 2).mean())


def test_official_initialisation():
    model = tokenmix.create_model("fnet", "mini")
    ff = model.encoder.layers[0].ff
    assert abs(ff.intermediate.bias.std().item() - 0.02) < 0.005  # official: N(0, 0.02) bias
    assert torch.count_nonzero(ff.output.bias) == 0
    projection_std = model.encoder.embeddings.projection.weight.std().item()
    assert abs(projection_std - 256 ** -0.5) < 0.01  # lecun_normal, not N(0, 0.02)
    assert model.encoder.layers[0].mixing_norm.eps == 1e-12


# --- configuration and bad input ---------------------------------------------------------------

def test_presets_sizes_and_overrides():
    config = tokenmix.make_config("bert", "base")
    assert (config.hidden_size, config.num_layers, config.num_heads, config.intermediate_size) == (768, 12, 12, 3072)
    assert (config.vocab_size, config.max_position_embeddings) == (32000, 512)
    assert tokenmix.make_config("fnet", "mini", num_layers=2, dropout=0.0).num_layers == 2


@pytest.mark.parametrize("call,match", [
    (lambda: tokenmix.create_model("fent"), "unknown model 'fent'"),
    (lambda: tokenmix.create_model("fnet", "huge"), "unknown preset 'huge'"),
    (lambda: tokenmix.create_model("fnet", "tiny", hiden_size=3), "unknown model config field"),
    (lambda: tokenmix.create_model("fnet", "tiny", fourier_impl="fast"), "fourier_impl"),
    (lambda: tokenmix.create_model("bert", "tiny", num_heads=3), "divisible by num_heads"),
    (lambda: tokenmix.create_model("fnet", "tiny", dropout=1.5), "dropout"),
])
def test_bad_configuration_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("inputs,match", [
    (dict(input_ids=torch.rand(2, 5)), "integer tensor"),
    (dict(input_ids=torch.tensor([1, 2, 3])), r"unsqueeze\(0\)"),
    (dict(input_ids=torch.ones(1, 33, dtype=torch.long)), "exceeds max_position_embeddings=32"),
    (dict(input_ids=torch.tensor([[1, VOCAB]])), "vocab_size=101"),
    (dict(input_ids=torch.tensor([[1, -1]])), "outside"),
    (dict(input_ids=torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 4]])), "type_vocab_size"),
    (dict(input_ids=torch.tensor([[1, 2]]), attention_mask=torch.ones(1, 3)), "attention_mask"),
    (dict(input_ids=[[1, 2]]), "torch.Tensor"),
])
def test_bad_input_raises_clear_errors(inputs, match):
    with pytest.raises(ValueError, match=match):
        tiny("fnet")(**inputs)


@pytest.mark.parametrize("name", ["fnet", "bert", "hybrid"])
def test_torch_export_traces_without_complex_ops(name):
    """torch.export (the base of torch.compile and ONNX export) sees the real DFT-matmul form."""
    model = tiny(name, head="classification")
    ids, mask = random_ids(2, 10), torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0
    program = torch.export.export(model, (ids,), {"attention_mask": mask})
    targets = " ".join(str(node.target) for node in program.graph.nodes)
    assert "fft" not in targets and "complex" not in targets
    expected = model(ids, attention_mask=mask).logits
    assert torch.allclose(program.module()(ids, attention_mask=mask).logits, expected, atol=1e-5)


def test_override_strings_are_typed_by_the_config():
    from tokenmix.models.config import parse_overrides

    parsed = parse_overrides(["dropout=0.0", "fourier_impl=matmul", "zero_biases=true", "embedding_size=None", "num_layers=3"])
    assert parsed == {"dropout": 0.0, "fourier_impl": "matmul", "zero_biases": True, "embedding_size": None, "num_layers": 3}
    with pytest.raises(ValueError, match="bad override 'nope=1'"):
        parse_overrides(["nope=1"])
    with pytest.raises(ValueError, match="num_layers expects a int"):
        parse_overrides(["num_layers=x"])
