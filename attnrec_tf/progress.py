"""The one progress bar of the package's long steps (downloads, batch recommendations).

`progress_bar` is tqdm (a dependency of ai-edge-litert, so no TensorFlow import: `data/` may use
it) set up one way for every caller:

- on a terminal, tqdm's bar redrawn in place;
- on anything else (a log file, a pipe, `io.StringIO`), a plain line of the same text at most
  every `interval` seconds and a last one when the bar closes, so logs hold no `\\r` frames;
- with `stream=None`, nothing at all.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> with progress_bar(4, out, desc="work", unit="step", interval=0) as bar:
    ...     _ = bar.update(4)
    >>> out.getvalue().splitlines()[-1].split("|")[0]
    'work: 100%'
"""

from __future__ import annotations

from typing import IO, Any

from tqdm import tqdm

PLAIN_INTERVAL = 10.0
"""Seconds between two progress lines when the stream is not a terminal."""


def _is_terminal(stream: IO[str] | None) -> bool:
    return bool(stream is not None and getattr(stream, "isatty", lambda: False)())


class ProgressBar(tqdm):  # type: ignore[type-arg]
    """tqdm on a terminal; plain lines elsewhere (see the module docstring).

    Args:
        total: Expected units; 0 or None when not known.
        stream: Where to write; None is silent.
        desc: The prefix of every line, e.g. "download".
        unit: The unit's name, e.g. "B" or "users".
        interval: Seconds between two plain lines (not a terminal). Defaults to
            `PLAIN_INTERVAL`.
        **kwargs: More `tqdm` keywords (e.g. `unit_scale=True`).
    """

    def __init__(
        self,
        total: int | None,
        stream: IO[str] | None,
        *,
        desc: str,
        unit: str = "it",
        interval: float = PLAIN_INTERVAL,
        **kwargs: Any,
    ) -> None:
        self.plain = stream is not None and not _is_terminal(stream)
        self._line_at: float | None = None  # the count of the last plain line
        plain_setup = {"mininterval": interval, "delay": interval, "ascii": True, "ncols": 80}
        super().__init__(
            total=total or None,
            file=stream,
            desc=desc,
            unit=unit,
            disable=stream is None,
            leave=not self.plain,  # plain: `close` writes the last line itself
            **(plain_setup if self.plain else {"dynamic_ncols": True}),
            **kwargs,
        )

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        """tqdm's redraw on a terminal; else the bar's text as a line of its own."""
        if not self.plain:
            return bool(super().display(msg, pos))
        if msg == "":  # tqdm clearing the bar: nothing to clear in a log
            return False
        self.fp.write(f"{self if msg is None else msg}\n")
        self.fp.flush()
        self._line_at = self.n
        return True

    def close(self) -> None:
        """Ends the bar: tqdm's last frame on a terminal, a last plain line elsewhere."""
        if self.plain and not self.disable and self._line_at != self.n:
            self.display()
        super().close()


def progress_bar(
    total: int | None, stream: IO[str] | None, *, desc: str, unit: str = "it", **kwargs: Any
) -> ProgressBar:
    """A `ProgressBar`; use it as a context manager, or call `close()`."""
    return ProgressBar(total, stream, desc=desc, unit=unit, **kwargs)
