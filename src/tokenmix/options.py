"""``option()``: a config dataclass field with its ``--help`` text. Every command's settings are such a
dataclass, and the command line makes one flag per field (:mod:`tokenmix.cli`), so the CLI and the
Python API cannot drift apart. Torch-free, like every config module.

:data:`RANGES` is the one table of the values every numeric setting accepts, keyed by field name (a name
means the same thing in every command; where one command accepts less, e.g. no 0 for "use --epochs" in
pretraining, its field says so with ``range=``): the command line checks each number against it as it parses,
so that ``--batch-size 0`` or ``--max-time -5`` is refused before any work starts, and every command's
config calls :func:`check_ranges` in ``__post_init__``, so that the Python API refuses the same values
with the same words. A config may check more (e.g. ``max_seq_len`` against the model) after it.

A field that names something the command writes says so with ``output=``: ``"file"`` or ``"folder"``
(refused if it exists unless the config's ``overwrite``: :func:`tokenmix.io.files.claim_outputs`), or
``"run"`` (a run or results folder whose command handles an existing one itself, e.g. with ``--resume``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

OUTPUT_KINDS = ("file", "folder", "run")  # the values of an option's ``output=`` metadata
OVERWRITE_HELP = "replace existing output files (refused otherwise)"  # of every config with a file/folder output


def option(default: Any, help_text: str, **metadata: Any) -> Any:
    """A config dataclass field with its ``--help`` text (the CLI builds one flag per field);
    ``positional=True`` makes it a positional argument, ``output=`` one of :data:`OUTPUT_KINDS` an output,
    ``range=`` a :class:`Range` narrower than the name's entry in :data:`RANGES` (a value such as 0 that
    means something in other commands but not in this one)."""
    if metadata.get("output", "run") not in OUTPUT_KINDS:
        raise ValueError(f"output={metadata['output']!r} is not one of {', '.join(OUTPUT_KINDS)}")
    return field(default=default, metadata={"help": help_text, **metadata})


def flag(name: str) -> str:
    """The command-line flag of a config field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Range:
    """Accepted values of a number: ``low``/``high`` bounds (None = unbounded), open or closed;
    never NaN or infinite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range, or None."""
        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"must be {self}, got {value:g}" if below or above else None

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE, NON_NEGATIVE, AT_LEAST_ONE = Range(0, low_open=True), Range(0), Range(1)
FRACTION = Range(0, 1)
RANGES: dict[str, Range] = {
    **dict.fromkeys(("batch_size", "eval_batch_size", "grad_accum", "eval_batches", "log_every", "save_every",
                     "repeats", "rounds", "batch_lines", "shard_tokens", "vocab_size", "max_piece_length",
                     "n_sub_iterations", "seed_size", "seq_len", "seq_lens", "batch_sizes", "check_batch_sizes",
                     "max_seq_len", "max_predictions_per_seq", "max_depth", "opset"), AT_LEAST_ONE),
    **dict.fromkeys(("eval_every", "max_steps", "warmup_steps", "max_train_examples", "keep_checkpoints", "seed",
                     "threads", "warmup", "workers", "train_size", "eval_size", "val_size", "max_len", "epochs",
                     "clip_grad_norm", "weight_decay", "memory_limit_gb", "time_budget_s"), NON_NEGATIVE),
    **dict.fromkeys(("learning_rate", "lr", "max_time", "seconds", "temperature", "distill_temperature", "atol",
                     "time_budget", "max_memory_gb"), POSITIVE),
    **dict.fromkeys(("alpha", "distill_alpha"), FRACTION),
    "max_args": Range(2),
    **dict.fromkeys(("mlm_probability", "decay_fraction"), Range(0, 1, low_open=True)),
    **dict.fromkeys(("warmup_ratio", "train_from_dev", "heldout_fraction"), Range(0, 1, high_open=True)),
    "shrinking_factor": Range(0, 1, low_open=True, high_open=True),
}


def range_problem(name: str, value: float, narrowed: Range | None = None) -> str | None:
    """Why ``value`` is not accepted for the field ``name`` (per :data:`RANGES`, or the field's own ``range=``
    where one command accepts less, given as ``narrowed``), or None: the one check behind both the command
    line's parsing and :func:`check_ranges`."""
    accepted = narrowed or RANGES.get(name)
    return accepted.problem(value) if accepted is not None else None


def check_ranges(config: Any) -> None:
    """Refuse a field of the dataclass ``config`` whose number (or one of whose numbers) is outside its
    range in :data:`RANGES`, in the command line's words: the Python API refuses what the command line refuses."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        for number in value if isinstance(value, tuple) else (value,):
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                problem = range_problem(f.name, number, f.metadata.get("range"))
                if problem:
                    raise ValueError(f"{flag(f.name)} {problem}")


def require_values(config: Any, *names: str) -> None:
    """Refuse an empty list in the fields ``names`` of the dataclass ``config`` (``--models ""`` would measure
    or train nothing and still succeed), with the field's default as the example of a value, and a value
    given twice (``--models fnet,fnet`` measured or trained it twice)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    for name in names:
        values = getattr(config, name)
        if not values:
            f = fields[name]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
            example = ",".join(map(str, default)) if isinstance(default, tuple) else default
            raise ValueError(f"{flag(name)} is empty; give at least one value, e.g. {flag(name)} {example}")
        refuse_repeats(flag(name), values, "value")


def refuse_repeats(option: str, values: Sequence[Any], what: str) -> None:
    """Refuse a list that names a value twice (``--models fnet,fnet``: measured or trained it twice)."""
    repeated = list(dict.fromkeys(v for v in values if list(values).count(v) > 1))
    if repeated:
        raise ValueError(f"{option} names {', '.join(map(str, repeated))} twice; give each {what} once")
