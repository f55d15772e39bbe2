"""LRA models are ordinary models with an LRA head (:class:`~tokenmix.models.heads.TokenMixForLRA`, or
the two-tower one for retrieval), built from :func:`tokenmix.lra.tasks.lra_model_config` and saved as
plain model folders: their config records the pooling and the task (``lra_task``).

:func:`load_lra_model` loads one for ``lra eval`` and refuses any other model. Folders saved before the
LRA heads existed kept those settings in an ``lra.json`` side file next to a headless config; such a
folder is read once: converted in place to the current layout (same weights, the settings moved into
config.json), with a note saying so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tokenmix.io.checkpoint import WEIGHTS_NAME, find_model_dir, load_weights, read_config, read_safetensors
from tokenmix.models.config import ModelConfig
from tokenmix.models.factory import build_model, load_pretrained
from tokenmix.models.heads import TokenMixForLRA, TokenMixForLRATwoTower

LEGACY_HEAD_FILE = "lra.json"
LRA_HEADS = (TokenMixForLRA.head, TokenMixForLRATwoTower.head)


def load_lra_model(path: str | Path) -> TokenMixForLRA:
    """The LRA model saved in ``path`` (a run directory works too: its ``best/`` model is taken)."""
    directory = find_model_dir(path)
    config = read_config(directory)
    legacy = directory / LEGACY_HEAD_FILE
    if config.head not in LRA_HEADS and legacy.is_file():
        return _convert_legacy(directory, legacy_config(config, legacy))
    if config.head not in LRA_HEADS:
        raise ValueError(f"{directory} holds a model with head={config.head!r}: it is not an LRA classifier "
                         f"(train one with `tokenmix lra run`)")
    model = load_pretrained(directory)
    assert isinstance(model, TokenMixForLRA)
    return model


def legacy_config(config: ModelConfig, head_file: Path) -> ModelConfig:
    """``config`` with the settings of an old ``lra.json`` (task, num_classes, pooling, dual)."""
    try:
        head = json.loads(head_file.read_text())
        fields = dict(head="lra_two_tower" if head.get("dual") else "lra_classification", num_labels=head["num_classes"],
                      pooling=head["pooling"], lra_task=head["task"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{head_file} is not a valid LRA head description ({err!r}); retrain with `tokenmix lra run`") from None
    return config.replace(**fields)


def _convert_legacy(directory: Path, config: ModelConfig) -> TokenMixForLRA:
    """Load an old LRA folder (its weights already carry the LRA heads' names) and rewrite it
    as a plain model folder, so that it is read like any other from then on."""
    model = build_model(config)
    assert isinstance(model, TokenMixForLRA)
    load_weights(model, read_safetensors(directory / WEIGHTS_NAME), str(directory))
    try:
        model.save_pretrained(directory)
        (directory / LEGACY_HEAD_FILE).unlink()
        done = f"converted it to the current layout (config.json now says head={config.head!r}, " \
               f"pooling={config.pooling!r}, lra_task={config.lra_task!r}; {LEGACY_HEAD_FILE} removed)"
    except OSError as err:
        done = f"read it as head={config.head!r} but could not convert the folder ({err}); copy it somewhere writable"
    print(f"tokenmix: note: {directory} is an LRA model in the old layout (with {LEGACY_HEAD_FILE}); {done}",
          file=sys.stderr)
    return model
