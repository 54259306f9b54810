"""The gateway's resume buffer and the garbage collector (pure: no broker, no sockets).

The buffer holds the last 50,000 events by default. Each object in it that the collector
tracks is walked by every full collection, with the whole gateway stopped meanwhile: held
as envelopes, a full buffer made those pauses 0.4–2 s under load (docs/performance.md).
"""

import gc
from typing import Any

import orjson

from contracts.envelope import Actor, ActorKind, Envelope, LoggedEvent
from contracts.events.message import MessageSent
from gateway.auth.permissions import effective_permissions
from gateway.auth.tokens import AgentPrincipal
from gateway.directory import ConversationDirectory, ConversationInfo
from gateway.sessions import Session, SessionRegistry
from gateway.tailer import Tailer
from relaydesk.bus.codec import decode_envelope, envelope_body

EVENTS = 2_000


def logged_message(position: int, tenant: str = "acme") -> LoggedEvent:
    """A chat message as the log reader hands it over: decoded, with the log's JSON."""
    envelope = Envelope(
        type=MessageSent.TYPE,
        tenant=tenant,
        stream="conv:c1",
        actor=Actor(kind=ActorKind.customer, id="v1"),
        data={
            "conversation_id": "c1",
            "message_id": f"m{position}",
            "body": f"hello {position}",
            "author_kind": "customer",
            "author_id": "v1",
        },
    )
    body = envelope_body(envelope)
    return LoggedEvent(position=position, envelope=decode_envelope(body), body=body)


def tailer() -> Tailer:
    directory = ConversationDirectory()
    directory.put(ConversationInfo("acme", "c1", visitor_id="v1", agent_id="ann"))
    return Tailer(None, directory, SessionRegistry(), buffer_size=EVENTS)  # type: ignore[arg-type]


def tracked_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def test_a_full_resume_buffer_gives_the_collector_nothing_to_walk() -> None:
    tail = tailer()
    before = tracked_objects()
    for position in range(EVENTS):
        tail._dispatch(logged_message(position))  # the log reader's event is dropped after
    grown = tracked_objects() - before
    # Holding envelopes it grew by several objects per event; now by nothing per event.
    assert grown < EVENTS / 10, f"{grown} tracked objects for {EVENTS} buffered events"


class _Socket:
    """Stands in for the websocket: the fan-out only queues frames on the session."""


def _frames(session: Session) -> list[Any]:
    queued = [item for item in session._queue if isinstance(item, bytes)]
    return [orjson.loads(frame) for frame in (*queued, *(session._backlog or ()))]


async def test_a_resume_replays_the_frames_the_live_fan_out_sent() -> None:
    tail = tailer()
    ann = AgentPrincipal("acme", "ann", "agent", effective_permissions("agent"))
    live = Session(_Socket(), ann, 100)  # type: ignore[arg-type]
    tail.attach(live, None)
    tail._dispatch(logged_message(1))
    tail._dispatch(logged_message(2, tenant="other"))
    tail._dispatch(logged_message(3))
    resumed = Session(_Socket(), ann, 100)  # type: ignore[arg-type]
    assert tail.attach(resumed, 0)
    sent = _frames(live)
    assert [frame["position"] for frame in sent] == [1, 3]
    assert _frames(resumed) == sent
