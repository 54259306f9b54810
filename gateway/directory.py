"""What the gateway knows about each conversation, learnt from the log it tails.

Used to authorise writes and to filter fan-out without a round trip per event. Entries
the gateway has not seen (older than its tail) are fetched from agent_service's
``conversation.state`` query and cached.
"""

from collections import OrderedDict
from dataclasses import dataclass, field

from contracts.envelope import Envelope
from contracts.events.conversation import (
    ConversationAccepted,
    ConversationClosed,
    ConversationMissed,
    ConversationOffered,
    ConversationQueued,
    ConversationRequested,
    ConversationTransferred,
    OfferWithdrawn,
)
from contracts.queries.agent import ConversationState

MAX_CONVERSATIONS = 200_000  # LIMIT: least recently touched entries are forgotten, then re-fetched


@dataclass
class ConversationInfo:
    tenant: str
    conversation_id: str
    visitor_id: str | None = None
    agent_id: str | None = None
    offered_to: set[str] = field(default_factory=set)
    status: str = "queued"
    channel: str = "web"


class ConversationDirectory:
    def __init__(self, capacity: int = MAX_CONVERSATIONS) -> None:
        self._entries: OrderedDict[tuple[str, str], ConversationInfo] = OrderedDict()
        self._capacity = capacity

    def get(self, tenant: str, conversation_id: str) -> ConversationInfo | None:
        entry = self._entries.get((tenant, conversation_id))
        if entry is not None:
            self._entries.move_to_end((tenant, conversation_id))
        return entry

    def put(self, info: ConversationInfo) -> ConversationInfo:
        key = (info.tenant, info.conversation_id)
        self._entries[key] = info
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return info

    def from_state(self, tenant: str, state: ConversationState) -> ConversationInfo:
        """Cache an answer of agent_service's ``conversation.state`` query."""
        return self.put(
            ConversationInfo(
                tenant=tenant,
                conversation_id=state.conversation_id,
                visitor_id=state.visitor_id,
                agent_id=state.agent_id,
                offered_to=set(state.offered_to),
                status=state.status,
                channel=state.channel,
            )
        )

    def accepted(self, info: ConversationInfo, decision: dict) -> None:
        """Take an accept's reply as known before its event comes back through the tail.

        The agent who was just told "you have it" sends at once, and the log can trail
        the reply by a few milliseconds; without this their first message was refused.
        Only a conversation still waiting for an agent changes: anything later that the
        tail already applied (a transfer, a close) wins.
        """
        if (
            decision.get("status") == "engaged"
            and decision.get("agent_id")
            and info.agent_id is None
            and info.status in ("queued", "offered")
        ):
            _accepted(info, {"agent_id": decision["agent_id"]})

    def apply(self, event: Envelope) -> ConversationInfo | None:
        """Fold one event; returns the conversation it concerns, if any."""
        conversation_id = event.data.get("conversation_id")
        if not isinstance(conversation_id, str):
            return None
        info = self.get(event.tenant, conversation_id)
        if event.type == ConversationRequested.TYPE:
            visitor = event.data.get("visitor") or {}
            info = info or ConversationInfo(event.tenant, conversation_id)
            info.visitor_id = visitor.get("id")
            info.channel = event.data.get("channel", "web")
            self.put(info)
        if info is None:
            return None
        _FOLDS.get(event.type, _ignore)(info, event.data)
        return info


def _ignore(info: ConversationInfo, data: dict) -> None:
    return None


def _offered(info: ConversationInfo, data: dict) -> None:
    info.offered_to |= set(data.get("agent_ids", ()))
    if info.status != "engaged":
        info.status = "offered"


def _withdrawn(info: ConversationInfo, data: dict) -> None:
    info.offered_to -= set(data.get("agent_ids", ()))


def _accepted(info: ConversationInfo, data: dict) -> None:
    info.agent_id = data.get("agent_id")
    info.offered_to.clear()
    info.status = "engaged"


def _transferred(info: ConversationInfo, data: dict) -> None:
    info.agent_id = data.get("to_agent_id")
    info.offered_to.clear()


def _queued(info: ConversationInfo, data: dict) -> None:
    if data.get("reason") in ("agent_disconnected", "requeued"):
        info.agent_id = None
    info.status = "queued"


def _set_status(status: str):  # type: ignore[no-untyped-def]
    def fold(info: ConversationInfo, data: dict) -> None:
        info.status = status
        if status == "closed":
            info.offered_to.clear()

    return fold


_FOLDS = {
    ConversationOffered.TYPE: _offered,
    OfferWithdrawn.TYPE: _withdrawn,
    ConversationAccepted.TYPE: _accepted,
    ConversationTransferred.TYPE: _transferred,
    ConversationQueued.TYPE: _queued,
    ConversationClosed.TYPE: _set_status("closed"),
    ConversationMissed.TYPE: _set_status("missed"),
}
