"""Fine-tuning on a GLUE or SuperGLUE task (``tokenmix finetune --task sst2 --init RUN_DIR --data-dir DIR --out
DIR``) or on your own tables (``--train-file F --validation-file F --text-column C --label-column C``, or a
``datasets.DatasetDict`` through :func:`run_finetune`).

Starts from any tokenmix model folder or run directory (pretraining, a converted Hugging Face FNet,
another fine-tuned model) or from random initialisation (``--init scratch``); the pretraining head is
dropped and a new classification / regression head initialised, with a fresh AdamW state (the
official code restores the pretraining optimizer moments; we do not, as is standard practice).
The best model of the learning-rate sweep, judged on the first dev split, is evaluated on every
dev split; predictions files and ``metrics.json`` are written from the same arrays, so they agree.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tokenmix.benchmarks.adapters import get_adapter
from tokenmix.benchmarks.custom import TableAdapter, TableColumns
from tokenmix.devices import resolve_device
from tokenmix.io.checkpoint import find_model_dir
from tokenmix.io.files import read_json, write_json
from tokenmix.io.huggingface import local_model_dir
from tokenmix.models.config import parse_overrides
from tokenmix.models.factory import build_model, load_pretrained
from tokenmix.models.registry import make_config
from tokenmix.text.classifier import TASK_FILE, check_task_tokenizer
from tokenmix.text.pairs import PairBatches, encode, padding_policy, predict_logits
from tokenmix.text.prepare import data_tokenizer, recorded_path
from tokenmix.text.tokenizer import Tokenizer, check_tokenizer, tokenizer_sha256
from tokenmix.train.configs import FinetuneConfig, FinetuneOptions
from tokenmix.train.supervised import claim_sweep_dir, fit_sweep


def stored_tokenizer(folder: Path) -> Any:
    """The tokenizer saved in a model folder; a fine-tuned one's is checked against its ``task.json``."""
    if (folder / TASK_FILE).is_file():
        check_task_tokenizer(folder, read_json(folder / TASK_FILE))
    return Tokenizer.load(folder)


def run_tokenizer(run_dir: Path) -> Any | None:
    """The tokenizer a pretraining run's data was prepared with (None when the data is not there),
    checked against the sha256 the run recorded (runs before this version record none)."""
    record = read_json(run_dir / "train_config.json")
    data = recorded_path(record["data"], run_dir) if record.get("data") else None
    if data is None or not (data / "meta.json").is_file():
        return None
    path = data_tokenizer(data)
    if record.get("tokenizer_sha256"):
        check_tokenizer(path, record["tokenizer_sha256"], f"the run in {run_dir} was pretrained with",
                        "pass that tokenizer with --tokenizer")
    return Tokenizer.load(path)


def find_tokenizer(init: str, explicit: str = "") -> Any:
    """``--tokenizer``, else a tokenizer stored with the model / run, else the one the run's
    pretraining data was prepared with (recorded in the data folder's ``meta.json``)."""
    if explicit:
        return Tokenizer.load(explicit)
    if init != "scratch":
        source = local_model_dir(init)  # a Hub id's converted snapshot holds its tokenizer
        model_dir = find_model_dir(source)
        for folder in dict.fromkeys((model_dir, source, model_dir.parent, model_dir.parent.parent)):
            if (folder / "tokenizer.json").is_file() or any(folder.glob("*.model")):
                return stored_tokenizer(folder)
            if (folder / "train_config.json").is_file() and (found := run_tokenizer(folder)) is not None:
                return found
    raise FileNotFoundError(f"no tokenizer found for --init {init}; pass --tokenizer (a folder with tokenizer.json, "
                            f"e.g. one trained with `tokenmix tokenizer train`)")


def build_task_model(options: FinetuneOptions, num_labels: int, regression: bool, vocab_size: int, pad_id: int) -> Any:
    """A classification / regression model from ``--init`` (encoder weights kept, new head)."""
    head = "regression" if regression else "classification"
    overrides = {"head": head, "num_labels": num_labels, **parse_overrides(options.override)}
    torch.manual_seed(options.seed)  # the new head's initialisation
    if options.init == "scratch":
        overrides.setdefault("max_position_embeddings", max(512, options.max_seq_len))
        model = build_model(make_config(options.model, options.preset, vocab_size=vocab_size, pad_token_id=pad_id,
                                        **overrides))
    else:
        model = load_pretrained(options.init, **overrides)
    config = model.config
    if vocab_size > config.vocab_size:
        raise ValueError(f"the tokenizer has {vocab_size} tokens but the model's vocabulary is {config.vocab_size}: "
                         f"they do not belong together; pass the --tokenizer the model was pretrained with")
    if options.max_seq_len > config.max_position_embeddings:
        raise ValueError(f"--max-seq-len {options.max_seq_len} exceeds the model's max_position_embeddings="
                         f"{config.max_position_embeddings}; lower --max-seq-len")
    return model


def reuse_first(build: Callable[[], Any]) -> tuple[Any, Callable[[], Any]]:
    """Build one model now (its config decides the padding policy) and hand that same model to the
    first run of the sweep instead of building it twice."""
    first = [build()]
    return first[0], lambda: first.pop() if first else build()


def split_dev(dev: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """A seeded (train, held-out) partition of a dev split, for tasks whose train split is missing."""
    order = list(range(len(dev.examples)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * fraction)
    if cut < 1 or cut == len(order):
        raise ValueError(f"--train-from-dev {fraction} leaves no training or no evaluation examples of {dev.path}")
    return dev.subset(order[:cut], "train"), dev.subset(sorted(order[cut:]))  # evaluation rows keep file order


@dataclass
class TaskData:
    """A task read, checked, encoded and batched with one padding policy (``fixed``)."""

    adapter: Any
    tokenizer: Any
    train: Any
    evals: dict[str, Any]
    tests: dict[str, Any]
    batches: dict[str, Any]  # split name -> PairBatches ("train" included)
    truncated: dict[str, int]
    fixed: int | None
    protocol: str = ""
    buckets: tuple[int, ...] | None = None  # per-example lengths of a parameter-free mixing (see padding_policy)


def prepare_task(options: FinetuneOptions, adapter: Any, tokenizer: Any, fixed: int | None,
                 buckets: tuple[int, ...] | None = None) -> TaskData:
    evals = {name: adapter.read(options.data_dir, name) for name in adapter.eval_splits}
    first, protocol = adapter.eval_splits[0], ""
    if options.train_from_dev and not adapter.has(options.data_dir, "train"):
        train, evals[first] = split_dev(evals[first], options.train_from_dev, options.seed)
        protocol = (f"no train split: trained on {len(train.examples)} examples ({options.train_from_dev:.0%}) of "
                    f"{first}, evaluated on the other {len(evals[first].examples)} (seeded split)")
    else:
        train = adapter.read(options.data_dir, "train")
    tests = {name: adapter.read(options.data_dir, name) for name in adapter.test_splits
             if adapter.has(options.data_dir, name)}
    for split in (train, *evals.values(), *tests.values()):
        if split.note:
            print(f"warning: {split.note}", file=sys.stderr)
    for split in evals.values():
        if not split.labelled:
            raise ValueError(f"{split.path} has examples without a label; evaluation splits must be labelled")
    if options.max_train_examples and len(train.examples) > options.max_train_examples:  # a seeded random subset
        train = train.subset(sorted(random.Random(options.seed).sample(range(len(train.examples)),
                                                                       options.max_train_examples)))
    batches, truncated = {}, {}
    for name, split in {"train": train, **evals, **tests}.items():
        data = encode(tokenizer, split.examples, options.max_seq_len)
        size = options.batch_size if name == "train" else options.eval_batch_size
        batches[name] = PairBatches(data, size, tokenizer.pad_id, fixed, options.seed, adapter.is_regression,
                                    buckets=buckets)
        truncated[name] = data.truncated
    if any(truncated.values()):
        print(f"note: truncated to {options.max_seq_len} tokens: "
              + ", ".join(f"{n} {c}" for n, c in truncated.items() if c), file=sys.stderr)
    return TaskData(adapter, tokenizer, train, evals, tests, batches, truncated, fixed, protocol, buckets)


def task_values(model: Any, data: TaskData, split: str) -> list:
    return data.adapter.values(predict_logits(model, data.batches[split]))


def evaluate_and_write(model: Any, data: TaskData, out: Path, submission_dir: Path | None) -> dict[str, Any]:
    """Every dev split scored and written (from the same values), test predictions and submissions."""
    splits = {}
    for name, split in data.evals.items():
        values = task_values(model, data, name)
        data.adapter.write_predictions(out, split, values)
        splits[name] = data.adapter.metrics(split, values)
    for name, split in data.tests.items():
        values = task_values(model, data, name)
        data.adapter.write_predictions(out, split, values)
        if submission_dir is not None:
            data.adapter.write_submission(submission_dir, split, values)
    return splits


def tuned_on_pairs(data: TaskData) -> bool:
    """Whether the task's examples are text pairs (GLUE's mrpc, rte, qnli, stsb; your own data with
    --text-pair-column), so that ``predict`` can refuse inputs of the other kind."""
    return any(e.text_b is not None for e in data.train.examples)


def save_task_files(directory: Path, data: TaskData, options: FinetuneOptions) -> None:
    """Tokenizer and ``task.json`` beside the weights, so ``tokenmix predict`` needs only the folder; the
    tokenizer's sha256 makes a tokenizer replaced later an error rather than silently other token ids."""
    data.tokenizer.save(directory)
    own = data.adapter if isinstance(data.adapter, TableAdapter) else None
    write_json(directory / TASK_FILE, {"benchmark": data.adapter.benchmark, "task": data.adapter.name,
                                       "labels": data.adapter.labels, "label_type": own.label_type if own else "string",
                                       "max_seq_len": options.max_seq_len,
                                       "fixed_length": data.fixed is not None,
                                       "length_buckets": None if data.buckets is None else list(data.buckets),
                                       "columns": asdict(own.columns) if own else None, "pair": tuned_on_pairs(data),
                                       "tokenizer_sha256": tokenizer_sha256(directory)})


def table_adapter(config: FinetuneConfig, dataset: Any = None) -> TableAdapter:
    """The adapter of your own data: ``dataset`` (a ``datasets.DatasetDict`` or a dict of splits, with
    ``train`` and ``validation``, optionally ``test``), else ``--train-file`` / ``--validation-file`` /
    ``--test-file``."""
    columns = TableColumns(config.text_column, config.label_column, config.text_pair_column, config.regression)
    if dataset is not None:
        return TableAdapter(columns, {split: dataset[split] for split in dataset})
    if not config.train_file or not config.validation_file:
        raise ValueError("your own data needs --train-file and --validation-file (tables with a header: .csv, .tsv, "
                         ".jsonl)")
    sources = {"train": config.train_file, "validation": config.validation_file, "test": config.test_file or None}
    return TableAdapter(columns, sources)


def run_finetune(config: FinetuneConfig, submission_dir: Path | None = None, dataset: Any = None) -> dict[str, Any]:
    """Fine-tune, pick the best learning rate, evaluate and write predictions; returns ``metrics.json``.
    ``dataset``: your own data as a ``datasets.DatasetDict`` (with ``config.text_column`` etc.)."""
    claim_sweep_dir(config.out, config)  # before the data is read and the models built
    own = config.own_data() or dataset is not None
    adapter = table_adapter(config, dataset) if own else get_adapter(config.benchmark, config.task)
    out = Path(config.out)
    tokenizer = find_tokenizer(config.init, config.tokenizer)

    probe, make_model = reuse_first(lambda: build_task_model(config, adapter.num_labels, adapter.is_regression,
                                                             tokenizer.vocab_size, tokenizer.pad_id))
    fixed, buckets = padding_policy(probe.config, config.max_seq_len, config.length_buckets)
    params, variant = probe.num_parameters(), probe.config.variant
    data = prepare_task(config, adapter, tokenizer, fixed, buckets)
    first = adapter.eval_splits[0]

    def evaluate(model: Any) -> dict[str, float]:
        return adapter.metrics(data.evals[first], task_values(model, data, first))

    sweep = fit_sweep(make_model, data.batches["train"], len(data.batches["train"]), evaluate, config, out,
                      adapter.score_metric, desc=f"{adapter.name} {variant}")
    best = load_pretrained(out / "best").to(resolve_device(config.device)).eval()
    splits = evaluate_and_write(best, data, out, submission_dir)
    save_task_files(out / "best", data, config)
    chosen = sweep["runs"][f"{sweep['best_lr']:g}"]
    metrics = {
        "kind": "finetune", "benchmark": adapter.benchmark, "task": adapter.name, "protocol": data.protocol,
        "model": variant, "init": config.init, "params": params, "score_metric": adapter.score_metric,
        "score": splits[first][adapter.score_metric], "splits": splits, "best_lr": sweep["best_lr"],
        "sweep": {lr: run["best"][adapter.score_metric] for lr, run in sweep["runs"].items()},
        "train_examples": len(data.train.examples), "truncated": data.truncated,
        "skipped": {name: split.skipped for name, split in {"train": data.train, **data.evals, **data.tests}.items()},
        "steps": chosen["steps"], "steps_per_s": chosen["steps_per_s"], "train_seconds": chosen["train_seconds"],
        "fixed_length": fixed, "length_buckets": "exact" if buckets == () else buckets and list(buckets),
        "config": asdict(config),
    }
    write_json(out / "metrics.json", metrics)
    return metrics
