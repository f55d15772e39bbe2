"""Hugging Face Hub ids (``google/fnet-base``) as model sources, through the ``huggingface_hub`` cache.

:func:`resolve_model_source` turns what a user typed into a local folder: an existing path is
returned as it is; an ``owner/name`` id is looked up with ``huggingface_hub.snapshot_download``
(the optional ``hub`` extra), which downloads into its cache (``HF_HUB_CACHE``, by default
``~/.cache/huggingface/hub``) once and answers from it afterwards, and from it only when
``HF_HUB_OFFLINE=1``. Only the files a conversion reads are fetched: ``config.json``, the weights
(safetensors, or ``pytorch_model.bin`` when a repository has nothing else) and the tokenizer
(``spiece.model``, ``tokenizer.json``...). Failures are one line naming the id and what to do.
Torch-free, so that any loader can call it first.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["is_hub_id", "resolve_model_source"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_FILES = ["config.json", "*.model", "tokenizer*.json", "special_tokens_map.json"]
_WEIGHTS = (["*.safetensors", "*.safetensors.index.json"], ["pytorch_model*.bin", "pytorch_model.bin.index.json"])


def is_hub_id(text: str | Path) -> bool:
    """``owner/name``, the form of a Hugging Face Hub model id (a local path may look the same: an
    existing path always wins)."""
    return isinstance(text, str) and _HUB_ID.fullmatch(text) is not None


def resolve_model_source(source: str | Path, revision: str | None = None) -> Path:
    """The local folder of ``source``: ``source`` itself if it exists or is no Hub id, otherwise the
    cached snapshot of the Hub model ``source`` (at ``revision``, default ``main``), downloaded
    first unless it is cached."""
    if Path(source).exists() or not is_hub_id(source):
        return Path(source)
    repo_id = str(source)
    folder = _snapshot(repo_id, revision, _FILES + _WEIGHTS[0])
    if not any(folder.glob("*.safetensors")):  # an older repository: PyTorch .bin weights only
        folder = _snapshot(repo_id, revision, _FILES + _WEIGHTS[1])
    return folder


def _snapshot(repo_id: str, revision: str | None, patterns: list[str]) -> Path:
    try:  # optional (the `hub` extra): only Hub ids need it
        from huggingface_hub import constants, snapshot_download  # noqa: PLC0415
        from huggingface_hub.errors import (  # noqa: PLC0415
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise ValueError(f"{repo_id} is not a local folder; downloading it from the Hugging Face Hub needs "
                         f"huggingface_hub: pip install 'tokenmix[hub]'") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except GatedRepoError:
        raise ValueError(f"{repo_id} is gated on the Hugging Face Hub: accept its terms on huggingface.co and log in "
                         f"with `hf auth login`") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(f"{repo_id} is neither a local folder nor a model on the Hugging Face Hub (or it is "
                                f"private): check the spelling, e.g. google/fnet-base") from None
    except RevisionNotFoundError:
        raise FileNotFoundError(f"{repo_id} has no revision {revision!r} on the Hugging Face Hub") from None
    except LocalEntryNotFoundError:  # not cached (or only partly), and no download possible
        where = f"{repo_id} is not a local folder nor (completely) in the cache {constants.HF_HUB_CACHE}"
        if constants.HF_HUB_OFFLINE:
            raise FileNotFoundError(f"{where}, and HF_HUB_OFFLINE=1 forbids downloading it: check the id, or "
                                    f"download it once online") from None
        raise FileNotFoundError(f"{where}, and the Hugging Face Hub cannot be reached: check the id and the network "
                                f"(or proxy), then retry") from None
    except HfHubHTTPError as err:
        raise ValueError(f"downloading {repo_id} from the Hugging Face Hub failed ({err}); retry later") from None
