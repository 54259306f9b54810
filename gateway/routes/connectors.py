"""Connector administration: ``/api/admin/connectors`` (permission ``manage_connectors``).

Secrets are sealed here, before they leave the gateway, and never come back: GET shows the
public fields and which secrets are set.
"""

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from contracts import Actor, Envelope, derive_event_id
from contracts.base import Id  # path ids: what the commands accept, or a 400 before them
from contracts.commands.admin import PauseConnector, ResumeConnector
from contracts.commands.connector import ConfigureConnector, RemoveConnector
from contracts.envelope import ActorKind
from contracts.queries.connectors import ConnectorsListQuery
from gateway.auth.http import ApiError, get_deps, require_agent
from gateway.auth.permissions import MANAGE_CONNECTORS
from gateway.auth.tokens import AgentPrincipal
from gateway.deps import GatewayDeps
from gateway.queries import api_error
from gateway.routes.admin import admin_command
from relaydesk.bus import RemoteError, RequestTimeout
from relaydesk.sealing import SecretBox

ERROR_STATUS = {"not_found": 404, "conflict": 409, "invalid_payload": 400, "plan_limit": 402}


class ConnectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    platform: Literal["telegram", "messenger", "wechat"]
    public_config: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)


async def _command(
    deps: GatewayDeps,
    agent: AgentPrincipal,
    type_name: str,
    connector_id: str,
    data: dict[str, Any],
) -> dict[str, Any]:
    envelope = Envelope(
        id=derive_event_id(agent.tenant, agent.agent_id, uuid.uuid4().hex),
        type=type_name,
        tenant=agent.tenant,
        stream=f"connector:{connector_id}",
        actor=Actor(kind=ActorKind.admin, id=agent.agent_id),
        data={"connector_id": connector_id, **data},
    )
    try:
        reply = await deps.rpc.command(
            "connectors", envelope, timeout=deps.settings.request_timeout_s
        )
    except RequestTimeout:
        raise ApiError(503, "unavailable", "the connectors service did not answer") from None
    if not reply.ok:
        raise ApiError(
            ERROR_STATUS.get(reply.code or "", 400),
            reply.code or "rejected",
            reply.message or "rejected",
        )
    return {"ok": True, "event_ids": list(reply.event_ids)}


def _pausing(command_type: str, permitted: Any) -> Any:
    async def route(
        connector_id: Id,
        agent: AgentPrincipal = Depends(permitted),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        data = {"connector_id": connector_id}
        return await admin_command(deps, agent, command_type, f"connector:{connector_id}", data)

    return route


def build_router(deps: GatewayDeps) -> APIRouter:
    router = APIRouter(prefix="/api/admin", tags=["connectors"])
    managers = require_agent(MANAGE_CONNECTORS)
    box = SecretBox.from_settings(deps.settings)  # seals under the current secrets_key

    @router.get("/connectors")
    async def list_connectors(
        agent: AgentPrincipal = Depends(managers), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        try:
            return await deps.rpc.ask(
                ConnectorsListQuery(tenant=agent.tenant), timeout=deps.settings.request_timeout_s
            )
        except RemoteError as exc:
            raise api_error(exc) from None
        except RequestTimeout:
            raise ApiError(503, "unavailable", "the connectors service did not answer") from None

    @router.put("/connectors/{connector_id}")
    async def put_connector(
        connector_id: Id,
        body: ConnectorConfig,
        agent: AgentPrincipal = Depends(managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        sealed = box.seal(body.secrets) if body.secrets else None
        data = {
            "platform": body.platform,
            "public_config": body.public_config,
            "sealed_secrets": sealed,
        }
        return await _command(deps, agent, ConfigureConnector.TYPE, connector_id, data)

    @router.delete("/connectors/{connector_id}")
    async def delete_connector(
        connector_id: Id,
        agent: AgentPrincipal = Depends(managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        return await _command(deps, agent, RemoveConnector.TYPE, connector_id, {})

    # decided by the admin service (it keeps the pauses; the connectors service folds them)
    for action, command_type in (("pause", PauseConnector.TYPE), ("resume", ResumeConnector.TYPE)):
        router.add_api_route(
            f"/connectors/{{connector_id}}/{action}",
            _pausing(command_type, managers),
            methods=["POST"],
            name=f"{action}_connector",
        )
    return router
