"""Knowledge distillation: ``tokenmix distill --teacher DIR --student fnet --preset mini --task sst2 ...``.

A fine-tuned teacher of any variant teaches any registered student on a GLUE or SuperGLUE task:
loss = α·KL(teacher ‖ student, both at temperature T)·T² + (1−α)·hard-label loss; for regression
tasks the soft term is the MSE to the teacher's score. The teacher's logits are computed once per
training example and cached on disk (``<teacher>/distill_cache/<task>.safetensors``), keyed by the
teacher's weights, the task and the encoded data; a cache whose key no longer matches is reported
as stale and recomputed, so the teacher never runs twice over the same data.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from tokenmix.benchmarks.adapters import get_adapter
from tokenmix.devices import resolve_device
from tokenmix.io.checkpoint import find_model_dir
from tokenmix.io.files import atomic_write, file_sha256, read_json, write_json
from tokenmix.models.encoder import TokenMixPreTrainedModel
from tokenmix.models.factory import load_pretrained
from tokenmix.models.heads import TokenMixForSequenceClassification
from tokenmix.text.classifier import TASK_FILE, TextClassifier
from tokenmix.text.pairs import PairBatches, padding_policy, predict_logits
from tokenmix.text.tokenizer import Tokenizer
from tokenmix.train.configs import DistillConfig
from tokenmix.train.finetune import (
    build_task_model,
    evaluate_and_write,
    find_tokenizer,
    prepare_task,
    reuse_first,
    save_task_files,
    task_values,
)
from tokenmix.train.supervised import claim_sweep_dir, fit_sweep


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, hard: torch.Tensor, alpha: float, temperature: float,
                      regression: bool) -> torch.Tensor:
    """α·KL(softmax(t/T) ‖ softmax(s/T))·T² + (1−α)·hard; regression: α·MSE(s, t) + (1−α)·hard."""
    if regression:
        soft = F.mse_loss(student[:, 0].float(), teacher[:, 0].float())
    else:
        soft = soft_kl(student, teacher, temperature).mean()
    return alpha * soft + (1.0 - alpha) * hard


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(t/T) ‖ softmax(s/T))·T² over the last axis, one value per row (the T² keeps the
    gradient's scale independent of T, as in Hinton et al.)."""
    log_student = F.log_softmax(student.float() / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher.float() / temperature, dim=-1)
    return F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(-1) * temperature**2


def _fingerprint(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
    return digest.hexdigest()[:32]


def teacher_logits(teacher: TextClassifier, teacher_dir: Path, examples: list, task: str) -> torch.Tensor:
    """The teacher's logits for ``examples``, from the disk cache when its key matches."""
    batches = teacher.batches(examples, 128)
    data = batches.data
    weights = teacher_dir / "model.safetensors"
    key = _fingerprint(file_sha256(weights), task, teacher.max_seq_len,
                       teacher.fixed_length, data.input_ids, data.token_type_ids)
    cache = teacher_dir / "distill_cache" / f"{task}.safetensors"
    if cache.is_file():
        with safe_open(str(cache), "pt") as f:
            if (f.metadata() or {}).get("key") == key:
                return load_file(str(cache))["logits"]
        print(f"note: teacher cache {cache} is stale (the teacher or the training data changed); recomputing",
              file=sys.stderr)
    logits = predict_logits(teacher.model, batches).contiguous()
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cache, lambda tmp: save_file({"logits": logits}, tmp, metadata={"key": key, "task": task}))
    return logits


def _check_pair(config: DistillConfig, teacher_dir: Path, task_info: dict, tokenizer: Tokenizer) -> None:
    if (task_info.get("benchmark", "glue"), task_info["task"]) != (config.benchmark, config.task.lower()):
        raise ValueError(f"the teacher in {teacher_dir} was fine-tuned on {task_info.get('benchmark', 'glue')} "
                         f"{task_info['task']!r}, not {config.benchmark} {config.task!r}; pick a teacher of this task")
    if config.init != "scratch" or config.tokenizer:
        student_tokenizer = find_tokenizer(config.init, config.tokenizer)
        if student_tokenizer.backend.get_vocab() != tokenizer.backend.get_vocab():
            raise ValueError("the teacher and the student use different tokenizers (their vocabularies differ), so "
                             "their inputs would not be the same token ids; distil into a student built on the "
                             "teacher's tokenizer (--init scratch without --tokenizer)")


def _ms_per_example(model: nn.Module, batches: PairBatches) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        predict_logits(model, batches)
        times.append(time.perf_counter() - start)
    return 1e3 * min(times) / len(batches.data.input_ids)


def run_distill(config: DistillConfig) -> dict[str, Any]:
    out = claim_sweep_dir(config.out, config)  # before the teacher is run and the models built
    adapter, device = get_adapter(config.benchmark, config.task), resolve_device(config.device)
    teacher_dir = find_model_dir(config.teacher)
    if not (teacher_dir / TASK_FILE).is_file():
        raise ValueError(f"{teacher_dir} is not a fine-tuned model (no {TASK_FILE}); fine-tune a teacher first")
    teacher = TextClassifier.from_pretrained(teacher_dir, device=config.device)
    assert isinstance(teacher.model, TokenMixPreTrainedModel)  # what from_pretrained loads; TextClassifier types any module
    _check_pair(config, teacher_dir, read_json(teacher_dir / TASK_FILE), teacher.tokenizer)

    probe, make_model = reuse_first(lambda: build_task_model(config, adapter.num_labels, adapter.is_regression,
                                                             teacher.tokenizer.vocab_size, teacher.tokenizer.pad_id))
    fixed, buckets = padding_policy(probe.config, config.max_seq_len, config.length_buckets)
    data = prepare_task(config, adapter, teacher.tokenizer, fixed, buckets)
    data.batches["train"].extras = {"teacher_logits": teacher_logits(teacher, teacher_dir, data.train.examples,
                                                                     f"{adapter.benchmark}-{adapter.name}")}
    first = adapter.eval_splits[0]

    def loss_fn(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        assert isinstance(model, TokenMixForSequenceClassification)  # regression heads derive from it
        out_ = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        hard = model.loss(out_.logits, batch["labels"])
        loss = distillation_loss(out_.logits, batch["teacher_logits"], hard, config.alpha, config.temperature,
                                 adapter.is_regression)
        return loss if out_.aux_loss is None else loss + out_.aux_loss  # the MoE auxiliary losses, as everywhere

    def evaluate(model: nn.Module) -> dict[str, float]:

        return adapter.metrics(data.evals[first], task_values(model, data, first))

    sweep = fit_sweep(make_model, data.batches["train"], len(data.batches["train"]), evaluate, config, out,
                      adapter.score_metric, desc=f"distill {adapter.name} {probe.config.variant}", loss_fn=loss_fn)
    student = load_pretrained(out / "best").to(device).eval()
    splits = evaluate_and_write(student, data, out, None)
    save_task_files(out / "best", data, config)
    teacher_batches = teacher.batches(data.evals[first].examples, config.eval_batch_size)
    teacher_values = adapter.values(predict_logits(teacher.model, teacher_batches))
    teacher_score = adapter.metrics(data.evals[first], teacher_values)[adapter.score_metric]
    side = {
        "student": {"model": probe.config.variant, "params": probe.num_parameters(),
                    "score": splits[first][adapter.score_metric],
                    "ms_per_example": _ms_per_example(student, data.batches[first])},
        "teacher": {"model": teacher.model.config.variant, "params": teacher.model.num_parameters(),
                    "score": teacher_score, "ms_per_example": _ms_per_example(teacher.model, teacher_batches)},
    }
    result = {"kind": "distill", "benchmark": adapter.benchmark, "task": adapter.name, "score_metric": adapter.score_metric,
              "splits": splits, "best_lr": sweep["best_lr"], "alpha": config.alpha, "temperature": config.temperature,
              **side, "speedup": side["teacher"]["ms_per_example"] / side["student"]["ms_per_example"],
              "config": asdict(config)}
    write_json(out / "metrics.json", result)
    return result
