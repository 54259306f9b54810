"""Decides ``connector.configure`` / ``connector.remove`` (this service is their single writer)."""

from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.fernet import InvalidToken

from connectors.config import ConnectorDirectory
from connectors.plans import TenantPlans
from contracts.commands.connector import ConfigureConnector, RemoveConnector
from contracts.envelope import Envelope, LoggedEvent
from contracts.events.connector import ConnectorConfigured, ConnectorRemoved
from contracts.plan_limits import LIMIT_CODE, refusal
from contracts.plans import PlanCatalogue
from contracts.registry import parse_command_data
from contracts.replies import CommandReply
from relaydesk.bus import Bus
from relaydesk.sealing import SecretBox

REQUIRED_SECRETS = {
    "telegram": ("bot_token",),
    "messenger": ("app_secret", "page_token", "verify_token"),
    "wechat": ("app_secret", "token"),
}
REQUIRED_PUBLIC = {"telegram": (), "messenger": ("page_id",), "wechat": ("app_id",)}


class ConnectorCommands:
    """Args:
    plans, catalogue: the tenants' plans (folded from the log by the follower) whose
        ``connectors`` limit bites here, where connectors are configured.
    clock: today's date for plan changes with an effective date.
    """

    def __init__(
        self,
        bus: Bus,
        directory: ConnectorDirectory,
        box: SecretBox,
        plans: TenantPlans | None = None,
        catalogue: PlanCatalogue | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._bus = bus
        self._directory = directory
        self._box = box
        self._plans = plans or TenantPlans()
        self._catalogue = catalogue or PlanCatalogue.load()
        self._clock = clock

    async def handle(self, command: Envelope) -> CommandReply:
        payload = parse_command_data(command)
        if isinstance(payload, ConfigureConnector):
            return await self._configure(command, payload)
        if isinstance(payload, RemoveConnector):
            return await self._remove(command, payload)
        return CommandReply(
            ok=False, code="invalid_payload", message=f"not a connectors command: {command.type}"
        )

    async def _configure(self, command: Envelope, cmd: ConfigureConnector) -> CommandReply:
        existing = self._directory.find(cmd.connector_id)
        if existing is not None and (
            existing.tenant != command.tenant or existing.platform != cmd.platform
        ):
            return CommandReply(ok=False, code="conflict", message="this connector id is taken")
        if existing is None:  # reconfiguring a connector never counts as another one
            used = len(self._directory.ids_of(command.tenant))
            why = refusal(
                self._plans.get(command.tenant),
                self._catalogue,
                "connectors",
                used,
                self._clock().date(),
            )
            if why is not None:
                return CommandReply(ok=False, code=LIMIT_CODE, message=why)
        try:
            given = self._box.open(cmd.sealed_secrets) if cmd.sealed_secrets else {}
        except (InvalidToken, ValueError):
            return CommandReply(
                ok=False, code="invalid_payload", message="sealed_secrets cannot be opened"
            )
        secrets = {**(existing.secrets if existing else {}), **given}
        missing = [k for k in REQUIRED_SECRETS[cmd.platform] if not secrets.get(k)] + [
            k for k in REQUIRED_PUBLIC[cmd.platform] if not cmd.public_config.get(k)
        ]
        if (
            cmd.platform == "wechat"
            and cmd.public_config.get("plaintext_allowed") != "true"
            and not secrets.get("encoding_aes_key")
        ):
            missing.append("encoding_aes_key")
        if missing:
            return CommandReply(
                ok=False, code="invalid_payload", message=f"missing: {', '.join(sorted(missing))}"
            )
        data = {
            "connector_id": cmd.connector_id,
            "platform": cmd.platform,
            "public_config": cmd.public_config,
            "sealed_config": self._box.seal(secrets),
        }
        return await self._emit(command, ConnectorConfigured.TYPE, data)

    async def _remove(self, command: Envelope, cmd: RemoveConnector) -> CommandReply:
        existing = self._directory.find(cmd.connector_id)
        if existing is None or existing.tenant != command.tenant:
            return CommandReply(ok=False, code="not_found", message="no such connector")
        return await self._emit(command, ConnectorRemoved.TYPE, {"connector_id": cmd.connector_id})

    async def _emit(self, command: Envelope, kind: str, data: dict) -> CommandReply:  # type: ignore[type-arg]
        event = Envelope(
            id=command.id,
            type=kind,
            tenant=command.tenant,
            stream=f"connector:{data['connector_id']}",
            actor=command.actor,
            causation_id=command.id,
            correlation_id=command.correlation_id,
            data=data,
        )
        await self._bus.publish(event)
        # Fold at once: the next command must see it even before the log reader does.
        self._directory.apply(LoggedEvent(position=-1, envelope=event))
        return CommandReply(ok=True, event_ids=(event.id,))
