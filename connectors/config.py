"""Connector configuration folded from ``connector.configured`` / ``connector.removed`` events.

The fold also records the replies to the connectors' own commands (``connector.configure``,
``connector.remove``) found on the log, so a redelivered command is answered, not decided
again (relaydesk/decider.py).
"""

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import structlog
from cryptography.fernet import InvalidToken

from contracts.envelope import LoggedEvent
from contracts.events.connector import (
    ConnectorConfigured,
    ConnectorPaused,
    ConnectorRemoved,
    ConnectorResumed,
)
from contracts.replies import CommandReply
from relaydesk.decider import parsed_or_skipped, record_answer
from relaydesk.sealing import SecretBox
from relaydesk.snapshots import AheadOfLog

log = structlog.get_logger(__name__)
# The events this directory folds (each checked against its contract first).
FOLDED = frozenset(
    {
        ConnectorConfigured.TYPE,
        ConnectorRemoved.TYPE,
        ConnectorPaused.TYPE,
        ConnectorResumed.TYPE,
    }
)

SERVICE = "connectors"


@dataclass(frozen=True)
class Connector:
    tenant: str
    connector_id: str
    platform: str
    public: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # repr=False: never in logs
    # Which of this service's keys sealed the secrets: "current"; "previous" (re-seal them:
    # `relaydesk admin reseal-connectors`); "unknown", a key no longer configured: the secrets
    # are lost and must be entered again.
    sealed_with: Literal["current", "previous", "unknown"] = "current"
    # Paused by an admin, or imported: it polls and sends nothing (replies wait in the outbox).
    paused: bool = False


# The fields that name a connector's bot, page or account: compared to refuse a second
# connector of one bot, and used in the platform's API paths.
IDENTIFYING_FIELDS = ("bot_token", "page_id", "app_id")


def identifying_stripped(fields: dict[str, str]) -> dict[str, str]:
    """``fields`` with the identifying values stripped: " 5001" pasted into a form is page
    5001, not another page the duplicate check would let through."""
    return {
        k: v.strip() if k in IDENTIFYING_FIELDS and isinstance(v, str) else v
        for k, v in fields.items()
    }


def platform_identity(platform: str, public: dict[str, str], secrets: dict[str, str]) -> str | None:
    """What a connector connects to on its platform: one bot, page or account may be served by
    one connector only (two pollers of one bot token fight over getUpdates; two webhooks of one
    page answer every message twice). A Telegram bot is the number before the token's colon,
    the same for every token the bot ever had."""
    if platform == "telegram":
        token = secrets.get("bot_token", "")
        return f"telegram:{token.split(':', 1)[0]}" if token else None
    key = {"messenger": "page_id", "wechat": "app_id"}.get(platform)
    value = public.get(key, "") if key else ""
    return f"{platform}:{value}" if value else None


class ConnectorDirectory:
    """Current connectors by (tenant, id) — also looked up by id alone for webhooks."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._by_id: dict[str, Connector] = {}
        self.replies: dict[str, CommandReply] = {}  # connectors command id -> its reply
        # (tenant, connector id) -> the pauses in force (event ids; a resume names those it
        # ends). Kept apart from the connector: an import pauses one before configuring it.
        self._pauses: dict[tuple[str, str], list[str]] = {}
        # connector id -> (tenant, its configuration as logged: sealed secrets): what a
        # snapshot keeps (never the opened secrets) and a start opens again
        self._configured: dict[str, tuple[str, dict[str, object]]] = {}
        # Our decided events not yet read back: a snapshot waits for them.
        self.ahead = AheadOfLog(SERVICE)

    def _pause(self, event: LoggedEvent) -> None:
        env = event.envelope
        key = (env.tenant, env.data["connector_id"])
        pauses = self._pauses.get(key, [])
        if env.type == ConnectorPaused.TYPE:
            pauses = [*pauses, env.id] if env.id not in pauses else pauses
        else:
            pauses = [p for p in pauses if p not in env.data.get("pauses", ())]
        self._pauses[key] = pauses
        existing = self._by_id.get(key[1])
        if existing is not None and existing.tenant == key[0]:
            self._by_id[key[1]] = replace(existing, paused=bool(pauses))

    def apply(self, event: LoggedEvent) -> bool:
        """Fold one event; False for one of ours that does not match its contract (skipped)."""
        env = event.envelope
        if event.position < 0:  # folded from our own decision
            self.ahead.decided(env, self.replies)
        else:
            self.ahead.logged(env.id)
        record_answer(self.replies, env, SERVICE)
        if env.type in FOLDED and parsed_or_skipped(env, event.position) is None:
            return False
        if env.type in (ConnectorPaused.TYPE, ConnectorResumed.TYPE):
            self._pause(event)
        if env.type == ConnectorConfigured.TYPE:
            self._configure(env.tenant, env.data, event.position)
        elif env.type == ConnectorRemoved.TYPE:
            existing = self._by_id.get(env.data["connector_id"])
            if existing is not None and existing.tenant == env.tenant:
                del self._by_id[existing.connector_id]
                self._configured.pop(existing.connector_id, None)
                self._pauses.pop((env.tenant, existing.connector_id), None)
        return True

    def opened(
        self, sealed: str, tenant: str, connector_id: str, position: int
    ) -> tuple[dict[str, str], Literal["current", "previous", "unknown"]]:
        """Secrets sealed by this service, stripped, and which key sealed them."""
        key: Literal["current", "previous", "unknown"]
        try:
            secrets = self._box.open(sealed)
            key = "current" if self._box.sealed_under_current_key(sealed) else "previous"
        except InvalidToken:
            # A later event sealed under a current key (reconfiguration, re-sealing) takes
            # its place; until then the connector has no secrets and cannot deliver.
            log.warning(
                "connector_secrets_unreadable",
                tenant=tenant,
                connector_id=connector_id,
                position=position,
            )
            return {}, "unknown"
        return identifying_stripped(secrets), key

    def _configure(self, tenant: str, data: dict[str, Any], position: int) -> None:
        secrets, key = self.opened(data["sealed_config"], tenant, data["connector_id"], position)
        connector = Connector(
            tenant,
            data["connector_id"],
            data["platform"],
            # stripped here too: configurations logged before the decider stripped them
            identifying_stripped(dict(data.get("public_config", {}))),
            secrets,
            key,
            paused=bool(self._pauses.get((tenant, data["connector_id"]))),
        )
        self._by_id[connector.connector_id] = connector
        kept = ("connector_id", "platform", "public_config", "sealed_config")
        self._configured[connector.connector_id] = (tenant, {k: data[k] for k in kept if k in data})

    def state(self) -> dict[str, Any]:
        """What the fold holds, as plain data (secrets sealed): a snapshot's."""
        return {
            "configured": [[tenant, data] for tenant, data in self._configured.values()],
            "pauses": [[tenant, cid, list(p)] for (tenant, cid), p in self._pauses.items()],
        }

    def restore(self, state: dict[str, Any], position: int) -> None:
        """The fold :meth:`state` was taken of, at log ``position`` (secrets opened again)."""
        self._pauses = {(tenant, cid): list(p) for tenant, cid, p in state["pauses"]}
        for tenant, data in state["configured"]:
            self._configure(tenant, data, position)

    def get(self, connector_id: str, platform: str) -> Connector | None:
        """A connector that can verify and send: never one whose secrets are unreadable (an
        empty secret would make its webhook signatures forgeable)."""
        connector = self.usable(connector_id)
        return connector if connector is not None and connector.platform == platform else None

    def find(self, connector_id: str) -> Connector | None:
        """Any configured connector, readable secrets or not (commands decide on it)."""
        return self._by_id.get(connector_id)

    def usable(self, connector_id: str) -> Connector | None:
        connector = self._by_id.get(connector_id)
        return connector if connector is not None and connector.sealed_with != "unknown" else None

    def public_view(self, tenant: str) -> list[dict[str, object]]:
        """What an admin may see: public fields and which secrets are set, never their values."""
        return [
            {
                "connector_id": c.connector_id,
                "platform": c.platform,
                "public_config": c.public,
                "secrets_set": sorted(k for k, v in c.secrets.items() if v),
                "paused": c.paused,
            }
            for c in self._by_id.values()
            if c.tenant == tenant
        ]

    def configured(self) -> list[Connector]:
        """Every configured connector, whether its secrets open or not (re-sealing)."""
        return list(self._by_id.values())

    def holder_of(self, identity: str) -> Connector | None:
        """The configured connector (any tenant) serving this bot, page or account."""
        for c in self._by_id.values():
            if platform_identity(c.platform, c.public, c.secrets) == identity:
                return c
        return None

    def ids_of(self, tenant: str) -> set[str]:
        return {c.connector_id for c in self._by_id.values() if c.tenant == tenant}

    def all(self) -> list[Connector]:
        """The usable connectors (see ``get``)."""
        return [c for c in self._by_id.values() if c.sealed_with != "unknown"]
