"""Permissions granted by groups, as they are now rather than as the token says.

An access token lists the agent's permissions at login (``perms``) and their groups. A
change to the agent (role, groups, password, removal) bumps their token version and
revokes the token everywhere (``gateway/auth/revocation.py``); a change to a *group*
(its permissions edited, or the group deleted) names no agent, and the old token kept
the group's permissions over HTTP until it expired.

Here every gateway notes, from the log it tails, when each group's permissions last
changed — and the gateway that carried out the change notes it before answering, so the
very next request sees it even if the log has not reached this gateway yet. A token
issued before a change of one of its groups is narrowed on every request: to what its
role and its groups grant now (the admin service's ``groups.list``, cached per tenant
and dropped on every group event), never to more than the token itself lists. When the
admin service does not answer, such a token keeps its role's permissions only (fail
closed). Websockets of the group's members are closed with 4401 (``GatewayDeps``), so
the console refreshes its token and reconnects with the new permissions.

LIMIT: changes are known from the tail, which starts 15 minutes before the gateway did
(``gateway/tailer.py``); a token older than that has expired as long as
``RELAYDESK_ACCESS_TOKEN_TTL_S`` stays at most 15 minutes (the default).
"""

import dataclasses
import time

import structlog

from contracts.envelope import Envelope
from contracts.events.admin import (
    PermissionGroupCreated,
    PermissionGroupDeleted,
    PermissionGroupUpdated,
)
from contracts.queries.admin import GroupsListQuery
from gateway.auth.permissions import effective_permissions
from gateway.auth.tokens import AgentPrincipal
from relaydesk.bus.rpc import RpcClient

log = structlog.get_logger(__name__)

CACHE_S = 10.0
LOOKUP_TIMEOUT_S = 1.5


class GroupPermissions:
    def __init__(self, rpc: RpcClient, *, timeout_s: float = LOOKUP_TIMEOUT_S) -> None:
        self._rpc = rpc
        self._timeout_s = timeout_s
        self._changed_at: dict[tuple[str, str], float] = {}
        self._groups: dict[str, tuple[float, dict[str, frozenset[str]]]] = {}
        # Bumped on every change: a lookup that began before one must not store its answer.
        self._generation: dict[str, int] = {}

    def apply(self, event: Envelope) -> tuple[str, str] | None:
        """Fold one event; returns (tenant, group_id) when that group's permissions changed."""
        group_id = event.data.get("group_id")
        if not isinstance(group_id, str):
            return None
        if event.type == PermissionGroupCreated.TYPE:
            self._forget(event.tenant)
            return None
        if event.type == PermissionGroupDeleted.TYPE or (
            event.type == PermissionGroupUpdated.TYPE
            and "permissions" in (event.data.get("after") or {})
        ):
            self.changed(event.tenant, group_id)
            return event.tenant, group_id
        return None

    def changed(self, tenant: str, group_id: str) -> None:
        """The group's permissions changed just now (learnt from the log, or decided here)."""
        # The time it is learnt, not the event's: later is only more careful, and no clock
        # of another host is compared with the token's issue time.
        self._changed_at[(tenant, group_id)] = time.time()
        self._forget(tenant)

    def _forget(self, tenant: str) -> None:
        self._groups.pop(tenant, None)
        self._generation[tenant] = self._generation.get(tenant, 0) + 1

    async def current(self, principal: AgentPrincipal) -> AgentPrincipal:
        """``principal`` with only the permissions its role and groups grant now."""
        stale = any(
            self._changed_at.get((principal.tenant, group), float("-inf")) >= principal.issued_at
            for group in principal.groups
        )
        if not stale:
            return principal
        groups = await self._tenant_groups(principal.tenant)
        granted = [
            permission
            for group in principal.groups
            for permission in (groups or {}).get(group, frozenset())
        ]
        now = effective_permissions(principal.role, tuple(granted))
        return dataclasses.replace(principal, permissions=principal.permissions & now)

    async def _tenant_groups(self, tenant: str) -> dict[str, frozenset[str]] | None:
        cached = self._groups.get(tenant)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        generation = self._generation.get(tenant, 0)
        try:
            listed = await self._rpc.ask(GroupsListQuery(tenant=tenant), timeout=self._timeout_s)
        except Exception as exc:  # noqa: BLE001 - unknown now: the role's permissions only
            log.warning("group_permissions_unavailable", tenant=tenant, error=type(exc).__name__)
            return None
        groups = {group.group_id: frozenset(group.permissions) for group in listed}
        if self._generation.get(tenant, 0) == generation:
            self._groups[tenant] = (time.monotonic() + CACHE_S, groups)
        return groups
