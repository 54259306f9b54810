"""Fails futures still pending at their deadline, with one timer for all of them.

The publisher's callers each have a deadline (``RELAYDESK_PUBLISH_TIMEOUT_S``). Held by an
``asyncio.timeout`` around every publish, that was a timer handle scheduled and cancelled,
and a context manager entered and left, per chat message: ~4 % of the gateway's CPU under
load (docs/performance.md, "What was taken out per message"). Deadlines are seconds long and only
matter when the broker is gone, so one timer that looks every ``every_s`` while anything is
watched keeps them within ``every_s`` of exact, at the cost of a list append per publish.
"""

import asyncio
from collections.abc import Iterable

SWEEP_EVERY_S = 0.5


class DeadlineSweep:
    def __init__(self, every_s: float = SWEEP_EVERY_S) -> None:
        self._every_s = every_s
        self._watched: list[tuple[float, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, deadline: float, futures: Iterable[asyncio.Future[None]]) -> None:
        """Fail each of ``futures`` with ``TimeoutError`` if it is pending at ``deadline``
        (the event loop's clock), give or take ``every_s``."""
        self._watched.extend((deadline, future) for future in futures)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._every_s, self._sweep)

    def __len__(self) -> int:
        return len(self._watched)

    def _sweep(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        still = []
        for deadline, future in self._watched:
            if future.done():
                continue
            if deadline <= now:
                future.set_exception(TimeoutError("deadline passed"))
            else:
                still.append((deadline, future))
        self._watched = still
        if still:
            self._timer = asyncio.get_running_loop().call_later(self._every_s, self._sweep)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watched.clear()
