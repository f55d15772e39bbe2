"""Convert the Flax checkpoints released with the FNet and Sparse Mixers papers into tokenmix models.

The released files (``tokenmix convert from-official SRC DST``):

* FNet (google-research ``f_net``): Base ``f_net``, ``linear``, ``bert``, ``ff_only``, ``random`` and
  Large ``f_net``, ``linear``, ``bert``. One ``flax.training.checkpoints`` file each: a msgpack map
  whose ``target`` is the parameter tree; the rest (Adam moments, two thirds of the file) is skipped
  unread.
* Sparse Mixers (google-research ``sparse_mixers``): Sparse Mixer and Fast Sparse Mixer, Base and
  Small, zipped. ``replicated_checkpoint_<step>`` holds every parameter but the experts (empty arrays
  there); each ``shard-<host>-of-<hosts>_checkpoint_<step>`` holds only the experts of one host's
  devices, with a leading device axis; bfloat16 values are stored as raw 2-byte values. The BERT
  baseline is one replicated file. Parameters are under ``params``.

Flax stores an array as a msgpack extension value ``(shape, dtype name, raw bytes)``, so ``msgpack``
and numpy read everything: no flax or jax at run time. The tree is then mapped onto a
:class:`ModelConfig` inferred from it (sizes from the shapes; mixing, attention and MoE layers from
which parameters exist) and a state dict, and written with the official SentencePiece vocabulary.

What the weights cannot tell: f_net, ff_only and random store the same parameters (none of their
mixings has any), and Sparse Mixer and Fast Sparse Mixer differ only in their capacity factor; those
come from ``variant`` or the file name. The Random model's matrices are not stored at all: the
official code draws them from the seed at every run, so they are redrawn the same way with jax.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, NoReturn

import msgpack
import numpy as np
import torch

from tokenmix.io.checkpoint import load_weights
from tokenmix.io.configs import OFFICIAL_VARIANTS
from tokenmix.io.files import atomic_write, claim_output
from tokenmix.models.config import LAYOUTS, ModelConfig, layer_indices
from tokenmix.models.factory import build_model
from tokenmix.text.tokenizer import Tokenizer

__all__ = ["OfficialCheckpoint", "convert_official", "random_mixing_matrices", "read_flax_tree", "read_official"]

VOCAB_URL = "https://storage.googleapis.com/gresearch/f_net/vocab/c4_bpe_sentencepiece.model"
VOCAB_NAME = "spiece.model"  # the name Tokenizer.load looks for first, and `convert to-hf` carries along

# --- the msgpack files --------------------------------------------------------------------------------

_NDARRAY, _SCALAR = 1, 3  # flax.serialization's msgpack extension codes
_BFLOAT16 = ("bfloat16", "void16", "V2", "|V2")  # dtype names of bfloat16 arrays (void: the raw 2 bytes)
_MAX_OBJECT = 2**31 - 1  # msgpack's default buffer (100 MiB) is smaller than a Large word embedding
_PARAM_ROOTS = ("encoder", "predictions_dense", "predictions_layer_norm", "predictions_output", "classification")
_REPLICATED = re.compile(r"replicated_checkpoint_(\d+)")
_SHARD = re.compile(r"shard-(\d+)-of-(\d+)_checkpoint_(\d+)")


def _decode_array(data: bytes) -> np.ndarray:
    shape, name, buffer = msgpack.unpackb(data, raw=True)
    name = name.decode()
    if name in _BFLOAT16:  # bfloat16 is the top half of a float32
        return (np.frombuffer(buffer, "<u2").astype("<u4") << 16).view("<f4").reshape(shape)
    return np.frombuffer(buffer, np.dtype(name)).reshape(shape)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _NDARRAY:
        return _decode_array(data)
    if code == _SCALAR:
        return _decode_array(data)[()]
    return msgpack.ExtType(code, data)


def _flatten(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
    for key, value in tree.items():
        if isinstance(value, dict) and value.get("__msgpack_chunked_array__"):  # flax splits arrays > 1 GiB
            chunks, shape = value["chunks"], value["shape"]
            value = np.concatenate([chunks[str(i)] for i in range(len(chunks))]).reshape([shape[str(i)] for i in range(len(shape))])
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}/")
        else:
            yield prefix + key, np.asarray(value)


def _read_params(stream: IO[bytes], source: str) -> dict[str, np.ndarray]:
    """The parameter leaves of one checkpoint file by ``/``-joined path; the optimiser state is
    skipped without being decoded."""
    unpacker = msgpack.Unpacker(stream, ext_hook=_ext_hook, raw=False, max_buffer_size=_MAX_OBJECT)
    tree: dict[str, Any] = {}
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key in ("target", "params"):  # flax.optim optimizer (FNet) / TrainState (Sparse Mixers)
                tree = unpacker.unpack()
            elif key in _PARAM_ROOTS:  # a bare parameter tree
                tree[key] = unpacker.unpack()
            else:
                unpacker.skip()
    except (msgpack.UnpackException, ValueError, TypeError) as err:
        raise ValueError(f"{source} is truncated or not a Flax checkpoint ({type(err).__name__}: {err}); "
                         f"download it again") from None
    if not isinstance(tree, dict) or not tree:
        raise ValueError(f"{source} holds no parameter tree ('target' or 'params'); it is not an official checkpoint")
    return dict(_flatten(tree))


def _pick_checkpoint(where: str, names: list[str]) -> str:
    """The checkpoint among the files of a folder or .zip: the latest ``replicated_checkpoint_<step>``,
    else the only file with ``checkpoint`` in its name."""
    replicated = {int(m.group(1)): n for n in names if (m := _REPLICATED.fullmatch(PurePosixPath(n).name))}
    if replicated:
        return replicated[max(replicated)]
    single = [n for n in names if "checkpoint" in PurePosixPath(n).name and not _SHARD.fullmatch(PurePosixPath(n).name)]
    if len(single) != 1:
        found = f"several ({', '.join(sorted(single))}): pass one of them" if single else "none"
        raise FileNotFoundError(f"no single official checkpoint in {where}: found {found}; expected a Sparse Mixers "
                                f"replicated_checkpoint_<step> or an FNet file such as f_net_checkpoint")
    return single[0]


def _shards_of(main: str, names: list[str], where: str) -> list[str]:
    """The shard files that go with ``main``, in host order; a missing one is an error."""
    match = _REPLICATED.fullmatch(PurePosixPath(main).name)
    if not match:
        return []
    folder, step = PurePosixPath(main).parent, match.group(1)
    shards: dict[int, str] = {}
    counts = set()
    for name in names:
        shard = _SHARD.fullmatch(PurePosixPath(name).name)
        if shard and shard.group(3) == step and PurePosixPath(name).parent == folder:
            shards[int(shard.group(1))] = name
            counts.add(int(shard.group(2)))
    if len(counts) > 1:
        raise ValueError(f"{where} mixes shard files of {sorted(counts)} hosts for step {step}; keep one set")
    total = counts.pop() if counts else 0
    missing = [f"shard-{i:05d}-of-{total:05d}_checkpoint_{step}" for i in range(total) if i not in shards]
    if missing:
        raise FileNotFoundError(f"{where}: {', '.join(missing)} missing; a sharded checkpoint needs all {total} shard files")
    return [shards[i] for i in range(total)]


def _read_files(where: str, names: list[str], open_file: Callable[[str], IO[bytes]], main: str | None) -> dict[str, np.ndarray]:
    main = main or _pick_checkpoint(where, names)
    with open_file(main) as stream:
        tree = _read_params(stream, f"{where}/{main}")
    shards = []
    for name in _shards_of(main, names, where):
        with open_file(name) as stream:
            shards.append(_read_params(stream, f"{where}/{name}"))
    for path, value in tree.items():
        if value.size:
            continue
        if not shards:  # the experts: empty here, one slice of devices per host in the shard files
            raise FileNotFoundError(f"{where}: {path} is in shard files (shard-XXXXX-of-XXXXX_checkpoint_<step>) "
                                    f"that are missing; copy every file of the checkpoint")
        parts = [shard.get(path, value) for shard in shards]
        if any(part.size == 0 for part in parts):
            raise ValueError(f"{where}: a shard file has no values for {path}; the shards do not belong together")
        tree[path] = np.concatenate(parts)
    return tree


def read_flax_tree(src: str | Path) -> dict[str, np.ndarray]:
    """The official parameter tree of a checkpoint file, folder or .zip, by ``/``-joined path, float32.
    Sharded experts are joined across hosts: their leaves keep the official per-device layout with a
    leading device axis."""
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"no such checkpoint: {src}")
    if src.is_dir():
        names = [p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()]
        return _read_files(str(src), names, lambda name: (src / name).open("rb"), None)
    if src.suffix == ".zip":
        with zipfile.ZipFile(src) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
            return _read_files(str(src), names, archive.open, None)
    names = [p.name for p in src.parent.iterdir() if p.is_file()]
    main = None if _SHARD.fullmatch(src.name) else src.name  # a shard file: read the checkpoint it belongs to
    return _read_files(str(src.parent), names, lambda name: (src.parent / name).open("rb"), main)


# --- the parameter tree -> a tokenmix config and state dict -----------------------------------------------

@dataclass(frozen=True)
class _Layer:
    attention: str | None  # path of its self-attention parameters, if it has self-attention
    linear: str | None  # path of its linear-mixing matrices, if it has linear mixing
    moe: bool  # a mixture-of-experts feed-forward


_MIXING = {"f_net": "fourier", "ff_only": "identity", "random": "random", "linear": "linear",
           "sparse_mixer": "linear", "fast_sparse_mixer": "linear", "bert": "attention"}
_NAME_HINTS = (("fast_sparse_mixer", "fast_sparse_mixer|fsm"), ("sparse_mixer", "sparse_mixer|sm"),
               ("ff_only", "ff_only"), ("f_net", "f_?net"), ("random", "random"), ("linear", "linear"), ("bert", "bert"))


class _Tree:
    """The flat tree; ``take`` consumes a leaf, so that what is left at the end is unexpected."""

    def __init__(self, leaves: dict[str, np.ndarray], source: str) -> None:
        self.leaves, self.source, self.values = dict(leaves), source, 0

    def has(self, path: str) -> bool:
        return path in self.leaves

    def shape(self, path: str) -> tuple[int, ...]:
        return self.leaves[path].shape if path in self.leaves else self._missing(path)

    def take(self, path: str) -> np.ndarray:
        value = self.leaves.pop(path) if path in self.leaves else self._missing(path)
        self.values += value.size
        return value

    def _missing(self, path: str) -> NoReturn:
        raise ValueError(f"{self.source} has no parameter {path}; it is not a complete official checkpoint")


def _layers(tree: _Tree) -> list[_Layer]:
    blocks = {int(m.group(1)) for path in tree.leaves if (m := re.match(r"encoder/encoder_(\d+)/", path))}
    if not blocks:
        raise ValueError(f"{tree.source} has no encoder/encoder_0 block: it is not an FNet or Sparse Mixers checkpoint")
    layers = []
    for i in range(max(blocks) + 1):
        attention = next((p for p in (f"encoder/self_attention_{i}", f"encoder/attention_{i}/self")
                          if tree.has(f"{p}/query/kernel")), None)
        linear = f"encoder/linear_transform_{i}" if tree.has(f"encoder/linear_transform_{i}/hidden_kernel") else None
        layers.append(_Layer(attention, linear, tree.has(f"encoder/expert_{i}/intermediate/kernel")))
    return layers


def _variant_from_name(src: Path) -> str | None:
    """The architecture its published name gives (f_net_checkpoint, sm_base.zip, .../bert/...)."""
    for part in reversed(src.parts[-3:]):
        for variant, pattern in _NAME_HINTS:
            if re.search(rf"(?<![a-z])({pattern})(?![a-z])", part.lower()):
                return variant
    return None


def _kind(layers: list[_Layer]) -> tuple[str, tuple[str, ...]]:
    """What the weights show, and the official variants whose weights look like that."""
    if all(layer.attention for layer in layers):
        return "self-attention", ("bert",)
    if any(layer.moe for layer in layers):
        return "mixture-of-experts", ("sparse_mixer", "fast_sparse_mixer")  # they differ in capacity factor only
    if any(layer.linear for layer in layers):
        return "linear mixing", ("linear",)
    return "parameter-free mixing", ("f_net", "ff_only", "random")  # Fourier, identity, unstored random


def _choose_variant(layers: list[_Layer], requested: str | None, src: Path) -> str:
    kind, allowed = _kind(layers)
    if requested:
        if requested not in OFFICIAL_VARIANTS:
            raise ValueError(f"variant={requested!r} is not an official checkpoint; choose one of {', '.join(OFFICIAL_VARIANTS)}")
        if requested not in allowed:
            raise ValueError(f"{src} holds a {kind} checkpoint ({' or '.join(allowed)}), not {requested!r}")
        return requested
    hint = _variant_from_name(src)
    if hint in allowed:
        return hint
    if len(allowed) == 1:
        return allowed[0]
    raise ValueError(f"{src} holds a {kind} checkpoint and its name does not say which (their weights are alike): "
                     f"pass --variant {' or --variant '.join(allowed)}")


def _layout(num_layers: int, chosen: set[int], what: str, src: Path) -> str:
    for layout in LAYOUTS:
        if layer_indices(num_layers, len(chosen), layout) == chosen:
            return layout
    raise ValueError(f"{src}: {what} layers {sorted(chosen)} of {num_layers} follow no official layout ({', '.join(LAYOUTS)})")


def _sparse_mixers(tree: _Tree, layers: list[_Layer]) -> bool:
    """Whether the tree is the Sparse Mixers code's (its own attention and linear-mixing names, experts)."""
    return any(layer.moe or (layer.attention or "").endswith("/self")
               or (layer.linear is not None and tree.has(f"{layer.linear}/input_kernel")) for layer in layers)


def _config(tree: _Tree, layers: list[_Layer], variant: str, src: Path) -> ModelConfig:
    n = len(layers)
    vocab, d_emb = tree.shape("encoder/embedder/word/embedding")
    hidden = tree.shape("encoder/embedder/hidden_mapping_in/kernel")[1]
    attention = {i for i, layer in enumerate(layers) if layer.attention}
    moe = {i for i, layer in enumerate(layers) if layer.moe}
    dense = {tree.shape(f"encoder/feed_forward_{i}/intermediate/kernel")[1] for i in range(n) if i not in moe}
    if len(dense) > 1:
        raise ValueError(f"{src}: feed-forward widths {sorted(dense)} differ between layers; tokenmix has one width")
    fields: dict[str, Any] = dict(
        variant={"f_net": "hybrid" if attention else "fnet"}.get(variant, variant), mixing=_MIXING[variant],
        vocab_size=vocab, embedding_size=d_emb, hidden_size=hidden, num_layers=n,
        max_position_embeddings=tree.shape("encoder/embedder/position/embedding")[1],
        type_vocab_size=tree.shape("encoder/embedder/type/embedding")[0],
        num_heads=tree.shape(f"{layers[min(attention)].attention}/query/kernel")[1] if attention else max(1, hidden // 64),
        zero_biases=_sparse_mixers(tree, layers),  # the Sparse Mixers code initialises new heads' biases at zero
    )
    if attention and len(attention) < n:
        fields.update(num_attention_layers=len(attention), attention_layout=_layout(n, attention, "attention", src))
    if moe:
        kernel = tree.shape(f"encoder/expert_{min(moe)}/intermediate/kernel")  # [devices,] d, local experts, d_ff
        factor = 0.5 if variant == "fast_sparse_mixer" else 1.0
        fields.update(num_moe_layers=len(moe), moe_layout=_layout(n, moe, "mixture-of-experts", src),
                      num_experts=int(np.prod(kernel[:-3])) * kernel[-2], expert_intermediate_size=kernel[-1],
                      train_capacity_factor=factor, eval_capacity_factor=factor)
    fields["intermediate_size"] = dense.pop() if dense else fields["expert_intermediate_size"]
    if tree.has("predictions_dense/kernel"):
        fields["head"] = "pretraining"
    elif tree.has("classification/output_kernel"):
        labels = tree.shape("classification/output_kernel")[0]
        fields.update(head="regression" if labels == 1 else "classification", num_labels=labels)
    return ModelConfig(**fields)


def _state(tree: _Tree, layers: list[_Layer], config: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}

    def put(name: str, value: np.ndarray) -> None:
        state[name] = torch.from_numpy(np.array(value, dtype=np.float32))  # a copy: decoded arrays are read-only

    def dense(ours: str, theirs: str) -> None:  # Flax kernel [in, out] -> torch weight [out, in]
        put(f"{ours}.weight", tree.take(f"{theirs}/kernel").T)
        put(f"{ours}.bias", tree.take(f"{theirs}/bias"))

    def norm(ours: str, theirs: str) -> None:
        put(f"{ours}.weight", tree.take(f"{theirs}/scale"))
        put(f"{ours}.bias", tree.take(f"{theirs}/bias"))

    def experts(ours: str, theirs: str) -> None:
        """Per device, nn.vmap stacked the local experts on axis 1 of each parameter; the devices come
        first, in host order (the order of the official all_to_all): -> [experts, ...]."""
        for name, path, per_device in (("weight_in", "intermediate/kernel", 3), ("bias_in", "intermediate/bias", 2),
                                       ("weight_out", "output/kernel", 3), ("bias_out", "output/bias", 2)):
            value = tree.take(f"{theirs}/{path}")
            value = np.moveaxis(value[None] if value.ndim == per_device else value, 2, 1)
            value = value.reshape(-1, *value.shape[2:])
            put(f"{ours}.{name}", value if per_device == 3 else value[:, None])

    embedder = "encoder/embedder"
    put("encoder.embeddings.word.weight", tree.take(f"{embedder}/word/embedding"))
    put("encoder.embeddings.position.weight", tree.take(f"{embedder}/position/embedding")[0])
    put("encoder.embeddings.token_type.weight", tree.take(f"{embedder}/type/embedding"))
    norm("encoder.embeddings.norm", f"{embedder}/layer_norm")
    dense("encoder.embeddings.projection", f"{embedder}/hidden_mapping_in")
    matrices = random_mixing_matrices(seed, len(layers), config.hidden_size, config.max_position_embeddings) \
        if config.mixing == "random" else []
    for i, layer in enumerate(layers):
        ours = f"encoder.layers.{i}"
        if layer.attention:
            q, k, v = (tree.take(f"{layer.attention}/{name}/kernel") for name in ("query", "key", "value"))
            put(f"{ours}.mixing.qkv.weight", np.concatenate([w.reshape(w.shape[0], -1) for w in (q, k, v)], axis=1).T)
            put(f"{ours}.mixing.qkv.bias", np.concatenate([tree.take(f"{layer.attention}/{name}/bias").reshape(-1)
                                                            for name in ("query", "key", "value")]))
            out = tree.take(f"{layer.attention}/out/kernel")  # [heads, head_dim, d]
            put(f"{ours}.mixing.out.weight", out.reshape(-1, out.shape[-1]).T)
            put(f"{ours}.mixing.out.bias", tree.take(f"{layer.attention}/out/bias"))
        elif layer.linear:
            seq = "input_kernel" if tree.has(f"{layer.linear}/input_kernel") else "seq_kernel"
            put(f"{ours}.mixing.seq_kernel", tree.take(f"{layer.linear}/{seq}"))
            put(f"{ours}.mixing.hidden_kernel", tree.take(f"{layer.linear}/hidden_kernel"))
        elif matrices:
            put(f"{ours}.mixing.hidden_kernel", matrices[i][0])
            put(f"{ours}.mixing.seq_kernel", matrices[i][1])
        norm(f"{ours}.mixing_norm", f"encoder/encoder_{i}/mixing_layer_norm")
        norm(f"{ours}.output_norm", f"encoder/encoder_{i}/output_layer_norm")
        if layer.moe:
            dense(f"{ours}.ff.router", f"encoder/router_weights_{i}/DenseGeneral_0")
            experts(f"{ours}.ff.experts", f"encoder/expert_{i}")
        else:
            dense(f"{ours}.ff.intermediate", f"encoder/feed_forward_{i}/intermediate")
            dense(f"{ours}.ff.output", f"encoder/feed_forward_{i}/output")
    dense("encoder.pooler.dense", "encoder/pooler")
    if config.head == "pretraining":
        dense("mlm.dense", "predictions_dense")
        norm("mlm.norm", "predictions_layer_norm")
        put("mlm.bias", tree.take("predictions_output/output_bias"))
    head = {"pretraining": "nsp", "classification": "classifier", "regression": "classifier"}.get(config.head)
    if head:  # OutputProjection kernels are stored [n_out, d] already
        put(f"{head}.weight", tree.take("classification/output_kernel"))
        put(f"{head}.bias", tree.take("classification/output_bias"))
    if tree.leaves:
        extra = sorted(tree.leaves)
        raise ValueError(f"{tree.source} has parameters of no official architecture tokenmix knows: "
                         f"{', '.join(extra[:5])}" + (f" (+{len(extra) - 5} more)" if len(extra) > 5 else ""))
    return state


def random_mixing_matrices(seed: int, num_layers: int, hidden: int, seq_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The fixed (hidden [d, d], sequence [L, L]) matrices of every layer of the official Random model,
    drawn as its ``EncoderModel`` and ``RandomTransform`` draw them: ``PRNGKey(seed)`` split once per
    layer, that key split into a hidden and a sequence key, ``lecun_normal`` float32, with jax's
    original (pre-0.5, non-partitionable) threefry, the one the checkpoints were trained with."""
    try:
        import jax  # noqa: PLC0415 (optional, the `official` extra: only the Random checkpoint needs it)
    except ImportError:
        raise ValueError("the random checkpoint does not store its mixing matrices; redrawing them as the official "
                         "code did needs jax: pip install 'tokenmix[official]'") from None
    init = jax.nn.initializers.lecun_normal()
    matrices = []
    with jax.threefry_partitionable(False), jax.default_device(jax.devices("cpu")[0]):
        key = jax.random.PRNGKey(seed)
        for _ in range(num_layers):
            key, layer_key = jax.random.split(key)
            hidden_key, seq_key = jax.random.split(layer_key)
            matrices.append((np.asarray(init(hidden_key, (hidden, hidden), np.float32)),
                             np.asarray(init(seq_key, (seq_len, seq_len), np.float32))))
    return matrices


@dataclass
class OfficialCheckpoint:
    variant: str  # the official architecture name (OFFICIAL_VARIANTS)
    config: ModelConfig
    state: dict[str, torch.Tensor]
    values: int  # parameter values read from the checkpoint (every one of them mapped)


def read_official(src: str | Path, variant: str | None = None, seed: int = 0, pad_token_id: int = 3) -> OfficialCheckpoint:
    """Read an official checkpoint into a tokenmix config and state dict. ``variant`` (an official
    name) is checked against the weights; without it, it comes from the weights and the file name.
    ``seed``: the Random model's pre-training seed. ``pad_token_id``: the vocabulary's (official: 3)."""
    src = Path(src)
    tree = _Tree(read_flax_tree(src), str(src))
    layers = _layers(tree)
    variant = _choose_variant(layers, variant, src)
    config = _config(tree, layers, variant, src).replace(pad_token_id=pad_token_id)
    state = _state(tree, layers, config, seed)
    return OfficialCheckpoint(variant, config, state, tree.values)


def _vocab_bytes(src: Path, vocab: str | Path | None) -> tuple[bytes, str]:
    """The SentencePiece model and where it was found: ``vocab``, else the one ``.model`` next to the
    checkpoint or in its folder or .zip."""
    if vocab:
        if Path(vocab).is_dir():
            raise ValueError(f"--vocab {vocab} is a folder; give the SentencePiece .model file")
        if not Path(vocab).is_file():
            raise FileNotFoundError(f"no such vocabulary file: {vocab}")
        return Path(vocab).read_bytes(), f"--vocab {vocab}"
    if src.suffix == ".zip":
        with zipfile.ZipFile(src) as archive:
            found = [name for name in archive.namelist() if name.endswith(".model")]
            if len(found) == 1:
                return archive.read(found[0]), f"{src}:{found[0]}"
    else:
        found = [str(p) for p in (src.rglob("*.model") if src.is_dir() else src.parent.glob("*.model"))]
        if len(found) == 1:
            return Path(found[0]).read_bytes(), found[0]
    if found:
        raise ValueError(f"several vocabularies next to {src} ({', '.join(sorted(found))}): pass one with --vocab PATH")
    raise FileNotFoundError(f"no SentencePiece vocabulary next to {src}: download c4_bpe_sentencepiece.model "
                            f"({VOCAB_URL}) and pass --vocab PATH")


def convert_official(src: str | Path, dst: str | Path, variant: str | None = None, vocab: str | Path | None = None,
                     seed: int = 0, overwrite: bool = False) -> Path:
    """Convert an official FNet or Sparse Mixers checkpoint into a tokenmix model folder with its
    vocabulary (``spiece.model``); returns the folder (an existing one only with ``overwrite``). See
    :func:`read_official` for the options."""
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise FileNotFoundError(f"no such checkpoint: {src}")
    if dst.resolve() == src.resolve():
        raise ValueError(f"convert from-official would write into its source {src}; pick another destination")
    claim_output(dst, overwrite, flag="DST")
    vocabulary, where = _vocab_bytes(src, vocab)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / VOCAB_NAME).write_bytes(vocabulary)
        try:
            tokenizer = Tokenizer.load(Path(tmp) / VOCAB_NAME)
        except ValueError:  # its message names the temporary copy: name the user's file instead
            raise ValueError(f"{where} is not a SentencePiece Unigram vocabulary; pass the checkpoint's "
                             f"c4_bpe_sentencepiece.model ({VOCAB_URL}) with --vocab PATH") from None
    checkpoint = read_official(src, variant, seed, tokenizer.pad_id)
    if tokenizer.vocab_size != checkpoint.config.vocab_size:
        raise ValueError(f"the vocabulary has {tokenizer.vocab_size} pieces but {src} embeds "
                         f"{checkpoint.config.vocab_size} tokens; pass the vocabulary it was trained with")
    model = build_model(checkpoint.config)
    load_weights(model, checkpoint.state, str(src))
    model.save_pretrained(dst)
    atomic_write(dst / VOCAB_NAME, lambda tmp: Path(tmp).write_bytes(vocabulary))
    return dst

