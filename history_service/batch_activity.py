"""Whether the log has gone quiet: no batch being written and none finished for a while.

History holds conversations that only took messages while the log is busy and writes them
as soon as it goes quiet (docs/history.md, read_models.py). Quiet is judged from the end
of the last batch, not its start: under load a batch of 1,000 events takes the embedded
store longer than the quiet interval to write, and judged from its start every such batch
looked like the load had stopped, so the held conversations were written after nearly
every batch (260 conversation writes a second at 1,500 msg/s with 200 conversations,
instead of one per conversation per ``HOLD_S``).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class BatchActivity:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._running = 0
        self._last_finished_at = float("-inf")

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around the writing of one batch, however it ends (a failed try is retried)."""
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._last_finished_at = self._clock()

    def quiet_for(self, interval_s: float) -> bool:
        """No batch is being written and the last one finished ``interval_s`` ago or more."""
        return not self._running and self._clock() - self._last_finished_at >= interval_s
