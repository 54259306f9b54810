"""Dedupe by event id for the fold: recent ids, bounded."""

from collections import OrderedDict
from collections.abc import Iterable
from itertools import islice

RECENT_IDS = 100_000  # publisher retries land close together; older duplicates are not expected


class SeenIds:
    """The most recent ``limit`` event ids folded (or decided and folded ahead of the log)."""

    def __init__(self, ids: Iterable[str] = (), limit: int = RECENT_IDS) -> None:
        self._recent: OrderedDict[str, None] = OrderedDict((i, None) for i in ids)
        self._limit = limit

    def add(self, event_id: str) -> None:
        self._recent[event_id] = None
        self._recent.move_to_end(event_id)
        if len(self._recent) > self._limit:
            self._recent.popitem(last=False)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._recent

    def latest(self, count: int) -> list[str]:
        """The newest ``count`` ids, oldest first (walks only those, not all 100,000)."""
        newest = list(islice(reversed(self._recent), count))
        newest.reverse()
        return newest
