"""``python -m tokenmix`` (and ``torchrun -m tokenmix pretrain ...``) runs the command line."""

import os
import sys

from tokenmix.cli.main import main

status = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # A torchrun worker: its outputs are written and its process group destroyed. Skip interpreter and
    # C++ static teardown, where leftover gloo threads can abort a finished run (SIGABRT).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
sys.exit(status)
