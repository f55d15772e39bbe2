"""``tokenmix lra ...`` commands (the table is collected by ``tokenmix.cli``)."""

from __future__ import annotations

GROUP_HELP = {"lra": "Long Range Arena tasks, evaluation and the speed/memory table"}

COMMANDS: tuple = ()
