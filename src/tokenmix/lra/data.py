"""The data of an LRA task: :func:`load_task_splits` hands the task to its loader (:mod:`.listops`,
:mod:`.text`, :mod:`.image`, :mod:`.pathfinder`; what they share is in :mod:`.splits`) and cuts the
sequences to a run's ``--max-len``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tokenmix.lra import image, listops, pathfinder, text
from tokenmix.lra.splits import DataOptions, Split
from tokenmix.lra.tasks import SPLITS, TaskSpec

Loader = Callable[[TaskSpec, DataOptions, Sequence[str]], dict[str, Split]]
LOADERS: dict[str, Loader] = {"listops": listops.load, "text": text.load_text, "retrieval": text.load_retrieval,
                              "image": image.load}


def load_task_splits(task: TaskSpec, options: DataOptions, splits: Sequence[str] = SPLITS) -> dict[str, Split]:
    """The requested splits of ``task``: read from ``options.data_dir`` in the official file format, or
    generated (listops, pathfinder) when no data directory is given; cut to ``options.max_len`` tokens
    when that is shorter than the task's length (the cache keeps the full sequences). With
    ``options.eval_size``, read test data is a seeded sample of that size: IMDb's 25,000 test reviews
    cost BERT an estimated hour of CPU at 1k bytes; 5,000 give a standard error of about 0.7 points."""
    load = pathfinder.load if task.name.startswith("pathfinder") else LOADERS[task.name]
    data = load(task, options, splits)
    if options.data_dir and options.eval_size and "test" in data:  # generated data is drawn at this size
        data["test"] = data["test"].sample(options.eval_size, options.seed)
    if options.max_len and options.max_len < task.seq_len:
        width = options.max_len + (options.pooling == "cls")
        data = {name: split.head(width) for name, split in data.items()}
    return data
