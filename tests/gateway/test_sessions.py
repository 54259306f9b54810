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


async def test_an_idle_session_holds_no_writer_task() -> None:
    """10,000 idle widgets must not mean 10,000 waiting tasks: a writer runs only while
    frames are queued."""
    peer = ReadingPeer()
    session = Session(peer, VisitorPrincipal(tenant="acme", visitor_id="v1"), queue_limit=10)  # type: ignore[arg-type]
    assert session.writer is None
    session.send_event(1, b'{"t":"event","position":1}')
    writer = session.writer
    assert writer is not None
    await asyncio.wait_for(writer, 2)
    assert session.writer is None and len(peer.sent) == 1
    session.send_event(2, b'{"t":"event","position":2}')  # the next frame starts another
    assert session.writer is not None
    await session.wait_written(timeout=2)
    assert len(peer.sent) == 2


async def _reader(session: Session, frames: asyncio.Queue[str]) -> str:
    """The reader's part of gateway/ws.py's loop: wait for a frame unless the session ends."""
    task = asyncio.current_task()
    assert task is not None
    session.reading()
    try:
        return await frames.get()
    except asyncio.CancelledError:
        if session.interrupted(task):
            return "interrupted"
        raise
    finally:
        session.read()


async def test_the_sessions_end_interrupts_its_readers_wait_and_nothing_else_does() -> None:
    principal = VisitorPrincipal(tenant="acme", visitor_id="v1")
    session = Session(ReadingPeer(), principal, queue_limit=10)  # type: ignore[arg-type]
    frames: asyncio.Queue[str] = asyncio.Queue()
    reading = asyncio.create_task(_reader(session, frames))
    await asyncio.sleep(0)  # the reader is waiting now
    session.close(CLOSE_SLOW_CONSUMER)  # e.g. the tailer found its queue full
    assert await asyncio.wait_for(reading, 2) == "interrupted"
    assert not reading.cancelled()

    other = Session(ReadingPeer(), principal, queue_limit=10)  # type: ignore[arg-type]
    reading = asyncio.create_task(_reader(other, frames))
    await asyncio.sleep(0)
    reading.cancel()  # the server stopping: not taken for the session's end
    done, _ = await asyncio.wait({reading}, timeout=2)
    assert done == {reading} and reading.cancelled()
