"""Where replayed events come from: the RabbitMQ stream or the MongoDB archive.

The stream holds what its retention keeps; the archive holds everything history_service
ever wrote. Both yield ``LoggedEvent`` in log order, filtered by tenant, conversation and
time range, and report progress (count and rate) while they read.
"""

import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from beanie.odm.queries.find import FindMany

from contracts.envelope import Envelope, LoggedEvent
from contracts.events.system import LogMarker
from history_service.documents import ArchivedEvent
from history_service.read_models import conversation_key
from relaydesk.archived import envelope_of
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.log_head import log_head
from relaydesk.bus.log_reader import Start
from relaydesk.dedupe import SeenIds, first_copies
from relaydesk.store import ascending, bound, database, make_client, stored_rows
from tools.progress import ProgressLine


@dataclass(frozen=True)
class Slice:
    tenant: str | None = None
    conversation: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def holds(self, envelope: Envelope) -> bool:
        if self.tenant and envelope.tenant != self.tenant:
            return False
        if self.conversation and envelope.stream != f"conv:{self.conversation}":
            return False
        if self.since and envelope.occurred_at < self.since:
            return False
        return not (self.until and envelope.occurred_at > self.until)

    def archive_query(self, e: type[ArchivedEvent]) -> FindMany[ArchivedEvent]:
        """The slice as a query of the archive (``e``: the model bound to its database)."""
        query = e.find(batch_size=1000)
        if self.tenant:
            query = query.find(e.tenant == self.tenant)
        if self.conversation:
            query = query.find(e.stream == f"conv:{self.conversation}")
        # ``ts`` is a BSON date, kept to the millisecond, ``occurred_at`` to the microsecond:
        # the query takes whole milliseconds and ``holds`` decides exactly (an event of the
        # same millisecond just before ``since`` or after ``until`` was in, or one just after
        # ``since`` out, where the stream's replay gave the exact range).
        if self.since:
            query = query.find(e.ts >= _whole_millisecond(self.since))
        if self.until:
            query = query.find(e.ts <= self.until)
        return query.sort(ascending(e.position))


def _whole_millisecond(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class Progress:
    """Replay's progress on stderr (``tools/progress.py``): events read, matched, rate."""

    def __init__(self, label: str, out: TextIO = sys.stderr, every_s: float = 0.5) -> None:
        self.label = label
        self.line = ProgressLine(out, every_s=every_s)
        self.read = self.matched = 0
        self.started = time.perf_counter()

    def tick(self, matched: bool) -> None:
        self.read += 1
        self.matched += int(matched)
        if self.line.due():  # per event: the text is built only when it will be shown
            self.line.show(
                f"[replay] {self.label}: {self.read:,} read, {self.matched:,} matched,"
                f" {self.rate:,.0f} events/s "
            )

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.read / elapsed if elapsed > 0 else 0.0

    def done(self) -> None:
        self.line.finish(
            f"[replay] {self.label}: {self.read:,} read, {self.matched:,} matched,"
            f" {self.rate:,.0f} events/s, {time.perf_counter() - self.started:.1f}s"
        )


async def head_of_log(amqp_url: str, stream_url: str | None) -> int | None:
    """The log's head now (``relaydesk/bus/log_head.py``), on a connection of its own."""
    bus = await Bus(amqp_url, service="replay", stream_url=stream_url).connect()
    try:
        return await log_head(bus)
    finally:
        await bus.close()


async def from_archive(
    mongo_url: str, db_name: str, selection: Slice, progress: Progress
) -> AsyncIterator[LoggedEvent]:
    client = make_client(mongo_url)
    try:
        archive = await bound(database(client, db_name), ArchivedEvent)
        async for document in stored_rows(selection.archive_query(archive)):
            envelope = Envelope.model_validate(envelope_of(document))
            # as the stream's replay: the exact range, and no service's start markers
            matched = envelope.type != LogMarker.TYPE and selection.holds(envelope)
            progress.tick(matched)
            if matched:
                yield LoggedEvent(position=document["position"], envelope=envelope)
    finally:
        await client.close()


async def from_stream(
    amqp_url: str,
    selection: Slice,
    progress: Progress,
    stream_url: str | None = None,
    idle_timeout: float = 2.0,
    *,
    after: int | None = None,
) -> AsyncIterator[LoggedEvent]:
    """Read the stream from its first retained offset (or from the entry after ``after``)
    up to its head as of the start.

    The head is taken when the read begins (``log_head``), so a replay of a live log ends
    although events go on arriving. It is an entry that decodes (undecodable ones go to the
    dead letters and are never a head), so the read always reaches it; ``idle_timeout`` is
    only a guard against a log that stops delivering before it.

    Second copies of an event id are dropped by the rule every live reader applies
    (``relaydesk.dedupe``): the archive holds first copies only, so both sources replay
    the same events, and so does every live projection.
    """
    bus = await Bus(amqp_url, service="replay", stream_url=stream_url).connect()
    seen = SeenIds(limit=None)
    try:
        head = await log_head(bus)
        if head is None or (after is not None and head <= after):
            return
        start: Start = "first" if after is None else after + 1
        async with LogReader(bus, start=start, prefetch=2000, name="replay") as reader:
            async for batch in reader.batches(max_batch=1000, idle_timeout=idle_timeout):
                for event in first_copies(batch, seen):
                    if event.position > head:
                        return
                    matched = event.envelope.type != LogMarker.TYPE and selection.holds(
                        event.envelope
                    )
                    progress.tick(matched)
                    if matched:
                        yield event
                if batch[-1].position >= head:
                    return
    finally:
        await bus.close()


@dataclass
class Touched:
    """What the log holds events for after some position: conversations (``tenant|id``, the
    read model's key) and tenants."""

    conversations: set[str] = field(default_factory=set)
    tenants: set[str] = field(default_factory=set)


async def touched_after(amqp_url: str, stream_url: str | None, position: int) -> Touched:
    """The conversations and tenants with events in the log after ``position``, up to its
    head now. A replay compares with live projections that went on meanwhile: asked after
    the live answers, this names what may have changed since the last replayed event."""
    touched = Touched()
    # Shown: from an old tenant's last event the rest of the log can be long.
    progress = Progress("the log after the last replayed event")
    async for event in from_stream(amqp_url, Slice(), progress, stream_url, after=position):
        envelope = event.envelope
        touched.tenants.add(envelope.tenant)
        # Named by its data, as the read model keys it (``conversation_key``), so an event on
        # another stream whose data names the conversation counts too.
        if isinstance(envelope.data.get("conversation_id"), str):
            touched.conversations.add(conversation_key(envelope.tenant, envelope.data))
    progress.done()
    return touched
