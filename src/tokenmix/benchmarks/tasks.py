"""GLUE and SuperGLUE task specs by benchmark name. Light on purpose (no torch, no scikit-learn):
command configs check ``--benchmark`` and ``--task`` with it while the CLI builds its parser."""

from __future__ import annotations

from collections.abc import Callable

from tokenmix.benchmarks.glue import GlueTask, get_glue_task
from tokenmix.benchmarks.superglue import SuperGLUETask, get_superglue_task

BENCHMARKS: dict[str, Callable[[str], GlueTask | SuperGLUETask]] = {"glue": get_glue_task, "superglue": get_superglue_task}


def get_benchmark_task(benchmark: str, name: str) -> GlueTask | SuperGLUETask:
    """The spec of task ``name`` of ``benchmark``; an unknown benchmark or task is an error that lists
    the valid ones."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[benchmark](name)
