"""``tokenmix report``: placeholder, being written."""

from __future__ import annotations

COMMANDS: tuple = ()
