"""The routing state kept equal to the log: rebuild (snapshot + tail), follow live, sync to now.

Our own decisions are folded before they reach the log (so the next command sees them);
``expect`` marks their ids, and when they come back from the log they are skipped. A
snapshot is taken only when none is still on its way back, so a snapshot is always
exactly "the log up to its position".
"""

import asyncio
from collections.abc import Callable

import structlog

from agent_service.fold import apply
from agent_service.snapshot import Snapshotter
from agent_service.state import RoutingState
from contracts.envelope import Envelope, LoggedEvent
from relaydesk.archived import ArchivedLog
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import catch_up, marker_event
from relaydesk.bus.log_reader import Start
from relaydesk.bus.shared_log import SharedLog
from relaydesk.dedupe import SeenIds

log = structlog.get_logger(__name__)

SYNC_TIMEOUT_S = 10.0
SNAPSHOT_SEEN_IDS = 10_000


class Projection:
    """Owns the state, its log reader and its snapshots.

    Args:
        bus: a connected bus.
        service: marker and reader name.
        snapshotter: optional; without it every start replays the whole log.
        shared_log: read through the process's shared subscription (a rebuild catches up
            from the snapshot's position on its own, then joins it); default: a reader of
            its own.
    """

    def __init__(
        self,
        bus: Bus,
        service: str,
        snapshotter: Snapshotter | None = None,
        shared_log: SharedLog | None = None,
        on_live: Callable[[list[Envelope]], None] | None = None,
        archive: ArchivedLog | None = None,
    ) -> None:
        """``on_live`` sees the events folded while following (not a rebuild's catch-up: what
        that leaves to do is read from the state afterwards): another decider's events that
        call for a decision here."""
        self._bus = bus
        self._on_live = on_live
        self._archive = archive
        self._shared_log = shared_log
        self._service = service
        self._snapshotter = snapshotter
        self.state = RoutingState()
        self.restored_from: int | None = None  # snapshot position of the last rebuild
        self.stale = False  # the state may differ from the log: rebuild before deciding
        self._seen = SeenIds()
        self._own_pending: set[str] = set()
        self._markers: dict[str, asyncio.Future[None]] = {}
        self._reader: LogReader | None = None
        self._follow_task: asyncio.Task[None] | None = None

    async def rebuild(self) -> None:
        """Load the snapshot (if any), fold the log after it up to now, then follow live."""
        await self._stop_following()
        restored = await self._snapshotter.store.load() if self._snapshotter else None
        start: Start = "first"
        if restored is None:
            self.state, self._seen = RoutingState(), SeenIds()
        else:
            self.state, seen_ids = restored
            self._seen = SeenIds(seen_ids)
            start = (self.state.position or 0) + 1
        self.restored_from = None if restored is None else self.state.position
        self._own_pending.clear()
        self._reader = await LogReader(
            self._bus, start=start, name=f"{self._service}-routing", shared=self._shared_log
        ).open()
        await catch_up(
            self._bus, self._reader, self._fold_batch, service=self._service, archive=self._archive
        )
        self._follow_task = asyncio.create_task(self._follow(self._reader))
        self._follow_task.add_done_callback(self._on_follow_end)
        self.stale = False
        log.info("routing_state_rebuilt", snapshot=self.restored_from, position=self.state.position)

    @property
    def reader(self) -> LogReader | None:
        """The reader folding live events (a rebuild replaces it)."""
        return self._reader

    async def stop(self) -> None:
        """Save a final snapshot when the state is settled, then stop following."""
        if self._snapshotter is not None and not self.stale and self._follow_task is not None:
            try:
                await self.sync()
                self._snapshotter.maybe_save(
                    self.state,
                    lambda: self._seen.latest(SNAPSHOT_SEEN_IDS),
                    settled=not self._own_pending,
                    force=True,
                )
            except (TimeoutError, RuntimeError, ConnectionError) as exc:
                log.warning("final_snapshot_skipped", error=type(exc).__name__)
            await self._snapshotter.wait()
        await self._stop_following()

    def expect(self, event_ids: list[str]) -> None:
        """Our decision's events, already folded: skip them when the log hands them back."""
        for event_id in event_ids:
            self._seen.add(event_id)
            self._own_pending.add(event_id)

    async def sync(self) -> None:
        """Fold everything published before now (our own marker comes back through the follower)."""
        marker = marker_event(self._service)
        arrived = self._markers[marker.id] = asyncio.get_running_loop().create_future()
        try:
            await self._bus.publish(marker)
            await asyncio.wait_for(arrived, SYNC_TIMEOUT_S)
        finally:
            self._markers.pop(marker.id, None)

    async def _stop_following(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
            await asyncio.gather(self._follow_task, return_exceptions=True)
            self._follow_task = None
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    async def _follow(self, reader: LogReader) -> None:
        async for batch in reader.batches():
            await self._fold_batch(batch)
            if self._on_live is not None:
                self._on_live([logged.envelope for logged in batch])
            if self._snapshotter is not None and not self.stale:
                self._snapshotter.maybe_save(
                    self.state,
                    lambda: self._seen.latest(SNAPSHOT_SEEN_IDS),
                    settled=not self._own_pending,
                )

    def _on_follow_end(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            log.error("log_follow_ended", error=repr(task.exception()))
            self.stale = True

    async def _fold_batch(self, batch: list[LoggedEvent]) -> None:
        for logged in batch:
            self.state.position = logged.position
            event_id = logged.envelope.id
            waiting = self._markers.get(event_id)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
            self._own_pending.discard(event_id)
            if not self._seen.first(event_id):
                continue
            apply(self.state, logged.envelope)
        if self._snapshotter is not None:
            self._snapshotter.folded(len(batch))
