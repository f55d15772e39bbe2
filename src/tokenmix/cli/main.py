"""``tokenmix`` command line: the parser built from :data:`.commands.COMMANDS`, and one line per error.

Every flag of a command is generated from the fields of its config dataclass (``--seq-lens`` is
``SpeedBenchConfig.seq_lens``), so the CLI and the Python API cannot drift apart. :func:`main` is the one
error boundary: bad input, a file system error or a file a library cannot parse is reported as one
``tokenmix: error: ...`` line naming the path and the fix, and a non-zero exit.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import typing
from collections.abc import Sequence

from tokenmix.cli.arguments import add_config_arguments, config_from_args
from tokenmix.cli.commands import COMMANDS, GROUPS
from tokenmix.version import __version__


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        """Negative numbers in exponent form and lists (``--lr -1e-3``, ``-1e-3,1e-4``) are values to check,
        not unknown flags ("expected one argument"): argparse before Python 3.13 knows only ``-1`` and ``-.5``."""
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(,.*)?$")

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
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of an error (or set {DEBUG_ENV}=1); "
                                                             "accepted anywhere on the command line")
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


DEBUG_ENV = "TOKENMIX_DEBUG"
# What to do about an OSError, by its errno: the error boundary adds it to the path and the reason.
_OS_FIXES = {
    errno.EEXIST: "choose another path, or pass --overwrite to replace it",
    errno.EISDIR: "it is a folder; give the name of a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOSPC: "free some space or choose another output folder; a training run continues with --resume",
    errno.EDQUOT: "free some space or choose another output folder; a training run continues with --resume",
    errno.EACCES: "choose a path you may write to, or change its permissions",
    errno.EPERM: "choose a path you may write to, or change its permissions",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOENT: "check the path",
}


def describe_error(err: Exception) -> str:
    """The one line that reports ``err``: our own errors say what is wrong and the fix already; an
    OSError names its path and what to do; a parse error of a library names what could not be read;
    anything else is an internal error, shown in full with --debug."""
    if isinstance(err, OSError) and err.strerror:
        where = " -> ".join(str(name) for name in (err.filename, err.filename2) if name is not None)
        fix = f"; {_OS_FIXES[err.errno]}" if err.errno in _OS_FIXES else ""
        return f"{where + ': ' if where else ''}{err.strerror}{fix}"
    if isinstance(err, json.JSONDecodeError):
        return f"malformed JSON ({err}); repair or regenerate the file"
    if isinstance(err, (ValueError, OSError, FloatingPointError)):
        return str(err)
    if type(err).__name__ == "SafetensorError":  # safetensors' parse error, imported only with torch
        return f"unreadable .safetensors file ({err}); the file is damaged or not a safetensors file"
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first} (an internal error: rerun with --debug for the traceback and report it)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error ends as one ``tokenmix: error: ...`` line and exit status 1 (2 for
    a bad command line, 130 for an interrupt), with the traceback only under ``--debug`` or
    ``TOKENMIX_DEBUG=1``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]  # accepted anywhere on the line
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.run(args)
    except KeyboardInterrupt as err:
        print(f"tokenmix: interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        print(f"tokenmix: error: {describe_error(err)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
