"""Who may see which event: the fan-out filter (pure functions, unit-testable).

Customers see only their own conversations' customer-facing events. Agents see their
tenant's queue and lifecycle, and message content for conversations assigned or offered
to them (or all, with ``see_all_conversations``). Events carrying secrets
(``agent.created`` has a password hash, ``connector.configured`` sealed secrets) are never
sent to any socket.
"""

from contracts.envelope import Envelope
from gateway.auth.permissions import SEE_ALL, SEE_HISTORY
from gateway.auth.tokens import AgentPrincipal, Principal
from gateway.directory import ConversationInfo

CUSTOMER_TYPES = frozenset(
    {
        "conversation.requested",
        "conversation.queued",
        "conversation.accepted",
        "conversation.transferred",
        "conversation.closed",
        "conversation.missed",
        "conversation.rated",
        "conversation.agent_disconnected",
        "message.sent",
        "message.attachment_sent",
        "message.system",
        "typing.changed",
        "message.read",
        "connector.outbound_failed",
    }
)
CONTENT_TYPES = frozenset(
    {
        "message.sent",
        "message.attachment_sent",
        "message.system",
        "typing.changed",
        "message.read",
        "connector.outbound_sent",
        "connector.outbound_failed",
    }
)
AGENT_LIFECYCLE_TYPES = frozenset(
    {
        "conversation.requested",
        "conversation.queued",
        "conversation.offered",
        "conversation.offer_withdrawn",
        "conversation.offer_declined",
        "conversation.accepted",
        "conversation.transfer_requested",
        "conversation.transferred",
        "conversation.closed",
        "conversation.missed",
        "conversation.rated",
        "conversation.agent_disconnected",
    }
)
AGENT_TENANT_TYPES = frozenset(
    {
        "agent.status_changed",
        "agent.disconnected",
        "canned_response.created",
        "canned_response.updated",
        "canned_response.deleted",
        "tenant.settings_changed",
    }
)


def visible(principal: Principal, event: Envelope, conversation: ConversationInfo | None) -> bool:
    if event.tenant != principal.tenant:
        return False
    if isinstance(principal, AgentPrincipal):
        return _agent_sees(principal, event, conversation)
    return (
        event.type in CUSTOMER_TYPES
        and conversation is not None
        and conversation.visitor_id == principal.visitor_id
        and not (event.type == "typing.changed" and event.data.get("who_kind") == "customer")
    )


def _agent_sees(
    agent: AgentPrincipal, event: Envelope, conversation: ConversationInfo | None
) -> bool:
    if event.type in AGENT_TENANT_TYPES:
        return True
    if event.type in AGENT_LIFECYCLE_TYPES:
        return True
    if event.type in CONTENT_TYPES:
        return may_read_conversation(agent, conversation)
    return False


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
