"""Connector configuration folded from ``connector.configured`` / ``connector.removed`` events.

The fold also records the replies to the connectors' own commands (``connector.configure``,
``connector.remove``) found on the log, so a redelivered command is answered, not decided
again (relaydesk/decider.py).
"""

from dataclasses import dataclass, field

from contracts.envelope import LoggedEvent
from contracts.events.connector import ConnectorConfigured, ConnectorRemoved
from contracts.replies import CommandReply
from relaydesk.decider import record_answer
from relaydesk.sealing import SecretBox

SERVICE = "connectors"


@dataclass(frozen=True)
class Connector:
    tenant: str
    connector_id: str
    platform: str
    public: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # repr=False: never in logs


class ConnectorDirectory:
    """Current connectors by (tenant, id) — also looked up by id alone for webhooks."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._by_id: dict[str, Connector] = {}
        self.replies: dict[str, CommandReply] = {}  # connectors command id -> its reply

    def apply(self, event: LoggedEvent) -> None:
        env = event.envelope
        record_answer(self.replies, env, SERVICE)
        if env.type == ConnectorConfigured.TYPE:
            data = env.data
            connector = Connector(
                env.tenant,
                data["connector_id"],
                data["platform"],
                dict(data.get("public_config", {})),
                self._box.open(data["sealed_config"]),
            )
            self._by_id[connector.connector_id] = connector
        elif env.type == ConnectorRemoved.TYPE:
            existing = self._by_id.get(env.data["connector_id"])
            if existing is not None and existing.tenant == env.tenant:
                del self._by_id[existing.connector_id]

    def get(self, connector_id: str, platform: str) -> Connector | None:
        connector = self._by_id.get(connector_id)
        return connector if connector is not None and connector.platform == platform else None

    def find(self, connector_id: str) -> Connector | None:
        return self._by_id.get(connector_id)

    def public_view(self, tenant: str) -> list[dict[str, object]]:
        """What an admin may see: public fields and which secrets are set, never their values."""
        return [
            {
                "connector_id": c.connector_id,
                "platform": c.platform,
                "public_config": c.public,
                "secrets_set": sorted(k for k, v in c.secrets.items() if v),
            }
            for c in self._by_id.values()
            if c.tenant == tenant
        ]

    def ids_of(self, tenant: str) -> set[str]:
        return {c.connector_id for c in self._by_id.values() if c.tenant == tenant}

    def all(self) -> list[Connector]:
        return list(self._by_id.values())
