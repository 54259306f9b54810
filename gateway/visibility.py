"""Who may see which event: the fan-out filter (pure functions, unit-testable).

Each event type declares its audience in contracts/ (``AUDIENCE``, ``NAMED_AGENT_FIELDS``,
``WITHHELD_FROM``; contracts/audience.py); this module only says which of those audiences a
principal belongs to for one event. Customers see only their own conversations' events;
agents what is declared for every agent of the tenant, for the agents an event names, for
the agents of a conversation (assigned or offered), and for supervisors
(``see_all_conversations``). Types that declare no audience (``agent.created`` has a
password hash, ``connector.configured`` sealed secrets) are never sent to any socket.
"""

from collections.abc import Iterator
from typing import Any

from contracts.audience import Audience, fields_withheld, without
from contracts.envelope import Envelope
from contracts.events.conversation import ConversationRequested
from contracts.events.message import TypingChanged
from contracts.registry import EVENTS
from gateway.auth.permissions import SEE_ALL, SEE_HISTORY
from gateway.auth.tokens import AgentPrincipal, Principal
from gateway.directory import ConversationInfo

WHOLE = frozenset[str]()  # nothing withheld
# How to reach the visitor outside the chat: what conversation.requested withholds from the
# tenant's agents; conversation documents keep the same ``visitor`` fields.
CONTACT_DETAILS = ConversationRequested.WITHHELD_FROM[Audience.TENANT_AGENTS]


class EventDelivery:
    """What each principal's socket receives of one event.

    The type's declarations and the event's own facts (its named agents, whether it is a
    visitor's own typing) are looked up once per event, not once per socket: a fan-out
    asks this for every agent of the tenant.
    """

    __slots__ = ("_audience", "_conversation", "_named", "_own_typing", "_tenant", "_withheld")

    def __init__(self, event: Envelope, conversation: ConversationInfo | None) -> None:
        self._tenant = event.tenant
        self._conversation = conversation
        self._audience = EVENTS.audience(event.type)
        self._withheld = EVENTS.withheld_from(event.type)
        self._named = named_agents(event) if Audience.NAMED_AGENTS in self._audience else set()
        # the widget shows the agent typing; its own typing coming back is noise
        self._own_typing = (
            event.type == TypingChanged.TYPE and event.data.get("who_kind") == "customer"
        )

    @property
    def anyone(self) -> bool:
        """Whether the type declares any audience (else no socket gets the event)."""
        return bool(self._audience)

    @property
    def every_agent(self) -> bool:
        """Whether every agent of the tenant may be a recipient (else only ``agent_ids``
        and, with ``overseers``, the supervisors)."""
        return Audience.TENANT_AGENTS in self._audience

    @property
    def overseers(self) -> bool:
        return Audience.SUPERVISORS in self._audience

    def agent_ids(self) -> set[str]:
        """The agents this event may reach by name: its conversation's and those it names."""
        ids = set(self._named)
        conversation = self._conversation
        if Audience.CONVERSATION_AGENTS in self._audience and conversation is not None:
            if conversation.agent_id is not None:
                ids.add(conversation.agent_id)
            ids.update(conversation.offered_to)
        return ids

    def to(self, principal: Principal) -> frozenset[str] | None:
        """None (nothing), or the fields withheld from ``principal`` (``WHOLE``: all of it)."""
        if principal.tenant != self._tenant:
            return None
        return fields_withheld(self._withheld, self._memberships(principal))

    def _memberships(self, principal: Principal) -> Iterator[Audience]:
        for audience in self._audience:
            if self._belongs(audience, principal):
                yield audience

    def _belongs(self, audience: Audience, principal: Principal) -> bool:
        conversation = self._conversation
        if not isinstance(principal, AgentPrincipal):
            return (
                audience is Audience.VISITOR
                and conversation is not None
                and conversation.visitor_id == principal.visitor_id
                and not self._own_typing
            )
        if audience is Audience.TENANT_AGENTS:
            return True
        if audience is Audience.SUPERVISORS:
            return principal.can(SEE_ALL)
        if audience is Audience.CONVERSATION_AGENTS:
            return is_conversation_agent(principal, conversation)
        if audience is Audience.NAMED_AGENTS:
            return principal.agent_id in self._named
        return False


def delivery(
    principal: Principal, event: Envelope, conversation: ConversationInfo | None
) -> frozenset[str] | None:
    """What ``principal``'s socket receives of ``event``: None (nothing), or the fields
    withheld from it (``WHOLE``: the event as it is on the log)."""
    return EventDelivery(event, conversation).to(principal)


def visible(principal: Principal, event: Envelope, conversation: ConversationInfo | None) -> bool:
    """Whether ``principal``'s socket receives ``event`` at all (whole or in part)."""
    return delivery(principal, event, conversation) is not None


def named_agents(event: Envelope) -> set[str]:
    """The agent ids in the fields the event's type declares as naming its agents."""
    named: set[str] = set()
    for name in EVENTS.named_agent_fields(event.type):
        value = event.data.get(name)
        if isinstance(value, str):
            named.add(value)
        elif isinstance(value, list | tuple):
            named.update(v for v in value if isinstance(v, str))
    return named


def is_conversation_agent(agent: AgentPrincipal, conversation: ConversationInfo | None) -> bool:
    """The conversation is assigned to ``agent`` or offered to them now."""
    return (
        conversation is not None
        and conversation.tenant == agent.tenant
        and (conversation.agent_id == agent.agent_id or agent.agent_id in conversation.offered_to)
    )


def may_read_conversation(agent: AgentPrincipal, conversation: ConversationInfo | None) -> bool:
    """Its agents (assigned or offered) and supervisors read a conversation live."""
    if conversation is None or conversation.tenant != agent.tenant:
        return False
    return agent.can(SEE_ALL) or is_conversation_agent(agent, conversation)


HISTORY_STATUSES = frozenset({"closed", "missed"})


def may_read_history(agent: AgentPrincipal, conversation: ConversationInfo | None) -> bool:
    """``see_history`` opens conversations that are over, or waiting unassigned in the queue
    (anyone may pick those up). A live conversation of another agent needs
    ``see_all_conversations``: HTTP must not show what the websocket fan-out hides."""
    if conversation is None or conversation.tenant != agent.tenant or not agent.can(SEE_HISTORY):
        return False
    waiting = (
        conversation.status == "queued"
        and conversation.agent_id is None
        and not conversation.offered_to
    )
    return conversation.status in HISTORY_STATUSES or waiting


def may_write_conversation(principal: Principal, conversation: ConversationInfo | None) -> bool:
    """Customers write into their own open conversation; agents into the one assigned to them."""
    if (
        conversation is None
        or conversation.tenant != principal.tenant
        or conversation.status == "closed"
    ):
        return False
    if isinstance(principal, AgentPrincipal):
        return conversation.agent_id == principal.agent_id
    return conversation.visitor_id == principal.visitor_id


def listed_conversation(agent: AgentPrincipal, document: dict[str, Any]) -> dict[str, Any]:
    """A conversation document in a listing, as ``agent`` may see it.

    A listing tells no more than the fan-out: the visitor's contact details only to the
    agent the conversation is assigned to and to supervisors (opening one conversation's
    messages or transcript is a read of its own, checked by ``may_read_*``).
    """
    if agent.can(SEE_ALL) or document.get("agent_id") == agent.agent_id:
        return document
    return without(document, CONTACT_DETAILS)


def listed_queue_item(agent: AgentPrincipal, item: dict[str, Any]) -> dict[str, Any]:
    """A routing-queue entry as ``agent`` may see it: whether it is offered to them, and to
    whom else only for supervisors (offers go to the agents they are made to)."""
    mine = {**item, "offered_to_me": agent.agent_id in item.get("offered_to", ())}
    return mine if agent.can(SEE_ALL) else without(mine, ("offered_to",))
