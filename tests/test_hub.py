"""Hugging Face Hub ids as model sources (tokenmix.io.hub), offline: a cache laid out as
huggingface_hub lays it out, holding a small random transformers FNet and its spiece.model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tokenmix
from tokenmix.train.finetune import find_tokenizer

transformers = pytest.importorskip("transformers")
huggingface_hub = pytest.importorskip("huggingface_hub")

from tokenmix.io import huggingface  # noqa: E402
from tokenmix.io.hub import is_hub_id, resolve_model_source  # noqa: E402
from tokenmix.text.tokenizer import Tokenizer  # noqa: E402

VOCAB = Path(__file__).parent / "fixtures" / "official" / "c4_bpe_sentencepiece.model"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONFIG = dict(vocab_size=48, hidden_size=16, num_hidden_layers=2, intermediate_size=32, max_position_embeddings=16)


def hub_cache(root: Path, repo_id: str, model: torch.nn.Module, safetensors: bool = True) -> Path:
    """``<root>/models--owner--name/{blobs,refs,snapshots}``: files stored once under their hash in
    ``blobs`` (sha256 for LFS files, the git blob sha1 for the rest), ``refs/main`` naming the
    commit, and ``snapshots/<commit>/<file>`` relative symlinks to the blobs."""
    source = root.parent / "saved"
    model.save_pretrained(source)
    if not safetensors:  # an older repository (transformers now always writes safetensors)
        (source / "model.safetensors").unlink()
        torch.save(model.state_dict(), source / "pytorch_model.bin")
    (source / "spiece.model").write_bytes(VOCAB.read_bytes())
    repo = root / ("models--" + repo_id.replace("/", "--"))
    for folder in ("blobs", "refs", f"snapshots/{COMMIT}"):
        (repo / folder).mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    for file in source.iterdir():
        data = file.read_bytes()
        lfs = file.suffix in (".safetensors", ".bin", ".model")
        blob = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        os.symlink(f"../../blobs/{blob}", repo / "snapshots" / COMMIT / file.name)
    return repo / "snapshots" / COMMIT


def tiny_fnet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = transformers.FNetForPreTraining(transformers.FNetConfig(**CONFIG)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 and the cache in tmp (the env vars for subprocesses, the constants that
    huggingface_hub read from them at import for this process)."""
    cache = tmp_path / "hub"
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_CACHE", str(cache)), ("HF_HOME", str(tmp_path / "home"))):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_offline_round_trip_from_the_cache(offline_cache, tmp_path):
    hf = tiny_fnet()
    snapshot = hub_cache(offline_cache, "google/fnet-base", hf)
    assert resolve_model_source("google/fnet-base") == snapshot
    out = huggingface.from_huggingface(resolve_model_source("google/fnet-base"), tmp_path / "converted")
    ours = tokenmix.load_pretrained(out).eval()
    ids = torch.randint(0, CONFIG["vocab_size"], (2, CONFIG["max_position_embeddings"]), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(ids).last_hidden_state - hf.fnet(input_ids=ids).last_hidden_state).abs().max() <= 1e-5
    assert Tokenizer.load(out).vocab_size == CONFIG["vocab_size"]  # spiece.model came along


def test_env_vars_honoured_in_a_fresh_process(offline_cache):
    snapshot = hub_cache(offline_cache, "google/fnet-large", tiny_fnet())
    code = "from tokenmix.io.hub import resolve_model_source; print(resolve_model_source('google/fnet-large'))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=os.environ)
    assert out.stdout.strip() == str(snapshot)


def test_bin_only_repository(offline_cache):
    snapshot = hub_cache(offline_cache, "someone/fnet-bin", tiny_fnet(), safetensors=False)
    assert (resolve_model_source("someone/fnet-bin") / "pytorch_model.bin").is_file() and snapshot.is_dir()


def test_mistyped_id_offline_is_one_line(offline_cache):
    hub_cache(offline_cache, "google/fnet-base", tiny_fnet())
    with pytest.raises(FileNotFoundError, match="google/fnet-bsae is not a local folder .* HF_HUB_OFFLINE=1") as err:
        resolve_model_source("google/fnet-bsae")
    assert "\n" not in str(err.value)


def test_mistyped_id_online_is_one_line(monkeypatch):
    def not_found(*args, **kwargs):
        raise huggingface_hub.errors.RepositoryNotFoundError.__new__(huggingface_hub.errors.RepositoryNotFoundError)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_found)
    with pytest.raises(FileNotFoundError, match="google/fnet-bsae is neither a local folder nor a model on the Hugging Face Hub"):
        resolve_model_source("google/fnet-bsae")


def test_local_paths_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "google" / "fnet-base").mkdir(parents=True)
    assert resolve_model_source("google/fnet-base") == Path("google/fnet-base")
    assert resolve_model_source("runs/missing/model") == Path("runs/missing/model")  # not an id: left to the loader
    assert is_hub_id("google/fnet-base") and not is_hub_id("./model") and not is_hub_id("/abs/path")


def test_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ValueError, match=r"google/fnet-base is not a local folder.*pip install 'tokenmix\[hub\]'"):
        resolve_model_source("google/fnet-base")


def test_load_pretrained_resolves_a_hub_id_once_and_caches_the_conversion(offline_cache, tmp_path, monkeypatch):
    """`tokenmix.load_pretrained("google/fnet-base")`: the snapshot is converted once into tokenmix's cache,
    the tokenizer comes along (so `finetune --init google/fnet-base` finds it), and the outputs match."""
    monkeypatch.setenv("TOKENMIX_CACHE", str(tmp_path / "tm-cache"))
    hf = tiny_fnet()
    hub_cache(offline_cache, "google/fnet-base", hf)
    ids = torch.randint(0, 48, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = tokenmix.load_pretrained("google/fnet-base").eval()(ids).last_hidden_state
        theirs = hf.fnet(input_ids=ids).last_hidden_state
    assert (ours - theirs).abs().max() <= 1e-5
    converted = list((tmp_path / "tm-cache" / "hub").glob("models--google--fnet-base/*/config.json"))
    assert len(converted) == 1
    assert find_tokenizer("google/fnet-base").vocab_size > 0
