"""``tokenmix`` command line. Every flag of a command is generated from the fields of its config
dataclass (``--seq-lens`` is ``SpeedBenchConfig.seq_lens``), so the CLI and the Python API cannot
drift apart. Bad input is reported as one ``tokenmix: error: ...`` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from tokenmix.io.files import write_json
from tokenmix.version import __version__


def _comma_list(item_type: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            return tuple(item_type(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {item_type.__name__} values, got {text!r}") from None

    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--field-name`` option per dataclass field, typed and documented from the field; fields
    with ``metadata["positional"]`` become positional arguments (a tuple field takes any number)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, flag = hints[f.name], "--" + f.name.replace("_", "-")
        args = typing.get_args(hint)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{f.metadata.get('help', '')} (default: {shown})"
        if f.metadata.get("positional"):  # e.g. `tokenmix predict --model DIR "text a" "text b"`
            is_tuple = typing.get_origin(hint) is tuple
            parser.add_argument(f.name, nargs="*" if is_tuple else None, default=default,
                                type=args[0] if is_tuple else hint, metavar=f.name.upper(), help=help_text)
            continue
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        if typing.get_origin(hint) is tuple:
            kind, metavar = _comma_list(args[0]), "A,B,..."
        elif typing.get_origin(hint) in (typing.Union, types.UnionType):
            kind, metavar = next(a for a in args if a is not type(None)), None
        else:
            kind, metavar = hint, None
        parser.add_argument(flag, dest=f.name, type=kind, default=default, metavar=metavar, help=help_text)


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})  # nargs="*" gives lists


def cmd_models(args: argparse.Namespace) -> None:
    import torch

    from tokenmix.models.config import PRESETS
    from tokenmix.models.factory import build_model
    from tokenmix.models.registry import get_variant, list_models, make_config
    from tokenmix.reporting.tables import render_table

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
    if args.json:
        write_json(args.json, records)


def run_demo(config: Any) -> None:
    from tokenmix.train.demo import format_table, run_demo

    print(format_table(run_demo(config)))  # run_demo writes config.json itself


def run_tokenizer_train(config: Any) -> None:
    from tokenmix.text.tokenizer import train_tokenizer

    print(f"wrote {train_tokenizer(config)}")


def run_data_prepare(config: Any) -> None:
    from tokenmix.text.prepare import prepare_data

    out = prepare_data(config)
    meta = json.loads((out / "meta.json").read_text())
    print(json.dumps({split: meta["splits"][split] for split in meta["splits"]}, indent=2))
    print(f"wrote {out}")


def run_pretrain(config: Any) -> None:
    import os

    from tokenmix.train.pretrain import run_pretraining

    summary = run_pretraining(config)
    if os.environ.get("RANK", "0") == "0":
        held = summary["heldout"]
        print(f"{summary['model']} ({summary['params'] / 1e6:.1f}M params): {summary['steps']} steps, "
              f"{summary['steps_per_s']:.2f} steps/s, {summary['tokens_per_s']:.0f} tokens/s; held-out "
              f"MLM loss {held['mlm_loss']:.3f} acc {held['mlm_accuracy']:.3f}, NSP loss {held['nsp_loss']:.3f} "
              f"acc {held['nsp_accuracy']:.3f}; wrote {config.out}/summary.json")


def run_finetune(config: Any) -> None:
    from tokenmix.reporting.tables import render_table
    from tokenmix.train.finetune import run_finetune

    metrics = run_finetune(config)
    rows = [[split, *(f"{v:.2f}" for v in values.values())] for split, values in metrics["splits"].items()]
    print(render_table(["split", *next(iter(metrics["splits"].values()))], rows))
    print(f"{metrics['task']} {metrics['model']}: best lr {metrics['best_lr']:g} "
          f"(sweep {', '.join(f'{lr}: {v:.2f}' for lr, v in metrics['sweep'].items())}); wrote {config.out}/metrics.json, "
          f"predictions and the best model in {config.out}/best")


def run_benchmark(benchmark: str) -> Callable[[Any], None]:
    def run(config: Any) -> None:
        from tokenmix.train.suite import format_table, run_suite

        print(format_table(run_suite(config, benchmark)))
        print(f"wrote {config.out}/{benchmark}.md and {benchmark}.json")

    return run


def run_distill(config: Any) -> None:
    from tokenmix.reporting.tables import render_table
    from tokenmix.train.distill import run_distill

    r = run_distill(config)
    rows = [[role, r[role]["model"], f"{r[role]['params'] / 1e6:.1f}M", f"{r[role]['score']:.2f}",
             f"{r[role]['ms_per_example']:.3f}"] for role in ("teacher", "student")]
    print(render_table(["role", "model", "params", r["score_metric"], "ms/example"], rows))
    print(f"student inference speed-up over the teacher: {r['speedup']:.2f}x; wrote {config.out}/metrics.json")


def run_predict(config: Any) -> None:
    from tokenmix.text.classifier import run_predict

    for result in run_predict(config):
        if "score" in result:
            print(f"{result['score']:.4f}")
        else:
            print(result["label"] + "\t" + " ".join(f"{k}={v:.3f}" for k, v in result["probabilities"].items()))


# (command path, help, description, "module:ConfigClass", runner): every flag comes from the config.
# Feature packages keep their own tables of the same shape (``COMMANDS`` and ``GROUP_HELP`` in the
# modules named in COMMAND_MODULES), so adding a command never edits this file's table.
CONFIG_COMMANDS = (
    (("demo",), "train a tiny FNet and a tiny BERT on a generated ListOps task and compare them",
     "Train each model for a fixed time on a generated ListOps-style task (no downloads), then print "
     "steps/s, peak memory and accuracy side by side.", "train.demo:DemoConfig", run_demo),
    (("tokenizer", "train"), "train a SentencePiece-style Unigram tokenizer (tokenizer.json)",
     "Train a Unigram tokenizer with Hugging Face tokenizers on text / JSONL (.gz) files; special tokens "
     "[PAD] [UNK] [CLS] [SEP] [MASK].", "text.tokenizer:TokenizerTrainConfig", run_tokenizer_train),
    (("data", "prepare"), "tokenize a corpus into memory-mapped pretraining shards",
     "Tokenize plain text (documents separated by blank lines) or JSONL into memory-mapped shards with "
     "document boundaries and a held-out split; reruns skip finished shards.", "text.prepare:DataPrepareConfig",
     run_data_prepare),
    (("pretrain",), "MLM + NSP pretraining of any variant (torchrun for several processes)",
     "Pretrain with AdamW, warm-up and linear decay, checkpoints and exact --resume; run under "
     "`torchrun --nproc-per-node N -m tokenmix pretrain ...` for DDP.", "train.pretrain:PretrainConfig", run_pretrain),
    (("finetune",), "fine-tune on a GLUE task with a learning-rate sweep; best-on-dev model, metrics, predictions",
     "Fine-tune a pretrained (or --init scratch) model on one GLUE task in the official folder layout: "
     "learning-rate sweep, evaluation each epoch, the best model kept, metrics.json and "
     "<split>_predictions.tsv.", "train.finetune:FinetuneConfig", run_finetune),
    (("glue",), "fine-tune and evaluate on every GLUE task; glue.md table like the FNet paper's Table 2",
     "Run `finetune` for every task (or --tasks), then write glue.json, glue.md (the paper's layout and "
     "average convention, the paper's rows beside ours) and GLUE-server submission files.",
     "train.suite:GlueConfig", run_benchmark("glue")),
    (("superglue",), "fine-tune and evaluate on every SuperGLUE task; superglue.md, leaderboard files",
     "Run `finetune --benchmark superglue` for every task (or --tasks) in the official jsonl layout, score AX-b "
     "and AX-g with the RTE model, then write superglue.json, superglue.md and leaderboard submission files.",
     "train.suite:SuperGlueConfig", run_benchmark("superglue")),
    (("distill",), "train a fast student from a fine-tuned teacher (KL at temperature T + hard labels)",
     "Distil a fine-tuned teacher of any variant into any registered student on a GLUE/SuperGLUE task; the "
     "teacher's logits are cached on disk; prints student and teacher side by side.",
     "train.distill:DistillConfig", run_distill),
    (("predict",), "classify texts with a fine-tuned model (label and probabilities)",
     "Classify one text or text pair given on the command line, or every line of --file (batched).",
     "text.classifier:PredictConfig", run_predict),
)


COMMAND_MODULES = ("bench.commands", "lra.commands", "io.configs", "reporting.report", "reproduce.commands")


def cmd_convert(args: argparse.Namespace) -> None:
    from tokenmix.io import huggingface as convert

    out = (convert.from_hf if args.direction == "from-hf" else convert.to_hf)(args.src, args.dst)
    print(f"converted {args.src} -> {out}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        """One line, like every other error, instead of argparse's usage block."""
        self.exit(2, f"tokenmix: error: {message} (see `{self.prog} --help`)\n")


def _config_class(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(f".{module}", __package__), name)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tokenmix",
        description="Token-mixing encoders (FNet, Linear, Random, FF-only, FNet-Hybrid, BERT, Sparse Mixers): "
                    "build, pretrain, fine-tune, convert, benchmark. Run `tokenmix demo` for a two-minute tour.",
    )
    parser.add_argument("--version", action="version", version=f"tokenmix {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    group_help = {"tokenizer": "tokenizer training", "data": "pretraining data preparation"}
    tables = [CONFIG_COMMANDS]
    for name in COMMAND_MODULES:
        module = importlib.import_module(f".{name}", __package__)
        tables.append(module.COMMANDS)
        group_help.update(getattr(module, "GROUP_HELP", {}))

    def subparsers_for(path: tuple[str, ...]) -> argparse._SubParsersAction:
        if len(path) == 1:
            return commands
        if path[0] not in groups:
            group = commands.add_parser(path[0], help=group_help[path[0]])
            groups[path[0]] = group.add_subparsers(dest=path[0], metavar="<subcommand>", required=True)
        return groups[path[0]]

    for path, help_text, description, spec, runner in (entry for table in tables for entry in table):
        sub = subparsers_for(path).add_parser(path[-1], help=help_text, description=description)
        cls = _config_class(spec)
        add_config_arguments(sub, cls)
        sub.set_defaults(run=lambda args, cls=cls, runner=runner: runner(config_from_args(cls, args)))

    models = commands.add_parser("models", help="list model variants and presets with parameter counts")
    models.add_argument("--json", help="also write the table to this JSON file")
    models.set_defaults(run=cmd_models)

    convert = commands.add_parser("convert", help="convert weights to/from Hugging Face FNet")
    directions = convert.add_subparsers(dest="direction", metavar="<direction>", required=True)
    for direction, text in (("from-hf", "Hugging Face FNet folder (save_pretrained) -> tokenmix model folder"),
                            ("to-hf", "tokenmix FNet model folder -> Hugging Face FNet folder")):
        sub = directions.add_parser(direction, help=text, description=text)
        sub.add_argument("src", help="source folder")
        sub.add_argument("dst", help="destination folder (created)")
        sub.set_defaults(run=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, FloatingPointError) as err:
        print(f"tokenmix: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(f"tokenmix: interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
