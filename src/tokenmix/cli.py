"""``tokenmix`` command line. Every flag of a command is generated from the fields of its config
dataclass (``--seq-lens`` is ``SpeedBenchConfig.seq_lens``), so the CLI and the Python API cannot
drift apart. Bad input is reported as one ``tokenmix: error: ...`` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from typing import Any, Callable, Sequence

from . import __version__


def _comma_list(item_type: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            return tuple(item_type(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {item_type.__name__} values, got {text!r}") from None

    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--field-name`` option per dataclass field, typed and documented from the field."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, flag = hints[f.name], "--" + f.name.replace("_", "-")
        args = typing.get_args(hint)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{f.metadata.get('help', '')} (default: {shown})"
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
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def _write_json(path: str | None, payload: Any) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")


def cmd_models(args: argparse.Namespace) -> None:
    import torch

    from .config import PRESETS
    from .modeling import build_model
    from .registry import get_variant, list_models, make_config
    from .tables import render_table

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
    _write_json(args.json, records)


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import DemoConfig, format_table, run_demo

    config = config_from_args(DemoConfig, args)
    results = run_demo(config)
    print(format_table(results))
    _write_json(config.json, results)


def cmd_bench_speed(args: argparse.Namespace) -> None:
    from .bench.speed import SpeedBenchConfig, format_speed_table, run_speed_benchmark

    config = config_from_args(SpeedBenchConfig, args)
    records = run_speed_benchmark(config)
    print(format_speed_table(records, config.baseline))
    if config.json:
        print(f"wrote {config.json}")


def cmd_bench_moe(args: argparse.Namespace) -> None:
    from .bench.moe import MoEBenchConfig, format_moe_table, run_moe_benchmark

    config = config_from_args(MoEBenchConfig, args)
    print(format_moe_table(run_moe_benchmark(config)))


def cmd_convert(args: argparse.Namespace) -> None:
    from . import convert

    out = (convert.from_hf if args.direction == "from-hf" else convert.to_hf)(args.src, args.dst)
    print(f"converted {args.src} -> {out}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        """One line, like every other error, instead of argparse's usage block."""
        self.exit(2, f"tokenmix: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .bench.moe import MoEBenchConfig
    from .bench.speed import SpeedBenchConfig
    from .demo import DemoConfig

    parser = _Parser(
        prog="tokenmix",
        description="Token-mixing encoders (FNet, Linear, Random, FF-only, FNet-Hybrid, BERT): "
                    "build, convert, benchmark. Run `tokenmix demo` for a two-minute tour.",
    )
    parser.add_argument("--version", action="version", version=f"tokenmix {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    models = commands.add_parser("models", help="list model variants and presets with parameter counts")
    models.add_argument("--json", help="also write the table to this JSON file")
    models.set_defaults(run=cmd_models)

    demo = commands.add_parser("demo", help="train a tiny FNet and a tiny BERT on a generated ListOps task and compare them",
                               description="Train each model for a fixed time on a generated ListOps-style task "
                                           "(no downloads), then print steps/s, peak memory and accuracy side by side.")
    add_config_arguments(demo, DemoConfig)
    demo.set_defaults(run=cmd_demo)

    bench = commands.add_parser("bench", help="speed and memory benchmarks")
    bench_kinds = bench.add_subparsers(dest="bench", metavar="<benchmark>", required=True)
    speed = bench_kinds.add_parser("speed", help="ms/step, tokens/s and peak memory per model, length and mode",
                                   description="Measure every model side by side in one run: median ms per step after "
                                               "warm-up, tokens/s, peak memory; prints a table, writes JSON.")
    add_config_arguments(speed, SpeedBenchConfig)
    speed.set_defaults(run=cmd_bench_speed)
    moe = bench_kinds.add_parser("moe", help="MoE layer vs a dense feed-forward of the same per-token compute",
                                 description="Time one MoE feed-forward layer against a dense feed-forward of the "
                                             "same per-token compute, split into expert matmuls and routing + dispatch.")
    add_config_arguments(moe, MoEBenchConfig)
    moe.set_defaults(run=cmd_bench_moe)

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
