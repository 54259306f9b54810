"""Who may see which event: the fan-out filter (pure functions, unit-testable).

Each event type declares its audience in contracts/ (``AUDIENCE``); this module only
applies it to a principal. Customers see only their own conversations' events; agents see
what is declared for every agent of the tenant, and conversation content where they are
assigned or offered (or all, with ``see_all_conversations``). Types that declare no
audience (``agent.created`` has a password hash, ``connector.configured`` sealed secrets)
are never sent to any socket.
"""

from contracts.audience import Audience
from contracts.envelope import Envelope
from contracts.events.message import TypingChanged
from contracts.registry import EVENTS
from gateway.auth.permissions import SEE_ALL, SEE_HISTORY
from gateway.auth.tokens import AgentPrincipal, Principal
from gateway.directory import ConversationInfo


def visible(principal: Principal, event: Envelope, conversation: ConversationInfo | None) -> bool:
    """Whether ``principal``'s socket receives ``event``: the event type's declared audience
    (contracts/audience.py), narrowed to the principal's tenant and conversations."""
    if event.tenant != principal.tenant:
        return False
    audience = EVENTS.audience(event.type)
    if isinstance(principal, AgentPrincipal):
        if Audience.TENANT_AGENTS in audience:
            return True
        return Audience.CONVERSATION_AGENTS in audience and may_read_conversation(
            principal, conversation
        )
    return (
        Audience.VISITOR in audience
        and conversation is not None
        and conversation.visitor_id == principal.visitor_id
        and not (event.type == TypingChanged.TYPE and event.data.get("who_kind") == "customer")
    )


def may_read_conversation(agent: AgentPrincipal, conversation: ConversationInfo | None) -> bool:
    if conversation is None or conversation.tenant != agent.tenant:
        return False
    return (
        agent.can(SEE_ALL)
        or conversation.agent_id == agent.agent_id
        or agent.agent_id in conversation.offered_to
    )


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
