"""Read-only answers from routing state: ``conversation.state``, ``queue``, ``agents.status``."""

from collections.abc import Callable
from typing import Any

from agent_service import routing
from agent_service.state import Conversation, RoutingState, Tenant
from relaydesk.bus.rpc import RemoteError


def conversation_view(conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation_id": conversation.conversation_id,
        "status": conversation.status,
        "agent_id": conversation.agent_id,
        "offered_to": sorted(conversation.offered_to),
        "visitor_id": conversation.visitor_id,
        "channel": conversation.channel,
        "department": conversation.department,
        "queue_position": conversation.position,
        "transfer_from": conversation.transfer_from,
    }


class Queries:
    """Answers the ``agent`` queries; the gateway passes ``tenant`` from the caller's token."""

    def __init__(self, state: Callable[[], RoutingState]) -> None:
        self._state = state  # a getter: the state object is replaced on a rebuild

    async def handle(self, name: str, params: dict[str, Any]) -> Any:
        answer = {
            "conversation.state": self.conversation_state,
            "queue": self.queue,
            "agents.status": self.agents_status,
        }.get(name)
        if answer is None:
            raise RemoteError("unknown_query", f"agent has no query {name!r}")
        return answer(params)

    def _tenant(self, params: dict[str, Any]) -> Tenant | None:
        tenant = params["tenant"]
        if not isinstance(tenant, str):
            raise ValueError("tenant must be a string")
        return self._state().tenants.get(tenant)

    def conversation_state(self, params: dict[str, Any]) -> dict[str, Any]:
        tenant = self._tenant(params)
        conversation = tenant.conversations.get(params["conversation_id"]) if tenant else None
        if conversation is None:
            raise RemoteError("not_found", "no such conversation")
        return conversation_view(conversation)

    def queue(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Queued conversations in order with their positions, then missed ones (position null)."""
        tenant = self._tenant(params)
        return [conversation_view(c) for c in tenant.waiting()] if tenant else []

    def agents_status(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        tenant = self._tenant(params)
        if tenant is None:
            return []
        return [
            {
                "agent_id": agent.agent_id,
                "name": agent.name,
                "status": agent.status,
                "connected": agent.disconnected_at is None,
                "active_chats": len(agent.active),
                "pending_offers": len(agent.offers),
                "max_chats": tenant.capacity(agent),
                "available": routing.is_available(agent) and routing.has_room(tenant, agent),
            }
            for agent in sorted(tenant.agents.values(), key=lambda a: a.agent_id)
            if not agent.removed
        ]
