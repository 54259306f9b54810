"""A log reader closed while it opens: the open ends, and nothing of it is left behind.

Found reading the bus: ``LogReader.close()`` called from another task while ``open()`` was
still subscribing (a stop handler, a webhook worker being removed, the bus closing) did not
stop the open. It finished on the closed reader, registered it with the bus, and its stream
connection was never closed: a leaked connection and task consuming the log. Services stop
by cancelling their tasks (tests/foundation/test_cancelled_start.py); this is the other way
to stop a reader, closing it.
"""

import asyncio
import time
from collections.abc import Callable

import psutil
import pytest

from relaydesk.bus import Bus, LogReader, ReaderClosed
from relaydesk.bus.endpoint import StreamEndpoint
from relaydesk.bus.shared_log import SharedLog
from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.conftest import bus_on
from tests.foundation.test_stream_connect import HELD_S, SlowToAccept, connection_listeners
from tests.foundation.test_stream_connect import slow_broker as slow_broker  # the fixture

MOST_TURNS = 5_000  # far more than an open takes on a loaded machine (~300)
CLOSE_S = 1.0  # close() only hands the connection's closing to the bus: it returns at once
ENDED_S = 5.0  # the open ends once it has closed what it opened (~0.2 s, 3 s at most)
GONE_S = 10.0  # the bus closes a reader's connection in the background (~0.2 s, 3 s at most)


def stream_sockets(
    endpoint: StreamEndpoint, status: str = psutil.CONN_ESTABLISHED
) -> set[tuple[str, int]]:
    """This process's TCP connections to the broker's stream port in ``status`` (open, by
    default), by local address."""
    ports = {port for _, port in endpoint.addresses}
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port in ports and c.status == status
    }


def connecting_to(endpoint: StreamEndpoint) -> bool:
    """Whether this process has a connection to ``endpoint`` waiting to be accepted."""
    return bool(stream_sockets(endpoint, psutil.CONN_SYN_SENT))


class Leftovers:
    """What a test's readers left open: stream connections and rstream listener tasks beyond
    those there were when it started (the bus's own)."""

    def __init__(self, endpoint: StreamEndpoint) -> None:
        self.endpoint = endpoint
        self.sockets = stream_sockets(endpoint)
        self.listeners = connection_listeners()

    def none(self) -> bool:
        listening = [t for t in connection_listeners() - self.listeners if not t.done()]
        return not listening and stream_sockets(self.endpoint) <= self.sockets

    async def gone(self, what: str) -> None:
        await eventually(self.none, timeout=GONE_S, what=what)


async def _close_while_opening(reader: LogReader, turns: int) -> tuple[bool, object]:
    """Open ``reader``, close it after ``turns`` turns of the loop; whether the open had
    finished before the close, and what it ended with."""
    opening = asyncio.ensure_future(reader.open())
    for _ in range(turns):
        await asyncio.sleep(0)
    finished = opening.done()
    try:
        async with asyncio.timeout(CLOSE_S):
            await reader.close()
    except TimeoutError:
        pytest.fail(f"close() after {turns} turns did not return within {CLOSE_S} s")
    try:
        async with asyncio.timeout(ENDED_S):
            (outcome,) = await asyncio.gather(opening, return_exceptions=True)
    except TimeoutError:
        pytest.fail(f"an open closed after {turns} turns did not end within {ENDED_S} s")
    return finished, outcome


@pytest.mark.parametrize("shared", [False, True], ids=["own", "shared"])
async def test_a_reader_closed_while_it_opens_ends_its_open_and_leaves_nothing(
    bus: Bus, shared: bool
) -> None:
    """Closed after 1, 2, 3... turns of the loop until the open finished before the close:
    every open the close overtook raises ``ReaderClosed`` and leaves no connection and no
    registration with the bus; the open that finished first is closed normally."""
    log = SharedLog(bus.stream_endpoint, service="test")
    make: Callable[[], LogReader] = (
        (lambda: log.reader(bus, start="first", name="closed-early"))
        if shared
        else (lambda: LogReader(bus, start="first", name="closed-early", measured=False))
    )
    left = Leftovers(bus.stream_endpoint)
    for turns in range(1, MOST_TURNS):
        reader = make()
        finished, outcome = await _close_while_opening(reader, turns)
        assert not reader.subscribed
        assert reader not in bus._readers, f"closed after {turns} turns, still on the bus"
        if finished:  # the open came first: every turn before it was tried
            assert outcome is reader
            break
        assert isinstance(outcome, ReaderClosed), f"closed after {turns} turns: {outcome!r}"
        await left.gone(f"the connections of a reader closed after {turns} turns to close")
    else:
        pytest.fail(f"the open took more than {MOST_TURNS} turns of the loop")
    await log.close()
    await left.gone("the connections of the reader opened, then closed, to close")


async def test_a_reader_closed_while_the_broker_is_slow_to_accept_stops_at_once(
    bus: Bus,
    slow_broker: tuple[StreamEndpoint, SlowToAccept],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The open waits for a connection the broker takes ``HELD_S`` to accept (and would then
    subscribe): closed meanwhile, it ends at once, not when the broker gets to it."""
    endpoint, _ = slow_broker
    monkeypatch.setattr(bus, "stream_endpoint", endpoint)  # readers only: it is connected
    left = Leftovers(endpoint)
    reader = LogReader(bus, start="first", name="closed-while-connecting", measured=False)
    opening = asyncio.ensure_future(reader.open())
    # Closed once the connect is under way: its SYN sent, held in the broker's full queue.
    await eventually(lambda: connecting_to(endpoint), timeout=HELD_S / 2, what="the connect")
    started = time.monotonic()
    await reader.close()
    with pytest.raises(ReaderClosed):
        async with asyncio.timeout(HELD_S):
            await opening
    assert time.monotonic() - started < 1.0
    await left.gone("the reader's connection to close")


@pytest.mark.parametrize("turns", [1, 30, 100, 200])
async def test_a_bus_closed_while_a_reader_opens_ends_the_open(
    settings: Settings, turns: int
) -> None:
    """Closing the bus closes every reader on it, an opening one too: it would otherwise
    finish its open on a closed bus and read for ever."""
    async with bus_on(settings) as bus:
        left = Leftovers(bus.stream_endpoint)
        reader = LogReader(bus, start="first", name="bus-closed", measured=False)
        opening = asyncio.ensure_future(reader.open())
        for _ in range(turns):
            await asyncio.sleep(0)
        finished = opening.done()
        async with asyncio.timeout(ENDED_S):
            await bus.close()
            (outcome,) = await asyncio.gather(opening, return_exceptions=True)
        assert not reader.subscribed
        assert outcome is reader if finished else isinstance(outcome, ReaderClosed), outcome
        await left.gone("the reader's connection to close with the bus")
