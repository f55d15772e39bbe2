"""``python -m tokenmix`` (and ``torchrun -m tokenmix pretrain ...``) runs the command line."""

import sys

from tokenmix.cli.main import main

sys.exit(main())
