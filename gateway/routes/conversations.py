"""Conversation reads for the console and the widget, answered by history_service."""

from typing import Any, TypeVar, cast

from fastapi import APIRouter, Depends, Query

from contracts.queries import Query as BusQuery
from contracts.queries.admin import GroupsListQuery
from contracts.queries.agent import AgentWorkspaceQuery, QueueQuery
from contracts.queries.history import (
    ConversationsListQuery,
    MessagesLastQuery,
    TranscriptQuery,
    View,
)
from contracts.settings import DEFAULTS
from gateway.auth.http import ApiError, get_deps, require_agent, require_principal
from gateway.auth.permissions import SEE_ALL, SEE_HISTORY, TRANSFER
from gateway.auth.tokens import AgentPrincipal, Principal
from gateway.deps import GatewayDeps
from gateway.ops import OpError
from gateway.queries import ask
from gateway.visibility import (
    listed_conversation,
    listed_queue_item,
    may_read_conversation,
    may_read_history,
)
from relaydesk.bus import RemoteError, RequestTimeout

R = TypeVar("R")
VIEWS = ("mine", "queued", "all", "missed", "closed")
MAX_LIMIT = 500


async def ask_history(deps: GatewayDeps, query: BusQuery[R]) -> R:
    return await ask(deps, query, {"not_found": 404})


async def messages_on_enter(deps: GatewayDeps, tenant: str) -> int:
    """How many messages a conversation opens with: the tenant's ``messages_on_enter``.

    The setting allows 0..1000 while a read returns 1..MAX_LIMIT, so it is clamped; with
    the admin service unreachable the read still works, with the default.
    """
    settings = await deps.tenant_settings.get(tenant) or DEFAULTS
    return max(1, min(settings.messages_on_enter, MAX_LIMIT))


async def readable_conversation(
    deps: GatewayDeps, principal: Principal, conversation_id: str
) -> None:
    """Raise 404/403 unless ``principal`` may read this conversation."""
    try:
        info = await deps.operations.conversation(principal, conversation_id)
    except OpError as exc:
        raise ApiError(503 if exc.code == "unavailable" else 404, exc.code, exc.message) from None
    if isinstance(principal, AgentPrincipal):
        allowed = may_read_conversation(principal, info) or may_read_history(principal, info)
    else:
        allowed = info.tenant == principal.tenant and info.visitor_id == principal.visitor_id
    if not allowed:
        raise ApiError(403, "forbidden", "you may not read this conversation")


def build_router(deps: GatewayDeps) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["conversations"])

    @router.get("/conversations")
    async def list_conversations(
        view: str = Query("mine"),
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
        visitor_id: str | None = Query(None, max_length=128, pattern=r"^[\w.:@\-]+$"),
        agent: AgentPrincipal = Depends(require_agent()),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        if view not in VIEWS:
            raise ApiError(400, "invalid_payload", f"view must be one of {', '.join(VIEWS)}")
        if (
            view in ("all", "closed", "missed")
            and not agent.can(SEE_ALL)
            and not (visitor_id and agent.can(SEE_HISTORY))
        ):
            raise ApiError(403, "forbidden", f"missing permission {SEE_ALL}")
        query = ConversationsListQuery(
            tenant=agent.tenant,
            view=cast(View, view),
            agent_id=agent.agent_id,
            limit=limit,
            # a visitor's previous conversations, for the console's visitor panel
            visitor_id=visitor_id or None,
        )
        return [
            listed_conversation(agent, document.model_dump(mode="json"))
            for document in await ask_history(deps, query)
        ]

    @router.get("/queue")
    async def queue(
        agent: AgentPrincipal = Depends(require_agent()), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        """Waiting conversations in order, those offered to the caller marked (requests list)."""
        try:
            waiting = await deps.rpc.ask(
                QueueQuery(tenant=agent.tenant), timeout=deps.settings.request_timeout_s
            )
        except (RemoteError, RequestTimeout):
            raise ApiError(503, "unavailable", "the routing service did not answer") from None
        return [listed_queue_item(agent, item.model_dump(mode="json")) for item in waiting]

    @router.get("/workspace")
    async def workspace(
        agent: AgentPrincipal = Depends(require_agent()), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        """The caller's console state from routing, the single writer: their offers, their
        chats and the queue, with the log position it stands at (docs/protocol.md)."""
        try:
            answer = await deps.rpc.ask(
                AgentWorkspaceQuery(tenant=agent.tenant, agent_id=agent.agent_id),
                timeout=deps.settings.request_timeout_s,
            )
        except (RemoteError, RequestTimeout):
            raise ApiError(503, "unavailable", "the routing service did not answer") from None
        return answer.model_dump(mode="json")

    @router.get("/transfer/groups")
    async def transfer_groups(
        agent: AgentPrincipal = Depends(require_agent(TRANSFER)),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        """The groups a chat can be transferred to, by name: the transfer dialog's choices.
        Only ids and names: who is in a group and what it grants stay the managers'."""
        groups = await ask(deps, GroupsListQuery(tenant=agent.tenant))
        ordered = sorted(groups, key=lambda group: group.name.casefold())
        return [{"group_id": group.group_id, "name": group.name} for group in ordered]

    @router.get("/conversations/{conversation_id}/messages")
    async def messages(
        conversation_id: str,
        limit: int | None = Query(None, ge=1, le=MAX_LIMIT),
        before: int | None = Query(None, ge=0),
        upto: int | None = Query(None, ge=0),
        principal: Principal = Depends(require_principal()),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        await readable_conversation(deps, principal, conversation_id)
        page = limit or await messages_on_enter(deps, principal.tenant)
        return await ask(
            deps,
            MessagesLastQuery(
                tenant=principal.tenant,
                conversation_id=conversation_id,
                limit=page,
                before_position=before,
                upto_position=upto,
            ),
            {"not_found": 404, "behind": 503},
        )

    @router.get("/conversations/{conversation_id}/transcript")
    async def transcript(
        conversation_id: str,
        principal: Principal = Depends(require_principal()),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        await readable_conversation(deps, principal, conversation_id)
        return await ask_history(
            deps, TranscriptQuery(tenant=principal.tenant, conversation_id=conversation_id)
        )

    return router
