"""Every command: its path, help, config class and the function that runs it and prints the result.

The config classes are torch-free dataclasses imported directly (go-to-definition works); each field is
one flag (:mod:`.arguments`). A handler imports its implementation when it runs, so that building the
parser (``tokenmix --help``) never imports torch: that is why this package, and only this package,
imports inside functions. Adding a command = a config dataclass, a handler here, one ``Command`` line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokenmix.bench.configs import MoEBenchConfig, ScalingBenchConfig, SpeedBenchConfig
from tokenmix.io.configs import ConvertConfig, OfficialConvertConfig, OnnxExportConfig
from tokenmix.io.files import read_json
from tokenmix.lra.configs import LRAEvalConfig, LRARunConfig, LRASpeedConfig, LRATableConfig
from tokenmix.options import OVERWRITE_HELP, option
from tokenmix.reporting.configs import ReportConfig
from tokenmix.reproduce.configs import ReproduceConfig
from tokenmix.text.configs import DataPrepareConfig, PredictConfig, TokenizerTrainConfig
from tokenmix.train.configs import (
    DemoConfig,
    DistillConfig,
    FinetuneConfig,
    GlueConfig,
    PretrainConfig,
    SuperGlueConfig,
)


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # ("lra", "run") is `tokenmix lra run`
    help: str  # one line in the parent's command list
    description: str  # the command's own --help text
    config: type  # torch-free dataclass: one flag per field
    run: Callable[[Any], None]  # runs the config and prints the outcome


@dataclass
class ModelsConfig:
    json: str | None = option(None, "also write the table to this JSON file", output="file")
    overwrite: bool = option(False, OVERWRITE_HELP)


GROUPS = {
    "convert": "convert weights: official Flax checkpoints, Hugging Face FNet (folders or Hub ids)",
    "tokenizer": "tokenizer training",
    "data": "pretraining data preparation",
    "bench": "speed and memory benchmarks",
    "lra": "Long Range Arena tasks, evaluation and the speed/memory table",
    "export": "export models to other runtimes",
}


def cmd_models(config: ModelsConfig) -> None:
    import torch

    from tokenmix.io.files import claim_outputs, write_json
    from tokenmix.models.config import PRESETS
    from tokenmix.models.factory import build_model
    from tokenmix.models.registry import get_variant, list_models, make_config
    from tokenmix.reporting.tables import render_table

    claim_outputs(config)  # as every command's implementation does, before any work

    rows, records = [], []
    for name in list_models():
        counts = {}
        for preset in PRESETS:
            with torch.device("meta"):  # shapes only: counting parameters allocates nothing
                counts[preset] = build_model(make_config(name, preset)).num_parameters()
        records.append({"model": name, "description": get_variant(name).description, "params": counts})
        rows.append([name, *(f"{counts[p] / 1e6:.1f}M" for p in PRESETS), get_variant(name).description])
    print(render_table(["model", *PRESETS, "description"], rows))
    print("\npresets (hidden/layers/heads/ff): "
          + "; ".join(f"{p} {s['hidden_size']}/{s['num_layers']}/{s['num_heads']}/{s['intermediate_size']}" for p, s in PRESETS.items()))
    if config.json:
        write_json(config.json, records)


def cmd_convert(direction: str) -> Callable[[ConvertConfig], None]:
    def run(config: ConvertConfig) -> None:
        from tokenmix.io import huggingface

        convert = huggingface.from_huggingface if direction == "from-hf" else huggingface.to_huggingface
        out = convert(config.src, config.dst, config.overwrite)
        print(f"converted {config.src} -> {out}")

    return run


def cmd_convert_official(config: OfficialConvertConfig) -> None:
    from tokenmix.io.official import convert_official

    out = convert_official(config.src, config.dst, config.variant, config.vocab, config.seed, config.overwrite)
    print(f"converted {config.src} -> {out}")


def cmd_demo(config: DemoConfig) -> None:
    from tokenmix.train.demo import format_demo_table, run_demo

    print(format_demo_table(run_demo(config)))  # run_demo writes config.json itself


def cmd_tokenizer_train(config: TokenizerTrainConfig) -> None:
    from tokenmix.text.tokenizer import train_tokenizer

    print(f"wrote {train_tokenizer(config)}")


def cmd_data_prepare(config: DataPrepareConfig) -> None:
    from tokenmix.text.prepare import prepare_data

    out = prepare_data(config)
    meta = read_json(out / "meta.json")
    print(json.dumps({split: meta["splits"][split] for split in meta["splits"]}, indent=2))
    print(f"wrote {out}")


def cmd_pretrain(config: PretrainConfig) -> None:
    from tokenmix.train.pretrain import run_pretraining

    summary = run_pretraining(config)
    if os.environ.get("RANK", "0") == "0":
        held = summary["heldout"]
        nsp = f", NSP loss {held['nsp_loss']:.3f} acc {held['nsp_accuracy']:.3f}" if "nsp_loss" in held else ""  # --nsp none: MLM only
        print(f"{summary['model']} ({summary['params'] / 1e6:.1f}M params): {summary['steps']} steps, "
              f"{summary['steps_per_s']:.2f} steps/s, {summary['tokens_per_s']:.0f} tokens/s; held-out "
              f"MLM loss {held['mlm_loss']:.3f} acc {held['mlm_accuracy']:.3f}{nsp}; wrote {config.out}/summary.json")


def cmd_finetune(config: FinetuneConfig) -> None:
    from tokenmix.reporting.tables import render_table
    from tokenmix.train.finetune import run_finetune

    metrics = run_finetune(config)
    rows = [[split, *(f"{v:.2f}" for v in values.values())] for split, values in metrics["splits"].items()]
    print(render_table(["split", *next(iter(metrics["splits"].values()))], rows))
    print(f"{metrics['task']} {metrics['model']}: best lr {metrics['best_lr']:g} "
          f"(sweep {', '.join(f'{lr}: {v:.2f}' for lr, v in metrics['sweep'].items())}); wrote {config.out}/metrics.json, "
          f"predictions and the best model in {config.out}/best")


def cmd_suite(benchmark: str) -> Callable[[GlueConfig], None]:
    def run(config: GlueConfig) -> None:
        from tokenmix.train.suite import format_benchmark_table, run_suite

        print(format_benchmark_table(run_suite(config, benchmark)))
        print(f"wrote {config.out}/{benchmark}.md and {benchmark}.json")

    return run


def cmd_distill(config: DistillConfig) -> None:
    from tokenmix.reporting.tables import render_table
    from tokenmix.train.distill import run_distill

    r = run_distill(config)
    rows = [[role, r[role]["model"], f"{r[role]['params'] / 1e6:.1f}M", f"{r[role]['score']:.2f}",
             f"{r[role]['ms_per_example']:.3f}"] for role in ("teacher", "student")]
    print(render_table(["role", "model", "params", r["score_metric"], "ms/example"], rows))
    print(f"student inference speed-up over the teacher: {r['speedup']:.2f}x; wrote {config.out}/metrics.json")


def cmd_predict(config: PredictConfig) -> None:
    from tokenmix.text.classifier import run_predict

    results = run_predict(config)
    if config.output:
        print(f"wrote {len(results)} predictions to {config.output}")
        return
    for result in results:
        if "score" in result:
            print(f"{result['score']:.4f}")
        else:
            print(result["label"] + "\t" + " ".join(f"{k}={v:.3f}" for k, v in result["probabilities"].items()))


def cmd_bench_speed(config: SpeedBenchConfig) -> None:
    from tokenmix.bench.speed import format_peer_table, format_precision_table, format_speed_table, run_speed_benchmark

    records = run_speed_benchmark(config)
    print(format_speed_table(records, config.baseline))
    if len(config.precision) > 1:
        print(format_precision_table(records))
    if config.compare:
        print("\n" + format_peer_table(records))
    for path in (config.json, config.markdown):
        if path:
            print(f"wrote {path}")


def cmd_bench_scaling(config: ScalingBenchConfig) -> None:
    from tokenmix.bench.scaling import run_scaling_benchmark, summarize

    print(summarize(run_scaling_benchmark(config)))
    print(f"wrote {config.out}/scaling.json, scaling.md, scaling.png, scaling.svg")


def cmd_bench_moe(config: MoEBenchConfig) -> None:
    from tokenmix.bench.moe import format_moe_table, run_moe_benchmark

    print(format_moe_table(run_moe_benchmark(config)))


def _lra_baselines(record: dict[str, Any], rule: str) -> str:
    """'majority class X%' plus, for ListOps, the first-operator rule (``rule`` says where it was fitted)."""
    text = f"majority class {100 * record['majority_baseline']:.2f}%"
    if "root_op_baseline" in record:
        text += f", first-operator rule{rule} {100 * record['root_op_baseline']:.2f}%"
    return text


def cmd_lra_run(config: LRARunConfig) -> None:
    from tokenmix.lra.run import run_lra

    s = run_lra(config)
    flag = " (at chance)" if s["at_chance"] else ""
    print(f"{s['task']} {s['model']} ({s['params'] / 1e6:.2f}M params): test accuracy {100 * s['test_accuracy']:.2f}%{flag} "
          f"(best validation {100 * s['val_accuracy']:.2f}% at step {s['best_step']}; {_lra_baselines(s, '')}), "
          f"{s['steps']} steps at {s['steps_per_s']:.2f} steps/s, peak {s['peak_memory_mib']:.0f} MiB; "
          f"wrote {config.out}/summary.json")


def cmd_lra_eval(config: LRAEvalConfig) -> None:
    from tokenmix.lra.run import run_eval

    r = run_eval(config)
    print(f"{r['task']} {r['split']} ({r['examples']} examples): accuracy {100 * r['accuracy']:.2f}%, loss {r['loss']:.4f} "
          f"({_lra_baselines(r, ' fitted on this split')})" + (f"; wrote {config.json}" if config.json else ""))


def cmd_lra_table(config: LRATableConfig) -> None:
    from tokenmix.lra.table import run_table

    print(run_table(config))


def cmd_lra_speed(config: LRASpeedConfig) -> None:
    from tokenmix.lra.speed import format_markdown, run_speed_table

    result = run_speed_table(config)
    print(format_markdown(result, config.baseline))
    print(f"wrote {config.out}/speed.json, speed.md, speed.png ({len(result['results'])} configurations)")


def cmd_export_onnx(config: OnnxExportConfig) -> None:
    from tokenmix.io.onnx import export_onnx

    result = export_onnx(config)
    axes = ", ".join(f"{name} [{', '.join(map(str, shape))}]" for name, shape in result["inputs"].items())
    print(f"exported {result['model']} ({result['head']}) -> {result['path']}: inputs {axes}; outputs "
          f"{', '.join(result['outputs'])}")
    for note in result["notes"]:
        print(f"note: {note}")
    if result["max_abs_diff"] is not None:
        print(f"onnxruntime vs PyTorch on batch sizes {', '.join(map(str, result['checked_batch_sizes']))} and lengths "
              f"{', '.join(map(str, result['checked_seq_lens']))}: max abs diff {result['max_abs_diff']:.2e} "
              f"(tolerance {config.atol:g})")


def cmd_report(config: ReportConfig) -> None:
    from tokenmix.reporting.report import build_report

    result = build_report(config)
    found = ", ".join(f"{n} {kind}" for kind, n in result["counts"].items() if n)
    print(f"read {found} summaries ({result['skipped']} other JSON files skipped); wrote {result['report']}")
    for path in result["plots"]:
        print(f"wrote {path}")
    for note in result["notes"]:
        print(f"note: {note}")


def cmd_reproduce(config: ReproduceConfig) -> None:
    from tokenmix.reproduce.study import run_reproduce

    print(f"wrote {run_reproduce(config)}")


COMMANDS = (
    Command(("demo",), "train a tiny FNet and a tiny BERT on a generated ListOps task and compare them",
            "Train each model for a fixed time on a generated ListOps-style task (no downloads), then print "
            "steps/s, peak memory and accuracy side by side.", DemoConfig, cmd_demo),
    Command(("tokenizer", "train"), "train a SentencePiece-style Unigram tokenizer (tokenizer.json)",
            "Train a Unigram tokenizer with Hugging Face tokenizers on text / JSONL (.gz) files; special tokens "
            "[PAD] [UNK] [CLS] [SEP] [MASK].", TokenizerTrainConfig, cmd_tokenizer_train),
    Command(("data", "prepare"), "tokenize a corpus into memory-mapped pretraining shards",
            "Tokenize plain text (documents separated by blank lines) or JSONL into memory-mapped shards with "
            "document boundaries and a held-out split; reruns skip finished shards.", DataPrepareConfig,
            cmd_data_prepare),
    Command(("pretrain",), "MLM + NSP pretraining of any variant (torchrun for several processes)",
            "Pretrain with AdamW, warm-up and linear decay, checkpoints and exact --resume; run under "
            "`torchrun --nproc-per-node N -m tokenmix pretrain ...` for DDP.", PretrainConfig, cmd_pretrain),
    Command(("finetune",), "fine-tune on a GLUE task or your own CSV/TSV/JSONL data; best-on-dev model, metrics, predictions",
            "Fine-tune a pretrained (or --init scratch) model on one GLUE task in the official folder layout, or on "
            "your own tables (--train-file, --validation-file, --text-column, --label-column): learning-rate sweep, "
            "evaluation each epoch, the best model kept, metrics.json and <split>_predictions files.",
            FinetuneConfig, cmd_finetune),
    Command(("glue",), "fine-tune and evaluate on every GLUE task; glue.md table like the FNet paper's Table 2",
            "Run `finetune` for every task (or --tasks), then write glue.json, glue.md (the paper's layout and "
            "average convention, the paper's rows beside ours) and GLUE-server submission files.",
            GlueConfig, cmd_suite("glue")),
    Command(("superglue",), "fine-tune and evaluate on every SuperGLUE task; superglue.md, leaderboard files",
            "Run `finetune --benchmark superglue` for every task (or --tasks) in the official jsonl layout, score "
            "AX-b and AX-g with the RTE model, then write superglue.json, superglue.md and leaderboard submission "
            "files.", SuperGlueConfig, cmd_suite("superglue")),
    Command(("distill",), "train a fast student from a fine-tuned teacher (KL at temperature T + hard labels)",
            "Distil a fine-tuned teacher of any variant into any registered student on a GLUE/SuperGLUE task; the "
            "teacher's logits are cached on disk; prints student and teacher side by side.",
            DistillConfig, cmd_distill),
    Command(("predict",), "classify texts with a fine-tuned model (label and probabilities)",
            "Classify one text or text pair given on the command line, every line of --file (batched), or every "
            "row of an --input table (CSV/TSV/JSONL) into --output with the input's columns, label and probabilities.",
            PredictConfig, cmd_predict),
    Command(("bench", "speed"), "ms/step, tokens/s and peak memory per model, length and mode",
            "Measure every model side by side in one run: median ms per step after warm-up, tokens/s, peak "
            "memory, dense TFLOP/s; prints a table, writes JSON and markdown. --compare hf adds Hugging Face "
            "transformers FNet and BERT (SDPA) of the same size.", SpeedBenchConfig, cmd_bench_speed),
    Command(("bench", "scaling"), "time and memory against sequence length, with fitted growth exponents and plots",
            "Sweep sequence lengths (128 -> 8192 until out of memory or the time budget) and batch sizes; fit "
            "t ~ L^k and memory ~ L^k on log-log axes; write JSON, markdown and PNG/SVG plots.",
            ScalingBenchConfig, cmd_bench_scaling),
    Command(("bench", "moe"), "MoE layer vs a dense feed-forward of the same per-token compute",
            "Time one MoE feed-forward layer against a dense feed-forward of the same per-token compute, split "
            "into expert matmuls and routing + dispatch.", MoEBenchConfig, cmd_bench_moe),
    Command(("lra", "run"), "train a model from scratch on an LRA task; test accuracy of the best-validation checkpoint",
            "Train any variant on an LRA task (official base config with --preset lra, CLS or mean pooling) with "
            "the shared trainer: progress bar, metrics.jsonl, checkpoints, --resume, --max-time. ListOps and "
            "Pathfinder data are generated (deterministic, cached) when no --data-dir is given. Writes summary.json.",
            LRARunConfig, cmd_lra_run),
    Command(("lra", "eval"), "evaluate a trained LRA run on data in the official file format",
            "Score the best model of an `lra run` directory on a split of any data folder in the task's official "
            "format; --json writes the result.", LRAEvalConfig, cmd_lra_eval),
    Command(("lra", "table"), "collect LRA runs into the paper's table (ListOps ... Path-X, average)",
            "Read every summary.json under the run directories and print test accuracies in the layout of the "
            "FNet paper's LRA table, the paper's rows under ours; '*' marks a cell trained below LRA's official "
            "budget (steps, length, data, batch; the notes say how), '-' a task not run, 'n/a' one that cannot "
            "run here (Retrieval: no AAN pairs).", LRATableConfig, cmd_lra_table),
    Command(("lra", "speed"), "training steps/s and peak memory at 512-8192 tokens (paper Table 5)",
            "Measure LRA training steps (Text configuration) for each model and length in a fresh process with a "
            "memory cap and a time budget; OOM and over-budget are reported as such. Writes speed.json, a "
            "markdown table and a log-log plot with fitted memory exponents.", LRASpeedConfig, cmd_lra_speed),
    Command(("export", "onnx"), "export an encoder or classification model to ONNX, checked with onnxruntime",
            "Export the model in MODEL_DIR (Fourier mixing as DFT matrix products) with a dynamic batch axis, "
            "check it against PyTorch with onnxruntime on random inputs, then write OUT atomically. Mixing models "
            "are fixed to the exported sequence length.", OnnxExportConfig, cmd_export_onnx),
    Command(("report",), "markdown report with tables and a speed-accuracy Pareto plot from a folder of runs",
            "Search RUNS_DIR recursively for run summaries (pretraining summary.json, glue.json, LRA summary.json, "
            "`tokenmix bench speed --json` files) and write OUT/report.md with pretraining, GLUE, LRA and speed "
            "tables, and accuracy against time per step with the Pareto front (PNG + SVG), as in the FNet paper's "
            "Figure 2.", ReportConfig, cmd_report),
    Command(("reproduce",), "run the FNet paper's comparisons end to end at a scale and budget; writes REPORT.md",
            "Tokenizer, pretraining data, pretraining of every model (equal share of the budget), GLUE fine-tuning, "
            "speed benchmark and REPORT.md with the papers' figures beside ours. Rerunning skips finished stages.",
            ReproduceConfig, cmd_reproduce),
    Command(("models",), "list model variants and presets with parameter counts",
            "List every registered variant with its parameter count at each size preset.", ModelsConfig, cmd_models),
    Command(("convert", "from-official"), "official FNet / Sparse Mixers Flax checkpoint -> tokenmix model folder",
            "Official FNet / Sparse Mixers Flax checkpoint (file, folder or .zip) -> tokenmix model folder with its "
            "SentencePiece vocabulary (spiece.model); the architecture is read from the weights.",
            OfficialConvertConfig, cmd_convert_official),
    Command(("convert", "from-hf"), "Hugging Face FNet folder or Hub id -> tokenmix model folder",
            "Hugging Face FNet folder (save_pretrained) or Hub id (google/fnet-base; needs the hub extra) -> "
            "tokenmix model folder", ConvertConfig, cmd_convert("from-hf")),
    Command(("convert", "to-hf"), "tokenmix FNet model folder -> Hugging Face FNet folder",
            "tokenmix FNet model folder -> Hugging Face FNet folder", ConvertConfig, cmd_convert("to-hf")),
)
