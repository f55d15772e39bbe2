import pytest
import torch

import tokenmix

VOCAB = 101
SMALL = dict(vocab_size=VOCAB, max_position_embeddings=32)


@pytest.fixture(autouse=True, scope="session")
def _autotune_cache(tmp_path_factory):
    """fourier_impl="auto" measures once per shape and caches on disk: keep that cache per test session."""
    import os

    os.environ["TOKENMIX_CACHE"] = str(tmp_path_factory.mktemp("tokenmix-cache"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny(name: str, **overrides):
    """A tiny model of variant ``name`` in eval mode (dropout off) for exact comparisons."""
    return tokenmix.create_model(name, "tiny", **{**SMALL, **overrides}).eval()


def random_ids(batch: int = 2, length: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A small tokenizer trained on the GLUE and SuperGLUE fixtures (for fine-tuning tests)."""
    from pathlib import Path

    from tokenmix.text.configs import TokenizerTrainConfig
    from tokenmix.text.tokenizer import train_tokenizer

    fixtures = Path(__file__).parent / "fixtures"
    folder = tmp_path_factory.mktemp("tok")
    texts = [p.read_text(encoding="utf-8-sig") for p in sorted((*fixtures.glob("glue/*/*.tsv"),
                                                                *fixtures.glob("superglue/*/*.jsonl")))]
    (folder / "corpus.txt").write_text("\n\n".join(texts))
    return str(train_tokenizer(TokenizerTrainConfig(input=(str(folder / "corpus.txt"),), out=str(folder / "tok"),
                                                    vocab_size=400)))


SHARED_GLUE = __import__("pathlib").Path(__file__).parents[2] / "shared" / "data" / "glue"


@pytest.fixture(scope="session")
def sst2_tokenizer(tmp_path_factory):
    """A 2000-token tokenizer trained on 8000 real SST-2 training sentences (skips without the data)."""
    from tokenmix.text.configs import TokenizerTrainConfig
    from tokenmix.text.tokenizer import train_tokenizer

    source = SHARED_GLUE / "SST-2" / "train.tsv"
    if not source.is_file():
        pytest.skip("needs ../shared/data/glue")
    folder = tmp_path_factory.mktemp("sst2tok")
    lines = source.read_text().splitlines()[1:8001]
    (folder / "corpus.txt").write_text("\n\n".join(line.split("\t")[0] for line in lines))
    return str(train_tokenizer(TokenizerTrainConfig(input=(str(folder / "corpus.txt"),), out=str(folder / "tok"),
                                                    vocab_size=2000)))
