"""Where replayed events come from: the RabbitMQ stream or the MongoDB archive.

The stream holds what its retention keeps; the archive holds everything history_service
ever wrote. Both yield ``LoggedEvent`` in log order, filtered by tenant, conversation and
time range, and report progress (count and rate) while they read.
"""

import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from contracts.envelope import Envelope, LoggedEvent
from contracts.events.system import LogMarker
from history_service.hash_chain import envelope_of
from relaydesk.bus import Bus, LogReader
from relaydesk.store import database, make_client


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

    def archive_query(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.tenant:
            query["tenant"] = self.tenant
        if self.conversation:
            query["stream"] = f"conv:{self.conversation}"
        span = {op: moment for op, moment in (("$gte", self.since), ("$lte", self.until)) if moment}
        if span:
            query["ts"] = span
        return query


class Progress:
    """A one-line progress display on stderr: events read, matched, rate."""

    def __init__(self, label: str, out: TextIO = sys.stderr, every_s: float = 0.5) -> None:
        self.label, self.out, self.every_s = label, out, every_s
        self.read = self.matched = 0
        self.started = self._shown = time.perf_counter()

    def tick(self, matched: bool) -> None:
        self.read += 1
        self.matched += int(matched)
        now = time.perf_counter()
        if now - self._shown >= self.every_s:
            self._shown = now
            self.out.write(
                f"\r[replay] {self.label}: {self.read:,} read, {self.matched:,} matched,"
                f" {self.rate:,.0f} events/s "
            )
            self.out.flush()

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.read / elapsed if elapsed > 0 else 0.0

    def done(self) -> None:
        self.out.write(
            f"\r[replay] {self.label}: {self.read:,} read, {self.matched:,} matched,"
            f" {self.rate:,.0f} events/s, {time.perf_counter() - self.started:.1f}s\n"
        )
        self.out.flush()


async def from_archive(
    mongo_url: str, db_name: str, selection: Slice, progress: Progress
) -> AsyncIterator[LoggedEvent]:
    client = make_client(mongo_url)
    try:
        async for document in (
            database(client, db_name)["events"]
            .find(selection.archive_query())
            .sort("position", 1)
            .batch_size(1000)
        ):
            progress.tick(True)
            yield LoggedEvent(
                position=document["position"],
                envelope=Envelope.model_validate(envelope_of(document)),
            )
    finally:
        await client.close()


async def from_stream(
    amqp_url: str, selection: Slice, progress: Progress, idle_timeout: float = 2.0
) -> AsyncIterator[LoggedEvent]:
    """Read the stream from its first retained offset until it is quiet for ``idle_timeout``."""
    bus = await Bus(amqp_url, service="replay").connect()
    try:
        async with LogReader(bus, start="first", prefetch=2000, name="replay") as reader:
            async for batch in reader.batches(max_batch=1000, idle_timeout=idle_timeout):
                for event in batch:
                    matched = event.envelope.type != LogMarker.TYPE and selection.holds(
                        event.envelope
                    )
                    progress.tick(matched)
                    if matched:
                        yield event
    finally:
        await bus.close()
