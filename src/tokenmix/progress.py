"""tokenmix's progress bars: tqdm's, shown only after half a second and wiped when an error stops them.

A job refused on bad input then leaves one error line on stderr, not that line after a bar's: a bar
stopped within half a second never printed, and one that had printed is erased when the ``with`` block
it serves ends in an exception. Every job that runs to its end keeps its bar.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from tqdm.auto import tqdm


class Progress(tqdm):
    """:class:`tqdm.auto.tqdm` with ``delay=0.5`` by default, and a delay that holds for ``refresh()``
    (``set_postfix``, ``set_description``) too: tqdm's own delay only holds back ``update()``, and its
    ``close()`` ends the line only after an ``update()`` printed, so a bar refreshed early was left
    without its newline and the next message was glued onto it."""

    def __init__(self, *args: Any, delay: float = 0.5, **kwargs: Any) -> None:
        self.shown = False
        super().__init__(*args, delay=delay, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool | None:
        if not self.shown and self.delay > 0 and self._time() < self.start_t + self.delay:
            return True  # nothing yet: a bar closed within the delay leaves no line
        self.shown = True
        return super().display(msg, pos)

    def close(self) -> None:
        if self.shown:  # whatever printed it, the bar's line is ended
            self.last_print_t: float = max(self.last_print_t, self.start_t + self.delay)
        super().close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None and issubclass(exc_type, Exception):
            self.leave = False  # the error message that follows stands alone (Ctrl-C keeps the bar)
        super().__exit__(exc_type, exc, tb)
