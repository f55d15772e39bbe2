"""tokenmix's progress bars: tqdm's, shown only after half a second.

A run that ends at once, e.g. on an input refused as it is first read, then leaves one error line on
stderr rather than that line after the line of a bar that had only just started; every real job still
gets its bar.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


class Progress(tqdm):
    """:class:`tqdm.auto.tqdm` with ``delay=0.5`` by default."""

    def __init__(self, *args: Any, delay: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, delay=delay, **kwargs)
