"""save_pretrained / load_pretrained: exact round trips, head swaps, and every failure named."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import tokenmix
from conftest import random_ids, tiny


@pytest.mark.parametrize("name", tokenmix.list_models())
def test_round_trip_is_exact(name, tmp_path):
    model = tiny(name, head="pretraining")
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = tokenmix.load_pretrained(tmp_path).eval()
    assert type(loaded) is type(model) and loaded.config == model.config
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[key]), key
    ids = random_ids()
    assert torch.equal(model(ids).last_hidden_state, loaded(ids).last_hidden_state)


def test_random_mixing_matrices_are_saved(tmp_path):
    model = tiny("random")
    assert "encoder.layers.0.mixing.seq_kernel" in load_file(model.save_pretrained(tmp_path) / "model.safetensors")
    assert not any("kernel" in n for n, _ in model.named_parameters())  # fixed, not trained


def test_pretraining_checkpoint_into_classifier(tmp_path):
    pretrained = tiny("fnet", head="pretraining")
    pretrained.save_pretrained(tmp_path)
    classifier = tokenmix.load_pretrained(tmp_path, head="classification", num_labels=3)
    assert classifier.classifier.out_features == 3
    assert torch.equal(classifier.encoder.embeddings.word.weight, pretrained.encoder.embeddings.word.weight)
    via_class = tokenmix.TokenMixForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    assert isinstance(via_class, tokenmix.TokenMixForSequenceClassification)


def test_run_directory_resolves_to_its_model(tmp_path):
    tiny("fnet").save_pretrained(tmp_path / "run" / "checkpoints" / "step_10")
    assert tokenmix.load_pretrained(tmp_path / "run").config.variant == "fnet"


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        tokenmix.load_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        tokenmix.load_pretrained(tmp_path)


def test_other_variant_is_refused(tmp_path):
    tiny("bert").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a 'bert' model, not 'fnet'"):
        tokenmix.load_pretrained(tmp_path, variant="fnet")


def test_shape_mismatch_names_parameter_and_shapes(tmp_path):
    tiny("fnet").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] = 128
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"encoder\.layers\.0\.ff\.intermediate\.weight: checkpoint \(256, 64\) vs model \(128, 64\)"):
        tokenmix.load_pretrained(tmp_path)


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    tiny("fnet").save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state["extra.weight"] = state.pop("encoder.pooler.dense.bias")
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing encoder\.pooler\.dense\.bias.*unexpected extra\.weight"):
        tokenmix.load_pretrained(tmp_path)


def test_corrupt_weights_file(tmp_path):
    tiny("fnet").save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file.*write it again with the command that made it"):
        tokenmix.load_pretrained(tmp_path)


def test_a_damaged_config_or_task_file_is_named(tmp_path):
    """A JSON file cut short (or not text at all) is named with its fix, not reported as bare 'malformed JSON'."""
    from tokenmix.text.classifier import TextClassifier

    tiny("fnet").save_pretrained(tmp_path)
    (tmp_path / "task.json").write_text('{"labels": ["a", ')
    with pytest.raises(ValueError, match=r"task.json is not valid JSON \(Expecting value: line 1 column 18"):
        TextClassifier.from_pretrained(tmp_path, device="cpu")
    (tmp_path / "config.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match=r"config.json is not a JSON text file; re-save the model"):
        tokenmix.load_pretrained(tmp_path)


def test_foreign_config_and_pickle_only_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "fnet", "hidden_size": 8}))
    with pytest.raises(ValueError, match="convert from-hf"):
        tokenmix.load_pretrained(tmp_path)
    hf = tmp_path / "hf"
    hf.mkdir()
    torch.save({}, hf / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match=f"convert it with `tokenmix convert from-hf {hf} DST` and pass DST"):
        tokenmix.load_pretrained(hf)


def test_a_folder_without_a_tokenmix_model_says_which_folder_to_give(tmp_path):
    """Not only what is wrong: the commands that write a model folder, or convert one."""
    fix = "give a folder written by `tokenmix pretrain`, `tokenmix finetune` or `tokenmix distill`"
    with pytest.raises(FileNotFoundError, match=f"no config.json in {tmp_path} \\(nor in a run subdirectory\\); {fix}"):
        tokenmix.load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ValueError, match=f"config.json is not a tokenmix config; {fix}.*`tokenmix convert from-official`"):
        tokenmix.load_pretrained(tmp_path)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny("fnet")
    model.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("tokenmix.io.checkpoint.save_file", explode)
    with pytest.raises(RuntimeError):
        tiny("fnet", dropout=0.0).save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
