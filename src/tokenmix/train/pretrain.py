"""MLM + NSP (or MLM-only, ``--nsp none``) pretraining, single process or under ``torchrun`` (DDP, or FSDP with ``--fsdp``).

Exact resumption: the batch of a step is a pure function of (seed, step) (see
:mod:`tokenmix.text.pretraining`), and a checkpoint holds the weights, the optimizer state, the RNG
state and the step, so a run killed at any moment and resumed ends with the same weights as an
uninterrupted one. Losses are normalised by the *global* number of masked positions / examples of a
step (summed over ranks and accumulation micro-batches, as the official code psums before
normalising), so N processes with batch B train exactly like one process with batch N*B.
With ``--teacher`` a frozen pretrained model adds a KL term on the MLM logits at the masked positions.
The loop itself is :class:`~tokenmix.train.engine.Engine`'s; this module supplies the objective.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tokenmix.devices import device_name, resolve_device
from tokenmix.io.files import FolderLock, write_json
from tokenmix.models.config import parse_overrides
from tokenmix.models.factory import build_model, load_pretrained
from tokenmix.models.heads import PreTrainingOutput
from tokenmix.models.registry import make_config
from tokenmix.text.prepare import data_tokenizer
from tokenmix.text.pretraining import PretrainingDataset, eval_batches
from tokenmix.text.tokenizer import Tokenizer
from tokenmix.train.configs import PretrainConfig
from tokenmix.train.distill import soft_kl
from tokenmix.train.distributed import DistributedContext, init_distributed, shutdown
from tokenmix.train.engine import Batch, Engine, TrainSettings
from tokenmix.train.finetune import find_tokenizer
from tokenmix.train.optim import warmup_budget_decay, warmup_linear_decay
from tokenmix.train.state import SUMMARY, claim_run_folder, finished_summary, prepare_run_dir

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "masked_positions")


def pretraining_sums(out: PreTrainingOutput, batch: Batch, nsp: bool = True) -> dict[str, torch.Tensor]:
    """MLM (and, with ``nsp``, NSP) loss sums and correct predictions over the batch (masked-position
    weights applied)."""
    assert out.mlm_logits is not None and out.nsp_logits is not None
    labels, weights = batch["masked_labels"].flatten(), batch["masked_weights"].flatten().float()
    logits = out.mlm_logits.flatten(0, 1).float()
    sums = {
        "mlm_loss": (F.cross_entropy(logits, labels, reduction="none") * weights).sum(),
        "mlm_correct": ((logits.argmax(-1) == labels).float() * weights).sum(),
    }
    if nsp:
        nsp_logits, nsp_labels = out.nsp_logits.float(), batch["next_sentence_labels"]
        sums["nsp_loss"] = F.cross_entropy(nsp_logits, nsp_labels, reduction="sum")
        sums["nsp_correct"] = (nsp_logits.argmax(-1) == nsp_labels).float().sum()
    else:  # the NSP head stays in the model, outside the loss: zero gradients keep DDP's buckets complete
        sums["nsp_loss"] = 0.0 * out.nsp_logits.sum()
    return sums


def pretraining_counts(batch: Batch) -> dict[str, float | torch.Tensor]:
    """What the sums are normalised by: masked positions (MLM) and examples (NSP)."""
    return {"masked": batch["masked_weights"].sum(), "examples": float(len(batch["input_ids"]))}


def pretraining_metrics(totals: dict[str, float]) -> dict[str, float]:
    """Mean losses and accuracies from the sums and counts of every batch and rank (no NSP metrics
    without NSP sums: MLM-only pretraining)."""
    masked, examples = max(totals["masked"], 1.0), max(totals["examples"], 1.0)
    mlm_loss, nsp_loss = totals["mlm_loss"] / masked, totals["nsp_loss"] / examples
    metrics = {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss, "mlm_accuracy": totals["mlm_correct"] / masked}
    if "nsp_correct" in totals:
        metrics.update(nsp_loss=nsp_loss, nsp_accuracy=totals["nsp_correct"] / examples)
    return metrics


@dataclass
class PretrainingObjective:
    """MLM mean + NSP mean (without ``nsp``: MLM only) (+ the MoE auxiliary losses, averaged over
    micro-batches and ranks); with a teacher the MLM term becomes α·KL(teacher ‖ student)·T² + (1−α)·cross-entropy."""

    teacher: nn.Module | None = None
    alpha: float = 0.5
    temperature: float = 2.0
    nsp: bool = True

    def counts(self, batch: Batch) -> dict[str, float | torch.Tensor]:
        return pretraining_counts(batch)

    def loss(self, model: nn.Module, batch: Batch, totals: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs = {k: batch[k] for k in MODEL_INPUTS}
        out = model(**inputs)
        sums = pretraining_sums(out, batch, self.nsp)
        mlm = sums["mlm_loss"]
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(**inputs).mlm_logits
            sums["distill_kl"] = (soft_kl(out.mlm_logits, teacher_logits, self.temperature) * batch["masked_weights"]).sum()
            mlm = self.alpha * sums["distill_kl"] + (1.0 - self.alpha) * mlm
        aux = out.aux_loss if out.aux_loss is not None else torch.zeros((), device=mlm.device)
        sums["aux_loss"] = aux / totals["micro_batches"]
        loss = mlm / max(totals["masked"], 1.0) + sums["nsp_loss"] / totals["examples"] + sums["aux_loss"]
        return loss, sums

    def metrics(self, sums: dict[str, float], totals: dict[str, float]) -> dict[str, float]:
        means = pretraining_metrics({**sums, **totals})
        logged: dict[str, float] = {name: means[name] for name in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy") if name in means}
        logged["aux_loss"] = sums["aux_loss"]
        if "distill_kl" in sums:
            logged["distill_kl"] = sums["distill_kl"] / max(totals["masked"], 1.0)
        return logged


def load_teacher(path: str, data: PretrainingDataset) -> nn.Module:
    """The frozen teacher of pretraining distillation: it must have the MLM head and the vocabulary of
    the data's tokenizer (token ids mean the same words to both, or the KL is meaningless)."""
    teacher = load_pretrained(path)
    if teacher.config.head != "pretraining":
        raise ValueError(f"--teacher {path} has a {teacher.config.head!r} head; pretraining distillation needs the MLM "
                         f"head of a `tokenmix pretrain` run")
    try:
        theirs = find_tokenizer(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no tokenizer found for --teacher {path}; put the tokenizer.json it was trained "
                                f"with into its folder") from None
    if theirs.backend.get_vocab() != Tokenizer.load(data_tokenizer(data.directory)).backend.get_vocab():
        raise ValueError(f"--teacher {path} was trained with another tokenizer than --data (their vocabularies "
                         f"differ); distil on data prepared with the teacher's tokenizer")
    return teacher.eval().requires_grad_(False)


def evaluate(model: nn.Module, dataset: PretrainingDataset, config: PretrainConfig,
             context: DistributedContext) -> dict[str, float]:
    """Held-out MLM (and NSP) loss and accuracy on the fixed held-out examples, split over ranks, the sums all-reduced."""
    nsp = config.nsp != "none"
    totals = dict.fromkeys(("mlm_loss", "mlm_correct", "nsp_loss", *(("nsp_correct",) if nsp else ()), "masked",
                            "examples"), 0.0)
    for batch, counted in eval_batches(dataset, config.eval_batches, config.batch_size, config, context.rank,
                                       context.world_size):
        batch = {k: v.to(context.device) for k, v in batch.items()}
        out = model(**{k: batch[k] for k in MODEL_INPUTS})
        for name, value in {**pretraining_sums(out, batch, nsp), **pretraining_counts(batch)}.items():
            totals[name] += float(value) if counted else 0.0
    return pretraining_metrics(context.sum_named(totals))


def learning_rate_schedule(config: PretrainConfig) -> Callable[[int, float], float]:
    """``--schedule``: decay to 0 at ``max_steps`` (official) or at ``max_time`` seconds of training
    (the budget recipe; the engine's clock survives a resume, so the schedule does too)."""
    if config.schedule == "budget":
        budget = config.max_time
        assert budget  # PretrainConfig refuses budget without max_time
        return lambda step, seconds: warmup_budget_decay(step, seconds, config.warmup_steps, budget, config.decay_fraction)
    return lambda step, _: warmup_linear_decay(step, config.warmup_steps, config.max_steps, config.decay_fraction)


def run_pretraining(config: PretrainConfig) -> dict[str, Any]:
    context = init_distributed(resolve_device(config.device))
    lock = FolderLock(config.out, enabled=context.is_main)

    def claim() -> None:  # before any rank reads data: the lock, then what --out already holds
        lock.acquire()
        claim_run_folder(config.out, config.resume, config.overwrite, SUMMARY)

    try:
        context.decided_by_main(claim)  # rank 0 decides, every rank gets the verdict
        return _pretrain(config, context)  # returns with its model, optimizer and DDP wrapper freed...
    finally:
        lock.release()
        shutdown(context)  # ...so that the process group goes last, in this thread (see shutdown)


def _pretrain(config: PretrainConfig, context: DistributedContext) -> dict[str, Any]:
    """The run itself, inside the run folder's lock."""
    train_data = PretrainingDataset(config.data, "train")
    record = {**asdict(config), "data": str(Path(config.data).resolve()),  # finetune --init RUN from anywhere
              "tokenizer_sha256": train_data.meta["fingerprint"]["tokenizer_sha256"]}  # checked by find_tokenizer
    if (finished := finished_summary(Path(config.out), config.resume, record)) is not None:
        return finished
    run_dir = prepare_run_dir(Path(config.out), config.resume, config.overwrite, record, context.is_main)
    if config.warmup_steps > config.max_steps and context.is_main:
        print(f"tokenmix: warning: --warmup-steps {config.warmup_steps} is longer than --max-steps "
              f"{config.max_steps}: the learning rate never reaches --learning-rate {config.learning_rate:g} "
              f"(at most {config.learning_rate * config.max_steps / config.warmup_steps:.3g})", file=sys.stderr)
    context.barrier()
    heldout = PretrainingDataset(config.data, "heldout")
    model_config = make_config(config.model, config.preset, **{
        "head": "pretraining", "vocab_size": train_data.vocab_size, "pad_token_id": train_data.meta["special_ids"]["pad"],
        **parse_overrides(config.override)})
    if config.max_seq_len > model_config.max_position_embeddings:
        raise ValueError(f"--max-seq-len {config.max_seq_len} exceeds max_position_embeddings="
                         f"{model_config.max_position_embeddings}; add --override max_position_embeddings={config.max_seq_len}")
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    teacher = load_teacher(config.teacher, train_data).to(context.device) if config.teacher else None
    world, micro, accum = context.world_size, config.batch_size, config.grad_accum
    tokens_per_step = world * micro * accum * config.max_seq_len
    settings = TrainSettings(
        learning_rate=config.learning_rate, schedule=learning_rate_schedule(config),
        max_steps=config.max_steps, max_time=config.max_time, weight_decay=config.weight_decay,
        clip_grad_norm=config.clip_grad_norm, precision=config.precision, log_every=config.log_every,
        eval_every=config.eval_every, evaluate_at_stop=False, eval_split="heldout", save_every=config.save_every,
        keep_checkpoints=config.keep_checkpoints, tokens_per_step=tokens_per_step, desc=f"pretrain {config.model}")
    engine = Engine(model, settings, context, run_dir, fsdp=config.fsdp)
    if config.compile:
        engine.model.compile()  # in place: parameter names, checkpoints and resume are unchanged
    if config.resume:
        engine.resume()

    def batches(step: int) -> list[Batch]:
        """This rank's micro-batches: slices of the step's global batch, interleaved over ranks."""
        return [train_data.batch(step, micro, config, offset=(m * world + context.rank) * micro) for m in range(accum)]

    def heldout_metrics(trained: nn.Module) -> dict[str, float]:
        return evaluate(trained, heldout, config, context)

    objective = PretrainingObjective(teacher, config.distill_alpha, config.distill_temperature, config.nsp != "none")
    result = engine.run(batches, objective, heldout_metrics)
    final = engine.evaluate(heldout_metrics)
    summary = {
        "model": config.model, "preset": config.preset, "params": sum(p.numel() for p in engine.model.parameters()),
        "steps": result.step, "stop_reason": result.stop_reason, "train_seconds": result.train_seconds,
        "steps_per_s": result.steps_per_s, "tokens_per_s": result.steps_per_s * tokens_per_step,
        "tokens_per_step": tokens_per_step, "world_size": world, "device": device_name(context.device),
        "heldout": final, "config": asdict(config), "model_config": model_config.to_dict(),
    }
    if context.is_main:
        write_json(run_dir / SUMMARY, summary)
    # Every rank done with its collectives and files before any tears its process group down: a rank
    # that destroys it first closes connections its peer still uses (a gloo transport abort, or a
    # peer stuck in shutdown). Only on success: after an error the peer may never arrive.
    context.barrier()
    return summary
