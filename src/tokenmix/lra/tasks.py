"""The Long Range Arena tasks and their official base configurations (no torch import).

Sizes are those of the LRA paper's appendix / the ``google-research/long-range-arena`` base configs:

| task | layers | hidden | heads | FF | pooling | length | classes |
|---|---|---|---|---|---|---|---|
| listops | 6 | 512 | 8 | 2048 | CLS | 2000 | 10 |
| text | 4 | 256 | 4 | 1024 | CLS | 4096 bytes | 2 |
| retrieval | 4 | 128 | 4 | 512 | CLS | 4096 bytes per document | 2 |
| image | 1 | 128 | 8 | 128 | CLS | 1024 pixels | 10 |
| pathfinder32/64/128 | 4/2/1 | 32 | 4/4/2 | 32 | MEAN/CLS/MEAN | S*S pixels | 2 |

(The repo's ``base_listops_config.py`` says 4 layers / FF 1024; we keep the paper's 6 / 2048, the
configuration the issue and the FNet paper cite.) ``--preset lra`` means these sizes; any other preset
name takes the size from :data:`tokenmix.models.config.PRESETS`, and ``--override`` changes any field. The
model's ``max_position_embeddings`` is the task's sequence length, or the shorter ``--max-len`` of a run
(+1 for the CLS token). The model is the shared encoder with an LRA head
(:class:`tokenmix.models.heads.TokenMixForLRA`, or the two-tower one for retrieval); its config records the
pooling and the task (``lra_task``), so a saved model is an ordinary model folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from tokenmix.models.config import POOLINGS, ModelConfig
from tokenmix.models.registry import make_config

# Byte / pixel vocabulary shared by text, retrieval, image and pathfinder: 0 = PAD, 1 = CLS, 2 + v
# for the byte or grey level v (0..255).
BYTE_PAD, BYTE_CLS, BYTE_OFFSET = 0, 1, 2
BYTE_VOCAB_SIZE = 256 + BYTE_OFFSET
# len(tokenmix.lra.listops.VOCAB): [PAD] [CLS] [UNK], four operators, "]" and ten digits (a test checks it).
LISTOPS_VOCAB_SIZE = 18
SPLITS = ("train", "val", "test")
OVERFLOW = ("truncate", "error")  # what a sequence longer than the task gets
DIFFICULTY = {"easy": 6, "intermediate": 9, "hard": 14}  # Pathfinder: paddles per contour


@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str  # column of the LRA table
    num_classes: int
    seq_len: int  # content tokens per sequence (the CLS token, if any, comes on top)
    vocab_size: int
    pooling: str
    sizes: dict[str, int]  # hidden_size, num_layers, num_heads, intermediate_size
    model: dict[str, Any] = field(default_factory=dict)  # other ModelConfig fields (dropout...)
    train: dict[str, Any] = field(default_factory=dict)  # training defaults (lr, batch size, steps)
    dual: bool = False  # two-tower document matching
    generated: bool = False  # data can be generated (listops, pathfinder)
    image_size: int = 0  # pathfinder only


def _pathfinder(size: int, sizes: dict[str, int], pooling: str, title: str, batch: int) -> TaskSpec:
    return TaskSpec(f"pathfinder{size}", title, 2, size * size, BYTE_VOCAB_SIZE, pooling, sizes,
                    model=dict(dropout=0.1, attention_dropout=0.1),
                    train=dict(learning_rate=1e-3, batch_size=batch, weight_decay=0.0, epochs=200),
                    generated=True, image_size=size)


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("listops", "ListOps", 10, 1999, LISTOPS_VOCAB_SIZE, "cls",
             dict(hidden_size=512, num_layers=6, num_heads=8, intermediate_size=2048),
             train=dict(learning_rate=5e-4, batch_size=32, weight_decay=0.1, max_steps=5000), generated=True),
    TaskSpec("text", "Text", 2, 4095, BYTE_VOCAB_SIZE, "cls",
             dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
             train=dict(learning_rate=5e-4, batch_size=32, weight_decay=0.1, max_steps=20000)),
    TaskSpec("retrieval", "Retrieval", 2, 4095, BYTE_VOCAB_SIZE, "cls",
             dict(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512),
             train=dict(learning_rate=5e-4, batch_size=32, weight_decay=0.1, max_steps=5000), dual=True),
    TaskSpec("image", "Image", 10, 1024, BYTE_VOCAB_SIZE, "cls",
             dict(hidden_size=128, num_layers=1, num_heads=8, intermediate_size=128),
             model=dict(dropout=0.3, attention_dropout=0.2),
             train=dict(learning_rate=5e-4, batch_size=256, weight_decay=0.0, epochs=200)),
    _pathfinder(32, dict(hidden_size=32, num_layers=4, num_heads=4, intermediate_size=32), "mean", "Pathfinder", 512),
    _pathfinder(64, dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=32), "cls", "Path-64", 256),
    _pathfinder(128, dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=32), "mean", "Path-X", 64),
)}
ALIASES = {"pathfinder": "pathfinder32", "path-x": "pathfinder128", "pathx": "pathfinder128"}
# Columns of the FNet paper's LRA table; the average excludes Path-X, as in the paper.
TABLE_COLUMNS = ("listops", "text", "retrieval", "image", "pathfinder32", "pathfinder128")


def get_lra_task(name: str) -> TaskSpec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise ValueError(f"unknown LRA task {name!r}; choose one of {', '.join(TASKS)} (or pathfinder, path-x)")
    return TASKS[key]


def model_overrides(task: TaskSpec, preset: str, pooling: str, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(preset name for ``make_config``, field overrides) of the task's model. ``preset="lra"`` takes
    the official sizes; the head, vocabulary, length and user overrides always apply."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not valid; choose one of {', '.join(POOLINGS)}")
    fields: dict[str, Any] = {}
    if preset == "lra":
        fields.update(task.sizes, **task.model)
        preset = "mini"  # only supplies fields the task config leaves unset
    fields.update(head="lra_two_tower" if task.dual else "lra_classification", num_labels=task.num_classes,
                  pooling=pooling, lra_task=task.name, vocab_size=task.vocab_size, pad_token_id=0,
                  max_position_embeddings=task.seq_len + (pooling == "cls"))
    fields.update(overrides)
    return preset, fields


def lra_model_config(name: str, task: TaskSpec, preset: str, pooling: str, overrides: dict[str, Any],
                     seq_len: int | None = None) -> ModelConfig:
    """Config of variant ``name`` on ``task`` (see :func:`model_overrides`), built for ``seq_len``
    content tokens (default: the task's length)."""
    task = replace(task, seq_len=seq_len) if seq_len else task
    preset, fields = model_overrides(task, preset, pooling, overrides)
    return make_config(name, preset, **fields)
