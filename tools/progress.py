"""One progress line for long commands (replay, audit verify, import), on stderr.

On a terminal the line is rewritten in place (``\\r``), as often as ``every_s``. Anything
else — a file, a pipe, a CI or cron log — cannot rewrite a line: there the carriage returns
piled every update onto one line that grew without end (``relaydesk audit verify 2> log``
wrote "[audit] 1,000 events checked[audit] 2,000 events checked…" as a single line), so
it gets whole lines instead, at most one per ``every_s_piped``.
"""

import sys
import time
from collections.abc import Callable
from typing import TextIO

CLEAR_TO_END = "\x1b[K"  # a shorter line must not leave the end of a longer one behind


class ProgressLine:
    def __init__(
        self,
        out: TextIO | None = None,
        *,
        every_s: float = 0.5,
        every_s_piped: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out if out is not None else sys.stderr
        self.in_place = self.out.isatty()
        self.every_s = every_s if self.in_place else every_s_piped
        self.clock = clock
        self._shown_at = clock()
        self._pending = False  # a line rewritten in place is not yet ended

    def due(self) -> bool:
        """Whether a line given now would be shown: a caller that calls per item asks first,
        and builds its text only then."""
        return self.clock() - self._shown_at >= self.every_s

    def show(self, text: str) -> None:
        """``text`` as the current progress, if the last one was shown long enough ago."""
        if not self.due():
            return
        self._shown_at = self.clock()
        if self.in_place:
            self.out.write(f"\r{CLEAR_TO_END}{text}")
            self._pending = True
        else:
            self.out.write(f"{text}\n")
        self.out.flush()

    def finish(self, text: str | None = None) -> None:
        """The final line (always shown), or only the end of the line being rewritten."""
        if text is not None:
            self.out.write(f"\r{CLEAR_TO_END}{text}\n" if self.in_place else f"{text}\n")
        elif self._pending:
            self.out.write("\n")
        self._pending = False
        self.out.flush()
