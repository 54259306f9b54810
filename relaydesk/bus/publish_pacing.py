"""When the log publisher sends its next batch: at once, or a little later to gather more.

Every batch the publisher sends becomes (at least) one chunk of the stream, and what a
chunk costs is paid once by the broker and once by every reader of the log (five
processes): a delivery, a wake-up, a credit, a hand-off per reader. At 800 chat messages
a second the publisher's batches held ~2 entries, and most of the system's CPU went to
those per-chunk costs (docs/performance.md, "Paced batches").

So once entries arrive faster than ``from_per_s``, batches leave at most every
``interval_s``: what arrives in between waits (up to ``interval_s``) and goes in the next
batch. Below that rate nothing waits: a quiet system answers at once, a busy one trades a
few milliseconds of latency for a much larger share of the machine. The rate is counted
over windows of ``window_s``, so one burst does not switch pacing on and a system that
went quiet switches it off with its next entry.

Confirms: unpaced, the next batch waits for the last one's confirm (whatever arrives
meanwhile joins it: the natural batching of a quiet publisher). Paced, the interval already
gathers the batch, and waiting for a confirm on top of it only adds that confirm's time to
every entry queued behind it (on two busy cores a confirm's p99 was ~18 ms against the
10 ms interval): up to ``max_unconfirmed`` batches may be on their way at once. The stream
keeps them in the order sent (one connection).
"""

import time
from collections.abc import Callable

from relaydesk.settings import Settings

# The defaults are the settings' (RELAYDESK_PUBLISH_BATCH_INTERVAL_MS, ..._BATCHING_FROM_PER_S),
# for publishers made without settings (tools, tests): one place says what they are.
DEFAULT_INTERVAL_S = Settings.model_fields["publish_batch_interval_ms"].default / 1000
DEFAULT_FROM_PER_S = Settings.model_fields["publish_batching_from_per_s"].default
WINDOW_S = 0.5
MAX_UNCONFIRMED = 4  # batches on their way while paced: 40 ms of entries at the default interval


class BatchPacing:
    """Args:
    interval_s: the shortest time between two batches while paced; 0 turns pacing off.
    from_per_s: entries per second from which batches are paced.
    window_s: how long the arrival rate is counted over.
    max_unconfirmed: batches that may await their confirms at once while paced.
    clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        from_per_s: float = DEFAULT_FROM_PER_S,
        *,
        window_s: float = WINDOW_S,
        max_unconfirmed: int = MAX_UNCONFIRMED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s < 0 or from_per_s < 0 or window_s <= 0 or max_unconfirmed < 1:
            raise ValueError(
                "interval_s and from_per_s must be >= 0, window_s > 0, max_unconfirmed >= 1"
            )
        self.max_unconfirmed = max_unconfirmed
        self.interval_s = interval_s
        self.from_per_s = from_per_s
        self._window_s = window_s
        self._clock = clock
        self._window_start = clock()
        self._arrived = 0  # entries arrived in the current window
        self._rate = 0.0  # entries per second over the last full window
        self._last_sent: float | None = None

    @property
    def rate(self) -> float:
        """Entries per second as last counted."""
        return self._rate

    def arrived(self, count: int) -> None:
        """``count`` entries were handed to the publisher."""
        self._roll(self._clock())
        self._arrived += count

    def wait_s(self) -> float:
        """How long to hold the entries queued now before sending them as one batch."""
        if self._last_sent is None or not self.paced():
            return 0.0
        return max(0.0, self._last_sent + self.interval_s - self._clock())

    def paced(self) -> bool:
        """Whether entries arrive fast enough now for batches to be spaced."""
        if self.interval_s == 0:
            return False
        self._roll(self._clock())
        return self._rate >= self.from_per_s

    def may_send(self, unconfirmed: int) -> bool:
        """Whether the next batch may leave while ``unconfirmed`` batches await their confirms."""
        return unconfirmed == 0 or (unconfirmed < self.max_unconfirmed and self.paced())

    def sent(self) -> None:
        """A batch left now."""
        self._last_sent = self._clock()

    def _roll(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed >= self._window_s:
            # A window that ended long ago counts as spread over all the time since: after a
            # quiet minute the rate is low, whatever the last busy window held.
            self._rate = self._arrived / elapsed
            self._window_start = now
            self._arrived = 0
