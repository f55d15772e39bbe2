"""Supervised runs on the training engine, shared by fine-tuning (GLUE, SuperGLUE), distillation and Long
Range Arena.

The caller supplies the model, a deterministic ``batches(epoch)`` iterator of tensor dicts (passed as
``model(**batch)``; the output must have ``.loss``) and an ``evaluate(model)`` function returning
metrics. :func:`fit` adds what a supervised run needs on top of :class:`~tokenmix.train.engine.Engine`:
linear warm-up and decay over the run's steps, evaluation at each epoch end (or every N steps), the
best model by the chosen validation metric kept in ``best/`` (not the last one) and ``fit_summary.json``.
:func:`fit_sweep` runs one :func:`fit` per learning rate and keeps the best.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tokenmix.devices import device_name, resolve_device
from tokenmix.io.checkpoint import save_weights
from tokenmix.io.files import FolderLock, read_json, write_json
from tokenmix.models.encoder import TokenMixPreTrainedModel
from tokenmix.train.configs import FitConfig
from tokenmix.train.distributed import DistributedContext
from tokenmix.train.engine import Batch, Engine, MeanLoss, TrainSettings
from tokenmix.train.optim import warmup_linear_decay
from tokenmix.train.state import checkpoint_dirs, claim_run_folder, prepare_run_dir

Batches = Callable[[int], Iterator[Batch]]
Evaluate = Callable[[nn.Module], dict[str, float]]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]
FINISHED = "fit_summary.json"


def epoch_stream(batches: Batches, steps_per_epoch: int, start_step: int) -> Iterator[Batch]:
    """The batches from ``start_step`` on, epoch after epoch (a resumed run skips the steps it did)."""
    epoch, skip = divmod(start_step, steps_per_epoch)
    yield from itertools.islice(batches(epoch), skip, None)
    for later in itertools.count(epoch + 1):
        yield from batches(later)


def fit(model: TokenMixPreTrainedModel, batches: Batches, steps_per_epoch: int, evaluate: Evaluate, config: FitConfig, out: str | Path,
        metric: str, greater_is_better: bool = True, desc: str = "train", loss_fn: LossFn | None = None) -> dict[str, Any]:
    """Train ``model`` with ``config.lr[0]``; returns the summary also written to ``out/fit_summary.json``.
    ``loss_fn(model, batch)`` replaces the default ``model(**batch).loss`` (e.g. distillation)."""
    if steps_per_epoch < 1:
        raise ValueError("the training data gives no batch; check the training split and --batch-size")
    with FolderLock(out):
        return _fit(model, batches, steps_per_epoch, evaluate, config, Path(out), metric, greater_is_better, desc, loss_fn)


def _fit(model: TokenMixPreTrainedModel, batches: Batches, steps_per_epoch: int, evaluate: Evaluate, config: FitConfig,
         out: Path, metric: str, greater_is_better: bool, desc: str, loss_fn: LossFn | None) -> dict[str, Any]:
    resume = config.resume and bool(checkpoint_dirs(Path(out)))
    # --resume on a run that died before its first checkpoint starts it again
    run_dir = prepare_run_dir(Path(out), resume, config.overwrite or config.resume, asdict(config), finished=FINISHED)
    lr, total = config.lr[0], config.total_steps(steps_per_epoch)
    warmup, interval = int(config.warmup_ratio * total), config.eval_every or steps_per_epoch
    settings = TrainSettings(
        learning_rate=lr, schedule=lambda step, _: warmup_linear_decay(step, warmup, total), max_steps=total,
        max_time=config.max_time, weight_decay=config.weight_decay, clip_grad_norm=config.clip_grad_norm,
        precision=config.precision, log_every=config.log_every, eval_every=interval, save_every=interval, desc=f"{desc} lr={lr:g}")
    device = resolve_device(config.device)
    engine = Engine(model, settings, DistributedContext.single(device), run_dir)
    best: float | None = None
    best_step, history = 0, []
    if resume:
        state = engine.resume()
        best, best_step, history = state["best"], state["best_step"], json.loads(state["history"])
    else:
        torch.manual_seed(config.seed)

    def select(model: nn.Module) -> dict[str, float]:
        """Score the model; a new best one is written to ``best/``."""
        nonlocal best, best_step
        metrics = evaluate(model)
        if metric not in metrics:
            raise ValueError(f"evaluate() returned {sorted(metrics)}, without the selection metric {metric!r}")
        history.append({"step": engine.step, **metrics})
        if best is None or (metrics[metric] > best if greater_is_better else metrics[metric] < best):
            best, best_step = metrics[metric], engine.step
            save_weights(engine.model_config, model.state_dict(), run_dir / "best")
        return metrics

    stream = epoch_stream(batches, steps_per_epoch, engine.step)
    result = engine.run(lambda step: [next(stream)], MeanLoss(loss_fn), select,
                        lambda: {"best": best, "best_step": best_step, "history": json.dumps(history)})
    summary = {
        "lr": lr, "steps": result.step, "total_steps": total, "epochs": result.step / steps_per_epoch,
        "stop_reason": result.stop_reason, "best_step": best_step, "best": next(h for h in history if h["step"] == best_step),
        "final": history[-1], "metric": metric, "train_seconds": result.train_seconds, "steps_per_s": result.steps_per_s,
        "peak_memory_mib": result.peak_memory_bytes / 2**20, "device": device_name(device), "history": history,
    }
    write_json(run_dir / FINISHED, summary)
    return summary


def claim_sweep_dir(out: str | Path, config: FitConfig) -> Path:
    """:func:`~tokenmix.train.state.claim_run_folder` for a sweep (its runs in ``lr_*``), so that a sweep over
    other learning rates neither trains its first rates and is then refused at one that ran before, nor
    replaces an earlier ``best/`` and ``metrics.json``."""
    return claim_run_folder(out, config.resume, config.overwrite, FINISHED, lambda d: (d, *sorted(d.glob("lr_*"))))


def fit_sweep(make_model: Callable[[], TokenMixPreTrainedModel], batches: Batches, steps_per_epoch: int, evaluate: Evaluate,
              config: FitConfig, out: str | Path, metric: str, greater_is_better: bool = True,
              desc: str = "train", loss_fn: LossFn | None = None) -> dict[str, Any]:
    """One :func:`fit` per learning rate in ``config.lr``, each from a fresh ``make_model()`` in
    ``out/lr_<value>/`` (or ``out/`` itself for a single rate); the best run's ``best/`` model is
    copied to ``out/best``. With ``--resume`` finished runs are read back, not redone."""
    out = Path(out)
    runs: dict[str, Any] = {}
    for lr in config.lr:
        run_dir = out if len(config.lr) == 1 else out / f"lr_{lr:g}"
        if config.resume and (run_dir / FINISHED).is_file():
            runs[f"{lr:g}"] = read_json(run_dir / FINISHED)
            continue
        runs[f"{lr:g}"] = fit(make_model(), batches, steps_per_epoch, evaluate, replace(config, lr=(lr,)), run_dir,
                              metric, greater_is_better, desc, loss_fn)
    pick = max if greater_is_better else min
    best_lr = pick(runs, key=lambda key: runs[key]["best"][metric])
    if len(config.lr) > 1:
        tmp = out / ".best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(out / f"lr_{best_lr}" / "best", tmp)
        shutil.rmtree(out / "best", ignore_errors=True)
        tmp.rename(out / "best")
    return {"best_lr": float(best_lr), "best": runs[best_lr]["best"], "runs": runs}
