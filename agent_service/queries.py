"""Read-only answers from the routing state (contracts/queries/agent.py)."""

from collections.abc import Callable

from agent_service import routing
from agent_service.state import Conversation, RoutingState, Tenant
from contracts.queries.agent import (
    AgentsStatusQuery,
    AgentStatus,
    ConversationState,
    ConversationStateQuery,
    QueueQuery,
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
                connected=agent.disconnected_at is None,
                active_chats=len(agent.active),
                pending_offers=len(agent.offers),
                max_chats=tenant.capacity(agent),
                available=routing.is_available(agent) and routing.has_room(tenant, agent),
            )
            for agent in sorted(tenant.agents.values(), key=lambda a: a.agent_id)
            if not agent.removed
        ]
