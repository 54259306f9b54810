"""The one dedupe rule of every log reader, live or replaying: an event id counts once.

The log may hold an event twice: a publisher retried after a lost confirm, a client resent a
command whose event id derives from its idempotency key, an owner re-emitted a redelivered
command's events with the same ids. The first copy in log order is the event; later copies
are dropped. Routing, the gateways' fan-out, billing and ``relaydesk replay`` keep the ids
they saw here; history applies the same rule against its archive (``Archive.unseen``), which
holds every first copy.
"""

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from itertools import islice

from contracts.envelope import LoggedEvent

RECENT_IDS = 100_000  # publisher retries land close together; older duplicates are not expected


class SeenIds:
    """The most recent ``limit`` event ids folded (``None``: every id, for a whole-log fold)."""

    def __init__(self, ids: Iterable[str] = (), limit: int | None = RECENT_IDS) -> None:
        self._recent: OrderedDict[str, None] = OrderedDict((i, None) for i in ids)
        self._limit = limit

    def add(self, event_id: str) -> None:
        self._recent[event_id] = None
        self._recent.move_to_end(event_id)
        if self._limit is not None and len(self._recent) > self._limit:
            self._recent.popitem(last=False)

    def __len__(self) -> int:
        return len(self._recent)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._recent

    def first(self, event_id: str) -> bool:
        """True for the first copy of ``event_id`` (and remember it), False for a later one."""
        if event_id in self._recent:
            return False
        self.add(event_id)
        return True

    def latest(self, count: int) -> list[str]:
        """The newest ``count`` ids, oldest first (walks only those, not all 100,000)."""
        newest = list(islice(reversed(self._recent), count))
        newest.reverse()
        return newest


def first_copies(events: Iterable[LoggedEvent], seen: SeenIds) -> Iterator[LoggedEvent]:
    """The events whose id ``seen`` has not met yet, in order (each remembered as it passes)."""
    return (event for event in events if seen.first(event.envelope.id))
