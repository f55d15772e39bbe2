"""``tokenmix`` command line: the parser built from :data:`.commands.COMMANDS`, and one line per error.

Every flag of a command is generated from the fields of its config dataclass (``--seq-lens`` is
``SpeedBenchConfig.seq_lens``), so the CLI and the Python API cannot drift apart. Bad input is reported
as one ``tokenmix: error: ...`` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence

from tokenmix.cli.arguments import add_config_arguments, config_from_args
from tokenmix.cli.commands import COMMANDS, GROUPS
from tokenmix.version import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        """One line, like every other error, instead of argparse's usage block."""
        self.exit(2, f"tokenmix: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tokenmix",
        description="Token-mixing encoders (FNet, Linear, Random, FF-only, FNet-Hybrid, BERT, Sparse Mixers): "
                    "build, pretrain, fine-tune, convert, benchmark. Run `tokenmix demo` for a two-minute tour.",
    )
    parser.add_argument("--version", action="version", version=f"tokenmix {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}

    def subparsers_for(path: tuple[str, ...]) -> argparse._SubParsersAction:
        if len(path) == 1:
            return commands
        if path[0] not in groups:
            group = commands.add_parser(path[0], help=GROUPS[path[0]])
            groups[path[0]] = group.add_subparsers(dest=path[0], metavar="<subcommand>", required=True)
        return groups[path[0]]

    for command in COMMANDS:
        sub = subparsers_for(command.path).add_parser(command.path[-1], help=command.help, description=command.description)
        add_config_arguments(sub, command.config)
        sub.set_defaults(run=lambda args, command=command: command.run(config_from_args(command.config, args)))
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
