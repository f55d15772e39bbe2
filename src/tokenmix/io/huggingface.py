"""Weight interop with Hugging Face ``transformers`` FNet checkpoints.

Our encoder computes the same function as ``FNetModel`` (post-LN blocks, Re(2D DFT) mixing, tied MLM
decoder); only parameter names differ. :func:`from_huggingface` turns a ``save_pretrained`` folder of
``FNetModel`` / ``FNetForPreTraining`` / ``FNetForSequenceClassification`` into a tokenmix model
directory, and :func:`to_huggingface` writes the reverse (``tokenmix convert from-hf`` / ``to-hf``), so released FNet weights can be fine-tuned here and
our models served with the Hugging Face stack. Both directions read and write plain JSON and
safetensors: transformers itself is never imported. Foreign ``.bin`` files are only read with
``torch.load(weights_only=True)``, which cannot run code.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from tokenmix.io.checkpoint import CONFIG_NAME, find_model_dir, load_model, load_weights, read_safetensors
from tokenmix.io.files import atomic_write, cache_dir, claim_output, read_json
from tokenmix.io.hub import is_hub_id, resolve_model_source
from tokenmix.models import heads  # noqa: F401  (registers the head classes that build() picks from)
from tokenmix.models.config import ModelConfig
from tokenmix.models.encoder import TokenMixPreTrainedModel

__all__ = ["from_huggingface", "to_huggingface"]

# The one name table, used in both directions: (tokenmix name, Hugging Face name). ``{i}`` is a layer
# index, ``{p}`` is ``weight`` or ``bias``. HF names of encoder tensors get ``fnet.`` in head models.
KEY_MAP: tuple[tuple[str, str], ...] = (
    ("encoder.embeddings.word.weight", "embeddings.word_embeddings.weight"),
    ("encoder.embeddings.position.weight", "embeddings.position_embeddings.weight"),
    ("encoder.embeddings.token_type.weight", "embeddings.token_type_embeddings.weight"),
    ("encoder.embeddings.norm.{p}", "embeddings.LayerNorm.{p}"),
    ("encoder.embeddings.projection.{p}", "embeddings.projection.{p}"),
    ("encoder.layers.{i}.mixing_norm.{p}", "encoder.layer.{i}.fourier.output.LayerNorm.{p}"),
    ("encoder.layers.{i}.ff.intermediate.{p}", "encoder.layer.{i}.intermediate.dense.{p}"),
    ("encoder.layers.{i}.ff.output.{p}", "encoder.layer.{i}.output.dense.{p}"),
    ("encoder.layers.{i}.output_norm.{p}", "encoder.layer.{i}.output.LayerNorm.{p}"),
    ("encoder.pooler.dense.{p}", "pooler.dense.{p}"),
    ("mlm.dense.{p}", "cls.predictions.transform.dense.{p}"),
    ("mlm.norm.{p}", "cls.predictions.transform.LayerNorm.{p}"),
    ("mlm.bias", "cls.predictions.bias"),
    ("nsp.{p}", "cls.seq_relationship.{p}"),
    ("classifier.{p}", "classifier.{p}"),
)
ARCHITECTURES = {"none": "FNetModel", "pretraining": "FNetForPreTraining",
                 "classification": "FNetForSequenceClassification", "regression": "FNetForSequenceClassification"}
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh", "gelu": "gelu"}
TO_HF_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu"}
TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_IGNORED_HF = re.compile(r"^(fnet\.)?embeddings\.position_ids$|^cls\.predictions\.decoder\.(weight|bias)$")


def _regex(pattern: str) -> re.Pattern[str]:
    body = re.escape(pattern).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(body)


def _pairs(head: str) -> list[tuple[str, str]]:
    """KEY_MAP with the ``fnet.`` prefix put on the HF encoder names of head models."""
    prefix = "" if head == "none" else "fnet."
    return [(ours, prefix + hf if ours.startswith("encoder.") else hf) for ours, hf in KEY_MAP]


def _rename(state: dict[str, torch.Tensor], pairs: list[tuple[str, str]], hf_names: bool
            ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename every tensor by the first matching pair, to the Hugging Face names if ``hf_names``, else
    to ours. Unmatched names keep their name (so that ``load_weights`` reports them as unexpected) and
    are also returned as a list."""
    rules = [(_regex(ours if hf_names else hf), hf if hf_names else ours) for ours, hf in pairs]
    out, unmatched = {}, []
    for name, tensor in state.items():
        for regex, target in rules:
            if match := regex.fullmatch(name):
                name = target.format(**match.groupdict())
                break
        else:
            unmatched.append(name)
        out[name] = tensor
    return out, unmatched


def _read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors, or a pickle that needs code to run
        raise ValueError(f"{path} is not a readable PyTorch weights file ({err})") from None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state


def _read_hf_weights(src: Path) -> dict[str, torch.Tensor]:
    for name in WEIGHT_FILES:
        path = src / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return _read_weight_file(path)
        weight_map = read_json(path).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{path} has no 'weight_map'; it is not a sharded checkpoint index")
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            state.update(_read_weight_file(src / shard))
        return state
    raise FileNotFoundError(f"no weights in {src}: expected one of {', '.join(WEIGHT_FILES)}")


def _hf_head(hf: dict[str, Any], path: Path) -> tuple[str, int]:
    """(tokenmix head, num_labels) of an HF config, from its architecture."""
    arch = (hf.get("architectures") or ["FNetModel"])[0]
    if arch in ("FNetModel", "FNetForPreTraining"):
        return ("none" if arch == "FNetModel" else "pretraining"), 2
    if arch != "FNetForSequenceClassification":
        raise ValueError(f"{path} is a {arch}; tokenmix converts FNetModel, FNetForPreTraining and "
                         f"FNetForSequenceClassification checkpoints")
    num_labels = len(hf["id2label"]) if hf.get("id2label") else int(hf.get("num_labels", 2))
    if hf.get("problem_type") == "regression" and num_labels != 1:
        raise ValueError(f"{path} is a {num_labels}-output regression model; tokenmix regression has one output")
    return ("regression" if num_labels == 1 or hf.get("problem_type") == "regression" else "classification"), num_labels


def _config_from_hf(hf: dict[str, Any], path: Path) -> ModelConfig:
    if hf.get("model_type") != "fnet":
        hint = " (it is already a tokenmix model)" if hf.get("format") == "tokenmix" else ""
        raise ValueError(f"{path} has model_type {hf.get('model_type')!r}{hint}; tokenmix converts Hugging Face "
                         f"FNet checkpoints only (model_type 'fnet')")
    act = hf.get("hidden_act", "gelu_new")
    if act not in HF_ACTIVATIONS:
        raise ValueError(f"{path}: hidden_act={act!r} has no tokenmix equivalent; supported: {', '.join(HF_ACTIVATIONS)}")
    (head, num_labels), hidden = _hf_head(hf, path), int(hf.get("hidden_size", 768))
    target = max(1, hidden // 64)  # attention heads: unused by FNet, but the config must be valid
    num_heads = min((d for d in range(1, hidden + 1) if hidden % d == 0), key=lambda d: (abs(d - target), d))
    fields: dict[str, Any] = dict(
        variant="fnet", mixing="fourier", head=head, vocab_size=hf.get("vocab_size", 32000), hidden_size=hidden,
        embedding_size=hidden, num_layers=hf.get("num_hidden_layers", 12), num_heads=num_heads,
        intermediate_size=hf.get("intermediate_size", 3072), dropout=hf.get("hidden_dropout_prob", 0.1),
        max_position_embeddings=hf.get("max_position_embeddings", 512), type_vocab_size=hf.get("type_vocab_size", 4),
        initializer_range=hf.get("initializer_range", 0.02), layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        pad_token_id=hf.get("pad_token_id") or 0, activation=HF_ACTIVATIONS[act], num_labels=num_labels,
    )
    return ModelConfig(**fields)


def _copy_tokenizer(src: Path, dst: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            atomic_write(dst / name, functools.partial(shutil.copyfile, src / name))


def from_huggingface(src: str | Path, dst: str | Path, overwrite: bool = False) -> Path:
    """Convert a Hugging Face FNet ``save_pretrained`` folder (or a Hub id such as ``google/fnet-base``,
    see :mod:`tokenmix.io.hub`) into a tokenmix model directory; an existing ``dst`` only with ``overwrite``."""
    dst = claim_output(dst, overwrite, flag="DST")
    src = resolve_model_source(src)
    if not src.is_dir():
        raise FileNotFoundError(f"no such Hugging Face model directory: {src}")
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {src}")
    if dst.resolve() == src.resolve():
        raise ValueError(f"convert from-hf would overwrite its source {src}; pick another destination")
    config = _config_from_hf(read_json(src / "config.json"), src)
    state = _read_hf_weights(src)
    prefix = "" if config.head == "none" else "fnet."
    decoder = state.get("cls.predictions.decoder.weight")
    if decoder is not None and not torch.equal(decoder, state.get(prefix + "embeddings.word_embeddings.weight", decoder)):
        raise ValueError(f"{src} has an MLM decoder that is not tied to the word embedding; tokenmix always ties them")
    state = {name: t for name, t in state.items() if not _IGNORED_HF.match(name)}
    model = TokenMixPreTrainedModel.build(config)
    load_weights(model, _rename(state, _pairs(config.head), hf_names=False)[0], str(src))
    model.save_pretrained(dst)
    _copy_tokenizer(src, dst)
    return dst


def _check_representable(config: ModelConfig, src: Path) -> None:
    reasons = []
    if config.mixing != "fourier":
        reasons.append(f"mixing={config.mixing!r} (Hugging Face FNet only has Fourier mixing)")
    if config.num_attention_layers > 0:
        reasons.append(f"num_attention_layers={config.num_attention_layers} (Hugging Face FNet has no self-attention layers)")
    if config.embedding_size != config.hidden_size:
        reasons.append(f"embedding_size={config.embedding_size} != hidden_size={config.hidden_size} "
                       f"(Hugging Face FNet embeds at hidden_size)")
    if config.activation not in TO_HF_ACTIVATIONS:
        reasons.append(f"activation={config.activation!r} (no Hugging Face equivalent)")
    if config.pad_mixing != "official":
        reasons.append(f"pad_mixing={config.pad_mixing!r} (Hugging Face FNet mixes padding like any token)")
    if config.norm_position != "post":
        reasons.append(f"norm_position={config.norm_position!r} (Hugging Face FNet has post-LayerNorm blocks only)")
    if reasons:
        raise ValueError(f"{src} ({config.variant!r} model) cannot be written as Hugging Face FNet: " + "; ".join(reasons))


def _hf_config(config: ModelConfig) -> dict[str, Any]:
    hf: dict[str, Any] = {
        "architectures": [ARCHITECTURES[config.head]], "model_type": "fnet", "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size, "num_hidden_layers": config.num_layers,
        "intermediate_size": config.intermediate_size, "hidden_act": TO_HF_ACTIVATIONS[config.activation],
        "hidden_dropout_prob": config.dropout, "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size, "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_eps, "use_tpu_fourier_optimizations": False, "tpu_short_seq_length": 512,
        "pad_token_id": config.pad_token_id, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": True,
        "dtype": "float32",
    }
    if config.head in ("classification", "regression"):
        labels = [f"LABEL_{i}" for i in range(config.num_labels)]
        hf.update(id2label={str(i): label for i, label in enumerate(labels)},
                  label2id={label: i for i, label in enumerate(labels)}, num_labels=config.num_labels,
                  problem_type="regression" if config.head == "regression" else "single_label_classification")
    return hf


def to_huggingface(src: str | Path, dst: str | Path, overwrite: bool = False) -> Path:
    """Write a tokenmix FNet model as a Hugging Face FNet folder (config.json + model.safetensors); an
    existing ``dst`` only with ``overwrite``."""
    src, dst = find_model_dir(src), claim_output(dst, overwrite, flag="DST")
    model = load_model(src, TokenMixPreTrainedModel.build)
    _check_representable(model.config, src)
    state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    state, unmatched = _rename(state, _pairs(model.config.head), hf_names=True)
    if unmatched:
        raise ValueError(f"{src} has tensors with no Hugging Face FNet name: {', '.join(unmatched)}")
    dst.mkdir(parents=True, exist_ok=True)
    atomic_write(dst / "model.safetensors", lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    text = json.dumps(_hf_config(model.config), indent=2, sort_keys=True) + "\n"
    atomic_write(dst / "config.json", lambda tmp: Path(tmp).write_text(text))
    _copy_tokenizer(src, dst)
    return dst


def is_huggingface_folder(folder: Path) -> bool:
    """A ``save_pretrained`` folder of transformers (its config.json names a ``model_type``)."""
    try:
        return "model_type" in read_json(folder / CONFIG_NAME)
    except (OSError, ValueError):
        return False


def local_model_dir(source: str | Path) -> Path:
    """The tokenmix model folder that ``source`` names: a local path as it is; a Hub id's snapshot, which
    (being a Hugging Face FNet) is converted once into ``<cache>/hub/<repo>/<commit>`` and read from there
    afterwards. The conversion goes to a temporary folder that is renamed, so a killed one is redone."""
    if Path(source).exists() or not is_hub_id(source):
        return Path(source)
    snapshot = resolve_model_source(source)
    if not is_huggingface_folder(snapshot):
        return snapshot  # a tokenmix folder published on the Hub
    target = cache_dir() / "hub" / snapshot.parent.parent.name / snapshot.name
    if not (target / CONFIG_NAME).is_file():
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        from_huggingface(snapshot, tmp)
        os.replace(tmp, target)
    return target
