"""Hugging Face FNet interop: numerical parity, lossless round trips, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

import tokenmix  # noqa: E402
from tokenmix.io.huggingface import from_huggingface, to_huggingface  # noqa: E402

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, intermediate_size=64, max_position_embeddings=64)
BATCH, SEQ = 3, 16


def _perturb(model: torch.nn.Module) -> None:
    """Move every parameter off its init (LayerNorm 1/0, zero biases) so that a wrong mapping shows."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)


def make_hf(cls_name: str, path, seed: int = 0, **extra):
    torch.manual_seed(seed)
    cls = getattr(transformers, cls_name)
    model = cls(transformers.FNetConfig(**TINY, **extra)).eval()
    _perturb(model)
    model.save_pretrained(path)
    return model


def make_inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, TINY["vocab_size"], (BATCH, SEQ), generator=g)
    types = torch.randint(0, 4, (BATCH, SEQ), generator=g)
    positions = torch.stack([torch.randperm(SEQ, generator=g)[:5] for _ in range(BATCH)])
    return ids, types, positions


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize("impl, tol", [("auto", 1e-5), ("matmul", 1e-4)])
def test_pretraining_parity(tmp_path, impl, tol):
    hf = make_hf("FNetForPreTraining", tmp_path / "hf")
    ours = tokenmix.load_pretrained(from_huggingface(tmp_path / "hf", tmp_path / "tm"), fourier_impl=impl).eval()
    assert ours.config.head == "pretraining" and ours.config.activation == "gelu_tanh"
    ids, types, pos = make_inputs()
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types)
        ref_base = hf.fnet(input_ids=ids, token_type_ids=types)
        out = ours(ids, types, masked_positions=pos)
    ref_mlm = torch.gather(ref.prediction_logits, 1, pos.unsqueeze(-1).expand(-1, -1, TINY["vocab_size"]))
    diffs = {
        "last_hidden_state": max_diff(out.last_hidden_state, ref_base.last_hidden_state),
        "pooler_output": max_diff(out.pooler_output, ref_base.pooler_output),
        "mlm_logits": max_diff(out.mlm_logits, ref_mlm),
        "nsp_logits": max_diff(out.nsp_logits, ref.seq_relationship_logits),
    }
    print(f"pretraining parity ({impl}):", diffs)
    assert max(diffs.values()) <= tol, diffs


def test_model_parity(tmp_path):
    hf = make_hf("FNetModel", tmp_path / "hf")
    ours = tokenmix.load_pretrained(from_huggingface(tmp_path / "hf", tmp_path / "tm")).eval()
    assert ours.config.head == "none"
    ids, types, _ = make_inputs()
    with torch.no_grad():
        ref, out = hf(input_ids=ids, token_type_ids=types), ours(ids, types)
        ref_no_types, out_no_types = hf(input_ids=ids), ours(ids)
    diffs = [max_diff(out.last_hidden_state, ref.last_hidden_state), max_diff(out.pooler_output, ref.pooler_output),
             max_diff(out_no_types.last_hidden_state, ref_no_types.last_hidden_state)]
    print("model parity:", diffs)
    assert max(diffs) <= 1e-5


@pytest.mark.parametrize("num_labels, head", [(3, "classification"), (1, "regression")])
def test_classification_parity(tmp_path, num_labels, head):
    hf = make_hf("FNetForSequenceClassification", tmp_path / "hf", num_labels=num_labels)
    ours = tokenmix.load_pretrained(from_huggingface(tmp_path / "hf", tmp_path / "tm")).eval()
    assert (ours.config.head, ours.config.num_labels) == (head, num_labels)
    ids, types, _ = make_inputs()
    with torch.no_grad():
        diff = max_diff(ours(ids, types).logits, hf(input_ids=ids, token_type_ids=types).logits)
    print(f"{head} parity:", diff)
    assert diff <= 1e-5


def _safetensors(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118 (safe_open is not iterable)


@pytest.mark.parametrize("cls_name, extra", [("FNetForPreTraining", {}), ("FNetModel", {}),
                                             ("FNetForSequenceClassification", {"num_labels": 3})])
def test_round_trip(tmp_path, cls_name, extra):
    hf = make_hf(cls_name, tmp_path / "hf", **extra)
    (tmp_path / "hf" / "tokenizer_config.json").write_text('{"model_max_length": 64}')
    from_huggingface(tmp_path / "hf", tmp_path / "tm")
    back = to_huggingface(tmp_path / "tm", tmp_path / "back")
    assert back == tmp_path / "back"
    assert (back / "tokenizer_config.json").read_text() == '{"model_max_length": 64}'
    original, _ = _safetensors(tmp_path / "hf" / "model.safetensors")
    written, metadata = _safetensors(back / "model.safetensors")
    assert metadata == {"format": "pt"}
    assert sorted(written) == sorted(original)
    assert all(torch.equal(written[k], original[k]) for k in original)
    config = json.loads((back / "config.json").read_text())
    assert config["model_type"] == "fnet" and config["architectures"] == [cls_name]

    reloaded, info = getattr(transformers, cls_name).from_pretrained(back, output_loading_info=True)
    reloaded.eval()
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    ids, types, _ = make_inputs()
    with torch.no_grad():
        a, b = hf(input_ids=ids, token_type_ids=types), reloaded(input_ids=ids, token_type_ids=types)
    for name in ("last_hidden_state", "pooler_output", "prediction_logits", "seq_relationship_logits", "logits"):
        if getattr(a, name, None) is not None:
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_sharded_and_bin_weights(tmp_path):
    """Sharded safetensors and pytorch_model.bin (with the tied decoder and position_ids) convert alike."""
    from safetensors.torch import save_file

    make_hf("FNetForPreTraining", tmp_path / "hf")
    state, _ = _safetensors(tmp_path / "hf" / "model.safetensors")
    reference = tokenmix.load_pretrained(from_huggingface(tmp_path / "hf", tmp_path / "tm")).state_dict()
    config = (tmp_path / "hf" / "config.json").read_text()

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text(config)
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(sharded / file), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: file for file, keys in shards.items() for k in keys}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))

    pickled = tmp_path / "bin"
    pickled.mkdir()
    (pickled / "config.json").write_text(config)
    extra = {"fnet.embeddings.position_ids": torch.arange(64).unsqueeze(0),
             "cls.predictions.decoder.weight": state["fnet.embeddings.word_embeddings.weight"],
             "cls.predictions.decoder.bias": state["cls.predictions.bias"]}
    torch.save({**state, **extra}, pickled / "pytorch_model.bin")

    for src in (sharded, pickled):
        converted = tokenmix.load_pretrained(from_huggingface(src, tmp_path / f"tm_{src.name}")).state_dict()
        assert all(torch.equal(converted[k], reference[k]) for k in reference)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        from_huggingface(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        to_huggingface(tmp_path / "nowhere", tmp_path / "out")

    bert = tmp_path / "bert_hf"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ValueError, match="'bert'.*FNet checkpoints only"):
        from_huggingface(bert, tmp_path / "out")

    for variant, reason in (("bert", "only has Fourier mixing"), ("hybrid", "no self-attention")):
        torch.manual_seed(0)
        tokenmix.create_model(variant, "tiny", vocab_size=99).save_pretrained(tmp_path / variant)
        with pytest.raises(ValueError, match=reason):
            to_huggingface(tmp_path / variant, tmp_path / f"{variant}_to_hf")
        assert not (tmp_path / f"{variant}_to_hf" / "model.safetensors").exists()

    make_hf("FNetModel", tmp_path / "corrupt")
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"\x00garbage, not safetensors" * 10)
    with pytest.raises(ValueError, match="model.safetensors"):
        from_huggingface(tmp_path / "corrupt", tmp_path / "out")

    make_hf("FNetModel", tmp_path / "bad_bin")
    (tmp_path / "bad_bin" / "model.safetensors").unlink()
    (tmp_path / "bad_bin" / "pytorch_model.bin").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="pytorch_model.bin"):
        from_huggingface(tmp_path / "bad_bin", tmp_path / "out")


def test_mismatched_weights_are_named(tmp_path):
    """An architecture that says pretraining but lacks the NSP head: the missing tensors are named."""
    make_hf("FNetForMaskedLM", tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "architectures": ["FNetForPreTraining"]}))
    with pytest.raises(ValueError, match="missing nsp.bias, nsp.weight"):
        from_huggingface(tmp_path / "hf", tmp_path / "out")
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="FNetForMaskedLM"):
        from_huggingface(tmp_path / "hf", tmp_path / "out")
