"""The ``tokenmix`` command line: :mod:`.commands` (what each command runs), :mod:`.arguments` (flags
from config dataclasses), :mod:`.main` (the parser and the error boundary)."""
