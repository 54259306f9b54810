"""Read-only answers from the routing state (contracts/queries/agent.py)."""

from collections.abc import Callable

from agent_service import routing
from agent_service.state import (
    CLOSED,
    ENGAGED,
    TRANSFER_PENDING,
    Conversation,
    RoutingState,
    Tenant,
)
from contracts.queries.agent import (
    AgentsStatusQuery,
    AgentStatus,
    AgentWorkspace,
    AgentWorkspaceQuery,
    ConversationState,
    ConversationStateQuery,
    QueueQuery,
    VisitorConversationQuery,
    WorkspaceConversation,
)
from contracts.queries.base import TenantQuery
from relaydesk.bus.rpc import RemoteError
from relaydesk.queries import answers


def conversation_view(conversation: Conversation) -> ConversationState:
    return ConversationState(
        conversation_id=conversation.conversation_id,
        status=conversation.status,  # type: ignore[arg-type]  # one of state.py's statuses
        agent_id=conversation.agent_id,
        offered_to=sorted(conversation.offered_to),
        visitor_id=conversation.visitor_id,
        channel=conversation.channel,
        department=conversation.department,
        queue_position=conversation.position,
        transfer_from=conversation.transfer_from,
    )


def workspace_view(
    tenant: Tenant, conversation: Conversation, agent_id: str
) -> WorkspaceConversation:
    """``conversation`` as ``agent_id``'s console shows it."""

    def name(of: str | None) -> str | None:
        agent = tenant.agents.get(of) if of else None
        return (agent.name if agent else None) or of

    offered_here = agent_id in conversation.offered_to and conversation.transfer_from is not None
    if offered_here:  # a transfer offered to this agent: who hands it over, and their note
        handed_from, note = conversation.transfer_from, conversation.transfer_note
    elif conversation.agent_id == agent_id:  # theirs: the note of the transfer that brought it
        handed_from, note = conversation.handover_from, conversation.handover_note
    else:
        handed_from = note = None
    sender = conversation.agent_id == agent_id and conversation.status == TRANSFER_PENDING
    return WorkspaceConversation(
        conversation_id=conversation.conversation_id,
        status=conversation.status,  # type: ignore[arg-type]  # one of state.py's statuses
        agent_id=conversation.agent_id,
        visitor_name=conversation.visitor_name,
        topic=conversation.topic,
        channel=conversation.channel,
        department=conversation.department,
        requested_at=conversation.requested_at,
        offer_expires_at=conversation.offer_expires_at if conversation.offered_to else None,
        queue_position=conversation.position,
        transfer_from=handed_from,
        transfer_from_name=name(handed_from),
        transfer_note=note,
        transfer_to=sorted(conversation.offered_to) if sender else [],
        unread=conversation.customer_messages - conversation.read_by.get(agent_id, 0),
    )


class Queries:
    """Answers the ``agent`` queries; the gateway passes ``tenant`` from the caller's token."""

    def __init__(self, state: Callable[[], RoutingState]) -> None:
        self._state = state  # a getter: the state object is replaced on a rebuild

    def _tenant(self, query: TenantQuery) -> Tenant | None:
        return self._state().tenants.get(query.tenant)

    @answers(ConversationStateQuery)
    def conversation_state(self, query: ConversationStateQuery) -> ConversationState:
        tenant = self._tenant(query)
        conversation = tenant.conversations.get(query.conversation_id) if tenant else None
        if conversation is None:
            raise RemoteError("not_found", "no such conversation")
        return conversation_view(conversation)

    @answers(VisitorConversationQuery)
    def visitor_conversation(self, query: VisitorConversationQuery) -> ConversationState:
        tenant = self._tenant(query)
        latest = tenant.latest_by_visitor.get(query.visitor_id) if tenant else None
        conversation = tenant.conversations.get(latest) if tenant and latest else None
        if conversation is None or conversation.status == CLOSED:
            raise RemoteError("not_found", "no open conversation for this visitor")
        return conversation_view(conversation)

    @answers(QueueQuery)
    def queue(self, query: QueueQuery) -> list[ConversationState]:
        tenant = self._tenant(query)
        return [conversation_view(c) for c in tenant.waiting()] if tenant else []

    @answers(AgentsStatusQuery)
    def agents_status(self, query: AgentsStatusQuery) -> list[AgentStatus]:
        tenant = self._tenant(query)
        if tenant is None:
            return []
        return [
            AgentStatus(
                agent_id=agent.agent_id,
                name=agent.name,
                status=agent.status,
                connected=agent.connected,
                active_chats=len(agent.active),
                pending_offers=len(agent.offers),
                max_chats=tenant.capacity(agent),
                available=routing.is_available(agent) and routing.has_room(tenant, agent),
            )
            for agent in sorted(tenant.agents.values(), key=lambda a: a.agent_id)
            if not agent.removed
        ]

    @answers(AgentWorkspaceQuery)
    def workspace(self, query: AgentWorkspaceQuery) -> AgentWorkspace:
        state = self._state()
        tenant = state.tenants.get(query.tenant)
        if tenant is None:
            return AgentWorkspace(position=state.position, offers=[], chats=[], queue=[])
        agent = tenant.agents.get(query.agent_id)
        known = tenant.conversations
        offers = [known[c] for c in (agent.offers if agent else ()) if c in known]
        chats = [
            known[c]
            for c in (agent.active if agent else ())
            if c in known and known[c].status in (ENGAGED, TRANSFER_PENDING)
        ]
        return AgentWorkspace(
            position=state.position,
            offers=[
                workspace_view(tenant, c, query.agent_id) for c in sorted(offers, key=_by_arrival)
            ],
            chats=[
                workspace_view(tenant, c, query.agent_id) for c in sorted(chats, key=_by_arrival)
            ],
            queue=[workspace_view(tenant, c, query.agent_id) for c in tenant.waiting()],
        )


def _by_arrival(conversation: Conversation) -> int:
    return conversation.seq
