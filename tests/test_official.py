"""Converting the official FNet / Sparse Mixers Flax checkpoints (tokenmix.io.official).

The fixtures under tests/fixtures/official were written by flax itself (make_fixtures.py says how).
Every converted model is checked against ``reference_forward`` below: the official forward pass
re-implemented in numpy from the raw parameter tree, independently of tokenmix's modules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import tokenmix
from tokenmix.io import official
from tokenmix.io.configs import OFFICIAL_VARIANTS, OfficialConvertConfig
from tokenmix.io.official import convert_official, read_flax_tree, read_official
from tokenmix.text.tokenizer import Tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "official"
VOCAB = FIXTURES / "c4_bpe_sentencepiece.model"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
RANDOM = dict(np.load(FIXTURES / "random_matrices.npz"))
BATCH, LENGTH = 4, 8  # inputs fill the whole (official, padded) length of the fixtures


def fixture(name: str) -> Path:
    return FIXTURES / MANIFEST[name]["path"]


@pytest.fixture
def no_jax_needed(monkeypatch):
    """The Random matrices jax drew at fixture time, so that CI converts the Random model without jax."""
    def committed(seed, num_layers, hidden, seq_len):
        assert (seed, hidden, seq_len) == (0, 8, LENGTH)
        return [(RANDOM[f"hidden_{i}"], RANDOM[f"seq_{i}"]) for i in range(num_layers)]

    monkeypatch.setattr(official, "random_mixing_matrices", committed)


# --- the official forward pass, from the raw tree ---------------------------------------------------------

def _norm(p, x, name):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * p[f"{name}/scale"] + p[f"{name}/bias"]


def _dense(p, x, name):
    return x @ p[f"{name}/kernel"] + p[f"{name}/bias"]


def _gelu(x):  # flax nn.gelu: the tanh approximation
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _attention(p, x, name):
    """flax.linen.SelfAttention: DenseGeneral q/k/v [d, heads, head_dim], out [heads, head_dim, d]."""
    q, k, v = (np.einsum("bld,dhk->blhk", x, p[f"{name}/{n}/kernel"]) + p[f"{name}/{n}/bias"] for n in ("query", "key", "value"))
    weights = _softmax(np.einsum("bqhk,bshk->bhqs", q / np.sqrt(q.shape[-1]), k))
    return np.einsum("bqhk,hkd->bqd", np.einsum("bhqs,bshk->bqhk", weights, v), p[f"{name}/out/kernel"]) + p[f"{name}/out/bias"]


def _experts_choose(p, x, i, capacity_factor):
    """sparse_mixers MoeLayer with ExpertsChooseMaskedRouter, one routing group: every expert takes its
    top-C tokens; ``_call_experts`` hands expert e = device * local + j to local expert j of a device."""
    tokens = x.reshape(1, -1, x.shape[-1])
    probs = _softmax(_dense(p, tokens, f"encoder/router_weights_{i}/DenseGeneral_0"))
    kernel_in = p[f"encoder/expert_{i}/intermediate/kernel"]  # [devices, d, local experts, d_ff]
    devices, local = kernel_in.shape[0], kernel_in.shape[2]
    experts, num_tokens = devices * local, tokens.shape[1]
    capacity = max(4, int(round(capacity_factor * num_tokens / experts)))
    chosen = np.argsort(-probs.transpose(0, 2, 1), axis=-1, kind="stable")[..., :capacity]  # [1, E, C]
    gate = np.take_along_axis(probs.transpose(0, 2, 1), chosen, axis=-1)
    dispatch = np.eye(num_tokens)[chosen]  # [1, E, C, T]
    inputs = np.einsum("gect,gtd->gecd", dispatch, tokens)
    outputs = np.zeros_like(inputs)
    for e in range(experts):
        device, j = divmod(e, local)
        def weight(path, device=device, j=j):
            return p[f"encoder/expert_{i}/{path}"][device][..., j, :] if path.endswith("kernel") else p[f"encoder/expert_{i}/{path}"][device][..., j]
        hidden = _gelu(inputs[:, e] @ weight("intermediate/kernel") + weight("intermediate/bias"))
        outputs[:, e] = hidden @ weight("output/kernel") + weight("output/bias")
    return np.einsum("gecd,gec,gect->gtd", outputs, gate, dispatch).reshape(x.shape)


def reference_forward(p, variant, ids, types, positions, random=None):
    """(last hidden state, pooled, MLM logits at ``positions``, NSP logits) of the official code."""
    p = {k: v.astype(np.float64) for k, v in p.items()}
    e = "encoder/embedder"
    x = p[f"{e}/word/embedding"][ids] + p[f"{e}/position/embedding"][:, : ids.shape[1]] + p[f"{e}/type/embedding"][types]
    x = _dense(p, _norm(p, x, f"{e}/layer_norm"), f"{e}/hidden_mapping_in")
    num_layers = 1 + max(int(k.split("/")[1].split("_")[1]) for k in p if k.startswith("encoder/encoder_"))
    for i in range(num_layers):
        attention = next((n for n in (f"encoder/self_attention_{i}", f"encoder/attention_{i}/self") if f"{n}/query/kernel" in p), None)
        linear = f"encoder/linear_transform_{i}"
        if attention:
            mix = _attention(p, x, attention)
        elif f"{linear}/hidden_kernel" in p:
            seq = p.get(f"{linear}/seq_kernel", p.get(f"{linear}/input_kernel"))
            mix = np.einsum("bij,jk,ni->bnk", x, p[f"{linear}/hidden_kernel"], seq)
        elif variant == "random":
            mix = np.einsum("bij,jk,ni->bnk", x, random[f"hidden_{i}"].astype(np.float64), random[f"seq_{i}"].astype(np.float64))
        elif variant == "ff_only":
            mix = x
        else:
            mix = np.fft.fft2(x, axes=(1, 2)).real
        x = _norm(p, x + mix, f"encoder/encoder_{i}/mixing_layer_norm")
        if f"encoder/expert_{i}/intermediate/kernel" in p:
            ff = _experts_choose(p, x, i, 0.5 if variant == "fast_sparse_mixer" else 1.0)
        else:
            ff = _dense(p, _gelu(_dense(p, x, f"encoder/feed_forward_{i}/intermediate")), f"encoder/feed_forward_{i}/output")
        x = _norm(p, x + ff, f"encoder/encoder_{i}/output_layer_norm")
    pooled = np.tanh(_dense(p, x[:, 0], "encoder/pooler"))
    masked = x[np.arange(len(x))[:, None], positions]
    masked = _norm(p, _gelu(_dense(p, masked, "predictions_dense")), "predictions_layer_norm")
    mlm = masked @ p[f"{e}/word/embedding"].T + p["predictions_output/output_bias"]
    nsp = pooled @ p["classification/output_kernel"].T + p["classification/output_bias"]
    return x, pooled, mlm, nsp


def inputs(vocab_size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, (BATCH, LENGTH))
    types = rng.integers(0, 4, (BATCH, LENGTH))
    positions = np.stack([rng.choice(LENGTH, 3, replace=False) for _ in range(BATCH)])
    return ids, types, positions


def max_difference(model, tree, variant) -> float:
    ids, types, positions = inputs(model.config.vocab_size)
    expected = reference_forward(tree, variant, ids, types, positions, RANDOM)
    with torch.no_grad():
        out = model(torch.tensor(ids), torch.tensor(types), masked_positions=torch.tensor(positions))
    got = (out.last_hidden_state, out.pooler_output, out.mlm_logits, out.nsp_logits)
    return max(float(np.abs(g.double().numpy() - w).max()) for g, w in zip(got, expected))


# --- tests -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_reader_decodes_what_flax_wrote(name):
    """Every parameter as flax wrote it (bfloat16 and raw 2-byte values included), experts joined
    across hosts, and nothing of the optimiser state."""
    tree, written = read_flax_tree(fixture(name)), MANIFEST[name]["parameters"]
    assert sorted(tree) == sorted(written)
    for path, (shape, total, squares) in written.items():
        assert list(tree[path].shape) == shape and tree[path].dtype == np.float32, path
        assert float(tree[path].astype(np.float64).sum()) == pytest.approx(total, abs=1e-4), path
        assert float((tree[path].astype(np.float64) ** 2).sum()) == pytest.approx(squares, rel=1e-6), path


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_converted_model_matches_the_official_forward(name, tmp_path, no_jax_needed):
    entry = MANIFEST[name]
    out = convert_official(fixture(name), tmp_path / "model", vocab=VOCAB)
    checkpoint = read_official(fixture(name))
    assert checkpoint.variant == entry["variant"]  # from the weights and the published names
    # every stored value mapped, every model tensor filled (convert_official loads strictly)
    assert checkpoint.values == sum(int(np.prod(shape)) for shape, _, _ in entry["parameters"].values())
    assert sum(t.numel() for t in checkpoint.state.values()) == sum(t.numel() for t in tokenmix.load_pretrained(out).state_dict().values())
    model = tokenmix.load_pretrained(out).eval()
    assert max_difference(model, read_flax_tree(fixture(name)), entry["variant"]) <= 1e-5


def test_inferred_configs():
    sm = read_official(fixture("sparse_mixers/sm_base")).config
    assert (sm.variant, sm.mixing, sm.num_layers, sm.num_attention_layers, sm.num_moe_layers) == ("sparse_mixer", "linear", 4, 1, 2)
    assert sm.attention_layers() == {3} and sm.moe_layers() == {1, 2} and sm.num_experts == 8
    assert (sm.train_capacity_factor, sm.zero_biases, sm.head) == (1.0, True, "pretraining")
    fsm = read_official(fixture("sparse_mixers/fsm_small")).config
    assert (fsm.variant, fsm.eval_capacity_factor, fsm.num_experts) == ("fast_sparse_mixer", 0.5, 4)
    large = read_official(fixture("large/bert")).config
    assert (large.mixing, large.hidden_size, large.num_heads, large.num_layers, large.intermediate_size) == ("attention", 12, 3, 3, 24)
    assert (large.max_position_embeddings, large.type_vocab_size, large.pad_token_id, large.zero_biases) == (LENGTH, 4, 3, False)


def test_tokenizer_comes_along_cased(tmp_path):
    out = convert_official(fixture("base/f_net"), tmp_path / "model", vocab=VOCAB)
    tokenizer = Tokenizer.load(out)
    assert (out / "spiece.model").read_bytes() == VOCAB.read_bytes()
    assert tokenizer.vocab_size == tokenmix.load_pretrained(out).config.vocab_size
    assert (tokenizer.pad_id, tokenizer.special_tokens["cls"]) == (3, "[CLS]")
    assert tokenizer.decode(tokenizer.encode("The quick Fox")) == "The quick Fox"  # the vocabulary is cased


def test_vocabulary_found_next_to_the_checkpoint_or_asked_for(tmp_path):
    shutil.copy(fixture("base/linear"), tmp_path / "linear_checkpoint")
    with pytest.raises(FileNotFoundError, match="c4_bpe_sentencepiece.model .*--vocab"):
        convert_official(tmp_path / "linear_checkpoint", tmp_path / "out")
    shutil.copy(VOCAB, tmp_path / "c4_bpe_sentencepiece.model")
    assert Tokenizer.load(convert_official(tmp_path / "linear_checkpoint", tmp_path / "out")).vocab_size > 0


def test_wrong_vocabulary_refused(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    (tmp_path / "text.txt").write_text("a different vocabulary, a smaller one\n" * 20)
    spm.SentencePieceTrainer.train(input=str(tmp_path / "text.txt"), model_prefix=str(tmp_path / "other"), vocab_size=27,
                                   pad_id=3, user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], minloglevel=2)
    with pytest.raises(ValueError, match="the vocabulary has 27 pieces but .* embeds 48 tokens"):
        convert_official(fixture("base/f_net"), tmp_path / "out", vocab=tmp_path / "other.model")


def test_a_vocabulary_that_is_not_one_is_named_as_given(tmp_path):
    """Not the temporary copy the tokenizer was read from, and a folder is not 'no such file'."""
    (tmp_path / "train.csv").write_text("text,label\na,b\n")
    with pytest.raises(ValueError, match=r"^--vocab \S+train.csv is not a SentencePiece Unigram vocabulary; pass"):
        convert_official(fixture("base/f_net"), tmp_path / "out", vocab=tmp_path / "train.csv")
    with pytest.raises(ValueError, match="--vocab .* is a folder; give the SentencePiece .model file"):
        convert_official(fixture("base/f_net"), tmp_path / "out2", vocab=tmp_path)


def test_sparse_mixer_zip_with_its_vocabulary(tmp_path):
    archive = tmp_path / "sm_base.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in fixture("sparse_mixers/sm_base").iterdir():
            zipped.write(file, f"sm_base/{file.name}")
        zipped.write(VOCAB, "c4_bpe_sentencepiece.model")
    model = tokenmix.load_pretrained(convert_official(archive, tmp_path / "model")).eval()
    assert max_difference(model, read_flax_tree(fixture("sparse_mixers/sm_base")), "sparse_mixer") <= 1e-5


def test_the_variant_is_checked_against_the_weights(tmp_path):
    with pytest.raises(ValueError, match=r"holds a linear mixing checkpoint \(linear\), not 'f_net'"):
        read_official(fixture("base/linear"), "f_net")
    with pytest.raises(ValueError, match="mixture-of-experts .* not 'bert'"):
        read_official(fixture("sparse_mixers/sm_base"), "bert")
    assert read_official(fixture("base/f_net"), "ff_only").config.mixing == "identity"  # same weights: allowed
    shutil.copy(fixture("base/f_net"), tmp_path / "checkpoint_1000")  # a name that says nothing
    with pytest.raises(ValueError, match="pass --variant f_net or --variant ff_only or --variant random"):
        read_official(tmp_path / "checkpoint_1000")
    with pytest.raises(ValueError, match="not an official checkpoint"):
        OfficialConvertConfig(src="a", dst="b", variant="fnet")
    assert set(OFFICIAL_VARIANTS) == set(official._MIXING)


def test_truncated_and_foreign_files(tmp_path):
    data = fixture("base/f_net").read_bytes()
    for cut in (len(data) // 3, len(data) - 10):  # in the parameters, in the optimiser state
        (tmp_path / "f_net_checkpoint").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated or not a Flax checkpoint.*download it again"):
            read_official(tmp_path / "f_net_checkpoint")
    (tmp_path / "f_net_checkpoint").write_text("<html>Not Found</html>")
    with pytest.raises(ValueError, match="truncated or not a Flax checkpoint"):
        read_official(tmp_path / "f_net_checkpoint")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        read_official(tmp_path / "missing")


def test_missing_shards(tmp_path):
    folder = shutil.copytree(fixture("sparse_mixers/sm_base"), tmp_path / "sm_base")
    assert read_official(folder / "shard-00001-of-00002_checkpoint_100").config.num_experts == 8  # any file of it
    (folder / "shard-00001-of-00002_checkpoint_100").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00001-of-00002_checkpoint_100 missing; .* all 2 shard files"):
        read_official(folder)
    (folder / "shard-00000-of-00002_checkpoint_100").unlink()
    with pytest.raises(FileNotFoundError, match="expert_1/.* shard files .* missing"):
        read_official(folder / "replicated_checkpoint_100")


def test_random_matrices_without_jax(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` fails
    with pytest.raises(ValueError, match=r"does not store its mixing matrices.*pip install 'tokenmix\[official\]'"):
        convert_official(fixture("base/random"), tmp_path / "model", vocab=VOCAB)


def test_random_matrices_redrawn_as_jax_drew_them():
    pytest.importorskip("jax")
    matrices = official.random_mixing_matrices(0, 2, 8, LENGTH)
    for i, (hidden, seq) in enumerate(matrices):
        np.testing.assert_array_equal(hidden, RANDOM[f"hidden_{i}"])
        np.testing.assert_array_equal(seq, RANDOM[f"seq_{i}"])
    assert not np.array_equal(official.random_mixing_matrices(1, 1, 8, LENGTH)[0][0], RANDOM["hidden_0"])


def test_config_module_is_torch_free():
    code = "import sys, tokenmix.io.configs; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_convert_from_official_on_the_command_line(tmp_path, capsys):
    from tokenmix.cli.main import main

    src = FIXTURES / "f_net" / "base" / "f_net_checkpoint"
    code = main(["convert", "from-official", str(src), str(tmp_path / "out"), "--vocab", str(FIXTURES / "c4_bpe_sentencepiece.model")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "converted" in out and (tmp_path / "out" / "config.json").is_file()
    assert tokenmix.load_pretrained(tmp_path / "out").config.variant == "fnet"
    code = main(["convert", "from-official", str(tmp_path / "missing"), str(tmp_path / "out2")])
    assert code != 0 and capsys.readouterr().err.count("\n") == 1
