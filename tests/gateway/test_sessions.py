"""A socket whose peer stopped reading is closed as a slow consumer without stalling others."""

import asyncio

from starlette.websockets import WebSocketState

from gateway.auth.tokens import VisitorPrincipal
from gateway.sessions import CLOSE_SLOW_CONSUMER, Session, SessionRegistry


class StuckPeer:
    """A websocket whose peer never reads: every send blocks, as on a full TCP buffer."""

    application_state = WebSocketState.CONNECTED

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed_with: int | None = None
        self.stuck = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.sent.append(text)
        await self.stuck.wait()

    async def close(self, code: int) -> None:
        self.closed_with = code


class ReadingPeer(StuckPeer):
    async def send_text(self, text: str) -> None:
        self.sent.append(text)


async def test_overflowing_session_is_closed_4409_and_its_writer_released() -> None:
    principal = VisitorPrincipal(tenant="acme", visitor_id="v1")
    stuck, reading = StuckPeer(), ReadingPeer()
    slow = Session(stuck, principal, queue_limit=3)  # type: ignore[arg-type]
    fast = Session(reading, principal, queue_limit=3)  # type: ignore[arg-type]
    registry = SessionRegistry()
    for session in (slow, fast):
        registry.add(session)
    stuck_writer = None
    for position in range(10):
        for session in registry.of_tenant("acme"):
            session.send_event(position, b'{"t":"event","position":%d}' % position)
        stuck_writer = stuck_writer or slow.writer  # started by the first frame
        await asyncio.sleep(0)  # let writers run between events, as the tailer does between batches
    assert slow.close_code == CLOSE_SLOW_CONSUMER
    assert stuck_writer is not None
    done, _ = await asyncio.wait({stuck_writer}, timeout=2)
    assert done == {stuck_writer}  # the blocked send was abandoned, not awaited forever
    assert fast.close_code is None and len(reading.sent) == 10
    registry.remove(slow)
    assert registry.close_codes[CLOSE_SLOW_CONSUMER] == 1


async def test_duplicate_positions_are_not_sent_twice() -> None:
    peer = ReadingPeer()
    session = Session(peer, VisitorPrincipal(tenant="acme", visitor_id="v1"), queue_limit=10)  # type: ignore[arg-type]
    for position in (1, 2, 2, 1, 3):
        session.send_event(position, b'{"t":"event","position":%d}' % position)
    session.close(1000)
    await session.wait_written(timeout=2)
    assert [t.count('"position":') for t in peer.sent] == [1, 1, 1]
    assert peer.closed_with == 1000
