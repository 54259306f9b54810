"""How agents and customers behave in a what-if replay, read off what they did in reality.

Agents, offered a conversation in the simulation:

- an agent who in reality **accepted** (or **declined**) that conversation after an offer
  accepts (declines) the simulated offer after the same reaction delay;
- an agent who in reality let that conversation's offer **time out** lets it time out again;
- an agent who in reality was not offered it, or lost it to a quicker colleague, accepts
  after her own typical delay: the median of her recorded accept delays, or everyone's
  when she has none; but never sooner than the offer stood for her in reality without her
  acting (a millisecond later: the colleague was quicker). When nobody accepted anything
  after an offer, she lets it time out;
- an accept or decline that followed no offer in the range (a pick-up of a waiting chat,
  an offer made before ``--since``) is sent at its recorded time.

The decider judges every simulated accept as it judged the real one: one arriving after
the simulated offer expired, or beyond the agent's chat limit, is refused and changes
nothing.

Customers: a conversation accepted in reality lasts as long after its simulated acceptance
as it did after its real one (then it is closed as it was); one not accepted in the
simulation by the time it was closed in reality is closed then, by its customer, who is
never more patient than she was. A conversation nobody accepted in reality, or taken
before ``--since``, ends at its recorded close.
"""

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.envelope import Envelope
from contracts.events.conversation import (
    ConversationAccepted,
    ConversationClosed,
    ConversationOffered,
    OfferDeclined,
    OfferWithdrawn,
)

ACCEPT, DECLINE, IGNORE = "accept", "decline", "ignore"
LATER = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Reaction:
    kind: str  # ACCEPT, DECLINE or IGNORE (lets the offer time out)
    delay: timedelta = timedelta(0)


@dataclass(frozen=True)
class Unprompted:
    """An accept or decline with no offer before it in the range: replayed at its time."""

    at: datetime
    kind: str
    conversation_id: str
    agent_id: str


@dataclass(frozen=True)
class Ending:
    at: datetime  # the recorded close
    closed_by: str
    handled_for: timedelta | None  # close - first accept, when accepted in the range


@dataclass
class People:
    """The recorded behaviour of a range's agents and customers (see the module's rules)."""

    reactions: dict[tuple[str, str], Reaction] = field(default_factory=dict)
    stood: dict[tuple[str, str], timedelta] = field(
        default_factory=dict
    )  # offers withdrawn (taken by another, closed) before she acted: how long they stood
    typical: dict[str, timedelta] = field(default_factory=dict)  # agent -> median accept delay
    everyone: timedelta | None = None
    unprompted: list[Unprompted] = field(default_factory=list)
    endings: dict[str, Ending] = field(default_factory=dict)

    @classmethod
    def recorded(cls, events: Iterable[Envelope]) -> "People":
        """Read the range's events (log order) for how each agent reacted and how long chats ran."""
        people = cls()
        offered_at: dict[tuple[str, str], datetime] = {}
        first_accept: dict[str, datetime] = {}
        delays: dict[str, list[timedelta]] = {}
        for event in events:
            data, at = event.data, event.occurred_at
            if event.type == ConversationOffered.TYPE and not data.get("transfer_from"):
                for agent_id in data["agent_ids"]:
                    offered_at[(data["conversation_id"], agent_id)] = at
            elif event.type in (ConversationAccepted.TYPE, OfferDeclined.TYPE):
                kind = ACCEPT if event.type == ConversationAccepted.TYPE else DECLINE
                key = (data["conversation_id"], data["agent_id"])
                if key in offered_at:
                    delay = at - offered_at.pop(key)
                    people.reactions[key] = Reaction(kind, delay)
                    if kind == ACCEPT:
                        delays.setdefault(key[1], []).append(delay)
                else:
                    people.unprompted.append(Unprompted(at, kind, *key))
                if kind == ACCEPT:
                    first_accept.setdefault(key[0], at)
            elif event.type == OfferWithdrawn.TYPE:
                for agent_id in data["agent_ids"]:
                    key = (data["conversation_id"], agent_id)
                    since = offered_at.pop(key, None)
                    if data["reason"] == "expired":
                        people.reactions.setdefault(key, Reaction(IGNORE))
                    elif since is not None:
                        people.stood[key] = max(at - since, people.stood.get(key, timedelta(0)))
            elif event.type == ConversationClosed.TYPE:
                accepted = first_accept.get(data["conversation_id"])
                people.endings[data["conversation_id"]] = Ending(
                    at, data["closed_by"], at - accepted if accepted else None
                )
        people.typical = {a: statistics.median_low(d) for a, d in sorted(delays.items())}
        every = sorted(d for ds in delays.values() for d in ds)
        people.everyone = statistics.median_low(every) if every else None
        return people

    def reaction(self, conversation_id: str, agent_id: str) -> Reaction:
        """What ``agent_id`` does when offered ``conversation_id``."""
        known = self.reactions.get((conversation_id, agent_id))
        if known is not None:
            return known
        typical = self.typical.get(agent_id, self.everyone)
        if typical is None:
            return Reaction(IGNORE)
        stood = self.stood.get((conversation_id, agent_id))
        return Reaction(ACCEPT, typical if stood is None else max(typical, stood + LATER))
