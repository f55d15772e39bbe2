"""Supervised training loop shared by fine-tuning (GLUE, SuperGLUE) and Long Range Arena.

The caller supplies the model, a deterministic ``batches(epoch)`` iterator of tensor dicts (passed as
``model(**batch)``; the output must have ``.loss``) and an ``evaluate(model)`` function returning
metrics. :func:`fit` adds what every run needs: AdamW with linear warm-up and decay, evaluation at
each epoch end (or every N steps), the best model by the chosen validation metric kept in
``best/`` (not the last one), resumable checkpoints, ``metrics.jsonl``, a time budget, SIGINT/SIGTERM
handling and a NaN stop. :func:`fit_sweep` runs one :func:`fit` per learning rate and keeps the best.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tokenmix.io.files import write_json
from tokenmix.options import option


@dataclass
class FitConfig:
    """Training settings shared by every supervised command (command configs inherit them)."""

    lr: tuple[float, ...] = option((1e-4,), "peak AdamW learning rate; several values run a sweep, one run each, and keep "
                                            "the best on the validation metric (paper recipe: 1e-5,5e-5,1e-4)")
    batch_size: int = option(32, "training examples per step")
    epochs: float = option(3.0, "passes over the training data (official GLUE recipe: 3)")
    max_steps: int = option(0, "stop after this many steps (0 = use --epochs)")
    warmup_ratio: float = option(0.1, "fraction of the steps with linear warm-up, then linear decay to 0 (official: 0.1)")
    weight_decay: float = option(0.01, "AdamW weight decay (official: 0.01)")
    clip_grad_norm: float = option(1.0, "clip the global gradient norm (0 = off)")
    eval_every: int = option(0, "evaluate every N steps (0 = at the end of every epoch)")
    max_time: float | None = option(None, "stop training after this many seconds per run (evaluated and checkpointed)")
    log_every: int = option(20, "append training loss to metrics.jsonl every N steps")
    seed: int = option(0, "seed of the head's initialisation, the data order and dropout")
    device: str = option("auto", "auto, cpu, cuda")
    bf16: bool = option(False, "bfloat16 autocast")
    resume: bool = option(False, "continue unfinished runs in --out and skip finished ones")
    overwrite: bool = option(False, "delete existing runs in --out and start over")

    def __post_init__(self) -> None:
        if not self.lr or any(lr <= 0 for lr in self.lr):
            raise ValueError(f"--lr needs positive learning rates, got {self.lr}")
        if self.batch_size < 1 or self.log_every < 1 or self.eval_every < 0 or self.max_steps < 0:
            raise ValueError("batch_size and log_every must be >= 1, eval_every and max_steps >= 0")
        if self.max_steps == 0 and self.epochs <= 0:
            raise ValueError("--epochs must be > 0 (or give --max-steps)")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite contradict each other; pick one")

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.max_steps or max(1, math.ceil(self.epochs * steps_per_epoch))


Batches = Callable[[int], Iterator[dict[str, Any]]]
Evaluate = Callable[[Any], dict[str, float]]
FINISHED = "fit_summary.json"


def _better(value: float, best: float | None, greater_is_better: bool) -> bool:
    return best is None or (value > best if greater_is_better else value < best)


def fit(model: Any, batches: Batches, steps_per_epoch: int, evaluate: Evaluate, config: FitConfig, out: str | Path,
        metric: str, greater_is_better: bool = True, desc: str = "train",
        loss_fn: Callable[[Any, dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """Train ``model`` (a :class:`~tokenmix.models.encoder.TokenMixPreTrainedModel` or any module with a
    ``.config``) with ``config.lr[0]``; returns the summary also written to ``out/fit_summary.json``.
    ``loss_fn(model, batch)`` replaces the default ``model(**batch).loss`` (e.g. distillation)."""
    import torch
    from tqdm.auto import tqdm

    from tokenmix.bench.measure import PeakMemory, device_name, resolve_device
    from tokenmix.io.checkpoint import save_weights
    from tokenmix.train.optim import adamw, warmup_linear_decay
    from tokenmix.train.state import (
        StopSignal,
        checkpoint_dirs,
        gather_state,
        load_checkpoint,
        prepare_run_dir,
        restore_rng,
        save_checkpoint,
    )

    if steps_per_epoch < 1:
        raise ValueError("the training data gives no batch; check the training split and --batch-size")
    run_dir = prepare_run_dir(Path(out), config.resume and bool(checkpoint_dirs(Path(out))), config.overwrite,
                              asdict(config))
    device = resolve_device(config.device)
    model.to(device)
    lr, total = config.lr[0], config.total_steps(steps_per_epoch)
    warmup = int(config.warmup_ratio * total)
    optimizer = adamw(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    step, best, best_step, history = 0, None, 0, []
    metrics_file = run_dir / "metrics.jsonl"
    if config.resume and checkpoint_dirs(run_dir):
        state = load_checkpoint(checkpoint_dirs(run_dir)[-1], model, optimizer, model.config)
        step, best, best_step, history = state["step"], state["best"], state["best_step"], json.loads(state["history"])
        restore_rng(state["rng"])
        if metrics_file.exists():  # drop records of steps the resumed run redoes
            kept = [line for line in metrics_file.read_text().splitlines() if json.loads(line)["step"] <= step]
            metrics_file.write_text("".join(line + "\n" for line in kept))
    else:
        torch.manual_seed(config.seed)

    def record(entry: dict[str, Any]) -> None:
        with metrics_file.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def run_eval() -> None:
        nonlocal best, best_step
        model.eval()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            metrics = evaluate(model)
        model.train()
        if metric not in metrics:
            raise ValueError(f"evaluate() returned {sorted(metrics)}, without the selection metric {metric!r}")
        history.append({"step": step, **metrics})
        record({"step": step, "split": "eval", **metrics})
        if _better(metrics[metric], best, greater_is_better):
            best, best_step = metrics[metric], step
            save_weights(model.config, model.state_dict(), run_dir / "best")

    def checkpoint() -> None:
        model_state, optimizer_state = gather_state(model, optimizer)
        save_checkpoint(run_dir, model.config, model_state, optimizer_state, step,
                        {"best": best, "best_step": best_step, "history": json.dumps(history)}, keep=1)

    first_step = step
    epoch, skip = divmod(step, steps_per_epoch)
    stream = itertools.islice(batches(epoch), skip, None)
    bar = tqdm(total=total, initial=step, desc=f"{desc} lr={lr:g}", unit="step", dynamic_ncols=True)
    train_time, running, interval, stop_reason = 0.0, 0.0, 0, "max_steps"
    model.train()
    with PeakMemory(device) as peak, StopSignal() as stop:
        while step < total:
            start = time.perf_counter()
            batch = next(stream, None)
            if batch is None:  # epoch boundary
                epoch += 1
                stream = batches(epoch)
                continue
            for group in optimizer.param_groups:
                group["lr"] = lr * warmup_linear_decay(step, warmup, total)
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss = model(**batch).loss if loss_fn is None else loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step + 1} (lr {lr:g}); lower --lr or "
                                         f"set --clip-grad-norm; the best model so far is in {run_dir / 'best'}")
            loss.backward()
            if config.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_time += time.perf_counter() - start
            running, interval = running + loss.item(), interval + 1
            bar.update(1)
            if step % config.log_every == 0 or step == total:
                record({"step": step, "split": "train", "loss": running / interval, "lr": optimizer.param_groups[0]["lr"],
                        "steps_per_s": (step - first_step) / max(train_time, 1e-9)})
                bar.set_postfix(loss=f"{running / interval:.4f}", refresh=False)
                running, interval = 0.0, 0
            out_of_time = config.max_time is not None and train_time >= config.max_time
            at_eval = step % config.eval_every == 0 if config.eval_every else step % steps_per_epoch == 0
            if at_eval or step == total or out_of_time or stop.received:
                if not history or history[-1]["step"] != step:
                    run_eval()
                checkpoint()
            if stop.received:
                bar.close()
                raise KeyboardInterrupt(f"stopped by {stop.received} at step {step}; checkpoint saved in {run_dir}, "
                                        f"continue with --resume")
            if out_of_time:
                stop_reason = "max_time"
                break
    bar.close()
    if not history or history[-1]["step"] != step:  # resumed a run that had already reached its end
        run_eval()
    summary = {
        "lr": lr, "steps": step, "total_steps": total, "epochs": step / steps_per_epoch, "stop_reason": stop_reason,
        "best_step": best_step, "best": next(h for h in history if h["step"] == best_step), "final": history[-1],
        "metric": metric, "train_seconds": train_time, "steps_per_s": (step - first_step) / max(train_time, 1e-9),
        "peak_memory_mib": peak.bytes / 2**20, "device": device_name(device), "history": history,
    }
    write_json(run_dir / FINISHED, summary)
    return summary


def fit_sweep(make_model: Callable[[], Any], batches: Batches, steps_per_epoch: int, evaluate: Evaluate,
              config: FitConfig, out: str | Path, metric: str, greater_is_better: bool = True,
              desc: str = "train", loss_fn: Callable[[Any, dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """One :func:`fit` per learning rate in ``config.lr``, each from a fresh ``make_model()`` in
    ``out/lr_<value>/`` (or ``out/`` itself for a single rate); the best run's ``best/`` model is
    copied to ``out/best``. With ``--resume`` finished runs are read back, not redone."""
    out = Path(out)
    runs: dict[str, Any] = {}
    for lr in config.lr:
        run_dir = out if len(config.lr) == 1 else out / f"lr_{lr:g}"
        if config.resume and (run_dir / FINISHED).is_file():
            runs[f"{lr:g}"] = json.loads((run_dir / FINISHED).read_text())
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
