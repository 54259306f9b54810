"""The connectors' decider: ``connector.configure`` / ``connector.remove`` (their single writer).

Secrets travel sealed. Opening the command's secrets, merging them with the ones already
configured and sealing the result happens in :meth:`ConnectorsDecider.prepare`; the pure
decision then checks the connector id, the plan's ``connectors`` limit and that every
secret the platform needs is set, and emits the already sealed configuration.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from secrets import token_urlsafe
from typing import Any

from cryptography.fernet import InvalidToken

from connectors.config import (
    SERVICE,
    ConnectorDirectory,
    identifying_stripped,
    platform_identity,
)
from connectors.plans import TenantPlans
from contracts.commands import connector as commands
from contracts.commands.connector import ConfigureConnector, RemoveConnector
from contracts.envelope import Envelope, LoggedEvent
from contracts.events.connector import ConnectorConfigured, ConnectorRemoved
from contracts.plan_limits import LIMIT_CODE, refusal
from contracts.plans import PlanCatalogue
from contracts.replies import CommandReply
from relaydesk.decider import Decider, Decision, Handler, Rejected, utc_now
from relaydesk.sealing import SecretBox

REQUIRED_SECRETS = {
    "telegram": ("bot_token",),
    "messenger": ("app_secret", "page_token", "verify_token"),
    "wechat": ("app_secret", "token"),
}
REQUIRED_PUBLIC = {"telegram": (), "messenger": ("page_id",), "wechat": ("app_id",)}
IDENTITY_NAMES = {"telegram": "bot", "messenger": "page", "wechat": "account (app_id)"}
MODES = ("webhook", "polling")


@dataclass(frozen=True)
class Connectors:
    """What connector decisions read: the configured connectors and the tenants' plans."""

    directory: ConnectorDirectory
    plans: TenantPlans
    catalogue: PlanCatalogue


@dataclass(frozen=True)
class SealedSecrets:
    """A configure command's secrets once opened and merged with the ones already set."""

    names: frozenset[str]  # the secrets that have a value
    sealed: str
    identity: str | None = None  # the bot, page or account (config.platform_identity)
    webhook_secret_ok: bool = True  # Telegram's secret_token alphabet and length


# Telegram's setWebhook secret_token: 1-256 characters, only A-Z, a-z, 0-9, _ and -.
TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


ConnectorDecision = Decision[Connectors]


def stream_for(data: Mapping[str, Any]) -> str:
    return f"connector:{data['connector_id']}"


def configure(d: ConnectorDecision, cmd: commands.ConfigureConnector) -> None:
    tenant, connectors = d.command.tenant, d.state
    public = identifying_stripped(cmd.public_config)
    existing = connectors.directory.find(cmd.connector_id)
    if existing is not None and (existing.tenant != tenant or existing.platform != cmd.platform):
        raise Rejected("conflict", "this connector id is taken")
    if existing is None:  # reconfiguring a connector never counts as another one
        used = len(connectors.directory.ids_of(tenant))
        plan = connectors.plans.get(tenant)
        why = refusal(plan, connectors.catalogue, "connectors", used, d.now.date())
        if why is not None:
            raise Rejected(LIMIT_CODE, why)
    secrets = d.context
    if not isinstance(secrets, SealedSecrets):  # prepare() could not open them
        raise Rejected("invalid_payload", "sealed_secrets cannot be opened")
    missing = [k for k in REQUIRED_SECRETS[cmd.platform] if k not in secrets.names] + [
        k for k in REQUIRED_PUBLIC[cmd.platform] if not public.get(k)
    ]
    if (
        cmd.platform == "wechat"
        and public.get("plaintext_allowed") != "true"
        and "encoding_aes_key" not in secrets.names
    ):
        missing.append("encoding_aes_key")
    mode = public.get("mode", "webhook")
    if cmd.platform == "telegram" and mode == "webhook" and "webhook_secret" not in secrets.names:
        missing.append("webhook_secret")  # else anyone who learns the URL could post updates
    if missing:
        raise Rejected("invalid_payload", f"missing: {', '.join(sorted(missing))}")
    if cmd.platform == "telegram" and mode not in MODES:
        raise Rejected("invalid_payload", "mode: webhook or polling")
    if not secrets.webhook_secret_ok:
        raise Rejected(
            "invalid_payload", "webhook_secret: 1-256 characters, only A-Z, a-z, 0-9, _ and -"
        )
    holder = None if secrets.identity is None else connectors.directory.holder_of(secrets.identity)
    if holder is not None and holder.connector_id != cmd.connector_id:
        # Never says which connector, nor whose: it may be another tenant's.
        raise Rejected("conflict", f"this {IDENTITY_NAMES[cmd.platform]} is already connected")
    data = {
        "connector_id": cmd.connector_id,
        "platform": cmd.platform,
        "public_config": public,
        "sealed_config": secrets.sealed,
    }
    d.emit(ConnectorConfigured.TYPE, data)


def remove(d: ConnectorDecision, cmd: commands.RemoveConnector) -> None:
    existing = d.state.directory.find(cmd.connector_id)
    if existing is None or existing.tenant != d.command.tenant:
        raise Rejected("not_found", "no such connector")
    d.emit(ConnectorRemoved.TYPE, {"connector_id": cmd.connector_id})


HANDLERS: dict[str, Handler[ConnectorDecision]] = {
    ConfigureConnector.TYPE: configure,
    RemoveConnector.TYPE: remove,
}


class ConnectorsDecider(Decider[ConnectorDecision]):
    """Decides the ``connectors`` commands.

    Args:
        directory: the configured connectors (folded from the log by the follower).
        box: opens and seals connector secrets.
        plans: the tenants' plans (folded from the log by the follower).
        catalogue: the plans whose ``connectors`` limit bites here.
        clock: the decision time (plan changes with an effective date).
    """

    service = SERVICE
    handlers = HANDLERS

    def __init__(
        self,
        directory: ConnectorDirectory,
        box: SecretBox,
        plans: TenantPlans,
        catalogue: PlanCatalogue,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.state = Connectors(directory, plans, catalogue)
        self._box = box
        self._clock = clock

    @property
    def replies(self) -> dict[str, CommandReply]:
        return self.state.directory.replies

    def decision(self, command: Envelope, context: object) -> ConnectorDecision:
        return Decision(
            SERVICE, self.state, command, now=self._clock(), stream=stream_for, context=context
        )

    def fold(self, event: Envelope) -> None:
        # At once: the next command must see it even before the log reader does.
        self.state.directory.apply(LoggedEvent(position=-1, envelope=event))

    async def prepare(self, command: Envelope, payload: Any) -> object:
        """For a configure: its secrets opened, merged with the ones kept, sealed again.

        None when they cannot be opened (the decision says so, after its other checks).
        """
        if not isinstance(payload, ConfigureConnector):
            return None
        try:
            given = self._box.open(payload.sealed_secrets) if payload.sealed_secrets else {}
        except (InvalidToken, ValueError):
            return None
        existing = self.state.directory.find(payload.connector_id)
        kept = (
            existing.secrets
            if existing is not None
            and existing.tenant == command.tenant
            and existing.platform == payload.platform
            else {}
        )
        merged = identifying_stripped({**kept, **given})
        public = identifying_stripped(payload.public_config)
        webhook_mode = payload.public_config.get("mode", "webhook") == "webhook"
        if payload.platform == "telegram" and webhook_mode and not merged.get("webhook_secret"):
            # Webhook mode always has a secret: the service registers it with setWebhook itself,
            # so nobody has to invent one (Telegram's alphabet: token_urlsafe's exactly).
            merged["webhook_secret"] = token_urlsafe(32)
        secret = merged.get("webhook_secret")
        return SealedSecrets(
            names=frozenset(k for k, v in merged.items() if v),
            sealed=self._box.seal(merged),
            identity=platform_identity(payload.platform, public, merged),
            webhook_secret_ok=payload.platform != "telegram"
            or not secret
            or TELEGRAM_SECRET.fullmatch(secret) is not None,
        )
