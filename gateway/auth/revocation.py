"""Token revocation learnt from the log: removed agents and role changes.

Tokens carry ``ver`` (the agent's token version at login). When an agent is removed,
or their role/permissions change (``agent.updated``), older tokens stop working here at
once, and open sockets of that agent are closed — every gateway sees the same events.
"""

from contracts.envelope import Envelope
from contracts.events.admin import AgentCreated, AgentRemoved, AgentUpdated
from gateway.auth.tokens import AgentPrincipal, Principal

SECURITY_FIELDS = ("role", "groups", "permissions", "password_hash", "token_version")


class RevocationList:
    def __init__(self) -> None:
        self._removed: set[tuple[str, str]] = set()
        self._min_version: dict[tuple[str, str], int] = {}

    def apply(self, event: Envelope) -> tuple[str, str] | None:
        """Fold one event; returns (tenant, agent_id) whose tokens just became invalid."""
        agent_id = event.data.get("agent_id")
        if not isinstance(agent_id, str):
            return None
        key = (event.tenant, agent_id)
        if event.type == AgentRemoved.TYPE:
            self._removed.add(key)
            return key
        if event.type == AgentCreated.TYPE:
            self._removed.discard(key)
            return None
        if event.type == AgentUpdated.TYPE:
            before, after = event.data.get("before") or {}, event.data.get("after") or {}
            if any(before.get(f) != after.get(f) for f in SECURITY_FIELDS if f in after):
                version = after.get("token_version")
                self._min_version[key] = (
                    int(version) if isinstance(version, int) else self._min_version.get(key, 0) + 1
                )
                return key
        return None

    def is_revoked(self, principal: Principal) -> bool:
        if not isinstance(principal, AgentPrincipal):
            return False
        key = (principal.tenant, principal.agent_id)
        return key in self._removed or principal.token_version < self._min_version.get(key, 0)
