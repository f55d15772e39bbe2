"""The one training engine behind every loop in tokenmix: pretraining, fine-tuning (GLUE, SuperGLUE),
Long Range Arena, distillation and the demo.

A caller brings a model, the micro-batches of each optimizer step (``batches(step)``; a pure function of
the step, or a stream positioned at the resumed step, so that a resume is exact) and an
:class:`Objective`. :meth:`Engine.run` does the rest: the learning rate from a schedule hook, forward
passes under the ``--precision`` autocast, backward, gradient accumulation over the micro-batches (the DDP / FSDP
gradient all-reduce only on the last one), clipping, the AdamW step, a stop on a non-finite loss, train
records in ``metrics.jsonl`` and the progress bar, evaluation and checkpoints every N steps and at the
stop, SIGINT/SIGTERM (checkpoint, then ``KeyboardInterrupt``) and ``--max-time``. :meth:`Engine.resume`
restores weights, optimizer, RNG and step from the newest checkpoint.

Metrics travel by name: an objective returns a dict of named sums per micro-batch; the engine adds them
up over the micro-batches, sums them over the ranks in one all-reduce, and the objective turns them into
the step's named metrics, which ``metrics.jsonl`` averages over each ``log_every`` interval.

Weight decay, one policy everywhere: AdamW decays *all* parameters, biases and LayerNorm scales
included, as the official FNet and Sparse Mixer code does (``optax.adamw`` without a mask), so that
pretraining, fine-tuning and LRA follow the papers' recipe. The demo used to exempt biases and
LayerNorm (the BERT convention); it now decays everything too, which cannot matter for its
timing-based figures.

Time: ``max_time`` and ``train_seconds`` count training steps only, not evaluations or checkpoints, so
that a time budget buys every model the same training. A checkpoint records ``train_seconds`` and a
resumed run continues that clock, so ``max_time`` is the run's budget across resumes and a schedule over
time (``schedule(step, train_seconds)``) continues where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from tokenmix.bench.measure import PeakMemory
from tokenmix.devices import autocast, synchronize
from tokenmix.io.files import atomic_write
from tokenmix.models.encoder import TokenMixPreTrainedModel
from tokenmix.progress import Progress
from tokenmix.train.distributed import DistributedContext, gradient_sync, wrap_model
from tokenmix.train.optim import adamw
from tokenmix.train.state import (
    CHECKPOINTS,
    StopSignal,
    gather_state,
    load_checkpoint,
    newest_sound_checkpoint,
    restore_rng,
    save_checkpoint,
)

Batch = dict[str, Any]
METRICS = "metrics.jsonl"


class Objective(Protocol):
    """What a loop optimises, and what it logs."""

    def counts(self, batch: Batch) -> Mapping[str, float | torch.Tensor]:
        """Normalisers of a micro-batch (e.g. its masked positions); the engine sums them over the
        micro-batches and ranks of the step and passes the totals to :meth:`loss` and :meth:`metrics`,
        together with ``micro_batches`` (their number over all ranks)."""
        ...

    def loss(self, model: nn.Module, batch: Batch, totals: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """This micro-batch's share of the step's loss (the shares of all micro-batches and ranks add
        up to it) and named sums to log."""
        ...

    def metrics(self, sums: dict[str, float], totals: dict[str, float]) -> dict[str, float]:
        """The step's named metrics (``loss`` among them) from the sums over all micro-batches and ranks."""
        ...


@dataclass
class MeanLoss:
    """The objective of a model whose loss is already a mean over its batch: ``loss_fn(model, batch)``,
    by default ``model(**batch).loss``; logged as ``loss``."""

    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] | None = None

    def counts(self, batch: Batch) -> dict[str, float]:
        return {}

    def loss(self, model: nn.Module, batch: Batch, totals: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = model(**batch).loss if self.loss_fn is None else self.loss_fn(model, batch)
        return loss / totals["micro_batches"], {"loss": loss.detach()}

    def metrics(self, sums: dict[str, float], totals: dict[str, float]) -> dict[str, float]:
        return {"loss": sums["loss"] / totals["micro_batches"]}


@dataclass
class TrainSettings:
    """How :class:`Engine` trains. ``schedule(step, train_seconds)`` is the multiplier of
    ``learning_rate`` at a step: pretraining and fine-tuning warm up and decay over steps, the demo
    warms up over its time budget."""

    learning_rate: float
    schedule: Callable[[int, float], float]
    max_steps: int = 0  # 0 = no step limit (then max_time ends the run)
    max_time: float | None = None  # seconds of training steps
    weight_decay: float = 0.01
    clip_grad_norm: float = 0.0  # 0 = off
    precision: str = "fp32"  # --precision: fp32, bf16 or auto (tokenmix.devices.resolve_precision)
    log_every: int = 1
    eval_every: int = 0  # 0 = never on a schedule
    evaluate_at_stop: bool = True  # also evaluate when the run stops (if not done at that step)
    eval_split: str = "eval"  # the "split" of evaluation records in metrics.jsonl
    save_every: int = 0  # 0 = checkpoints only at the stop (with a run directory)
    keep_checkpoints: int = 1
    tokens_per_step: int = 0  # > 0: train records also give tokens/s and the elapsed wall time
    desc: str = "train"  # progress bar label


@dataclass
class RunResult:
    step: int  # the step reached
    trained_steps: int  # steps this process ran (after a resume, the steps after the checkpoint)
    stop_reason: str  # max_steps or max_time
    train_seconds: float  # of the whole run, resumes included
    peak_memory_bytes: int
    session_seconds: float  # of the trained_steps of this process

    @property
    def steps_per_s(self) -> float:
        return self.trained_steps / max(self.session_seconds, 1e-9)


def truncate_records(path: Path, step: int) -> None:
    """Drop the ``metrics.jsonl`` records of steps after ``step`` (a resumed run logs them again) and a
    last line cut short by a kill; a damaged line before it is an error naming the file and line."""
    if not path.exists():
        return
    lines, kept = path.read_text().splitlines(), []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # the line being written when the process died
                break
            raise ValueError(f"{path}:{number} is not a JSON record; repair or delete that line, then resume") from None
        if record["step"] <= step:
            kept.append(line)
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(line + "\n" for line in kept)))


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


class Engine:
    """Trains ``model`` on ``context.device``, wrapped for DDP or FSDP under torchrun (``self.model``);
    checkpoints and ``metrics.jsonl`` go to ``run_dir`` (none: neither)."""

    def __init__(self, model: TokenMixPreTrainedModel, settings: TrainSettings, context: DistributedContext,
                 run_dir: Path | None = None, fsdp: bool = False) -> None:
        self.settings, self.context, self.run_dir = settings, context, run_dir
        self.model_config = model.config
        self.model = wrap_model(model.to(context.device), context, fsdp)
        self.optimizer = adamw(self.model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
        self.step = 0
        self.train_seconds = 0.0  # training time of the run so far, resumes included
        self.evaluated_at: int | None = None
        self.saved_at: int | None = None
        self.metrics_file = run_dir / METRICS if run_dir is not None and context.is_main else None

    def resume(self) -> dict[str, Any]:
        """Continue from the newest intact checkpoint in the run directory (weights, optimizer, RNG, step;
        ``metrics.jsonl`` cut back to that step); returns the caller's state saved with it."""
        assert self.run_dir is not None, "resume needs a run directory"
        state = load_checkpoint(newest_sound_checkpoint(self.run_dir), self.model, self.optimizer, self.model_config)
        restore_rng(state.pop("rng"))
        state.pop("optimizer")
        self.step = self.saved_at = state.pop("step")
        self.evaluated_at = state.pop("evaluated_at", None)
        self.train_seconds = state.pop("train_seconds", 0.0)  # 0 for checkpoints older than the clock
        if self.metrics_file is not None:
            truncate_records(self.metrics_file, self.step)
        return state

    def record(self, entry: dict[str, Any]) -> None:
        if self.metrics_file is not None:
            with self.metrics_file.open("a") as f:
                f.write(json.dumps(entry) + "\n")

    def evaluate(self, evaluate: Callable[[nn.Module], dict[str, float]]) -> dict[str, float]:
        """``evaluate(model)`` in eval mode without gradients (under the training precision's autocast), recorded."""
        self.model.eval()
        with torch.no_grad(), self._autocast():
            metrics = evaluate(self.model)
        self.model.train()
        self.record({"step": self.step, "split": self.settings.eval_split, "train_seconds": self.train_seconds, **metrics})
        self.evaluated_at = self.step
        return metrics

    def save(self, state: dict[str, Any]) -> None:
        """A checkpoint of this step with the caller's ``state`` (collective: call on every rank)."""
        assert self.run_dir is not None, "checkpoints need a run directory"
        model_state, optimizer_state = gather_state(self.model, self.optimizer)
        if self.context.is_main:
            save_checkpoint(self.run_dir, self.model_config, model_state, optimizer_state, self.step,
                            {"evaluated_at": self.evaluated_at, "train_seconds": self.train_seconds, **state},
                            self.settings.keep_checkpoints)
        self.context.barrier()
        self.saved_at = self.step

    def train_step(self, batches: list[Batch], objective: Objective, train_seconds: float) -> dict[str, float]:
        """One optimizer step over ``batches`` (this rank's micro-batches); returns the step's metrics."""
        settings, context = self.settings, self.context
        for group in self.optimizer.param_groups:
            group["lr"] = settings.learning_rate * settings.schedule(self.step, train_seconds)
        batches = [{k: v.to(context.device) if isinstance(v, torch.Tensor) else v for k, v in b.items()} for b in batches]
        local: dict[str, float | torch.Tensor] = {"micro_batches": float(len(batches))}
        for batch in batches:
            for name, value in objective.counts(batch).items():
                local[name] = local.get(name, 0.0) + value
        totals = context.sum_named(local)
        sums: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(batches):
            with gradient_sync(self.model, i == len(batches) - 1):
                with self._autocast():
                    loss, named = objective.loss(self.model, batch, totals)
                # DDP and FSDP average the gradients over ranks: scaling by the world size makes that their sum
                (loss * context.world_size).backward()
            for name, value in named.items():
                sums[name] = sums[name] + value.detach().double() if name in sums else value.detach().double()
        if settings.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.clip_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        metrics = objective.metrics(context.sum_named(sums), totals)
        if not all(math.isfinite(value) for value in metrics.values()):
            raise FloatingPointError(f"loss became {metrics['loss']} at step {self.step}; stopped without saving. "
                                     + self._last_good())
        return metrics

    def run(self, batches: Callable[[int], list[Batch]], objective: Objective,
            evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
            state: Callable[[], dict[str, Any]] = dict) -> RunResult:
        """Train from the current step until ``max_steps``, ``max_time`` or a signal; ``evaluate`` runs
        every ``eval_every`` steps (and at the stop with ``evaluate_at_stop``), ``state()`` is saved with each
        checkpoint."""
        settings, context = self.settings, self.context
        first_step, first_seconds, start = self.step, self.train_seconds, time.perf_counter()
        running: dict[str, float] = {}
        interval_steps, interval_seconds, stop_reason = 0, 0.0, self._stop_reason(None)
        # a run that ends on the clock has no step total worth showing (its ETA would mislead)
        total = settings.max_steps if settings.max_steps and settings.max_time is None else None
        synchronize(context.device)
        self.model.train()
        with PeakMemory(context.device) as peak, StopSignal() as signal, \
                Progress(total=total, initial=self.step, desc=settings.desc, unit="step", dynamic_ncols=True,
                     disable=not context.is_main) as bar:
            while stop_reason is None:
                step_start = time.perf_counter()
                metrics = self.train_step(batches(self.step), objective, self.train_seconds)
                seconds = time.perf_counter() - step_start
                self.train_seconds += seconds
                for name, value in metrics.items():
                    running[name] = running.get(name, 0.0) + value
                interval_steps, interval_seconds = interval_steps + 1, interval_seconds + seconds
                if _due(self.step, settings.log_every) or self.step == settings.max_steps:
                    self._log(bar, {k: v / interval_steps for k, v in running.items()},
                              interval_steps / max(interval_seconds, 1e-9), time.perf_counter() - start)
                    running, interval_steps, interval_seconds = {}, 0, 0.0
                bar.update(1)
                stop_reason = self._stop_reason(signal)
                self._evaluate_and_save(stop_reason, evaluate, state)
            self._evaluate_and_save(stop_reason, evaluate, state)  # a resumed run that had already ended
        if stop_reason == "signal":
            where = f"; checkpoint saved in {self.run_dir}, continue with --resume" if self.run_dir else ""
            raise KeyboardInterrupt(f"stopped by {signal.received or 'a signal'} at step {self.step}{where}")
        return RunResult(self.step, self.step - first_step, stop_reason, self.train_seconds, peak.bytes,
                         self.train_seconds - first_seconds)

    def _autocast(self) -> torch.autocast:
        return autocast(self.settings.precision, self.context.device)

    def _stop_reason(self, signal: StopSignal | None) -> str | None:
        """signal, max_time or max_steps once the run must stop (agreed by every rank), else None."""
        settings = self.settings
        flags = self.context.sum_named({
            "signal": float(signal is not None and signal.received is not None),
            "max_time": float(settings.max_time is not None and self.train_seconds >= settings.max_time)})
        if flags["signal"]:
            return "signal"
        if flags["max_time"]:
            return "max_time"
        return "max_steps" if settings.max_steps and self.step >= settings.max_steps else None

    def _evaluate_and_save(self, stop_reason: str | None, evaluate: Callable[[nn.Module], dict[str, float]] | None,
                           state: Callable[[], dict[str, Any]]) -> None:
        """Evaluate, then checkpoint (so that the checkpoint holds what the evaluation decided), when due."""
        settings = self.settings
        stopping = stop_reason is not None
        if evaluate is not None and self.evaluated_at != self.step and (
                _due(self.step, settings.eval_every) or (stopping and settings.evaluate_at_stop)):
            self.evaluate(evaluate)
        if self.run_dir is not None and self.saved_at != self.step and (_due(self.step, settings.save_every) or stopping):
            self.save(state())

    def _log(self, bar: Progress, means: dict[str, float], steps_per_s: float, elapsed: float) -> None:
        settings = self.settings
        entry: dict[str, Any] = {"step": self.step, "split": "train", **means,
                                 "lr": self.optimizer.param_groups[0]["lr"], "steps_per_s": steps_per_s}
        postfix = {"loss": f"{means['loss']:.4f}"}
        if settings.tokens_per_step:
            entry.update(tokens_per_s=steps_per_s * settings.tokens_per_step, elapsed_s=elapsed)
            postfix["tok_s"] = f"{entry['tokens_per_s']:.0f}"
        if settings.max_time:
            postfix["left"] = f"{max(settings.max_time - self.train_seconds, 0) / 60:.1f}min"
        self.record(entry)
        bar.set_postfix(postfix, refresh=False)

    def _last_good(self) -> str:
        if self.run_dir is None:
            return "Lower the learning rate or clip the gradient norm."
        where = self.run_dir / CHECKPOINTS
        if self.saved_at is None:
            return (f"No checkpoint was saved yet in {where}: start again with --overwrite and a lower learning rate "
                    f"or --clip-grad-norm, or check the training data for non-finite values")
        return (f"The last good checkpoint is step {self.saved_at} in {where}: resume with --resume and a lower "
                f"learning rate or --clip-grad-norm")
