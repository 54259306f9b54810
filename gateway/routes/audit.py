"""Audit for permitted agents (``view_audit``): a conversation's event timeline with its
hash-chain verdict, time travel — a conversation or the tenant's settings as they were
at any moment, refolded from the archived log by history_service — and the listing of the
tenant's administrative changes over a time range."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from contracts.queries.history import (
    AuditAdminEventsQuery,
    AuditVerifyQuery,
    ConversationAtQuery,
    Moment,
    SettingsAtQuery,
    TranscriptQuery,
)
from contracts.settings import TenantSettings
from gateway.auth.http import get_deps, require_agent
from gateway.auth.permissions import VIEW_AUDIT
from gateway.auth.tokens import AgentPrincipal
from gateway.deps import GatewayDeps
from gateway.queries import ask
from gateway.routes.conversations import ask_history


def build_router(deps: GatewayDeps) -> APIRouter:
    router = APIRouter(prefix="/api/audit", tags=["audit"])
    auditors = require_agent(VIEW_AUDIT)

    @router.get("/conversations/{conversation_id}/timeline")
    async def timeline(
        conversation_id: str,
        agent: AgentPrincipal = Depends(auditors),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        # Up to what this gateway has seen of the log: the archive may lag behind it, and a
        # timeline opened from the console right after an accept lacked that accept.
        seen = deps.tailer.head if deps.tailer.head >= 0 else None
        transcript = await ask(
            deps,
            TranscriptQuery(
                tenant=agent.tenant, conversation_id=conversation_id, upto_position=seen
            ),
            {"not_found": 404, "behind": 503},
        )
        verdict = await ask_history(
            deps, AuditVerifyQuery(tenant=agent.tenant, conversation_id=conversation_id)
        )
        return {
            "conversation": transcript.conversation,
            "events": transcript.events,
            "chain_ok": verdict.ok,
            "broken_at": None if verdict.ok else verdict.position,
            "checked": verdict.checked,
        }

    @router.get("/conversations/{conversation_id}/state")
    async def state_at(
        conversation_id: str,
        at: Annotated[Moment, Query()],  # not "= Query(...)": drops Moment's check
        agent: AgentPrincipal = Depends(auditors),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        return await ask_history(
            deps, ConversationAtQuery(tenant=agent.tenant, conversation_id=conversation_id, at=at)
        )

    @router.get("/settings")
    async def settings_at(
        at: Annotated[Moment, Query()],  # not "= Query(...)": drops Moment's check
        agent: AgentPrincipal = Depends(auditors),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        found = await ask_history(deps, SettingsAtQuery(tenant=agent.tenant, at=at))
        return {
            "at": found.at,
            "settings": TenantSettings.from_saved(found.changed),
            "changes": found.changes,
        }

    @router.get("/admin-events")
    async def admin_events(
        since: Moment | None = None,
        until: Moment | None = None,
        kind: str | None = None,
        limit: int = Query(200, ge=1, le=1000),
        agent: AgentPrincipal = Depends(auditors),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        query = AuditAdminEventsQuery(
            tenant=agent.tenant, kind=kind, since=since, until=until, limit=limit
        )
        return {"events": await ask_history(deps, query)}

    return router
