"""MLM + NSP pretraining, single process or under ``torchrun`` (DDP, or FSDP with ``--fsdp``).

Exact resumption: the batch of a step is a pure function of (seed, step) (see
:mod:`tokenmix.text.pretraining`), and a checkpoint holds the weights, the optimizer state, the RNG
state and the step, so a run killed at any moment and resumed ends with the same weights as an
uninterrupted one. Losses are normalised by the *global* number of masked positions / examples of a
step (summed over ranks and accumulation micro-batches, as the official code psums before
normalising), so N processes with batch B train exactly like one process with batch N*B.
With ``--teacher`` a frozen pretrained model adds a KL term on the MLM logits at the masked positions.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tokenmix.io.files import write_json
from tokenmix.options import option


@dataclass
class PretrainConfig:
    model: str = option("fnet", "registered model name (see `tokenmix models`)")
    preset: str = option("mini", "size preset")
    data: str = option("", "directory written by `tokenmix data prepare`")
    out: str = option("", "run directory (checkpoints, metrics.jsonl, summary.json)")
    override: tuple[str, ...] = option((), "model config overrides, e.g. dropout=0.0,fourier_impl=matmul")
    max_seq_len: int = option(128, "tokens per example")
    max_predictions_per_seq: int = option(20, "masked positions per example (official: 80 at length 512)")
    mlm_probability: float = option(0.15, "fraction of tokens masked")
    nsp: str = option("swap", "swap (official FNet: segment order swapped) or random (BERT: random next segment)")
    batch_size: int = option(32, "examples per process per micro-step")
    grad_accum: int = option(1, "micro-steps accumulated per optimizer step")
    learning_rate: float = option(1e-4, "peak AdamW learning rate (official: 1e-4)")
    warmup_steps: int = option(10000, "linear warm-up steps (official: 10000), then linear decay to 0 at max_steps")
    max_steps: int = option(1_000_000, "optimizer steps (official: 1M)")
    max_time: float | None = option(None, "stop after this many seconds of training (a checkpoint is saved)")
    weight_decay: float = option(0.01, "AdamW weight decay, on all parameters as officially")
    clip_grad_norm: float = option(1.0, "clip the global gradient norm (0 = off; the official code does not clip)")
    bf16: bool = option(False, "bfloat16 autocast")
    compile: bool = option(False, "torch.compile the model in place (Fourier mixing then runs as DFT matmuls)")
    eval_every: int = option(1000, "evaluate on the held-out split every N steps")
    eval_batches: int = option(20, "held-out batches per evaluation")
    log_every: int = option(10, "append train metrics to metrics.jsonl every N steps")
    save_every: int = option(1000, "checkpoint every N steps")
    keep_checkpoints: int = option(3, "keep the newest K checkpoints")
    resume: bool = option(False, "continue from the newest checkpoint in --out")
    overwrite: bool = option(False, "delete an existing run in --out and start over")
    fsdp: bool = option(False, "shard the model with FSDP under torchrun instead of DDP")
    teacher: str = option("", "distil from this pretrained model (a pretraining run or model folder with the MLM head, "
                              "same tokenizer): the MLM loss becomes α·KL(teacher ‖ student)·T² + (1−α)·cross-entropy "
                              "at the masked positions")
    distill_alpha: float = option(0.5, "with --teacher: weight α of the KL term")
    distill_temperature: float = option(2.0, "with --teacher: softmax temperature T")
    seed: int = option(0, "seed of the weights, the data and dropout")
    device: str = option("auto", "auto, cpu, cuda")

    def __post_init__(self) -> None:
        from tokenmix.models.registry import get_variant

        get_variant(self.model)
        if not self.data:
            raise ValueError("missing --data: the directory written by `tokenmix data prepare`")
        if not self.out:
            raise ValueError("missing --out: the run directory")
        for name in ("max_seq_len", "max_predictions_per_seq", "batch_size", "grad_accum", "max_steps",
                     "eval_every", "eval_batches", "log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.warmup_steps < 0 or self.clip_grad_norm < 0:
            raise ValueError("learning_rate must be > 0, warmup_steps and clip_grad_norm >= 0")
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite contradict each other; pick one")
        if not 0.0 <= self.distill_alpha <= 1.0 or self.distill_temperature <= 0:
            raise ValueError(f"--distill-alpha must be in [0, 1] and --distill-temperature > 0, got "
                             f"{self.distill_alpha} and {self.distill_temperature}")


def pretraining_sums(out: Any, batch: dict[str, Any]) -> Any:
    """[MLM loss sum, MLM correct, NSP loss sum, NSP correct] over the batch (weights applied)."""
    import torch
    import torch.nn.functional as F

    labels, weights = batch["masked_labels"].flatten(), batch["masked_weights"].flatten().float()
    logits = out.mlm_logits.flatten(0, 1).float()
    mlm = (F.cross_entropy(logits, labels, reduction="none") * weights).sum()
    mlm_correct = ((logits.argmax(-1) == labels).float() * weights).sum()
    nsp_logits, nsp_labels = out.nsp_logits.float(), batch["next_sentence_labels"]
    nsp = F.cross_entropy(nsp_logits, nsp_labels, reduction="sum")
    nsp_correct = (nsp_logits.argmax(-1) == nsp_labels).float().sum()
    return torch.stack([mlm, mlm_correct, nsp, nsp_correct])


MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "masked_positions")


def _metrics(sums: Any, masked: float, examples: float) -> dict[str, float]:
    mlm_loss, mlm_acc = sums[0] / masked, sums[1] / masked
    nsp_loss, nsp_acc = sums[2] / examples, sums[3] / examples
    return {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss, "mlm_accuracy": mlm_acc,
            "nsp_loss": nsp_loss, "nsp_accuracy": nsp_acc}


def load_teacher(path: str, data: Any) -> Any:
    """The frozen teacher of pretraining distillation: it must have the MLM head and the vocabulary of
    the data's tokenizer (token ids mean the same words to both, or the KL is meaningless)."""
    from tokenmix.models.factory import load_pretrained
    from tokenmix.text.tokenizer import Tokenizer
    from tokenmix.train.finetune import find_tokenizer

    teacher = load_pretrained(path)
    if teacher.config.head != "pretraining":
        raise ValueError(f"--teacher {path} has a {teacher.config.head!r} head; pretraining distillation needs the MLM "
                         f"head of a `tokenmix pretrain` run")
    try:
        theirs = find_tokenizer(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no tokenizer found for --teacher {path}; put the tokenizer.json it was trained "
                                f"with into its folder") from None
    if theirs.backend.get_vocab() != Tokenizer.load(data.meta["config"]["tokenizer"]).backend.get_vocab():
        raise ValueError(f"--teacher {path} was trained with another tokenizer than --data (their vocabularies "
                         f"differ); distil on data prepared with the teacher's tokenizer")
    return teacher.eval().requires_grad_(False)


def evaluate(model: Any, dataset: Any, data_config: Any, config: PretrainConfig, context: Any) -> dict[str, float]:
    """Held-out MLM/NSP loss and accuracy; batches are split over ranks and the sums all-reduced."""
    import torch

    model.eval()
    totals = torch.zeros(6, dtype=torch.float64, device=context.device)
    with torch.no_grad():
        for index in range(context.rank, config.eval_batches, context.world_size):
            batch = {k: v.to(context.device) for k, v in dataset.batch(index, config.batch_size, data_config).items()}
            with torch.autocast(context.device.type, dtype=torch.bfloat16, enabled=config.bf16):
                out = model(**{k: batch[k] for k in MODEL_INPUTS})
            sums = pretraining_sums(out, batch).double()
            counts = torch.stack([batch["masked_weights"].sum(), torch.tensor(float(len(batch["input_ids"])))]).double()
            totals += torch.cat([sums, counts.to(totals.device)])
    model.train()
    totals = context.all_reduce_sum(totals).tolist()
    return _metrics(totals[:4], max(totals[4], 1.0), max(totals[5], 1.0))


def run_pretraining(config: PretrainConfig) -> dict[str, Any]:
    import torch
    from tqdm.auto import tqdm

    from tokenmix.bench.measure import device_name, resolve_device
    from tokenmix.models.config import parse_overrides
    from tokenmix.models.factory import build_model
    from tokenmix.models.registry import make_config
    from tokenmix.text.pretraining import PretrainingDataConfig, PretrainingDataset
    from tokenmix.train.distill import soft_kl
    from tokenmix.train.distributed import gradient_sync, init_distributed, shutdown, wrap_model
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

    context = init_distributed(resolve_device(config.device))
    try:
        run_dir = prepare_run_dir(Path(config.out), config.resume, config.overwrite, asdict(config), context.is_main)
        context.barrier()
        train_data = PretrainingDataset(config.data, "train")
        heldout = PretrainingDataset(config.data, "heldout")
        data_config = PretrainingDataConfig(max_seq_len=config.max_seq_len, max_predictions_per_seq=config.max_predictions_per_seq,
                                            mlm_probability=config.mlm_probability, nsp=config.nsp, seed=config.seed)
        model_config = make_config(config.model, config.preset, **{
            "head": "pretraining", "vocab_size": train_data.vocab_size, "pad_token_id": train_data.meta["special_ids"]["pad"],
            **parse_overrides(config.override)})
        if config.max_seq_len > model_config.max_position_embeddings:
            raise ValueError(f"--max-seq-len {config.max_seq_len} exceeds max_position_embeddings="
                             f"{model_config.max_position_embeddings}; add --override max_position_embeddings={config.max_seq_len}")
        torch.manual_seed(config.seed)
        model = wrap_model(build_model(model_config).to(context.device), context, config.fsdp)
        if config.compile:
            model.compile()  # in place: parameter names, checkpoints and resume are unchanged
        teacher = load_teacher(config.teacher, train_data).to(context.device) if config.teacher else None
        alpha, temperature = config.distill_alpha, config.distill_temperature
        optimizer = adamw(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        step, metrics_file = 0, run_dir / "metrics.jsonl"
        if config.resume:
            state = load_checkpoint(checkpoint_dirs(run_dir)[-1], model, optimizer, model_config)
            step = state["step"]
            restore_rng(state["rng"])
            if context.is_main and metrics_file.exists():  # drop records of steps the resumed run redoes
                kept = [line for line in metrics_file.read_text().splitlines() if json.loads(line)["step"] <= step]
                metrics_file.write_text("".join(line + "\n" for line in kept))
        world, micro, accum = context.world_size, config.batch_size, config.grad_accum
        tokens_per_step = world * micro * accum * config.max_seq_len
        log = metrics_file.open("a") if context.is_main else None

        def record(entry: dict[str, Any]) -> None:
            if log is not None:
                log.write(json.dumps(entry) + "\n")
                log.flush()

        def checkpoint() -> None:
            model_state, optimizer_state = gather_state(model, optimizer)
            if context.is_main:
                save_checkpoint(run_dir, model_config, model_state, optimizer_state, step, {}, config.keep_checkpoints)
            context.barrier()

        last_good = first_step = step
        # a time-limited run ends on the clock: its step total (and an ETA from it) would mislead
        bar = tqdm(total=None if config.max_time else config.max_steps, initial=step, desc=f"pretrain {config.model}",
                   disable=not context.is_main, unit="step", dynamic_ncols=True)
        start = interval_start = time.perf_counter()
        interval_steps, running, stop_reason = 0, torch.zeros(6, dtype=torch.float64, device=context.device), None
        model.train()
        with StopSignal() as stop:
            while step < config.max_steps:
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate * warmup_linear_decay(step, config.warmup_steps, config.max_steps)
                batches = [{k: v.to(context.device) for k, v in train_data.batch(
                    step, micro, data_config, offset=(m * world + context.rank) * micro).items()} for m in range(accum)]
                local = torch.tensor([sum(float(b["masked_weights"].sum()) for b in batches), float(micro * accum)],
                                     dtype=torch.float64, device=context.device)
                masked, examples = context.all_reduce_sum(local).tolist()
                sums = torch.zeros(6, dtype=torch.float64, device=context.device)
                for m, batch in enumerate(batches):
                    inputs = {k: batch[k] for k in MODEL_INPUTS}
                    with gradient_sync(model, m == accum - 1):
                        with torch.autocast(context.device.type, dtype=torch.bfloat16, enabled=config.bf16):
                            out = model(**inputs)
                            if teacher is not None:
                                with torch.no_grad():
                                    teacher_logits = teacher(**inputs).mlm_logits
                        parts = pretraining_sums(out, batch)
                        mlm, kl = parts[0], torch.zeros((), device=context.device)
                        if teacher is not None:
                            kl = (soft_kl(out.mlm_logits, teacher_logits, temperature) * batch["masked_weights"]).sum()
                            mlm = alpha * kl + (1.0 - alpha) * mlm
                        # DDP averages gradients over ranks; scaling by world makes it the global mean
                        loss = (mlm / max(masked, 1.0) + parts[2] / examples) * world
                        aux = out.aux_loss if out.aux_loss is not None else torch.zeros((), device=context.device)
                        (loss + aux / accum).backward()
                    sums += torch.cat([parts.detach().double(), (aux.detach() / accum).double().view(1),
                                       kl.detach().double().view(1)])
                if config.clip_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                sums = context.all_reduce_sum(sums)
                sums[4] /= world
                current = _metrics(sums[:4].tolist(), max(masked, 1.0), examples)
                if not math.isfinite(current["loss"]) or not math.isfinite(float(sums[4])):
                    raise FloatingPointError(
                        f"loss became {current['loss']} at step {step}; stopped without saving. The last good checkpoint "
                        f"is step {last_good} in {run_dir / 'checkpoints'}: resume with --resume and a lower "
                        f"--learning-rate or --clip-grad-norm")
                running += torch.cat([torch.tensor([current["loss"], current["mlm_loss"], current["nsp_loss"],
                                                    current["mlm_accuracy"]], dtype=torch.float64, device=context.device),
                                      sums[4:5], sums[5:6] / max(masked, 1.0)])
                interval_steps += 1
                if step % config.log_every == 0 or step == config.max_steps:
                    seconds = time.perf_counter() - interval_start
                    means = (running / interval_steps).tolist()
                    entry = {"step": step, "split": "train", "loss": means[0], "mlm_loss": means[1], "nsp_loss": means[2],
                             "mlm_accuracy": means[3], "aux_loss": means[4], "lr": optimizer.param_groups[0]["lr"],
                             "steps_per_s": interval_steps / seconds, "tokens_per_s": interval_steps * tokens_per_step / seconds,
                             "elapsed_s": time.perf_counter() - start, **({"distill_kl": means[5]} if teacher else {})}
                    record(entry)
                    left = {"left": f"{max(config.max_time - entry['elapsed_s'], 0) / 60:.1f}min"} if config.max_time else {}
                    bar.set_postfix(loss=f"{means[0]:.3f}", tok_s=f"{entry['tokens_per_s']:.0f}", **left, refresh=False)
                    running.zero_()
                    interval_steps, interval_start = 0, time.perf_counter()
                bar.update(1)
                if step % config.eval_every == 0:
                    record({"step": step, "split": "heldout", **evaluate(model, heldout, data_config, config, context)})
                out_of_time = config.max_time is not None and time.perf_counter() - start >= config.max_time
                flags = context.all_reduce_sum(torch.tensor([float(out_of_time), float(stop.received is not None)],
                                                            device=context.device)).tolist()
                if step % config.save_every == 0 or flags[1] or flags[0]:
                    checkpoint()
                    last_good = step
                if flags[1]:
                    stop_reason = "signal"
                    break
                if flags[0]:
                    stop_reason = "max_time"
                    break
        bar.close()
        elapsed = time.perf_counter() - start
        if stop_reason == "signal":
            raise KeyboardInterrupt(f"stopped by {stop.received or 'a signal'} at step {step}; checkpoint saved, "
                                    f"continue with --resume")
        if last_good != step:
            checkpoint()
        final = evaluate(model, heldout, data_config, config, context)
        record({"step": step, "split": "heldout", **final})
        summary = {
            "model": config.model, "preset": config.preset, "params": sum(p.numel() for p in model.parameters()),
            "steps": step, "stop_reason": stop_reason or "max_steps", "train_seconds": elapsed,
            "steps_per_s": (step - first_step) / elapsed, "tokens_per_s": (step - first_step) * tokens_per_step / elapsed,
            "tokens_per_step": tokens_per_step, "world_size": world, "device": device_name(context.device),
            "heldout": final, "config": asdict(config), "model_config": model_config.to_dict(),
        }
        if context.is_main:
            write_json(run_dir / "summary.json", summary)
        if log is not None:
            log.close()
        return summary
    finally:
        shutdown(context)
